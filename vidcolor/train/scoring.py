"""What each checkpoint shows of the generator: its validation scores and its sample grid."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np
import torch
from torch import nn

from vidcolor.color import model_to_rgb, rgb_to_model
from vidcolor.metrics import psnr, ssim
from vidcolor.pictures import sample_grid


@torch.inference_mode()
def validation_scores(
    G: nn.Module,
    crops: torch.Tensor,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager],
) -> dict[str, float]:
    """L1 on ab, PSNR and SSIM of the RGB result of ``G`` (in eval mode) over ``crops``
    (N, 3, S, S) uint8."""
    l1s, psnrs, ssims = [], [], []
    for rgb in crops.split(batch_size):
        truth = rgb.to(device).float() / 255
        L, ab = rgb_to_model(truth)
        with autocast():
            fake = G(L).float()
        l1s.append((fake - ab).abs().flatten(1).mean(1))
        pred = model_to_rgb(L, fake)
        psnrs.append(psnr(pred, truth))
        for p, t in zip(
            pred.permute(0, 2, 3, 1).cpu().numpy(),
            truth.permute(0, 2, 3, 1).cpu().numpy(),
            strict=True,
        ):
            ssims.append(ssim(p, t))
    return {
        "val_L1": torch.cat(l1s).mean().item(),
        "val_PSNR": torch.cat(psnrs).mean().item(),
        "val_SSIM": float(np.mean(ssims)),
    }


@torch.inference_mode()
def sample_rows(G: nn.Module, crops: torch.Tensor, rows: int, device: torch.device) -> np.ndarray:
    """The sample grid of ``G`` (in eval mode): gray | truth | generated on ``rows`` of
    ``crops``, spread across them (neighbouring frames of one shot say little new)."""
    n = min(rows, len(crops))
    picks = np.linspace(0, len(crops) - 1, n).round().astype(int)
    truth = crops[picks].to(device).float() / 255
    L, _ = rgb_to_model(truth)
    fake = G(L).float()
    gray = model_to_rgb(L, torch.zeros_like(fake))
    return sample_grid(gray, truth, model_to_rgb(L, fake))
