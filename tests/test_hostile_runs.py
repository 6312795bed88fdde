"""Hostile and careless input to training runs (issue 20): folders that only look like runs, two
trainings into one run, damaged or crafted checkpoints, a run that diverges, a disk that fills
while a checkpoint is written. Each ends as correct work, or as one line naming the file and a
non-zero exit, with the user's files unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import write_photos

from cli import main
from vidcolor.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--size", "32", "--base-width", "8", "--depth", "3", "--batch-size", "4", "--epochs",
        "1", "--workers", "0"]  # fmt: skip


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line(result: Result, pattern: str) -> str:
    """The command failed with exit 1 and one error line matching ``pattern``, no traceback."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def digests(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by its relative path: its content's sha256."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos") / "photos"
    write_photos(folder, size=40)
    return folder


@pytest.fixture(scope="module")
def trained(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A whole tiny run (config.json, last.pt, best.pt, model.pt ...); tests copy it."""
    run = tmp_path_factory.mktemp("trained") / "run"
    result = cli("train", photos, "-o", run, *TINY)
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture
def run_copy(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run", symlinks=True))


def unmarked(run: Path) -> dict:
    """``run`` as an earlier vidcolor left it: config.json without the run mark."""
    record = json.loads((run / "config.json").read_text())
    record.pop("format", None)
    (run / "config.json").write_text(json.dumps(record, indent=2))
    return record


# --- finding 1: a folder that only looks like a run -----------------------------------------


def test_train_o_refuses_a_folder_whose_config_has_a_runs_keys(photos: Path, tmp_path: Path
                                                                ) -> None:  # fmt: skip
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "config.json").write_text('{"data":"imagenet","model":"resnet50","size":224}')
    (proj / "model.pt").write_text("mine")
    before = digests(proj)
    one_line(cli("train", photos, "-o", proj, *TINY),
             rf"{re.escape(str(proj))}: holds files and is not a training run vidcolor made")
    assert digests(proj) == before and sorted(os.listdir(proj)) == ["config.json", "model.pt"]


def test_train_o_never_starts_over_a_run_an_earlier_version_made(photos: Path, run_copy: Path
                                                                 ) -> None:  # fmt: skip
    unmarked(run_copy)
    (run_copy / "last.pt").unlink()  # stopped before its first save: still not taken
    before = digests(run_copy)
    one_line(cli("train", photos, "-o", run_copy, *TINY),
             rf"{re.escape(str(run_copy))}: holds files and is not a training run vidcolor made")
    assert digests(run_copy) == before


def test_train_resume_continues_a_run_an_earlier_version_made(run_copy: Path) -> None:
    record = unmarked(run_copy)
    result = cli("train", "--resume", run_copy, "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run_copy / "last.pt")["epoch"] == 2
    marked = json.loads((run_copy / "config.json").read_text())
    assert marked == {"format": "vidcolor-run", **record}  # marked now: a run like any other


def test_train_resume_refuses_a_folder_that_only_looks_like_a_run(trained: Path, tmp_path: Path
                                                                  ) -> None:  # fmt: skip
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "config.json").write_text('{"data":"imagenet","model":"resnet50","size":224}')
    shutil.copy(trained / "last.pt", proj / "last.pt")  # a checkpoint the user keeps there
    (proj / "model.pt").write_text("mine")
    before = digests(proj)
    one_line(cli("train", "--resume", proj),
             rf"{re.escape(str(proj))}: not a training run vidcolor made")
    assert digests(proj) == before


# --- finding 4: two trainings into one run --------------------------------------------------


def vidcolor(*args: str | Path, **kw: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kw)  # fmt: skip


def wait_for(check: object, what: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("second", ["start", "resume"])
def test_a_second_training_into_a_run_is_refused_at_once(photos: Path, run_copy: Path,
                                                         second: str) -> None:  # fmt: skip
    # Both start a new run in one folder, or both resume one (the first: 40 more epochs).
    if second == "start":
        shutil.rmtree(run_copy)
        args: tuple = (photos, "-o", run_copy, *TINY)
    else:
        args = ("--resume", run_copy)
    first = vidcolor("train", *args, "--epochs", "41")
    try:
        wait_for(lambda: (run_copy / "lock").exists() or first.poll() is not None, "the lock")
        t0 = time.monotonic()
        refused = subprocess.run([sys.executable, "-m", "cli", "train", *map(str, args)],
                                 cwd=ROOT, capture_output=True, text=True,
                                 timeout=120)  # fmt: skip
        assert first.poll() is None, "the first run ended before the second was tried"
        assert time.monotonic() - t0 < 60  # refused as it starts, not after the first ends
        _, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(
        rf"vidcolor: error: {re.escape(str(run_copy))}: another vidcolor process is writing it; "
        r"wait for it to end, or choose another output", lines[0]), lines
    assert first.returncode == 0, err
    assert load_checkpoint(run_copy / "last.pt")["step"] == 41  # 7 training images: 1 step each
    rows = (run_copy / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and not any(r.startswith("step,") for r in rows[1:])
    steps = [int(r.split(",")[0]) for r in rows[1:]]
    assert steps == sorted(steps) and steps[-1] == 41  # one writer: in order, none twice
    assert not (run_copy / "lock").exists()  # its holder took it away


def test_a_stale_lock_of_a_killed_run_is_taken_over(run_copy: Path) -> None:
    (run_copy / "lock").write_text("")  # a SIGKILL'd training leaves its lock file behind
    result = cli("train", "--resume", run_copy, "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert not (run_copy / "lock").exists()
