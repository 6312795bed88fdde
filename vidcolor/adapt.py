"""``render --keyframes KEYS --adapt SECONDS``: before the render, a short fine-tune of the
generator on the keys themselves (their Lab L to their ab, the L1 half of pix2pix's loss: a
few seconds of adversarial steps would be noise), so the model's own guess takes the keys'
palette everywhere, in shots without a key too.

It learns at the render's working size, from whole frames: that is what it will see. Batch
norm stays in eval mode (a batch of a few frames of one video would skew its running
statistics), and the learning rate is fine-tuning's (``finetune.FINE_TUNE_LR``). The tuned
weights live in the render's ``Colorizer`` only; nothing is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidcolor.color import rgb_to_model
from vidcolor.finetune import FINE_TUNE_LR

MAX_KEYS = 64  # keys it learns from: a uniform sample of them, so memory stays bounded
BATCH = 4


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
        slot = len(self.keys) if len(self.keys) < self.limit else int(
            self._rng.integers(self._seen))  # fmt: skip
        if slot < self.limit:
            small = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
            if slot == len(self.keys):
                self.keys.append(small)
            else:
                self.keys[slot] = small


def adapt(colorizer: Any, keys: list[np.ndarray], seconds: float,
          on_time: Callable[[float], None] | None = None, seed: int = 0,
          max_steps: int | None = None) -> list[float]:  # fmt: skip
    """Fine-tune ``colorizer.G`` (a render.Colorizer's) on ``keys`` (same-sized HxWx3 uint8
    RGB) for ``seconds`` of wall time, at least one step and at most ``max_steps`` (a
    result that does not depend on the machine's speed); batches of up to BATCH keys, each
    flipped left-right at random. ``on_time(elapsed)`` hears after each step. Returns each
    step's L1 loss (model scale)."""
    device, G = colorizer.device, colorizer.G
    rgb = torch.from_numpy(np.stack(keys)).to(device).permute(0, 3, 1, 2)
    L, ab = rgb_to_model(rgb)
    L = L.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(G.parameters(), lr=FINE_TUNE_LR, betas=(0.5, 0.999))
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    start = time.perf_counter()
    G.eval()
    with torch.enable_grad():
        while not losses or (time.perf_counter() - start < seconds
                             and (max_steps is None or len(losses) < max_steps)):
            pick = torch.randperm(len(keys), generator=generator)[:BATCH].to(device)
            x, y = L[pick], ab[pick]
            if torch.rand(1, generator=generator).item() < 0.5:
                x, y = x.flip(3), y.flip(3)
            if colorizer.amp is None:
                loss = F.l1_loss(G(x), y)
            else:
                with torch.autocast("cuda", dtype=colorizer.amp):
                    loss = F.l1_loss(G(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if on_time is not None:
                on_time(time.perf_counter() - start)
    G.zero_grad(set_to_none=True)
    return losses
