"""An exponential moving average of the generator's weights (``train --ema DECAY``).

At a steady learning rate a generator's weights wander from step to step, and their running
mean is a better model than any one step's (docs/benchmarks.md, "Fourth model"). With the
average on, a run's checkpoints, validation, samples and model.pt all hold the averaged
generator under ``G``; the weights that train are kept beside it (``G_train``) for a resume.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """The mean of a network's weights over its last ~1 / (1 - ``decay``) steps. Early on the
    decay is lowered to (1 + t) / (10 + t), so the first steps' start weights fade fast (the
    bias correction most EMA implementations use). Buffers (BatchNorm's running statistics)
    are the trained network's own, copied at each update."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module, step: int) -> None:
        """Fold ``net``'s weights after training step ``step`` (1 for the first) in."""
        keep = min(self.decay, (1 + step) / (10 + step))
        for mine, trained in zip(self.module.parameters(), net.parameters(), strict=True):
            mine.lerp_(trained.detach(), 1 - keep)
        for mine, trained in zip(self.module.buffers(), net.buffers(), strict=True):
            mine.copy_(trained)
