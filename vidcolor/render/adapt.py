"""``render --keyframes KEYS --adapt SECONDS``: before the render, a short fine-tune of the
generator on the keys themselves (their Lab L to their ab, the L1 half of pix2pix's loss: a
few seconds of adversarial steps would be noise), so the model's own guess takes the keys'
palette everywhere, in shots without a key too.

It learns from random square crops of the keys at the render's working size (``CROP`` pixels,
each key scaled by up to ``SCALES`` first and flipped at random), ``BATCH`` at a time: many
more, and more varied, steps in the same seconds than whole frames gave. Batch norm stays in
eval mode (a batch from a few frames of one video would skew its running statistics), and the
learning rate is fine-tuning's (``finetune.FINE_TUNE_LR``). The tuned weights live in the
render's ``Colorizer`` only; nothing is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidcolor.color import rgb_to_model
from vidcolor.train.finetune import FINE_TUNE_LR

MAX_KEYS = 64  # keys it learns from: a uniform sample of them, so memory stays bounded
BATCH = 8
CROP = 128  # pixels, square; at most the keys' short side
SCALES = (0.8, 1.25)  # a key is scaled by a random factor in this range before its crop


class KeySample:
    """A uniform sample of at most ``limit`` keys (reservoir sampling), each kept at the
    working size ``size`` (w, h): offer every key as it comes."""

    def __init__(self, size: tuple[int, int], limit: int = MAX_KEYS, seed: int = 0) -> None:
        self.size, self.limit = size, limit
        self.keys: list[np.ndarray] = []
        self._seen = 0
        self._rng = np.random.default_rng(seed)

    def offer(self, rgb: np.ndarray) -> None:
        """A key (HxWx3 uint8 RGB, as the model's frames are oriented)."""
        self._seen += 1
        slot = (
            len(self.keys) if len(self.keys) < self.limit else int(self._rng.integers(self._seen))
        )
        if slot < self.limit:
            small = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
            if slot == len(self.keys):
                self.keys.append(small)
            else:
                self.keys[slot] = small


def crops(keys: list[np.ndarray], count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random square crops (count x c x c x 3 uint8, c = ``CROP`` or the keys'
    short side) of same-sized HxWx3 keys, each key first scaled by a factor in ``SCALES`` (no
    less than the crop needs) and each crop flipped left-right at random."""
    h, w = keys[0].shape[:2]
    size = min(CROP, h, w)
    out = np.empty((count, size, size, 3), np.uint8)
    for n in range(count):
        key = keys[int(rng.integers(len(keys)))]
        scale = max(float(rng.uniform(*SCALES)), size / min(h, w))
        sw, sh = max(size, round(w * scale)), max(size, round(h * scale))
        big = cv2.resize(
            key, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        )
        y, x = int(rng.integers(sh - size + 1)), int(rng.integers(sw - size + 1))
        crop = big[y : y + size, x : x + size]
        out[n] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return out


def adapt(
    G: torch.nn.Module,
    keys: list[np.ndarray],
    seconds: float,
    on_time: Callable[[float], None] | None = None,
    seed: int = 0,
    max_steps: int | None = None,
    amp: torch.dtype | None = None,
) -> list[float]:
    """Fine-tune generator ``G`` (in place, on its own device; ``amp``: its mixed precision)
    on ``keys`` (same-sized HxWx3 uint8 RGB) for ``seconds`` of wall time, at least one step
    and at most ``max_steps`` (a result that does not depend on the machine's speed); each
    step a batch of ``BATCH`` crops (``crops``). ``on_time(elapsed)`` hears after each step.
    Returns each step's L1 loss (model scale)."""
    device = next(G.parameters()).device
    optimizer = torch.optim.Adam(G.parameters(), lr=FINE_TUNE_LR, betas=(0.5, 0.999))
    rng = np.random.default_rng(seed)
    losses: list[float] = []
    start = time.perf_counter()
    G.eval()
    with torch.enable_grad():
        while not losses or (
            time.perf_counter() - start < seconds and (max_steps is None or len(losses) < max_steps)
        ):
            rgb = torch.from_numpy(crops(keys, BATCH, rng)).to(device).permute(0, 3, 1, 2)
            x, y = rgb_to_model(rgb)
            x = x.contiguous(memory_format=torch.channels_last)
            if amp is None:
                loss = F.l1_loss(G(x), y)
            else:
                with torch.autocast("cuda", dtype=amp):
                    loss = F.l1_loss(G(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if on_time is not None:
                on_time(time.perf_counter() - start)
    G.zero_grad(set_to_none=True)
    return losses
