"""The GAN loop: pix2pix in Lab, resumable, one process or data-parallel under torchrun."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from vidcolor.atomic import clear_stale
from vidcolor.color import rgb_to_model, unit_rgb
from vidcolor.data.augment import shaded, windowed
from vidcolor.data.crops import Crops, cache_short, fixed_crops, on_device
from vidcolor.data.dataset import TrainingData, open_training_data
from vidcolor.interrupt import ForcedStop, StopBetweenSteps
from vidcolor.models import build_discriminator, build_generator, generator_groups
from vidcolor.options import MIN_SIZE, TrainConfig
from vidcolor.runtime import Dist, RunError, amp_dtype
from vidcolor.threads import threaded
from vidcolor.train.average import WeightAverage
from vidcolor.train.checkpoint import save_checkpoint
from vidcolor.train.saver import Saver, append_metrics, snapshot, write_checkpoint
from vidcolor.train.scoring import sample_rows, validation_scores
from vidcolor.train.state import RunState

__all__ = ["Dist", "ForcedStop", "RunError", "TrainConfig", "Trainer"]

CURVES_SECONDS = 30.0  # curves.png is redrawn at most this often (a redraw costs about 0.5 s)


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


def lr_factor(step: int, pretrain_steps: int, gan_steps: int, decay_steps: int) -> float:
    """1 through warm-up and the first adversarial epochs, then linearly down towards 0."""
    into = step - pretrain_steps - (gan_steps - decay_steps)
    return 1.0 if into < 0 else max(0.0, 1.0 - into / max(1, decay_steps))


def not_finite(losses: dict[str, float]) -> str:
    """The losses that are NaN or inf, said ('G_L1 is nan'), or that another rank's are."""
    bad = [f"{k} is {v}" for k, v in losses.items() if not math.isfinite(v)]
    return ", ".join(bad) or "a loss is NaN or inf on another process"


class Trainer(RunState):
    """Owns the models, optimizers and run folder; ``fit`` runs the loop."""

    def __init__(
        self,
        cfg: TrainConfig,
        run: Path,
        dist_info: Dist,
        workers: int = 2,
        on_image: Callable[[int, int], None] | None = None,
        start: tuple[dict, dict | None] | None = None,
    ) -> None:
        """``start``: G's and D's first weights (``train --init``; None: a new D). A config
        not yet resolved trains from scratch's defaults (TrainConfig.resolved)."""
        cfg = cfg.resolved()
        self.cfg, self.run, self.dist, self.workers = cfg, run, dist_info, workers
        dev = dist_info.device
        if cfg.size < MIN_SIZE:
            raise RunError(f"--size {cfg.size}: the discriminators need at least {MIN_SIZE}")
        torch.manual_seed(cfg.seed)
        self.data = self._open_data(on_image)
        train = self.data.train
        self.train_set = Crops(
            len(train), lambda i: self.data.picture(train[i]), cfg.size, train=True, seed=cfg.seed
        )
        val = self.data.val
        if len(val) > cfg.val_max:  # an even spread, not the first scenes alone
            val = [val[i] for i in np.linspace(0, len(val) - 1, cfg.val_max).astype(int)]
        self.val_set = fixed_crops(val, self.data.picture, cfg.size)
        self.saver = Saver()
        self.hold = ExitStack()  # what the run folder holds while it trains: fit releases it
        self._saved_at, self._saved_step = time.monotonic(), -1
        self._curves_at = -math.inf
        self.kept_step: int | None = None  # the step of the last checkpoint written or loaded
        self.steps_per_epoch = len(self.train_set) // (cfg.batch_size * dist_info.world)
        if self.steps_per_epoch == 0:
            n = len(self.train_set)
            raise RunError(
                f"{n} training images make no full batch of {cfg.batch_size} "
                f"x {dist_info.world} process(es): lower --batch-size"
            )
        self.G = build_generator(cfg.model).to(dev)
        self.D = build_discriminator(cfg.model).to(dev)
        for net, weights in zip((self.G, self.D), start or (None, None), strict=True):
            if weights is not None:
                net.load_state_dict(weights)
        if dev.type == "cuda":
            self.G = self.G.to(memory_format=torch.channels_last)
            self.D = self.D.to(memory_format=torch.channels_last)
            if dist_info.world > 1:
                self.G = nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
                self.D = nn.SyncBatchNorm.convert_sync_batchnorm(self.D)
        self.average = WeightAverage(self.G, cfg.ema) if cfg.ema else None
        betas = (cfg.beta1, 0.999)
        self.opt_G = torch.optim.Adam(generator_groups(self.G, cfg.lr), betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=betas)
        total = cfg.pretrain_epochs + cfg.epochs
        decay = cfg.epochs // 2 if cfg.decay_epochs is None else min(cfg.decay_epochs, cfg.epochs)
        spe = self.steps_per_epoch
        self.total_steps = total * spe
        self.pre_steps = pre = cfg.pretrain_epochs * spe  # warm-up steps

        def schedule(step: int) -> float:
            return lr_factor(step, pre, cfg.epochs * spe, decay * spe)

        # D trains only in the adversarial phase, so its scheduler counts from there.
        self.sched_G = torch.optim.lr_scheduler.LambdaLR(self.opt_G, schedule)
        self.sched_D = torch.optim.lr_scheduler.LambdaLR(self.opt_D, lambda s: schedule(s + pre))
        self.amp_dtype = amp_dtype(dev)  # mixed precision on CUDA only
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step, self.epoch, self.best_val = 0, 0, float("inf")
        if dist_info.world > 1:
            ids = [dev.index] if dev.type == "cuda" else None
            self.G_ddp = DistributedDataParallel(self.G, device_ids=ids)  # broadcasts rank 0's
            self.D_ddp = DistributedDataParallel(self.D, device_ids=ids)
            torch.manual_seed(cfg.seed * 1_000_003 + dist_info.rank)  # per-rank dropout noise
        else:
            self.G_ddp, self.D_ddp = self.G, self.D

    def _open_data(self, on_image: Callable[[int, int], None] | None) -> TrainingData:
        """DATA, a folder's images decoded once into RUN/cache (rank 0 makes it; the other
        ranks wait, then read it)."""
        cfg = self.cfg

        def open_data() -> TrainingData:
            return open_training_data(
                cfg.data,
                cfg.val_fraction,
                cfg.seed,
                max(1, self.workers),
                exclude=self.run,
                cache=self.run / "cache",
                cache_short=cache_short(cfg.size),
                on_image=on_image,
            )

        data = open_data() if self.dist.main else None
        self.dist.barrier()
        return data or open_data()

    # -- run folder -------------------------------------------------------------------------

    def save(self, name: str) -> None:
        """``name`` now, once the writes under way are done (they may be older steps)."""
        if self.dist.main:
            self.saver.wait()
            if not self._finite():  # rank 0 alone here: no other rank to ask
                raise self._diverged("the weights hold NaN or inf")
            save_checkpoint(self.run / name, self.state())
            self.kept_step = self.step

    def _log(self, row: dict) -> None:
        if self.dist.main:
            append_metrics(self.run / "metrics.csv", row)

    # -- the loop ---------------------------------------------------------------------------

    def batches(self, epoch: int) -> threaded:
        """This epoch's crops on the device (N, 3, S, S) in [0, 1], skipping those a resumed
        run already trained on: sliced out of the stored pictures and resampled a few batches
        ahead, in a thread of their own (on CUDA into pinned memory, then one stream)."""
        sampler = DistributedSampler(
            range(len(self.train_set)),
            self.dist.world,
            self.dist.rank,
            shuffle=True,
            seed=self.cfg.seed,
            drop_last=True,
        )
        sampler.set_epoch(epoch)
        done = self.step - epoch * self.steps_per_epoch
        indices = list(sampler)[done * self.cfg.batch_size :]
        dev, size = self.dist.device, self.cfg.size
        batches = self.train_set.batches(indices, self.cfg.batch_size, epoch, dev.type == "cuda")
        return threaded((on_device(c, t, size, dev) for c, t in batches), 3)

    def _autocast(self) -> torch.autocast | nullcontext:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def train_step(self, rgb: torch.Tensor, adversarial: bool) -> dict[str, float]:
        """One D step (adversarial phase only) and one G step on an RGB batch (N, 3, S, S):
        uint8, or float in [0, 1]."""
        dev = self.dist.device
        rgb = rgb.to(dev, non_blocking=True)
        if self.cfg.shade:
            rgb = shaded(unit_rgb(rgb), self.cfg.shade)
        if self.cfg.windows:
            rgb = windowed(rgb, 2**self.G.depth)
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
            if adversarial and self.step >= self.pre_steps + self.cfg.d_warmup:
                logit = self.D(L, fake)
                g_gan = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))
                loss_G = loss_G + g_gan
                out["G_GAN"] = g_gan.item()
        self.opt_G.zero_grad(set_to_none=True)
        self.scaler.scale(loss_G).backward()
        self.scaler.step(self.opt_G)
        self.scaler.update()
        if self.average is not None:
            self.average.update(self.G, self.step + 1)
        self.sched_G.step()
        if adversarial:
            self.sched_D.step()
        out["G_L1"] = l1.item()
        return out

    @property
    def generator(self) -> nn.Module:
        """The generator that checkpoints hold and validation scores: with --ema, the average."""
        return self.G if self.average is None else self.average.module

    def validate(self) -> dict[str, float]:
        """L1 on ab, PSNR and SSIM of the RGB result, over the held-out crops."""
        G, dev = self.generator.eval(), self.dist.device
        scores = validation_scores(G, self.val_set, self.cfg.batch_size, dev, self._autocast)
        self.G.train()
        return scores

    def samples(self) -> np.ndarray:
        """The sample grid: gray | truth | generated on the same validation crops."""
        grid = sample_rows(self.generator.eval(), self.val_set, self.cfg.samples, self.dist.device)
        self.G.train()
        return grid

    def fit(self, on_step: Callable[[Status], None] | None = None) -> dict[str, float]:
        """Train to the configured number of epochs; returns the last validation scores.
        Validation, samples and checkpoints come every ``checkpoint_every`` steps or
        ``checkpoint_minutes``, whichever is first, and at the end. Ctrl-C (or SIGTERM, SIGHUP)
        finishes the step in progress, saves last.pt and raises KeyboardInterrupt; a second one
        raises ForcedStop at once and saves nothing. The run folder's lock is released as it
        ends."""
        cfg, epochs = self.cfg, self.cfg.pretrain_epochs + self.cfg.epochs
        scores: dict[str, float] = {}
        acc: dict[str, list[float]] = {}
        t_log, n_log = time.perf_counter(), 0
        if self.dist.main:  # checkpoints and samples half-written by a killed run
            clear_stale(self.run)
            clear_stale(self.run / "samples")
        self.G.train()
        self.D.train()
        phase = "pretrain"
        with self.hold, StopBetweenSteps() as stop:
            try:
                while self.epoch < epochs:
                    adversarial = self.epoch >= cfg.pretrain_epochs
                    phase = "gan" if adversarial else "pretrain"
                    with self.batches(self.epoch) as batches:
                        for rgb in batches:
                            losses = self.train_step(rgb, adversarial)
                            self.step += 1
                            if self.step == (self.epoch + 1) * self.steps_per_epoch:
                                self.epoch += 1  # its last batch: a checkpoint now says so
                            n_log += rgb.shape[0] * self.dist.world
                            for k, v in losses.items():
                                acc.setdefault(k, []).append(v)
                            rate = n_log / max(1e-9, time.perf_counter() - t_log)
                            if on_step is not None:
                                on_step(
                                    Status(
                                        (self.step - 1) // self.steps_per_epoch,
                                        epochs,
                                        self.step,
                                        self.total_steps,
                                        phase,
                                        losses,
                                        rate,
                                    )
                                )
                            if self.step % cfg.log_every == 0:
                                means = {k: float(np.mean(v)) for k, v in acc.items()}
                                # the run's --lr: the last group's (the decoder's)
                                lr = self.sched_G.get_last_lr()[-1]
                                self._log(
                                    {
                                        "step": self.step,
                                        "epoch": self.epoch,
                                        "phase": phase,
                                        "lr": lr,
                                        "images_per_s": rate,
                                        **means,
                                    }
                                )
                                acc, t_log, n_log = {}, time.perf_counter(), 0
                            bad = not all(map(math.isfinite, losses.values()))
                            stopping, due, bad = self._all_agree(stop.requested, self._due(), bad)
                            if bad:
                                raise self._diverged(not_finite(losses))
                            if due:
                                scores = self._checkpoint(phase)
                            if stopping:
                                raise stop.interrupt()
                if self._saved_step != self.step:
                    scores = self._checkpoint(phase)
                self.saver.close()
                self.dist.barrier()  # ranks end together: one gone early aborted in gloo's exit
            except ForcedStop:
                raise
            except KeyboardInterrupt:
                self.save("last.pt")  # steps are whole: the interrupt came between them
                raise
        return scores

    def _due(self) -> bool:
        """Whether validation and a checkpoint are due after this step (rank 0's clock)."""
        minutes = (time.monotonic() - self._saved_at) / 60
        return self.step % self.cfg.checkpoint_every == 0 or minutes >= self.cfg.checkpoint_minutes

    def _checkpoint(self, phase: str) -> dict[str, float]:
        """Validation and the sample grid now (rank 0); last.pt, and best.pt with model.pt
        when validation improved, samples/step_N.png and curves.png (at the last step, else
        at most every CURVES_SECONDS) written in the background. A barrier keeps the ranks in
        step."""
        scores: dict[str, float] = {}
        if self._all_agree(False, False, not self._finite())[2]:  # on any rank
            raise self._diverged("the weights hold NaN or inf")
        if self.dist.main:
            scores = self.validate()
            self._log({"step": self.step, "epoch": self.epoch, "phase": phase, **scores})
            grid, state = self.samples(), snapshot(self.state())
            improved = scores["val_L1"] < self.best_val
            if improved:
                self.best_val = state["best_val_L1"] = scores["val_L1"]
            step = self.step  # now: the writer runs while training moves on
            curves = (
                step == self.total_steps or time.monotonic() - self._curves_at >= CURVES_SECONDS
            )
            if curves:
                self._curves_at = time.monotonic()
            self.saver.submit(
                lambda: write_checkpoint(self.run, step, grid, state, improved, curves)
            )
            self.kept_step = step
        self._saved_at, self._saved_step = time.monotonic(), self.step
        self.dist.barrier()
        return scores

    def _all_agree(self, stop: bool, due: bool, bad: bool) -> tuple[bool, bool, bool]:
        """Whether any process was asked to stop, whether rank 0 finds a checkpoint due, and
        whether any process's numbers turned NaN or inf: every rank acts after the same step
        (else one would wait in the next all-reduce for ever)."""
        if self.dist.world == 1:
            return stop, due, bad
        flags = [float(stop), float(due and self.dist.main), float(bad)]
        agreed = torch.tensor(flags, device=self.dist.device)
        dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
        stop, due, bad = (bool(f) for f in agreed.tolist())
        return stop, due, bad

    def _finite(self) -> bool:
        """Whether G's and D's weights here are all numbers: a checkpoint of NaN or inf would
        resume nothing and render black frames."""
        nets = {self.G, self.D, self.generator}
        weights = [t for net in nets for t in net.state_dict().values()]
        return all(bool(torch.isfinite(t).all()) for t in weights if t.is_floating_point())

    def _diverged(self, what: str) -> RunError:
        """Training has gone to NaN or inf (``what`` says where): the error to stop with, once
        the checkpoints already queued (all of finite weights) are on the disk."""
        if self.dist.main:
            self.saver.close()
        kept = "no checkpoint was written"
        if self.kept_step is not None:
            kept = f"{self.run / 'last.pt'} keeps step {self.kept_step}, the last good one"
        said = f"training diverged at step {self.step} ({what}); {kept}"
        return RunError(f"{self.run}: {said}; a lower --lr may help")
