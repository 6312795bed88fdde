"""Image quality against the colour original. Arrays are float in [0, 1], HxWx3 or NCHW."""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity


def psnr(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image of an NCHW batch in [0, 1]."""
    mse = ((pred - truth) ** 2).flatten(1).mean(1).clamp(min=1e-10)
    return 10 * torch.log10(1 / mse)


def ssim(pred: np.ndarray, truth: np.ndarray) -> float:
    """Structural similarity of two HxWx3 images in [0, 1] (scikit-image, Gaussian window)."""
    return float(
        structural_similarity(
            pred, truth, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False,
        )
    )  # fmt: skip
