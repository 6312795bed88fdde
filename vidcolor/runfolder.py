"""A training run's folder: a new run started in it, or the run there continued."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from vidcolor.atomic import atomic_path
from vidcolor.checkpoint import load_checkpoint
from vidcolor.options import TrainConfig
from vidcolor.ownership import check_claim, remove_tree
from vidcolor.runtime import Dist, RunError
from vidcolor.train import Trainer

__all__ = ["resume_run", "start_run"]


def start_run(cfg: TrainConfig, run: Path, dist_info: Dist, workers: int,
              on_image: Callable[[int, int], None] | None = None,
              start: tuple[dict, dict | None] | None = None) -> Trainer:  # fmt: skip
    """A new run folder with config.json; refuses one that already holds a run, and a folder
    of other files. ``on_image(done, total)``: the decode of DATA into the run's cache."""
    if (run / "last.pt").exists():
        raise RunError(f"{run}: already holds a run; continue it with --resume {run}")
    # A run folder without last.pt is a run that stopped before its first checkpoint: nothing
    # to resume, so starting again over it loses nothing.
    check_claim(run, "train", "a training run")
    made = not run.exists()
    if dist_info.main:
        run.mkdir(parents=True, exist_ok=True)
        with atomic_path(run / "config.json") as tmp:  # the folder's record: whole or absent
            tmp.write_text(json.dumps(cfg.to_dict(), indent=2))
    try:
        return Trainer(cfg, run, dist_info, workers, on_image, start)
    except BaseException:
        if made and dist_info.main:  # bad data: the folder this call made goes again
            remove_tree(run, run.parent, "train")
        raise


def resume_run(run: Path, dist_info: Dist, workers: int, epochs: int | None = None,
               on_image: Callable[[int, int], None] | None = None) -> Trainer:  # fmt: skip
    """Continue ``run`` from last.pt: same step, optimizer state and schedule."""
    if not (run / "last.pt").exists():
        raise RunError(f"{run}: no last.pt to resume from")
    cfg = TrainConfig.from_dict(load_checkpoint(run / "last.pt")["config"])
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    trainer = Trainer(cfg, run, dist_info, workers, on_image)
    trainer.load(run / "last.pt")
    return trainer
