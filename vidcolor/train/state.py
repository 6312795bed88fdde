"""A training run's state: what its checkpoints hold (``run_state``) and how a run takes it
back (``restore``), checked against the run resuming it: same model, data and process count."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from vidcolor.data.dataset import data_fingerprint
from vidcolor.runtime import RunError
from vidcolor.train.checkpoint import CheckpointError, check_progress, load_checkpoint

if TYPE_CHECKING:
    from vidcolor.train.loop import Trainer


def run_state(t: Trainer) -> dict:
    """What a checkpoint holds of the run ``t`` now: its config, counters, networks, optimizers,
    schedules, loss scaler, random state, and what it trains on with how many processes."""
    return {
        "config": t.cfg.to_dict(),
        "step": t.step,
        "epoch": t.epoch,
        "best_val_L1": t.best_val,
        "G": t.G.state_dict(),
        "D": t.D.state_dict(),
        "opt_G": t.opt_G.state_dict(),
        "opt_D": t.opt_D.state_dict(),
        "sched_G": t.sched_G.state_dict(),
        "sched_D": t.sched_D.state_dict(),
        "scaler": t.scaler.state_dict(),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(t.dist.device)
        if t.dist.device.type == "cuda"
        else torch.empty(0, dtype=torch.uint8),
        "data": data_fingerprint(t.data, t.cfg.data),
        "world": t.dist.world,
    }


def restore(t: Trainer, path: Path, state: dict | None = None) -> None:
    """``t`` continued from ``path``, a checkpoint of this run's model, data and process count
    (``state``: what load_checkpoint already read from it, which checked every part)."""
    s = state or load_checkpoint(path)
    if s["config"]["model"] != t.cfg.model.to_dict():
        raise RunError(
            f"{path}: holds a model other than this run's "
            f"({s['config']['model']}, not {t.cfg.model.to_dict()})"
        )
    if s["data"] != data_fingerprint(t.data, t.cfg.data):
        raise RunError(
            f"{path}: the training images changed since this run started; "
            "resuming needs the same data (start a new run instead)"
        )
    if s["world"] != t.dist.world:
        raise RunError(
            f"{path}: saved by {s['world']} process(es), resumed by "
            f"{t.dist.world}: the batches per epoch would differ"
        )
    check_progress(path, s, t.steps_per_epoch, t.pre_steps)
    try:  # checked whole already: torch's own checks are the last word
        t.G.load_state_dict(s["G"])
        t.D.load_state_dict(s["D"])
        # Adam's moments from the file; its hyper-parameters from the config (the same).
        t.opt_G.load_state_dict({**t.opt_G.state_dict(), "state": s["opt_G"]["state"]})
        t.opt_D.load_state_dict({**t.opt_D.state_dict(), "state": s["opt_D"]["state"]})
        t.sched_G.load_state_dict(s["sched_G"])
        t.sched_D.load_state_dict(s["sched_D"])
        if s["scaler"] and t.scaler.is_enabled():  # empty when saved without fp16
            t.scaler.load_state_dict(s["scaler"])
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        said = (str(e).splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path}: cannot be loaded ({said})") from None
    t.step, t.epoch, t.best_val = s["step"], s["epoch"], s["best_val_L1"]
    t.kept_step = t.step
    # A changed --epochs changes the schedule: take each lr from it, not from the file.
    for opt, sched in ((t.opt_G, t.sched_G), (t.opt_D, t.sched_D)):
        for group, base, fn in zip(opt.param_groups, sched.base_lrs, sched.lr_lambdas, strict=True):
            group["lr"] = base * fn(sched.last_epoch)
    torch.set_rng_state(s["rng"])
    if t.dist.device.type == "cuda" and s["cuda_rng"].numel():
        torch.cuda.set_rng_state(s["cuda_rng"], t.dist.device)
    if t.dist.world > 1:  # each rank its own dropout noise, reproducibly
        torch.manual_seed(t.cfg.seed * 1_000_003 + t.step * 101 + t.dist.rank)
