"""The GAN loop: pix2pix in Lab, resumable, one process or data-parallel under torchrun."""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from vidcolor.atomic import atomic_path, clear_stale
from vidcolor.checkpoint import load_checkpoint, save_bundle, save_checkpoint
from vidcolor.color import model_to_rgb, rgb_to_model
from vidcolor.dataset import ColorCrops, TrainingData, open_training_data
from vidcolor.interrupt import ForcedStop, StopBetweenSteps
from vidcolor.metrics import psnr, ssim
from vidcolor.models import build_discriminator, build_generator
from vidcolor.options import TrainConfig
from vidcolor.ownership import check_claim
from vidcolor.report import plot_curves, sample_grid, save_png
from vidcolor.runtime import Dist, RunError

__all__ = ["Dist", "ForcedStop", "RunError", "TrainConfig", "Trainer", "resume_run", "start_run"]

METRIC_FIELDS = ["step", "epoch", "phase", "G_GAN", "G_L1", "D_real", "D_fake", "D_acc", "lr",
                 "images_per_s", "val_L1", "val_PSNR", "val_SSIM"]  # fmt: skip


MIN_SIZE = 32  # PatchGAN's five convolutions need 24; the global D's last BatchNorm, 2x2 maps


@dataclass
class Status:
    """What a progress display needs after each step."""

    epoch: int
    epochs: int
    step: int
    total_steps: int
    phase: str
    losses: dict[str, float]
    images_per_s: float


def data_fingerprint(data: TrainingData, root: str | Path) -> str:
    """Which files train and validate (relative to DATA), as a short hash: resuming needs the
    same data, wherever the command runs from."""
    import hashlib

    h = hashlib.sha256()
    for part in (data.train, data.val):
        names = "\n".join(os.path.relpath(p, root) for p in part)
        h.update(names.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()[:16]


def lr_factor(step: int, pretrain_steps: int, gan_steps: int, decay_steps: int) -> float:
    """1 through warm-up and the first adversarial epochs, then linearly down towards 0."""
    into = step - pretrain_steps - (gan_steps - decay_steps)
    return 1.0 if into < 0 else max(0.0, 1.0 - into / max(1, decay_steps))


class Trainer:
    """Owns the models, optimizers and run folder; ``fit`` runs the loop."""

    def __init__(self, cfg: TrainConfig, run: Path, dist_info: Dist, workers: int = 2,
                 data: TrainingData | None = None) -> None:  # fmt: skip
        self.cfg, self.run, self.dist, self.workers = cfg, run, dist_info, workers
        dev = dist_info.device
        if cfg.size < MIN_SIZE:
            raise RunError(f"--size {cfg.size}: the discriminators need at least {MIN_SIZE}")
        torch.manual_seed(cfg.seed)
        self.data = data or open_training_data(cfg.data, cfg.val_fraction, cfg.seed, exclude=run)
        self.train_set = ColorCrops(self.data.train, cfg.size, train=True, seed=cfg.seed)
        val = self.data.val
        if len(val) > cfg.val_max:  # an even spread, not the first scenes alone
            val = [val[i] for i in np.linspace(0, len(val) - 1, cfg.val_max).astype(int)]
        self.val_set = ColorCrops(val, cfg.size, train=False)
        self.steps_per_epoch = len(self.train_set) // (cfg.batch_size * dist_info.world)
        if self.steps_per_epoch == 0:
            n = len(self.train_set)
            raise RunError(f"{n} training images make no full batch of {cfg.batch_size} "
                           f"x {dist_info.world} process(es): lower --batch-size")  # fmt: skip
        self.G = build_generator(cfg.model).to(dev)
        self.D = build_discriminator(cfg.model).to(dev)
        if dev.type == "cuda":
            self.G = self.G.to(memory_format=torch.channels_last)
            self.D = self.D.to(memory_format=torch.channels_last)
            if dist_info.world > 1:
                self.G = nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
                self.D = nn.SyncBatchNorm.convert_sync_batchnorm(self.D)
        betas = (cfg.beta1, 0.999)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=betas)
        total = cfg.pretrain_epochs + cfg.epochs
        decay = cfg.epochs // 2 if cfg.decay_epochs is None else min(cfg.decay_epochs, cfg.epochs)
        spe = self.steps_per_epoch
        self.total_steps = total * spe
        pre = cfg.pretrain_epochs * spe  # warm-up steps

        def schedule(step: int) -> float:
            return lr_factor(step, pre, cfg.epochs * spe, decay * spe)

        # D trains only in the adversarial phase, so its scheduler counts from there.
        self.sched_G = torch.optim.lr_scheduler.LambdaLR(self.opt_G, schedule)
        self.sched_D = torch.optim.lr_scheduler.LambdaLR(self.opt_D, lambda s: schedule(s + pre))
        # Mixed precision on CUDA only: bf16 where supported (no scaler needed), else fp16.
        self.amp_dtype = None
        if dev.type == "cuda":
            # Native bf16 only (Ampere on): emulated bf16 has no cuDNN convolutions (T4, V100)
            with torch.cuda.device(dev):
                native = torch.cuda.is_bf16_supported(including_emulation=False)
            self.amp_dtype = torch.bfloat16 if native else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step, self.epoch, self.best_val = 0, 0, float("inf")
        if dist_info.world > 1:
            ids = [dev.index] if dev.type == "cuda" else None
            self.G_ddp = DistributedDataParallel(self.G, device_ids=ids)  # broadcasts rank 0's
            self.D_ddp = DistributedDataParallel(self.D, device_ids=ids)
            torch.manual_seed(cfg.seed * 1_000_003 + dist_info.rank)  # per-rank dropout noise
        else:
            self.G_ddp, self.D_ddp = self.G, self.D

    # -- run folder -------------------------------------------------------------------------

    def state(self) -> dict:
        return {
            "config": self.cfg.to_dict(), "step": self.step, "epoch": self.epoch,
            "best_val_L1": self.best_val, "G": self.G.state_dict(), "D": self.D.state_dict(),
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "sched_G": self.sched_G.state_dict(), "sched_D": self.sched_D.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.dist.device)
            if self.dist.device.type == "cuda" else torch.empty(0, dtype=torch.uint8),
            "data": data_fingerprint(self.data, self.cfg.data), "world": self.dist.world,
        }  # fmt: skip

    def save(self, name: str) -> None:
        if self.dist.main:
            save_checkpoint(self.run / name, self.state())

    def load(self, path: Path) -> None:
        """Continue from ``path``, a checkpoint of this run's model, data and process count.
        load_checkpoint has checked every part of it (keys, types, bounds, shapes)."""
        s = load_checkpoint(path)
        if s["config"]["model"] != self.cfg.model.to_dict():
            raise RunError(f"{path}: holds a model other than this run's "
                           f"({s['config']['model']}, not {self.cfg.model.to_dict()})")  # fmt: skip
        if s["data"] != data_fingerprint(self.data, self.cfg.data):
            raise RunError(f"{path}: the training images changed since this run started; "
                           "resuming needs the same data (start a new run instead)")  # fmt: skip
        if s["world"] != self.dist.world:
            raise RunError(f"{path}: saved by {s['world']} process(es), resumed by "
                           f"{self.dist.world}: the batches per epoch would differ")  # fmt: skip
        self.G.load_state_dict(s["G"])
        self.D.load_state_dict(s["D"])
        # Adam's moments from the file; its hyper-parameters from the config (the same values).
        self.opt_G.load_state_dict({**self.opt_G.state_dict(), "state": s["opt_G"]["state"]})
        self.opt_D.load_state_dict({**self.opt_D.state_dict(), "state": s["opt_D"]["state"]})
        self.sched_G.load_state_dict(s["sched_G"])
        self.sched_D.load_state_dict(s["sched_D"])
        if s["scaler"] and self.scaler.is_enabled():  # empty when saved without fp16
            self.scaler.load_state_dict(s["scaler"])
        self.step, self.epoch, self.best_val = s["step"], s["epoch"], s["best_val_L1"]
        # A changed --epochs changes the schedule: take each lr from it, not from the file.
        for opt, sched in ((self.opt_G, self.sched_G), (self.opt_D, self.sched_D)):
            for group, base, fn in zip(opt.param_groups, sched.base_lrs, sched.lr_lambdas,
                                       strict=True):  # fmt: skip
                group["lr"] = base * fn(sched.last_epoch)
        torch.set_rng_state(s["rng"])
        if self.dist.device.type == "cuda" and s["cuda_rng"].numel():
            torch.cuda.set_rng_state(s["cuda_rng"], self.dist.device)
        if self.dist.world > 1:  # each rank its own dropout noise, reproducibly
            torch.manual_seed(self.cfg.seed * 1_000_003 + self.step * 101 + self.dist.rank)

    def _log(self, row: dict) -> None:
        if not self.dist.main:
            return
        path = self.run / "metrics.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, METRIC_FIELDS)
            if new:
                w.writeheader()
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    # -- the loop ---------------------------------------------------------------------------

    def _loader(self, epoch: int) -> DataLoader:
        """This epoch's batches, skipping those a resumed run already trained on."""
        sampler = DistributedSampler(self.train_set, self.dist.world, self.dist.rank,
                                     shuffle=True, seed=self.cfg.seed, drop_last=True)  # fmt: skip
        sampler.set_epoch(epoch)
        done = self.step - epoch * self.steps_per_epoch
        indices = list(sampler)[done * self.cfg.batch_size :]
        self.train_set.epoch = epoch
        pin = self.dist.device.type == "cuda"
        # Its own generator: a loader otherwise draws its seed from the global RNG, and a
        # resumed run would then see different dropout noise than an uninterrupted one.
        gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        return DataLoader(self.train_set, self.cfg.batch_size, sampler=indices, drop_last=True,
                          num_workers=self.workers, pin_memory=pin, generator=gen)  # fmt: skip

    def _autocast(self) -> torch.autocast | nullcontext:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def train_step(self, rgb: torch.Tensor, adversarial: bool) -> dict[str, float]:
        """One D step (adversarial phase only) and one G step on a uint8 RGB batch."""
        dev = self.dist.device
        rgb = rgb.to(dev, non_blocking=True)
        L, ab = rgb_to_model(rgb)  # (N,1,H,W), (N,2,H,W), float32
        if dev.type == "cuda":
            L, ab = (
                L.contiguous(memory_format=torch.channels_last),
                ab.contiguous(memory_format=torch.channels_last),
            )
        with self._autocast():
            fake = self.G_ddp(L)
        out: dict[str, float] = {}
        # 1. Discriminator: real (L, ab) towards 1, (L, G(L)) towards 0.
        if adversarial:
            self.D.requires_grad_(True)
            with self._autocast():
                real_logit = self.D_ddp(L, ab)
                fake_logit = self.D_ddp(L, fake.detach())
                d_real = F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
                d_fake = F.binary_cross_entropy_with_logits(
                    fake_logit, torch.zeros_like(fake_logit)
                )
                loss_D = 0.5 * (d_real + d_fake)
            self.opt_D.zero_grad(set_to_none=True)
            self.scaler.scale(loss_D).backward()
            self.scaler.step(self.opt_D)
            acc = 0.5 * ((real_logit > 0).float().mean() + (fake_logit < 0).float().mean())
            out.update(D_real=d_real.item(), D_fake=d_fake.item(), D_acc=acc.item())
        # 2. Generator: fool D (non-saturating) and stay close to the truth (lambda x L1).
        # D is frozen and called unwrapped, so DDP neither computes nor syncs its gradients.
        self.D.requires_grad_(False)
        with self._autocast():
            l1 = (fake.float() - ab).abs().mean()
            loss_G = self.cfg.lambda_l1 * l1
            if adversarial:
                logit = self.D(L, fake)
                g_gan = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))
                loss_G = loss_G + g_gan
                out["G_GAN"] = g_gan.item()
        self.opt_G.zero_grad(set_to_none=True)
        self.scaler.scale(loss_G).backward()
        self.scaler.step(self.opt_G)
        self.scaler.update()
        self.sched_G.step()
        if adversarial:
            self.sched_D.step()
        out["G_L1"] = l1.item()
        return out

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """L1 on ab, PSNR and SSIM of the RGB result, over the held-out crops."""
        self.G.eval()
        l1s, psnrs, ssims = [], [], []
        loader = DataLoader(self.val_set, self.cfg.batch_size, num_workers=0)
        for rgb in loader:
            truth = rgb.to(self.dist.device).float() / 255
            L, ab = rgb_to_model(truth)
            with self._autocast():
                fake = self.G(L).float()
            l1s.append((fake - ab).abs().flatten(1).mean(1))
            pred = model_to_rgb(L, fake)
            psnrs.append(psnr(pred, truth))
            for p, t in zip(pred.permute(0, 2, 3, 1).cpu().numpy(),
                            truth.permute(0, 2, 3, 1).cpu().numpy(), strict=True):  # fmt: skip
                ssims.append(ssim(p, t))
        self.G.train()
        return {"val_L1": torch.cat(l1s).mean().item(), "val_PSNR": torch.cat(psnrs).mean().item(),
                "val_SSIM": float(np.mean(ssims))}  # fmt: skip

    @torch.inference_mode()
    def write_samples(self, epoch: int) -> None:
        """samples/epoch_NNN.png: gray | truth | generated on the same validation crops."""
        self.G.eval()
        # Spread across the validation set: neighbouring frames of one shot say little new.
        n = min(self.cfg.samples, len(self.val_set))
        picks = np.linspace(0, len(self.val_set) - 1, n).round().astype(int)
        truth = torch.stack([self.val_set[i] for i in picks.tolist()])
        truth = truth.to(self.dist.device).float() / 255
        L, _ = rgb_to_model(truth)
        fake = self.G(L).float()
        gray = model_to_rgb(L, torch.zeros_like(fake))
        (self.run / "samples").mkdir(exist_ok=True)
        save_png(self.run / "samples" / f"epoch_{epoch:03d}.png",
                 sample_grid(gray, truth, model_to_rgb(L, fake)))  # fmt: skip
        self.G.train()

    def fit(self, on_step: Callable[[Status], None] | None = None) -> dict[str, float]:
        """Train to the configured number of epochs; returns the last validation scores.
        Ctrl-C (or SIGTERM, SIGHUP) finishes the step in progress, saves last.pt and raises
        KeyboardInterrupt; a second one raises ForcedStop at once and saves nothing."""
        cfg, epochs = self.cfg, self.cfg.pretrain_epochs + self.cfg.epochs
        scores: dict[str, float] = {}
        acc: dict[str, list[float]] = {}
        t_log, n_log = time.perf_counter(), 0
        if self.dist.main:  # checkpoints and samples half-written by a killed run
            clear_stale(self.run)
            clear_stale(self.run / "samples")
        self.G.train()
        self.D.train()
        with StopBetweenSteps() as stop:
            try:
                while self.epoch < epochs:
                    adversarial = self.epoch >= cfg.pretrain_epochs
                    phase = "gan" if adversarial else "pretrain"
                    for rgb in self._loader(self.epoch):
                        losses = self.train_step(rgb, adversarial)
                        self.step += 1
                        n_log += rgb.shape[0] * self.dist.world
                        for k, v in losses.items():
                            acc.setdefault(k, []).append(v)
                        rate = n_log / max(1e-9, time.perf_counter() - t_log)
                        if on_step is not None:
                            on_step(Status(self.epoch, epochs, self.step, self.total_steps,
                                           phase, losses, rate))  # fmt: skip
                        if self.step % cfg.log_every == 0:
                            means = {k: float(np.mean(v)) for k, v in acc.items()}
                            lr = self.sched_G.get_last_lr()[0]
                            self._log({"step": self.step, "epoch": self.epoch, "phase": phase,
                                       "lr": lr, "images_per_s": rate, **means})  # fmt: skip
                            acc, t_log, n_log = {}, time.perf_counter(), 0
                        if self.step % cfg.checkpoint_every == 0:
                            self.save("last.pt")
                        if self._all_agree(stop.requested):
                            raise stop.interrupt()
                    self.epoch += 1
                    scores = self._end_epoch(phase)
            except ForcedStop:
                raise
            except KeyboardInterrupt:
                self.save("last.pt")  # steps are whole: the interrupt came between them
                raise
            except Exception:
                if not stop.requested:
                    raise
                # Ctrl-C reached the loader's worker processes too, and fetching the next
                # batch failed: still between steps, so the state is whole.
                self.save("last.pt")
                raise stop.interrupt() from None
        return scores

    def _end_epoch(self, phase: str) -> dict[str, float]:
        """Validation, samples, best.pt and curves (rank 0), then last.pt and a barrier."""
        scores: dict[str, float] = {}
        if self.dist.main:
            scores = self.validate()
            self._log({"step": self.step, "epoch": self.epoch - 1, "phase": phase, **scores})
            self.write_samples(self.epoch - 1)
            if scores["val_L1"] < self.best_val:
                self.best_val = scores["val_L1"]
                self.save("best.pt")
                save_bundle(self.run / "model.pt", self.run / "best.pt")  # for render
            plot_curves(self.run / "metrics.csv", self.run / "curves.png")
        self.save("last.pt")
        self.dist.barrier()
        return scores

    def _all_agree(self, requested: bool) -> bool:
        """Whether any process was asked to stop: every rank leaves after the same step (one
        that went on alone would wait in the next step's gradient all-reduce for ever)."""
        if self.dist.world == 1:
            return requested
        flag = torch.tensor([float(requested)], device=self.dist.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def start_run(cfg: TrainConfig, run: Path, dist_info: Dist, workers: int) -> Trainer:
    """A new run folder with config.json; refuses one that already holds a run, and a folder
    of other files."""
    if (run / "last.pt").exists():
        raise RunError(f"{run}: already holds a run; continue it with --resume {run}")
    # A run folder without last.pt is a run that stopped before its first checkpoint: nothing
    # to resume, so starting again over it loses nothing.
    check_claim(run, "train", "a training run")
    trainer = Trainer(cfg, run, dist_info, workers)
    if dist_info.main:
        run.mkdir(parents=True, exist_ok=True)
        with atomic_path(run / "config.json") as tmp:  # the folder's record: whole or absent
            tmp.write_text(json.dumps(cfg.to_dict(), indent=2))
    return trainer


def resume_run(run: Path, dist_info: Dist, workers: int, epochs: int | None = None) -> Trainer:
    """Continue ``run`` from last.pt: same step, optimizer state and schedule."""
    if not (run / "last.pt").exists():
        raise RunError(f"{run}: no last.pt to resume from")
    cfg = TrainConfig.from_dict(load_checkpoint(run / "last.pt")["config"])
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    trainer = Trainer(cfg, run, dist_info, workers)
    trainer.load(run / "last.pt")
    return trainer
