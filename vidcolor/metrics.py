"""Image quality against the colour original. Arrays are float in [0, 1], HxWx3 or NCHW."""

from __future__ import annotations

import functools

import cv2
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
            pred,
            truth,
            channel_axis=-1,
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


# --- colour and temporal consistency (numpy, RGB in [0, 1] float or uint8) ------------------


def as_unit(rgb: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] from uint8 or float input."""
    return rgb.astype(np.float32) / 255 if rgb.dtype == np.uint8 else rgb.astype(np.float32)


def psnr_np(pred: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB of two HxWx3 images (uint8 or [0, 1] floats); 100 for identical ones."""
    mse = float(np.mean((as_unit(pred) - as_unit(truth)) ** 2))
    return 100.0 if mse < 1e-10 else 10 * float(np.log10(1 / mse))


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk (2003) on 0-255 RGB: how colourful an image looks, 0 for gray."""
    x = as_unit(rgb).astype(np.float64) * 255
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


_FLOW = None


def optical_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow (HxWx2, pixels) from gray uint8 ``a`` to ``b``: OpenCV's DIS, medium preset.
    ``a(x)`` corresponds to ``b(x + flow(x))``."""
    global _FLOW
    if _FLOW is None:
        _FLOW = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return _FLOW.calc(a, b, None)


@functools.lru_cache(maxsize=4)
def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at ``x + flow(x)`` (bilinear; outside: the nearest edge)."""
    gx, gy = _grid(flow.shape[:2])
    return cv2.remap(
        image,
        gx + flow[..., 0],
        gy + flow[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _norm2(flow: np.ndarray) -> np.ndarray:
    """|flow|^2 per pixel (numpy's sum over a 2-long axis is several times slower)."""
    return flow[..., 0] ** 2 + flow[..., 1] ** 2


def reliable(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Where ``forward`` (t -> t+1) can be trusted (HxW bool): the forward-backward check and
    the motion-boundary check of Ruder et al. (2016), as Lai et al. (2018) use them. Pixels
    whose flow leaves the frame are not trusted either."""
    back = warp(backward, forward)  # the backward flow where each pixel lands
    occluded = _norm2(forward + back) > 0.01 * (_norm2(forward) + _norm2(back)) + 0.5
    du = np.gradient(forward[..., 0])
    dv = np.gradient(forward[..., 1])
    grad = du[0] ** 2 + du[1] ** 2 + dv[0] ** 2 + dv[1] ** 2
    boundary = grad > 0.01 * _norm2(forward) + 0.002
    gx, gy = _grid(forward.shape[:2])
    x, y = gx + forward[..., 0], gy + forward[..., 1]
    h, w = forward.shape[:2]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    return ~occluded & ~boundary & inside


def warp_error(
    frame: np.ndarray, following: np.ndarray, forward: np.ndarray, mask: np.ndarray
) -> float:
    """Lai et al. (2018): ``following`` (frame t+1) warped back to t along ``forward`` (flow
    t -> t+1, from the original's luma), squared RGB difference in [0, 1] averaged over the
    channels and the pixels ``mask`` trusts, as their published evaluation code computes it.
    NaN when it trusts none (such a pair is left out, where their code counts it as 0)."""
    if not mask.any():
        return float("nan")
    diff = as_unit(frame) - warp(as_unit(following), forward)
    return float((diff**2)[mask].mean())


def histograms(rgb: np.ndarray, bins: int = 256) -> np.ndarray:
    """Per-channel normalised histograms (3 x bins) of an RGB image."""
    x = rgb if rgb.dtype == np.uint8 else (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    h = np.stack(
        [np.bincount(x[..., c].ravel() // (256 // bins), minlength=bins) for c in range(3)]
    ).astype(np.float64)
    return h / h.sum(axis=1, keepdims=True)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (natural log, at most ln 2, as the CDC's published code uses
    it) of two distributions, averaged over the rows when given several (channels)."""
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log(a / m), 0.0).sum(-1)

    return float(np.mean(0.5 * kl(p) + 0.5 * kl(q)))
