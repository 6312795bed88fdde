"""Colour by matching: a frame takes its colour from where it looks like its shot's keys, where
the motion no longer carries it (vidcolor.render.matching)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vidcolor.render.matching import CELL, upsample

# Eight bands, each its own hue, brightness and texture; a frame is the scene turned round by a
# jump of JUMP pixels a frame, far past what optical flow follows, and no cut: the same content.
BAND, BANDS, HEIGHT, JUMP = 24, 8, 96, 53
HUES = [
    (220, 40, 40),
    (40, 200, 60),
    (50, 70, 230),
    (230, 210, 40),
    (200, 60, 200),
    (40, 200, 210),
    (240, 140, 30),
    (120, 80, 40),
]


def scene() -> np.ndarray:
    rng = np.random.default_rng(0)
    bands = []
    for i, hue in enumerate(HUES):
        grain = rng.normal(1.0, 0.03 + 0.04 * (i % 3), (HEIGHT, BAND, 1))
        bands.append(np.clip(np.array(hue, float) * (0.6 + 0.05 * i) * grain, 0, 255))
    return np.hstack(bands).astype(np.uint8)


def frames(count: int) -> list[np.ndarray]:
    base = scene()
    return [np.ascontiguousarray(np.roll(base, JUMP * i, axis=1)) for i in range(count)]


def write(path: Path, images: list[np.ndarray]) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = images[0].shape[1], HEIGHT, "yuv444p"
        stream.options = {"crf": "0", "bf": "0"}
        for image in images:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())


def chroma_error(path: Path, truth: list[np.ndarray]) -> list[float]:
    """Per frame: mean distance in CbCr (code values) between ``path``'s frames and ``truth``."""
    from vidcolor.video import VideoReader

    def cbcr(rgb: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 1:].astype(float)

    with VideoReader(path) as reader:
        pairs = zip(reader, truth, strict=True)
        return [float(np.abs(cbcr(f.image) - cbcr(t)).mean()) for f, t in pairs]


def keyed_errors(tmp_path: Path, model: str) -> dict[bool, list[float]]:
    """Each frame's chroma error of a render keyed on frame 0, without and with matching."""
    from vidcolor import stages
    from vidcolor.options import RenderOptions

    truth = frames(10)
    src = tmp_path / "jumps.mp4"
    write(
        src, [cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) for f in truth]
    )
    (tmp_path / "keys").mkdir()
    cv2.imwrite(str(tmp_path / "keys" / "0.png"), cv2.cvtColor(truth[0], cv2.COLOR_RGB2BGR))
    errors = {}
    for match in (False, True):
        out = tmp_path / f"match_{match}.mp4"
        keys = tmp_path / "keys"
        options = RenderOptions(device="cpu", crf=0, keyframes=keys, match=match, model=model)
        stages.render(src, out, options)
        errors[match] = chroma_error(out, truth)
    return errors


def test_matching_recovers_the_colour_where_the_motion_is_lost(tmp_path: Path) -> None:
    errors = keyed_errors(tmp_path, "default")
    for i in range(2, 10):  # past the jumps: the carry has nothing; matching finds each band
        assert errors[True][i] < 0.35 * errors[False][i], (i, errors)
        assert errors[True][i] < 12, (i, errors)  # band edges fall inside cells: a blend there


def test_the_imagenet_model_matches_on_its_own_encoders_levels(tmp_path: Path) -> None:
    # MobileNetV2's levels find these grainy bands less alike than the U-Net's, so matching
    # helps less here than on real footage (docs/benchmarks.md), but on every frame
    errors = keyed_errors(tmp_path, "imagenet")
    for i in range(2, 10):
        assert errors[True][i] < 0.95 * errors[False][i], (i, errors)
    assert np.mean(errors[True][2:]) < 0.8 * np.mean(errors[False][2:]), errors


def test_upsampling_puts_colour_edges_where_the_luma_has_them() -> None:
    gray = np.full((64, 64), 60, np.uint8)
    gray[:, 29:] = 200  # an edge off the cells' grid
    cells = np.zeros((64 // CELL, 64 // CELL, 1), np.float32)
    cells[:, 64 // CELL // 2 :] = 100.0  # the colour's edge on the grid, 3 px away
    out = upsample(cells, gray)[..., 0]
    assert out.shape == gray.shape
    assert np.abs(out[:, :27] - 0).max() < 15 and np.abs(out[:, 31:] - 100).max() < 15
    sharp = np.abs(np.diff(out, axis=1)).argmax(axis=1)
    assert (sharp == 28).mean() > 0.9  # the step sits on the luma's edge, not the grid's


@pytest.mark.parametrize("keys", [1, 3])
def test_a_bank_holds_the_keys_cells_whatever_the_shot_length(keys: int) -> None:
    import torch

    from vidcolor.color import l_to_model
    from vidcolor.render.matching import Bank, bank, features, match
    from vidcolor.render.streaming import Colorizer

    colorizer = Colorizer(device="cpu")
    gray = cv2.cvtColor(scene(), cv2.COLOR_RGB2GRAY)
    feats = features(colorizer.G, l_to_model(colorizer.model_l([gray])))[0]
    chroma = np.dstack([np.full(gray.shape, 90, np.float32), np.full(gray.shape, 170, np.float32)])
    joined = Bank.join(bank(feats, chroma) for _ in range(keys))
    cells = -(-gray.shape[0] // CELL) * -(-gray.shape[1] // CELL)
    assert joined.features.shape[0] == joined.chroma.shape[0] == keys * cells
    assert torch.allclose(joined.features.norm(dim=1), torch.ones(1))
    colour, sure = match(joined, feats)  # the key against itself: its own colour, sure
    assert np.allclose(colour[..., 0], 90, atol=0.5) and np.allclose(colour[..., 1], 170, atol=0.5)
    assert sure.min() == 1.0


def test_a_shot_keyed_all_through_keeps_a_bounded_bank() -> None:
    """A colour key video gives a key on every frame: a shot's bank keeps at most MAX_KEYS."""
    from vidcolor.render.matching import MAX_KEYS, shot_banks
    from vidcolor.render.streaming import Colorizer

    gray = cv2.cvtColor(scene(), cv2.COLOR_RGB2GRAY)
    chroma = np.zeros((*gray.shape, 2), np.float32)
    banks = shot_banks(Colorizer(device="cpu"), [(0, gray, chroma)] * 40 + [(50, gray, chroma)])
    cells = -(-gray.shape[0] // CELL) * -(-gray.shape[1] // CELL)
    assert MAX_KEYS // 2 * cells <= banks[0].features.shape[0] <= MAX_KEYS * cells
    assert banks[50].features.shape[0] == cells  # the next shot's one key
