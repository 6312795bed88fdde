"""Fault injection: each long command is stopped part-way (SIGKILL at about 10, 50 and 90% of its
progress, SIGTERM at 50%) and then run again, to hold vidcolor to its rule: it deletes or
replaces only what it made, and a killed command loses nothing.

After the second run the output is whole and the same as an uninterrupted run's, no temporary
file of the stopped run is left, and no file outside the command's own output changed. The stop
comes from the CLI's progress bar (``VIDCOLOR_TEST_FAULT=SIGNAL@FRACTION@TASK``, see
vidcolor.console.Bar), so it lands at a known point of the work; the commands run as real
processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli import main
from vidcolor.synthetic import cartoon
from vidcolor.train.checkpoint import load_checkpoint
from vidcolor.video import VideoReader, probe

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EPISODES = {"ep1": 96, "ep2": 120}  # name: frames, 160x96 at 24 fps
TRAIN = [
    "--size",
    "32",
    "--base-width",
    "8",
    "--depth",
    "4",
    "--batch-size",
    "4",
    "--epochs",
    "2",
    "--workers",
    "0",
    "--checkpoint-every",
    "1",
]
# The pipeline: a dataset of both episodes, the same training options, then both rendered.
RECIPE = (
    'inputs = ["eps/*.mp4"]\nwork = "work"\n[dataset]\npreset = "generic"\n[train]\n'
    + "".join(f"{k[2:]} = {v}\n" for k, v in zip(TRAIN[::2], TRAIN[1::2], strict=True))
    + "[render]\ncrf = 20\n"
)
COMMANDS = ("extract", "dataset", "train", "render", "pipeline")
POINTS = (("KILL", 0.1), ("KILL", 0.5), ("KILL", 0.9), ("TERM", 0.5))
PIPELINE_STAGE = {
    ("KILL", 0.1): "dataset",
    ("KILL", 0.5): "train",
    ("KILL", 0.9): "render",
    ("TERM", 0.5): "train",
}
# What a stopped run may leave for the next one to clear: a file being written, an unfinished
# dataset build, a replaced dataset on its way out.
STRAY = (".*.part-*", ".*.partial", ".*.old-*")
# How a SIGTERM'd command says to continue.
HINTS = {
    "extract": "--resume",
    "dataset": "run the same command again",
    "train": "continue with: vidcolor train --resume",
    "render": "run the command again",
    "pipeline": "run the pipeline again",
}
LUMA_TOLERANCE = 4.0  # mean |Y difference| of a frame: at most 1.3 here; a frame off by one: 11


class Findings:
    """Every check of a case runs; the failures are raised together at the end."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.failed.append(message)

    def outputs(self, verify: Callable[[], None]) -> None:
        """``verify`` raises when an output is missing, incomplete or differs."""
        try:
            verify()
        except Exception as e:
            self.failed.append(f"output: {type(e).__name__}: {e}")

    def raise_them(self) -> None:
        assert not self.failed, "\n".join(self.failed)


CASES = [
    pytest.param(command, sig, fraction, id=f"{command}-{sig}@{fraction}")
    for command in COMMANDS
    for sig, fraction in POINTS
]


# -- inputs, shared by the module ------------------------------------------------------------


@pytest.fixture(scope="module")
def episodes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("episodes")
    for seed, (name, length) in enumerate(EPISODES.items(), 1):
        cartoon(seed, length=length, size=(160, 96)).write(folder / f"{name}.mp4")
    return folder


@pytest.fixture(scope="module")
def frames(episodes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every second frame of ep1 (48 images): 20 training steps of TRAIN."""
    out = tmp_path_factory.mktemp("frames") / "ep1"
    result = CliRunner().invoke(
        main, ["extract", str(episodes / "ep1.mp4"), "-o", str(out), "--every", "2"]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def reference_dataset(episodes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataset of both episodes, built without interruption."""
    out = tmp_path_factory.mktemp("reference") / "data"
    args = ["dataset", "build", *(str(episodes / f"{n}.mp4") for n in EPISODES), "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def reference_run(frames: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """last.pt of a training run on ``frames`` without interruption (a process of its own, as
    the runs it is compared with: same threads, same numbers)."""
    run = tmp_path_factory.mktemp("reference") / "run"
    done = vidcolor(["train", frames, "-o", run, *TRAIN], run.parent)
    assert done.returncode == 0, done.stderr
    return run / "last.pt"


# -- running, snapshots ----------------------------------------------------------------------


def vidcolor(argv: list, cwd: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIDCOLOR_TEST_FAULT", "FORCE_COLOR", "TTY_COMPATIBLE")
    }
    env |= {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    if fault:
        env["VIDCOLOR_TEST_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "cli", *map(str, argv)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def plant(folder: Path) -> None:
    """Files of our own beside vidcolor's: a note, bytes, a hidden file, a nested folder, an
    empty one, and a temporary-looking file of a live process (pid 1)."""
    (folder / "nested" / "deeper").mkdir(parents=True, exist_ok=True)
    (folder / "empty").mkdir(exist_ok=True)
    (folder / "notes.txt").write_text("mine, not vidcolor's\n")
    (folder / "data.bin").write_bytes(np.random.default_rng(7).bytes(4096))
    (folder / ".hidden").write_text("mine\n")
    (folder / "nested" / "deeper" / "keep.json").write_text('{"keep": true}\n')
    (folder / ".notes.part-1.txt").write_text("a live process writes this\n")


def is_stray(rel: str) -> bool:
    return any(fnmatchcase(part, p) for part in Path(rel).parts for p in STRAY)


def snapshot(root: Path, exclude: Path) -> dict[str, str]:
    """Every path under ``root`` but ``exclude`` (and what it holds): a file's sha256, or what
    else it is."""
    seen = {}
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(here, name)
            if path == exclude or exclude in path.parents:
                continue
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                seen[rel] = f"link to {os.readlink(path)}"
            elif path.is_dir():
                seen[rel] = "folder"
            else:
                seen[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


@dataclass
class Job:
    argv: list  # the command's first run
    output: Path  # its own output or work folder (a file for render)
    again: Callable[[], list]  # its second run, decided once the first has stopped
    inputs: list[Path] = field(default_factory=list)  # the videos it reads
    run: Path | None = None  # its training run folder (train, pipeline)


def prepare(command: str, root: Path, episodes: Path, frames: Path, model: Path) -> Job:
    """The inputs in in/ and the output in out/, both among files of our own (eps/ and the
    recipe beside work/ for the pipeline)."""
    inp, out = root / "in", root / "out"
    for folder in (inp, out):
        folder.mkdir()
        plant(folder)
    videos = [Path(shutil.copy2(episodes / f"{n}.mp4", inp)) for n in EPISODES]
    if command == "extract":
        argv = ["extract", videos[1], "-o", out / "frames"]
        return Job(argv, out / "frames", lambda: [*argv, "--resume"], videos[1:])
    if command == "dataset":
        argv = ["dataset", "build", *videos, "-o", out / "data"]
        return Job(argv, out / "data", lambda: argv, videos)
    if command == "train":
        shutil.copytree(frames, inp / "frames")
        run = out / "run"
        argv = ["train", inp / "frames", "-o", run, *TRAIN]
        # Stopped before its first checkpoint: nothing to resume, the same command starts over.
        return Job(
            argv,
            run,
            lambda: ["train", "--resume", run] if (run / "last.pt").exists() else argv,
            run=run,
        )
    if command == "render":
        argv = ["render", videos[1], out / "ep2_colour.mp4", "--model", model]
        return Job(argv, out / "ep2_colour.mp4", lambda: argv, videos[1:])
    shutil.copytree(inp, root / "eps")
    plant(root)
    (root / "r.toml").write_text(RECIPE)
    argv = ["pipeline", "run", root / "r.toml"]
    videos = [root / "eps" / f"{n}.mp4" for n in EPISODES]
    return Job(argv, root / "work", lambda: argv, videos, root / "work" / "train")


# -- what a whole output is ------------------------------------------------------------------


def lumas(path: Path) -> list[np.ndarray]:
    """The stored Y plane of every frame, as int16."""
    planes = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            y = frame.planes[0]
            rows = np.frombuffer(bytes(y), np.uint8).reshape(y.height, y.line_size)
            planes.append(rows[:, : y.width].astype(np.int16))
    return planes


def check_render(src: Path, dst: Path) -> None:
    """Every frame, and the luma of the input's frame at the same place."""
    count = probe(src).frame_count
    assert probe(dst).frame_count == count, f"{dst}: {probe(dst).frame_count} of {count} frames"
    a, b = lumas(src), lumas(dst)
    assert len(a) == len(b) == count, f"{dst}: decoded {len(b)} frames of {len(a)}"
    worst = max(float(np.abs(x - y).mean()) for x, y in zip(a, b, strict=True))
    assert worst < LUMA_TOLERANCE, f"{dst}: luma differs from {src} by {worst:.2f}"


def check_extraction(video: Path, folder: Path) -> None:
    """One manifest row and one whole image per frame, and nothing else."""
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in rows] == list(range(probe(video).frame_count))
    names = {p.name for p in folder.iterdir()}
    assert names == {r["file"] for r in rows} | {"manifest.jsonl", "extract.json"}, names
    with VideoReader(video) as reader:
        for row, frame in zip(rows, reader, strict=True):
            image = cv2.imread(str(folder / row["file"]))
            assert image is not None and np.array_equal(image[..., ::-1], frame.image), row


def check_dataset(built: Path, reference: Path) -> None:
    """The same frames, rows and shards as the uninterrupted build (sources by file name)."""
    a, b = (json.loads((p / "manifest.json").read_text()) for p in (built, reference))

    def rows(m: dict) -> list[dict]:
        return [{**f, "source": Path(f["source"]).name} for f in m["frames"]]

    assert rows(a) == rows(b), "manifest frames differ"
    assert (a["shards"], a["shape"]) == (b["shards"], b["shape"])
    assert sorted(p.name for p in built.iterdir()) == sorted(p.name for p in reference.iterdir())
    for shard in a["shards"].values():
        name = shard["file"]
        assert np.array_equal(np.load(built / name), np.load(reference / name)), name


def check_training(run: Path, saved: int | None, stderrs: str, reference: Path | None) -> None:
    """Resumed from the step its checkpoint held (when it held one), and run to the end."""
    resumed = re.search(r"resuming \S+ at step (\d+) of (\d+)", stderrs)
    if saved:
        assert resumed is not None, "the second run did not resume"
        assert int(resumed[1]) == saved, f"resumed at step {resumed[1]}, saved at {saved}"
    else:
        assert resumed is None, "resumed from a checkpoint the first run never wrote"
    per_epoch = int(re.search(r"(\d+) steps/epoch", stderrs)[1])
    state = load_checkpoint(run / "last.pt")
    assert state["step"] == 2 * per_epoch, f"last.pt at step {state['step']} of {2 * per_epoch}"
    assert all((run / n).is_file() for n in ("best.pt", "model.pt", "curves.png"))
    if reference is not None:  # where an uninterrupted run ends, weight for weight
        ref = load_checkpoint(reference)["G"]
        for name, w in state["G"].items():
            assert torch.allclose(w.float(), ref[name].float(), atol=1e-6), name


def stage_done(work: Path, stage: str) -> bool:
    try:
        return json.loads((work / "pipeline" / f"{stage}.json").read_text())["status"] == "done"
    except (OSError, ValueError, KeyError):
        return False


def saved_step(command: str, job: Job) -> int | None:
    """The step of the checkpoint a stopped training left to resume from, if any."""
    if job.run is None or not (job.run / "last.pt").exists():
        return None
    if command == "pipeline" and stage_done(job.output, "train"):
        return None  # stopped after training: nothing of it to resume
    return load_checkpoint(job.run / "last.pt")["step"]


def check_output(
    command: str, job: Job, saved: int | None, stderrs: str, dataset: Path, run: Path
) -> None:
    """Raises unless the output is whole and as an uninterrupted run leaves it (``dataset``,
    ``run``: the uninterrupted dataset and training checkpoint)."""
    if command == "extract":
        check_extraction(job.inputs[0], job.output)
    elif command == "dataset":
        check_dataset(job.output, dataset)
    elif command == "train":
        check_training(job.output, saved, stderrs, run)
    elif command == "render":
        check_render(job.inputs[0], job.output)
    else:
        for stage in ("dataset", "train", "render"):
            assert stage_done(job.output, stage), f"pipeline: {stage} not done"
        check_dataset(job.output / "dataset", dataset)
        check_training(job.output / "train", saved, stderrs, None)
        for video in job.inputs:
            check_render(video, job.output / "render" / video.name)


# -- the cases -------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "sig", "fraction"), CASES)
def test_a_stopped_command_run_again_loses_nothing(
    command: str,
    sig: str,
    fraction: float,
    tmp_path: Path,
    episodes: Path,
    frames: Path,
    reference_dataset: Path,
    reference_run: Path,
    tiny_model: Path,
) -> None:
    job = prepare(command, tmp_path, episodes, frames, tiny_model)
    before = snapshot(tmp_path, job.output)
    task = PIPELINE_STAGE[sig, fraction] if command == "pipeline" else command
    # 1. Stopped part-way by its own progress bar.
    first = vidcolor(job.argv, tmp_path, f"{sig}@{fraction}@{task}")
    if sig == "KILL":  # a hard requirement: otherwise the fault never fired
        assert first.returncode == -signal.SIGKILL, (first.returncode, first.stderr[-2000:])
    saved = saved_step(command, job)
    # 2. Run again, or resumed.
    second = vidcolor(job.again(), tmp_path)
    found = Findings()
    for name, done in (("first", first), ("second", second)):
        found.check(
            "Traceback" not in done.stderr + done.stdout,
            f"{name} run printed a traceback:\n{done.stderr[-2000:]}",
        )
    if sig == "TERM":
        found.check(
            first.returncode == 128 + signal.SIGTERM, f"SIGTERM: exit {first.returncode}, not 143"
        )
        lines = first.stderr.strip().splitlines()
        told = [line for line in lines if "interrupted" in line]
        found.check(
            len(told) == 1 and told[0] == lines[-1] and HINTS[command] in told[0],
            f"SIGTERM: not one last line that says how to continue: {told}",
        )
    found.check(
        second.returncode == 0, f"second run: exit {second.returncode}:\n{second.stderr[-2000:]}"
    )
    # 3. The output whole, and as an uninterrupted run leaves it.
    found.outputs(
        lambda: check_output(
            command, job, saved, second.stderr + first.stderr, reference_dataset, reference_run
        )
    )
    # 4. Nothing outside the output changed; nothing of the stopped run is left anywhere.
    after = snapshot(tmp_path, job.output)
    changed = sorted(
        p for p in before.keys() | after.keys() if before.get(p) != after.get(p) and not is_stray(p)
    )
    found.check(not changed, f"changed outside {job.output.name}: {changed[:8]}")
    everything = [
        Path(here, n).relative_to(tmp_path).as_posix()
        for here, dirs, files in os.walk(tmp_path)
        for n in dirs + files
    ]
    strays = [p for p in everything if is_stray(p) and p not in before]
    found.check(not strays, f"left behind: {strays[:8]}")
    found.raise_them()


def test_render_clears_the_temp_file_of_a_killed_render(
    episodes: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """What a killed render left beside OUT, its process gone, is cleared by the next render
    of the same OUT."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dst = tmp_path / "colour.mp4"
    left = tmp_path / f".colour.part-{dead.pid}.mp4"
    left.write_bytes(b"\0" * 48)  # what VideoWriter had written when the render was killed
    result = CliRunner().invoke(
        main, ["render", str(episodes / "ep1.mp4"), str(dst), "--model", str(tiny_model)]
    )
    assert result.exit_code == 0, result.output
    assert probe(dst).frame_count == EPISODES["ep1"]
    assert not left.exists()
