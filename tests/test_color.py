"""Colour conversions against scikit-image, and the model's scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color

from vidcolor.color import (
    ab_from_model,
    ab_to_model,
    l_from_model,
    l_to_model,
    lab_to_rgb,
    lab_to_rgb_np,
    model_to_rgb,
    rgb_to_lab,
    rgb_to_lab_np,
    rgb_to_model,
)


@pytest.fixture
def random_rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    rgb = rng.random((64, 64, 3))
    rgb[0, :8] = [
        [0, 0, 0],
        [1, 1, 1],
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [1, 1, 0],
        [0, 1, 1],
        [1, 0, 1],
    ]
    return rgb


def test_rgb_to_lab_matches_skimage(random_rgb: np.ndarray) -> None:
    ours = rgb_to_lab(torch.from_numpy(random_rgb)).numpy()
    assert np.abs(ours - color.rgb2lab(random_rgb)).max() < 1e-3
    assert np.abs(rgb_to_lab_np(random_rgb) - color.rgb2lab(random_rgb)).max() < 1e-3
    as_uint8 = (random_rgb * 255).round().astype(np.uint8)
    assert np.abs(rgb_to_lab_np(as_uint8) - color.rgb2lab(as_uint8)).max() < 1e-3


def test_lab_to_rgb_matches_skimage_and_round_trips(random_rgb: np.ndarray) -> None:
    lab = color.rgb2lab(random_rgb)
    ours = lab_to_rgb(torch.from_numpy(lab)).numpy()
    assert np.abs(ours - color.lab2rgb(lab)).max() < 1e-3
    assert np.abs(lab_to_rgb_np(rgb_to_lab_np(random_rgb)) - random_rgb).max() < 1e-3


def test_out_of_gamut_lab_is_clipped_not_nan() -> None:
    rng = np.random.default_rng(1)
    lab = np.stack(
        [rng.uniform(0, 100, 4096), rng.uniform(-128, 128, 4096), rng.uniform(-128, 128, 4096)],
        axis=-1,
    )
    rgb = lab_to_rgb_np(lab)
    assert np.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1
    with np.errstate(all="ignore"), pytest.warns(UserWarning):  # skimage warns, then clips too
        ref = color.lab2rgb(lab)
    assert np.abs(rgb - ref).max() < 1e-3


def test_batched_nchw_and_model_scaling() -> None:
    rgb = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    lab = rgb_to_lab(rgb, dim=1)
    ref = color.rgb2lab(rgb.permute(0, 2, 3, 1).numpy())
    assert torch.allclose(lab.permute(0, 2, 3, 1), torch.from_numpy(ref), atol=1e-3)
    L, ab = rgb_to_model((rgb * 255).round().to(torch.uint8))
    assert L.shape == (2, 1, 5, 7) and ab.shape == (2, 2, 5, 7)
    assert L.min() >= -1 and L.max() <= 1 and ab.abs().max() <= 1
    back = model_to_rgb(L, ab)
    assert (back - (rgb * 255).round() / 255).abs().max() < 1e-3
    x = torch.tensor([0.0, 50.0, 100.0])
    assert torch.equal(l_to_model(x), torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.allclose(l_from_model(l_to_model(x)), x)
    assert torch.allclose(
        ab_from_model(ab_to_model(torch.tensor([-110.0, 55.0]))), torch.tensor([-110.0, 55.0])
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_conversion_on_cuda(random_rgb: np.ndarray) -> None:
    x = torch.from_numpy(random_rgb).float().cuda()
    assert torch.allclose(lab_to_rgb(rgb_to_lab(x)).cpu(), x.cpu(), atol=1e-3)


def test_gray_rgb_keeps_lightness_and_drops_colour() -> None:
    from vidcolor.color import gray_rgb

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    gray = gray_rgb(rgb)
    assert gray.dtype == np.uint8 and gray.shape == rgb.shape
    assert np.abs(gray.astype(int) - gray[..., :1]).max() <= 1  # R = G = B, up to rounding
    lab, lab_gray = rgb_to_lab_np(rgb / 255), rgb_to_lab_np(gray / 255)
    assert np.abs(lab[..., 0] - lab_gray[..., 0]).max() < 0.5  # the same lightness
