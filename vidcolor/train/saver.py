"""Writing a run's files off the training thread: checkpoints, sample grids and curves go to one
background thread, in order, each written whole (temporary file, then rename), so training
goes on while hundreds of megabytes reach the disk. The state is copied first, so the file is
the step it was asked at, not whatever the weights are by the time the disk is free."""

from __future__ import annotations

import csv
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidcolor.pictures import plot_curves, save_png
from vidcolor.saving import saving
from vidcolor.train.checkpoint import save_bundle, save_checkpoint

METRIC_FIELDS = [
    "step",
    "epoch",
    "phase",
    "G_GAN",
    "G_L1",
    "D_real",
    "D_fake",
    "D_acc",
    "lr",
    "images_per_s",
    "val_L1",
    "val_PSNR",
    "val_SSIM",
]


def snapshot(state: Any) -> Any:
    """``state`` with every tensor copied to the CPU, apart from the training's own."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: snapshot(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(snapshot(v) for v in state)
    return state


class Saver:
    """One writer thread. ``submit`` queues a job (at most ``depth`` wait: memory stays
    bounded, and a slow disk slows training rather than filling memory); ``wait`` returns once
    all are written and raises what a job raised, on the training thread."""

    def __init__(self, depth: int = 2) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        self._raise()
        if self._thread is None:  # daemon: a forced stop does not wait for the disk
            self._thread = threading.Thread(target=self._run, name="vidcolor-saver", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    def wait(self) -> None:
        self._jobs.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._error is None:  # after a failure, nothing more is written
                    job()
            except BaseException as e:  # raised again on the training thread
                self._error = e
            finally:
                self._jobs.task_done()

    def close(self) -> None:
        """Write what is queued, then end the thread."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        self._raise()


def append_metrics(path: Path, row: dict) -> None:
    """One row of metrics.csv (its header first, when the file is new)."""
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, METRIC_FIELDS)
        if new:
            w.writeheader()
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def write_checkpoint(
    run: Path, step: int, grid: np.ndarray, state: dict, improved: bool, curves: bool = True
) -> None:
    """What a trainer's checkpoint hands to the writer thread: the sample grid, last.pt, and
    best.pt with model.pt when validation improved, then the curves when ``curves``."""
    sample = run / "samples" / f"step_{step:07d}.png"
    with saving(sample):
        sample.parent.mkdir(exist_ok=True)
        save_png(sample, grid)
    save_checkpoint(run / "last.pt", state)
    if improved:
        save_checkpoint(run / "best.pt", state)
        save_bundle(run / "model.pt", run / "best.pt")  # for render
    if curves:
        with saving(run / "curves.png"):
            plot_curves(run / "metrics.csv", run / "curves.png")
