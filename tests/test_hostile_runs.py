"""Hostile and careless input to training runs (issue 20): folders that only look like runs, two
trainings into one run, damaged or crafted checkpoints, a run that diverges, a disk that fills
while a checkpoint is written. Each ends as correct work, or as one line naming the file and a
non-zero exit, with the user's files unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result
from conftest import write_photos

from cli import main
from vidcolor.train.checkpoint import load_checkpoint, load_model

ROOT = Path(__file__).resolve().parents[1]
TINY = shlex.split("--size 32 --base-width 8 --depth 3 --batch-size 4 --epochs 1 --workers 0")


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line(result: Result, pattern: str) -> str:
    """The command failed with exit 1 and one error line matching ``pattern``, last on stderr
    (after at most the lines on what a resumed run trains on), no traceback."""
    assert result.exit_code == 1, result.output
    *said, line = result.stderr.strip().splitlines()
    assert "Traceback" not in result.output and len(said) <= 2, result.output
    assert not [s for s in said if "error" in s], said
    assert re.search(pattern, line), line
    return line


def digests(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by its relative path: its content's sha256."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


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


def test_train_o_refuses_a_folder_whose_config_has_a_runs_keys(
    photos: Path, tmp_path: Path
) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "config.json").write_text('{"data":"imagenet","model":"resnet50","size":224}')
    (proj / "model.pt").write_text("mine")
    before = digests(proj)
    one_line(
        cli("train", photos, "-o", proj, *TINY),
        rf"{re.escape(str(proj))}: holds files and is not a training run vidcolor made",
    )
    assert digests(proj) == before and sorted(os.listdir(proj)) == ["config.json", "model.pt"]


def test_train_o_never_starts_over_a_run_an_earlier_version_made(
    photos: Path, run_copy: Path
) -> None:
    unmarked(run_copy)
    (run_copy / "last.pt").unlink()  # stopped before its first save: still not taken
    before = digests(run_copy)
    one_line(
        cli("train", photos, "-o", run_copy, *TINY),
        rf"{re.escape(str(run_copy))}: holds files and is not a training run vidcolor made",
    )
    assert digests(run_copy) == before


def test_train_resume_continues_a_run_an_earlier_version_made(run_copy: Path) -> None:
    record = unmarked(run_copy)
    result = cli("train", "--resume", run_copy, "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run_copy / "last.pt")["epoch"] == 2
    marked = json.loads((run_copy / "config.json").read_text())
    assert marked == {"format": "vidcolor-run", **record}  # marked now: a run like any other


def test_train_resume_refuses_a_folder_that_only_looks_like_a_run(
    trained: Path, tmp_path: Path
) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "config.json").write_text('{"data":"imagenet","model":"resnet50","size":224}')
    shutil.copy(trained / "last.pt", proj / "last.pt")  # a checkpoint the user keeps there
    (proj / "model.pt").write_text("mine")
    before = digests(proj)
    one_line(
        cli("train", "--resume", proj), rf"{re.escape(str(proj))}: not a training run vidcolor made"
    )
    assert digests(proj) == before


# --- finding 4: two trainings into one run --------------------------------------------------


def vidcolor(*args: str | Path, **kw: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def wait_for(check: object, what: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("second", ["start", "resume"])
def test_a_second_training_into_a_run_is_refused_at_once(
    photos: Path, run_copy: Path, second: str
) -> None:
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
        refused = subprocess.run(
            [sys.executable, "-m", "cli", "train", *map(str, args)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert first.poll() is None, "the first run ended before the second was tried"
        assert time.monotonic() - t0 < 60  # refused as it starts, not after the first ends
        _, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(
        rf"vidcolor: error: {re.escape(str(run_copy))}: another vidcolor process is writing it; "
        r"wait for it to end, or choose another output",
        lines[0],
    ), lines
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


# --- finding 8: checkpoints consistent, weights finite, training stops when it diverges ------


def rewrite(path: Path, change: object) -> None:
    """Load ``path``, apply ``change`` to its dict, save it back (a crafted file)."""
    state = torch.load(path, weights_only=True)
    change(state)  # type: ignore[operator]
    torch.save(state, path)


def first_float(weights: dict) -> str:
    return next(k for k, t in weights.items() if t.is_floating_point())


def poison(weights: dict, value: float) -> None:
    weights[first_float(weights)].fill_(value)


CRAFTED = {
    "step ahead of its epoch": (
        lambda s: s.update(step=s["step"] + 2),
        r"step 3 is not in epoch 1 at 1 steps an epoch",
    ),
    "scheduler behind its step": (
        lambda s: s["sched_G"].update(last_epoch=0),
        r"sched_G\.last_epoch is 0, not 1 at step 1",
    ),
    "a moment missing": (
        lambda s: s["opt_G"]["state"][0].pop("exp_avg"),
        r"opt_G\.state\[0\] has no 'exp_avg'; Adam keeps",
    ),
    "an unknown moment": (
        lambda s: s["opt_D"]["state"][0].update(max_exp_avg_sq=torch.ones(1)),
        r"opt_D\.state\[0\] has an unknown 'max_exp_avg_sq'",
    ),
    "a NaN moment": (
        lambda s: s["opt_G"]["state"][1]["exp_avg_sq"].fill_(float("nan")),
        r"opt_G\.state\[1\]\.exp_avg_sq holds NaN or infinite values",
    ),
    "an all-zero rng": (
        lambda s: s["rng"].zero_(),
        r"rng is not a valid generator state \(.*mt19937",
    ),
    "NaN weights in G": (
        lambda s: poison(s["G"], float("nan")),
        r"G\.\S+ holds NaN or infinite values",
    ),
    "inf weights in D": (
        lambda s: poison(s["D"], float("inf")),
        r"D\.\S+ holds NaN or infinite values",
    ),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_train_resume_refuses_an_inconsistent_checkpoint_in_one_line(
    run_copy: Path, case: str
) -> None:
    change, message = CRAFTED[case]
    rewrite(run_copy / "last.pt", change)
    before = digests(run_copy)
    # A process with a hard timeout: a step ahead of its epoch used to spin for ever.
    done = subprocess.run(
        [sys.executable, "-m", "cli", "train", "--resume", str(run_copy), "--epochs", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert re.match(
        rf"vidcolor: error: {re.escape(str(run_copy / 'last.pt'))}: {message}", lines[0]
    ), lines[0]
    assert digests(run_copy) == before


def test_render_refuses_a_bundle_of_inf_weights(
    trained: Path, photos: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model.pt"
    shutil.copy(trained / "model.pt", model)
    rewrite(model, lambda s: poison(s["generator"], float("inf")))
    out = tmp_path / "out.png"
    line = one_line(
        cli("render", photos / "coffee.png", out, "--model", model),
        rf"{re.escape(str(model))}: generator\.\S+ holds NaN or infinite values",
    )
    assert "diverged" in line and not out.exists()  # never an all-black picture, exit 0


def test_train_init_refuses_a_checkpoint_of_nan_weights(
    trained: Path, photos: Path, tmp_path: Path
) -> None:
    start = tmp_path / "start.pt"
    shutil.copy(trained / "last.pt", start)
    rewrite(start, lambda s: poison(s["D"], float("nan")))
    one_line(
        cli(
            "train",
            photos,
            "-o",
            tmp_path / "tuned",
            "--init",
            start,
            *TINY[:2],
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--workers",
            "0",
        ),
        rf"{re.escape(str(start))}: D\.\S+ holds NaN or infinite values",
    )
    assert not (tmp_path / "tuned").exists()


def test_training_that_diverges_stops_in_one_line_and_keeps_the_last_good_checkpoint(
    photos: Path, tmp_path: Path
) -> None:
    # A huge (finite) learning rate: step 1 (L1 alone) throws G's weights far out, and a later
    # step's loss is NaN. The checkpoint of step 1 is whole; nothing after it is written.
    run = tmp_path / "run"
    result = cli(
        "train",
        photos,
        "-o",
        run,
        *TINY,
        "--pretrain-epochs",
        "1",
        "--epochs",
        "3",
        "--lr",
        "1e37",
        "--checkpoint-every",
        "1",
    )
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    *said, line = result.stderr.strip().splitlines()  # after the line on what it trains on
    assert not [s for s in said if "error" in s] and len(said) <= 1, said
    assert re.match(
        rf"vidcolor: error: {re.escape(str(run))}: training diverged at step 2 "
        r"\([^)]*G_L1 is nan[^)]*\)",
        line,
    ), line
    assert re.search(rf"{re.escape(str(run / 'last.pt'))} keeps step 1, the last good one", line)
    state = load_checkpoint(run / "last.pt")  # finite: it loads, and it is step 1's
    assert state["step"] == 1
    for name in ("best.pt", "model.pt"):  # finite, if written at all (NaN validates worse)
        if (run / name).exists():
            load_model(run / name)
    assert not list(run.glob(".*.part-*"))


# --- finding 9: the disk fills while a checkpoint is written ----------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real file system of its own (tmpfs, 64 MB) that a test can fill: needs root."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` with a file of zeros until only about ``leave`` bytes are free."""
    st = os.statvfs(disk)
    with open(disk / "filler", "wb") as f:
        f.write(bytes(st.f_bavail * st.f_frsize - leave))


def test_a_full_disk_while_writing_a_checkpoint_is_one_line_and_keeps_the_last(
    trained: Path, small_disk: Path
) -> None:
    run = Path(shutil.copytree(trained, small_disk / "run", symlinks=True))
    last = (run / "last.pt").read_bytes()
    fill(small_disk, leave=len(last) // 2)  # the sample grid fits, the new last.pt does not
    one_line(
        cli("train", "--resume", run, "--epochs", "2"),
        rf"{re.escape(str(run / 'last.pt'))}: not written \(No space left on device\); free "
        r"some space on its disk, then run again; a file there before is kept$",
    )
    assert (run / "last.pt").read_bytes() == last
    assert not list(run.glob(".*.part-*"))  # the half-written temporary file is gone
    (small_disk / "filler").unlink()  # space again: the run goes on from its last.pt
    result = cli("train", "--resume", run, "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run / "last.pt")["step"] == 2


def test_a_checkpoint_past_the_file_size_limit_is_one_line_and_keeps_the_last(
    run_copy: Path,
) -> None:
    """The same without root: RLIMIT_FSIZE makes the kernel refuse the write (EFBIG)."""
    import resource

    last = (run_copy / "last.pt").read_bytes()
    limit = len(last) // 2  # the cache, the sample grid and the curves fit; last.pt does not

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # SIGXFSZ: Python ignores it

    done = subprocess.run(
        [sys.executable, "-m", "cli", "train", "--resume", str(run_copy), "--epochs", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=small_files,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line == (
        f"vidcolor: error: {run_copy / 'last.pt'}: not written (File too large); "
        "a file there before is kept"
    ), line
    assert (run_copy / "last.pt").read_bytes() == last
    assert not list(run_copy.glob(".*.part-*"))
