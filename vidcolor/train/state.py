"""A training run's state, as the ``Trainer`` (loop.py) holds it through ``RunState``: what its
checkpoints hold (``state``) and how a run takes it back (``load``), checked against the run
resuming it: same model, data and process count."""

from __future__ import annotations

from pathlib import Path

import torch

from vidcolor.data.dataset import data_fingerprint
from vidcolor.runtime import RunError
from vidcolor.train.checkpoint import CheckpointError, check_progress, load_checkpoint


class RunState:
    """The part of the Trainer that saves and restores it (its attributes: loop.py's)."""

    def state(self) -> dict:
        """What a checkpoint holds of the run now: its config, counters, networks, optimizers,
        schedules, loss scaler, random state, and what it trains on with how many processes."""
        return {
            "config": self.cfg.to_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "best_val_L1": self.best_val,
            "G": self.generator.state_dict(),
            **({"G_train": self.G.state_dict()} if self.average is not None else {}),
            "D": self.D.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "sched_G": self.sched_G.state_dict(),
            "sched_D": self.sched_D.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.dist.device)
            if self.dist.device.type == "cuda"
            else torch.empty(0, dtype=torch.uint8),
            "data": data_fingerprint(self.data, self.cfg.data),
            "world": self.dist.world,
        }

    def load(self, path: Path, state: dict | None = None) -> None:
        """The run continued from ``path``, a checkpoint of this run's model, data and process count
        (``state``: what load_checkpoint already read from it, which checked every part)."""
        s = state or load_checkpoint(path)
        if s["config"]["model"] != self.cfg.model.to_dict():
            raise RunError(
                f"{path}: holds a model other than this run's "
                f"({s['config']['model']}, not {self.cfg.model.to_dict()})"
            )
        if s["data"] != data_fingerprint(self.data, self.cfg.data):
            raise RunError(
                f"{path}: the training images changed since this run started; "
                "resuming needs the same data (start a new run instead)"
            )
        if s["world"] != self.dist.world:
            raise RunError(
                f"{path}: saved by {s['world']} process(es), resumed by "
                f"{self.dist.world}: the batches per epoch would differ"
            )
        check_progress(path, s, self.steps_per_epoch, self.pre_steps)
        try:  # checked whole already: torch's own checks are the last word
            self.G.load_state_dict(s.get("G_train", s["G"]))
            if self.average is not None:
                self.average.module.load_state_dict(s["G"])
            self.D.load_state_dict(s["D"])
            # Adam's moments from the file; its hyper-parameters from the config (the same).
            self.opt_G.load_state_dict({**self.opt_G.state_dict(), "state": s["opt_G"]["state"]})
            self.opt_D.load_state_dict({**self.opt_D.state_dict(), "state": s["opt_D"]["state"]})
            self.sched_G.load_state_dict(s["sched_G"])
            self.sched_D.load_state_dict(s["sched_D"])
            if s["scaler"] and self.scaler.is_enabled():  # empty when saved without fp16
                self.scaler.load_state_dict(s["scaler"])
        except (RuntimeError, KeyError, ValueError, TypeError) as e:
            said = (str(e).splitlines() or [type(e).__name__])[0]
            raise CheckpointError(f"{path}: cannot be loaded ({said})") from None
        self.step, self.epoch, self.best_val = s["step"], s["epoch"], s["best_val_L1"]
        self.kept_step = self.step
        # A changed --epochs changes the schedule: take each lr from it, not from the file.
        for opt, sched in ((self.opt_G, self.sched_G), (self.opt_D, self.sched_D)):
            for group, base, fn in zip(
                opt.param_groups, sched.base_lrs, sched.lr_lambdas, strict=True
            ):
                group["lr"] = base * fn(sched.last_epoch)
        torch.set_rng_state(s["rng"])
        if self.dist.device.type == "cuda" and s["cuda_rng"].numel():
            torch.cuda.set_rng_state(s["cuda_rng"], self.dist.device)
        if self.dist.world > 1:  # each rank its own dropout noise, reproducibly
            torch.manual_seed(self.cfg.seed * 1_000_003 + self.step * 101 + self.dist.rank)
