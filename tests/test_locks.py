"""The two primitives that keep two writers apart: the per-output lock (vidcolor/locks.py) and
the no-replace publish (vidcolor/atomic.py), each held against a second real process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vidcolor.atomic import AppearedError, atomic_path
from vidcolor.errors import UserError
from vidcolor.locks import BusyError, exclusive

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from vidcolor.locks import exclusive
    with exclusive(Path(sys.argv[1]), "out"):
        print("held", flush=True)
        sys.stdin.readline()
""")


def test_a_second_process_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / ".out.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = pytest.raises(BusyError, match="out: another vidcolor process is writing it")
        with busy, exclusive(lock, "out"):
            pass
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0
    assert not lock.exists()  # the holder cleans up its own lock file
    with exclusive(lock, "out"):  # and the lock is free again
        assert lock.exists()
    assert not lock.exists()


def test_a_lock_file_left_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    lock = tmp_path / ".out.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait(timeout=30)
    assert lock.exists()  # SIGKILL leaves the file, but not the lock
    with exclusive(lock, "out"):
        pass
    assert not lock.exists()


def test_a_link_planted_at_the_lock_name_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("mine")
    (tmp_path / ".out.lock").symlink_to(target)
    with pytest.raises(UserError, match="cannot lock"), exclusive(tmp_path / ".out.lock", "out"):
        pass
    assert target.read_text() == "mine"


def test_publish_without_replace_keeps_a_file_that_appeared(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    appeared = pytest.raises(AppearedError, match="appeared while vidcolor was writing it")
    with appeared, atomic_path(out, replace=False) as tmp:
        tmp.write_text("vidcolor's")
        out.write_text("the user's")  # another program wrote OUT meanwhile
    assert out.read_text() == "the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temp file left
    with atomic_path(tmp_path / "new.txt", replace=False) as tmp:
        tmp.write_text("vidcolor's")
    assert (tmp_path / "new.txt").read_text() == "vidcolor's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.txt", "out.txt"]
    with atomic_path(out) as tmp:  # replace=True, as --overwrite asks
        tmp.write_text("vidcolor's")
    assert out.read_text() == "vidcolor's"


def test_a_users_file_at_the_lock_name_is_refused_and_kept(tmp_path: Path) -> None:
    lock = tmp_path / ".out.lock"
    lock.write_text("my notes")
    with pytest.raises(UserError, match="not a vidcolor lock"), exclusive(lock, "out"):
        pass
    assert lock.read_text() == "my notes"
    os.mkfifo(tmp_path / ".pipe.lock")
    with (
        pytest.raises(UserError, match="not a vidcolor lock"),
        exclusive(tmp_path / ".pipe.lock", "out"),
    ):
        pass
    assert (tmp_path / ".pipe.lock").exists()
