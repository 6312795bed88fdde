"""Changes a training batch goes through on the device before the model sees it (``train
--shade``, ``--windows``). Their random draws come from torch's random state, which checkpoints
keep, so a resumed run draws what an uninterrupted one would."""

from __future__ import annotations

import torch

from vidcolor.options import MIN_SIZE

SHADE = (0.55, 1.0)  # the darkening factors ``train --shade`` draws from
WINDOW_STEP = 8  # window sides move in steps of 8 pixels: few shapes for cuDNN to tune


def shaded(rgb: torch.Tensor, share: float) -> torch.Tensor:
    """A training batch (N, 3, H, W), float in [0, 1], with about ``share`` of its crops
    darkened by a factor drawn from SHADE: the same surfaces in the shade, darker and less
    saturated, so that a colour learned in the light is known out of it."""
    n = rgb.shape[0]
    scale = torch.empty(n, 1, 1, 1, device=rgb.device).uniform_(*SHADE)
    dark = torch.rand(n, 1, 1, 1, device=rgb.device) < share
    return torch.where(dark, rgb * scale, rgb)


def windowed(rgb: torch.Tensor, multiple: int) -> torch.Tensor:
    """A window of random size and place cut out of a training batch (N, C, S, S), the same for
    every crop: each side shorter by 0 to ``multiple`` - 8 pixels, in steps of 8, and never
    below S/2 or MIN_SIZE. The generator pads its input up to a ``multiple`` of its size: a model
    trained on crops of one size always saw the same padding, leans on it, and paints wrong
    colour at a working size whose padding differs (``render --render-size``)."""
    s = rgb.shape[-1]
    most = min(multiple - WINDOW_STEP, s - max(MIN_SIZE, s // 2)) // WINDOW_STEP
    if most <= 0:
        return rgb
    cut_h, cut_w = (torch.randint(0, most + 1, (2,)) * WINDOW_STEP).tolist()
    y, x = int(torch.randint(0, cut_h + 1, ())), int(torch.randint(0, cut_w + 1, ()))
    return rgb[..., y : y + s - cut_h, x : x + s - cut_w]
