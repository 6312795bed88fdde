"""Training throughput: a training step, the data path alone, and `vidcolor train` end to end.

In one run: full GAN steps (D and G) on one fixed batch (model time only) for each
configuration; the trainer's own data path without the model (it must never be what training
waits for); and a real ``vidcolor train`` with the same size, batch and model, stopped by SIGINT
after --e2e-seconds, read back from its metrics.csv: what training delivers against what its
steps could. Each case reports its figures or its error; the others still run. Frames come from
the shared clip (extracted into a temporary folder) or --frames. Usage:

    python benchmarks/bench_train.py [--clip ...|--frames DIR] [--steps 6] [--device auto]
        [--e2e-seconds 60] [--e2e-config default] [--e2e-run DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import torch
from common import (
    ROOT,
    SHARED_CLIP,
    Result,
    any_failed,
    fmt,
    one_line,
    ratio,
    run_cases,
    stop_on_signals,
    value,
)

from vidcolor.data.extract import ExtractOptions, FrameExtractor
from vidcolor.models import ModelConfig
from vidcolor.runtime import Dist, setup_distributed
from vidcolor.train.loop import TrainConfig, Trainer

CONFIGS = {
    "default": ("width 64, depth 8, PatchGAN", ModelConfig()),
    "small": ("width 32, depth 6, PatchGAN", ModelConfig(base_width=32, depth=6)),
}
STOP_GRACE = 60.0  # seconds a stopped training run may take to save last.pt and exit
ROW_WAIT = 120.0  # seconds past the planned stop to wait for a first row (a slow, busy machine)


def trainer_batches(trainer: Trainer, epoch: int) -> Iterator[torch.Tensor]:
    """The RGB batches (N, 3, S, S) the training loop draws in ``epoch``, through the trainer's
    own data path (``Trainer.batches``: sliced from the cache, resampled on the device)."""
    with trainer.batches(epoch) as batches:
        yield from batches


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loader_rate(
    epoch_batches: Callable[[int], Iterator[torch.Tensor]], batches: int, device: torch.device
) -> Result:
    """Images/s of the data path alone over ``batches`` batches, after a first one that is not
    timed (start-up). Data smaller than that is gone through again, epoch after epoch, as
    training does, so any ``batches`` works; later epochs' start-up is counted, as training
    pays it."""
    epoch, timed, images, t0 = 0, 0, 0, None
    while timed < batches:
        drawn = 0
        with closing(epoch_batches(epoch)) as it:
            for rgb in it:
                drawn += 1
                if t0 is None:
                    _sync(device)
                    t0 = time.perf_counter()
                    continue
                images += rgb.shape[0]
                timed += 1
                if timed == batches:
                    break
        if drawn == 0:
            raise ValueError("the data makes no whole batch")
        epoch += 1
    _sync(device)
    wall = time.perf_counter() - t0
    return {"images_per_s": images / wall, "batches": timed, "epochs": epoch}


def step_rate(trainer: Trainer, steps: int) -> float:
    """Images/s of full GAN steps (D and G) on one fixed batch: model time only."""
    with closing(trainer_batches(trainer, 0)) as it:
        batch = next(it)
    trainer.train_step(batch, adversarial=True)  # warm-up (allocations, cuDNN autotune)
    _sync(trainer.dist.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch, adversarial=True)
    _sync(trainer.dist.device)
    return steps * batch.shape[0] / (time.perf_counter() - t0)


def _metric_rows(path: Path) -> list[tuple[int, float]]:
    """(step, images_per_s) of metrics.csv's training rows (validation rows have no rate);
    a line still being written is left for the next read."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text[: text.rfind("\n") + 1].splitlines()
    rows = []
    for row in csv.DictReader(lines):
        if row.get("step") and row.get("images_per_s"):
            rows.append((int(row["step"]), float(row["images_per_s"])))
    return rows


def _heed_sigint() -> None:
    """The child's SIGINT at its default: a bench started with ``&`` passes it on ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _end(proc: subprocess.Popen, asked: bool) -> None:
    """Make sure ``proc`` ends when this benchmark is interrupted or gives up on it. A Ctrl-C
    or a timeout's signal to the process group reached it too, and a second SIGINT would stop
    it mid-step without last.pt, so it gets a few seconds first, one SIGINT (unless it had
    one), time to save, and only then SIGKILL."""
    waits = [STOP_GRACE] if asked else [3.0, STOP_GRACE]
    for i, wait in enumerate(waits):
        if i:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.kill()
    proc.wait()


def end_to_end(
    frames: Path,
    run: Path,
    seconds: float,
    size: int,
    batch_size: int,
    model: ModelConfig,
    device: str,
    workers: int,
) -> Result:
    """Run ``vidcolor train`` (the CLI, in a process of its own) for ``seconds``, and on until
    its first metrics.csv row (ROW_WAIT at most), then stop it with SIGINT as Ctrl-C would (it
    saves last.pt and exits 130, which is expected here).

    Only the CLI and metrics.csv's ``step`` and ``images_per_s`` columns are relied on. The
    train loop's rate weighs each row's rate by its steps, leaving out the first row (process
    start-up, the data cache, first calls); ``with_startup`` is the steps logged over the time
    from launch until their row appeared."""
    model = model.resolved()  # every architecture flag given: the same model on every run
    cmd = [
        sys.executable,
        "-m",
        "cli",
        "train",
        str(frames),
        "-o",
        str(run),
        "--size",
        str(size),
        "--batch-size",
        str(batch_size),
        "--base-width",
        str(model.base_width),
        "--depth",
        str(model.depth),
        "--disc",
        model.disc,
        "--pretrain-epochs",
        "0",
        "--epochs",
        "100000",
        "--device",
        device,
        "--workers",
        str(workers),
    ]
    log_path = run.with_name(f"{run.name}.log")  # beside RUN: train wants RUN new or empty
    seen: dict[int, float] = {}  # step -> seconds after launch when its row appeared
    sent: float | None = None  # when SIGINT went
    with open(log_path, "w") as log:
        t_launch = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_heed_sigint,
        )
        try:
            while True:  # rows are watched until it exits: the step in progress still logs
                done = proc.poll() is not None
                now = time.perf_counter() - t_launch
                for step, _ in _metric_rows(run / "metrics.csv"):
                    seen.setdefault(step, now)
                if done:
                    break
                if sent is None and now >= seconds and (seen or now >= seconds + ROW_WAIT):
                    proc.send_signal(signal.SIGINT)
                    sent = now
                if sent is not None and now - sent > STOP_GRACE:
                    raise RuntimeError(
                        f"vidcolor train did not stop within {STOP_GRACE:g} s of SIGINT"
                    )
                time.sleep(0.25)
        finally:
            if proc.poll() is None:
                _end(proc, sent is not None)
    rc, ran = proc.returncode, sent if sent is not None else now
    stopped = now - ran
    if rc not in (0, 130):
        tail = [line for line in log_path.read_text().splitlines() if line.strip()]
        raise RuntimeError(f"vidcolor train exited {rc}: {tail[-1] if tail else 'no output'}")
    rows = _metric_rows(run / "metrics.csv")
    if not rows:
        raise RuntimeError(
            f"no metrics.csv row in {ran:.0f} s (one every log_every steps): "
            "raise --e2e-seconds, or lower --size"
        )
    steady = rows[1:] or rows  # one row only: its window includes start-up
    images = seconds_spent = 0.0
    prev = rows[0][0] if len(rows) > 1 else 0
    for step, rate in steady:
        n = (step - prev) * batch_size
        images, seconds_spent, prev = images + n, seconds_spent + n / rate, step
    last = max(s for s in seen if s <= rows[-1][0]) if seen else None
    with_startup = last * batch_size / seen[last] if last else None
    return {
        "images_per_s": images / seconds_spent,
        "with_startup": with_startup,
        "steps_logged": rows[-1][0],
        "rows": len(rows),
        "ran_s": ran,
        "stop_s": stopped,
        "exit_code": rc,
        "first_row_left_out": len(rows) > 1,
    }


def extract_frames(clip: Path, folder: Path) -> int:
    """Frames of ``clip`` at 4 per second into ``folder``; how many."""
    with FrameExtractor(clip, folder, ExtractOptions(fps=4)) as job:
        return sum(1 for _ in job)


def times(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else f"{x:{spec}}x"


def report(r: dict[str, Result], args: argparse.Namespace, header: str) -> dict:
    """Print the three tables (``n/a`` where a case they need failed); return them as JSON."""
    print(header + "\n")
    print("| configuration | G params | training images/s |")
    print("|---|---:|---:|")
    steps = [name.removeprefix("step-") for name in r if name.startswith("step-")]
    for key in steps:
        x, desc = r[f"step-{key}"], CONFIGS[key][0] if key in CONFIGS else "?"
        if "error" in x:
            print(f"| {key} ({desc}) | error: {x['error']} | |")
        else:
            print(f"| {key} ({desc}) | {x['G_params_M']}M | {x['images_per_s']:.2f} |")
    measured = [k for k in steps if value(r, f"step-{k}", "images_per_s")]
    base_key = "default" if "default" in measured else (measured or ["default"])[0]
    base = value(r, f"step-{base_key}", "images_per_s")
    print(f"\n| data path alone (the trainer's batches) | images/s | x the {base_key} step rate |")
    print("|---|---:|---:|")
    for name in (n for n in r if n.startswith("loader-")):
        x = r[name]
        w = name.removeprefix("loader-w")
        if "error" in x:
            print(f"| --workers {w} | error: {x['error']} | |")
            continue
        print(
            f"| --workers {w} ({x['batches']} batches, {x['epochs']} epoch(s)) | "
            f"{x['images_per_s']:.0f} | {times(ratio(x['images_per_s'], base), '.0f')} |"
        )
    ratios: dict[str, float | None] = {}
    if "e2e" in r:
        key = args.e2e_config
        step = value(r, f"step-{key}", "images_per_s")
        x = r["e2e"]
        print(
            f"\n| `vidcolor train`, {key} config, stopped after {args.e2e_seconds:g} s | "
            f"images/s | x the {key} step rate |"
        )
        print("|---|---:|---:|")
        if "error" in x:
            print(f"| error: {x['error']} | | |")
        else:
            rows = (
                f"{x['rows'] - 1} rows after the first"
                if x["first_row_left_out"]
                else "its only row, first steps included"
            )
            ratios = {
                "train loop / step rate": ratio(x["images_per_s"], step),
                "with start-up / step rate": ratio(x["with_startup"], step),
            }
            print(
                f"| train loop (metrics.csv: {rows}) | {x['images_per_s']:.2f} | "
                f"{times(ratios['train loop / step rate'])} |"
            )
            print(
                f"| whole command, launch to step {x['steps_logged']} (start-up included) | "
                f"{fmt(x['with_startup'])} | {times(ratios['with start-up / step rate'])} |"
            )
    return {"cases": r, "e2e_ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SHARED_CLIP)
    parser.add_argument("--frames", type=Path, help="a folder of frames instead of --clip's")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--loader-batches", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="step cases to run")
    parser.add_argument("--e2e-seconds", type=float, default=60.0, help="0: no end-to-end case")
    parser.add_argument("--e2e-config", choices=list(CONFIGS), default="default")
    parser.add_argument("--e2e-run", type=Path, help="keep the end-to-end run here (new folder)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    stop_on_signals()
    dist_info = setup_distributed(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        frames = args.frames or Path(tmp) / "frames"
        cases = make_cases(args, frames, Path(tmp), dist_info)
        try:
            count = "" if args.frames else f"{extract_frames(args.clip, frames)} "
        except Exception as e:  # nothing to train on: every case says why
            r = {name: {"error": f"no frames: {one_line(e)}"} for name in cases}
            count = ""
        else:
            r = run_cases(cases)
        source = f"in {args.frames}" if args.frames else f"of {args.clip.name}"
        header = (
            f"{count}frames {source}; device {dist_info.device}; size {args.size}; "
            f"batch {args.batch_size}"
        )
        summary = report(r, args, header)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if any_failed(r):
        raise SystemExit(1)


def make_cases(
    args: argparse.Namespace, frames: Path, tmp: Path, dist_info: Dist
) -> dict[str, Callable[[], Result]]:
    """The cases in order: a step rate per configuration, the data path with 0 and --workers
    workers, then (if --e2e-seconds) the end-to-end run."""

    def trainer(model: ModelConfig, workers: int) -> Trainer:
        cfg = TrainConfig(data=str(frames), size=args.size, batch_size=args.batch_size, model=model)
        # One run folder for all: a trainer that caches its data finds the cache made.
        return Trainer(cfg, tmp / "run", dist_info, workers=workers)

    def step_case(key: str) -> Result:
        t = trainer(CONFIGS[key][1], args.workers)
        params = sum(p.numel() for p in t.G.parameters()) / 1e6
        return {"G_params_M": round(params, 1), "images_per_s": step_rate(t, args.steps)}

    def loader_case(workers: int) -> Result:
        t = trainer(CONFIGS["small"][1], workers)  # its model is not used
        return loader_rate(lambda e: trainer_batches(t, e), args.loader_batches, t.dist.device)

    def e2e_case() -> Result:
        run = args.e2e_run or tmp / "e2e"
        return end_to_end(
            frames,
            run,
            args.e2e_seconds,
            args.size,
            args.batch_size,
            CONFIGS[args.e2e_config][1],
            args.device,
            args.workers,
        )

    cases: dict[str, Callable[[], Result]] = {}
    for key in (k.strip() for k in args.configs.split(",") if k.strip()):
        cases[f"step-{key}"] = lambda key=key: step_case(key)
    for w in dict.fromkeys((0, args.workers)):
        cases[f"loader-w{w}"] = lambda w=w: loader_case(w)
    if args.e2e_seconds > 0:
        cases["e2e"] = e2e_case
    return cases


if __name__ == "__main__":
    main()
