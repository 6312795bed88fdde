"""A render keeps each pixel's luma, so the colour it adds must fit at that luma: black and
white take no colour, and colour elsewhere is shortened to what its luma can show, not left for
the player to clip."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from conftest import LOSSLESS

from vidcolor.color import block_luma, chroma_in_gamut, rgb_to_lab_np
from vidcolor.render.streaming import Colorizer, render_video

BARS = (0, 255, 128, 40)  # black, white, mid and dark gray: 16 columns each


@pytest.fixture
def blue_model(tiny_model: Path, tmp_path: Path) -> Path:
    """The tiny model made to paint every pixel saturated blue (Lab b -110), unhedged: what a
    model fine-tuned on a blue-heavy game did to black loading screens."""
    path = tmp_path / "blue.pt"
    shutil.copy(tiny_model, path)
    state = torch.load(path, weights_only=True)
    state["generator"]["out.weight"].zero_()
    state["generator"]["out.bias"] = torch.tensor([0.0, -20.0])  # tanh: ab = (0, -110)
    state.update(chroma_gain=1.0, chroma_shrink=0.0)
    torch.save(state, path)
    return path


def bars() -> np.ndarray:
    return np.repeat(np.array(BARS, np.uint8), 16)[None, :, None].repeat(48, 0).repeat(3, 2)


def luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 0].astype(int)


def test_black_and_white_stay_neutral_and_every_pixel_keeps_its_luma(
    blue_model: Path, tmp_path: Path
) -> None:
    src, dst = tmp_path / "bars.mp4", tmp_path / "out.mp4"
    with av.open(str(src), "w") as out:  # TV-range Y'CbCr, as videos are
        stream = out.add_stream("libx264", rate=24, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(3):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(bars(), format="rgb24")))
        out.mux(stream.encode(None))
    render_video(src, dst, Colorizer(blue_model, "cpu"), LOSSLESS, temporal=False)
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        pairs = list(zip(a.decode(video=0), b.decode(video=0), strict=True))
    assert len(pairs) == 3
    for before, after in pairs:
        gray, rgb = (f.to_ndarray(format="rgb24").astype(int) for f in (before, after))
        assert rgb[:, :16].max() <= 3, rgb[:, :16].max(axis=(0, 1))  # black: was (0, 29, 164)
        assert rgb[:, 16:32].min() >= 251, rgb[:, 16:32].min(axis=(0, 1))  # white
        off = np.abs(luma(rgb.astype(np.uint8)) - luma(gray.astype(np.uint8)))
        assert off.max() <= 3, off.max()  # nothing clipped, the bars' edges too
        for x0 in (32, 48):  # the grays keep strong blue, shortened only where it must be
            r, g, b = rgb[:, x0 + 4 : x0 + 12].reshape(-1, 3).mean(0)
            assert b - r > 60, (x0, r, g, b)


def test_a_frame_scored_as_render_shows_it_keeps_black_black(blue_model: Path) -> None:
    """Full-range luma (eval and score_model's path): black stays black here too."""
    out = Colorizer(blue_model, "cpu").colorize_frame(bars())
    # inside the bars: at their edges the blue of the grays beside them blends in, as any
    # 4:2:0 colour does across an edge
    assert out[:, :15].max() <= 1 and out[:, 17:31].min() >= 254
    assert (out[:, 36:44, 2].astype(int) - out[:, 36:44, 0]).mean() > 60


def test_chroma_in_gamut_keeps_what_fits_and_the_hue_of_what_it_shortens() -> None:
    cbcr = torch.tensor([160.0, 100.0]).reshape(1, 2, 1, 1).repeat(1, 1, 2, 2)
    luma = torch.full((1, 2, 2), 128, dtype=torch.uint8)
    kept = chroma_in_gamut(cbcr, luma, "bt709", full_range=True)
    torch.testing.assert_close(kept, cbcr)  # fits at mid gray: untouched
    luma[0, 0, 0] = 10  # a dark block: its sample alone is shortened
    short = chroma_in_gamut(cbcr, luma, "bt709", full_range=True) - 128
    torch.testing.assert_close(short[..., 1, :], cbcr[..., 1, :] - 128)
    assert short[0, :, 0, 0].norm() < 0.5 * (cbcr[0, :, 0, 0] - 128).norm()
    cb, cr = short[0, :, 0, 0]
    assert abs(cb / cr - 32 / -28) < 1e-4  # the same hue


def test_block_luma_is_each_chroma_samples_blocks_mean() -> None:
    y = np.array([[0, 10, 100, 100, 7], [20, 30, 100, 100, 9], [1, 1, 1, 1, 250]], np.uint8)
    assert block_luma(y).tolist() == [[15, 100, 8], [1, 1, 250]]  # 3x5: a 2x3 chroma grid


def test_a_still_keeps_its_lightness_and_black_and_white_stay_neutral(blue_model: Path) -> None:
    """A still keeps Lab L (not luma): its colour is shortened in Lab to what fits at that L."""
    picture = bars()
    out = Colorizer(blue_model, "cpu").colorize_rgb(picture)
    assert out[:, :16].max() <= 1 and out[:, 16:32].min() >= 254
    lightness = [rgb_to_lab_np(p)[..., 0] for p in (picture, out)]
    assert np.abs(lightness[1] - lightness[0]).max() < 1.0  # nothing clipped
    assert (out[:, 36:44, 2].astype(int) - out[:, 36:44, 0]).mean() > 60  # blue kept
