"""render --keyframes KEYS --adapt SECONDS: the generator tuned on the keys before the render."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidcolor.color import rgb_to_model
from vidcolor.render.adapt import KeySample, adapt


def _shapes(seed: int, h: int = 32, w: int = 48) -> np.ndarray:
    """Flat coloured blocks on a flat ground: colour a model can learn from luma."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), (40, 160, 60), np.uint8)
    for _ in range(4):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        img[y : y + 8, x : x + 8] = (220, 40, 40)
    return img


def _l1(colorizer, keys: list[np.ndarray]) -> float:
    L, ab = rgb_to_model(torch.from_numpy(np.stack(keys)).permute(0, 3, 1, 2))
    with torch.no_grad():
        return float((colorizer.G(L) - ab).abs().mean())


def test_adapting_brings_the_model_to_the_keys_colours(tiny_model: Path) -> None:
    from vidcolor.render.streaming import Colorizer

    colorizer = Colorizer(tiny_model, "cpu")
    keys = [_shapes(i) for i in range(3)]
    unseen = [_shapes(10 + i) for i in range(3)]  # the same palette, other frames
    before = _l1(colorizer, keys), _l1(colorizer, unseen)
    losses = adapt(colorizer.G, keys, seconds=120.0, max_steps=200)  # steps, not a machine's speed
    after = _l1(colorizer, keys), _l1(colorizer, unseen)
    assert len(losses) == 200 and np.mean(losses[-3:]) < losses[0]
    assert after[0] < 0.7 * before[0], (before, after)
    assert after[1] < 0.8 * before[1], (before, after)  # frames it never saw take the palette


def test_tuned_is_a_new_colorizer_at_full_chroma(tiny_model: Path) -> None:
    from vidcolor.color import Hedge
    from vidcolor.render.colorizer import Colorizer

    colorizer = Colorizer(tiny_model, "cpu")
    colorizer.hedge = Hedge(0.5, 4.0)
    before = {k: v.clone() for k, v in colorizer.G.state_dict().items()}
    tuned, losses = colorizer.tuned([_shapes(i) for i in range(3)], seconds=0.0)
    assert tuned is not colorizer and tuned.G is not colorizer.G and len(losses) == 1
    assert tuned.hedge == Hedge() and colorizer.hedge == Hedge(0.5, 4.0)
    assert all(torch.equal(v, before[k]) for k, v in colorizer.G.state_dict().items())
    assert any(not torch.equal(v, before[k]) for k, v in tuned.G.state_dict().items())


def test_a_key_sample_is_bounded_and_uniform() -> None:
    sample = KeySample((8, 6), limit=10)
    for i in range(1000):
        sample.offer(np.full((12, 16, 3), i % 250, np.uint8))
    assert len(sample.keys) == 10 and all(k.shape == (6, 8, 3) for k in sample.keys)
    values = sorted(int(k[0, 0, 0]) for k in sample.keys)
    assert len(set(values)) > 5  # not the first ten, not one value


def test_render_with_adapt_tunes_a_copy_and_keeps_every_frame(
    tmp_path: Path, tiny_model: Path
) -> None:
    import cv2 as cv
    from conftest import make_video

    from vidcolor import stages
    from vidcolor.options import RenderOptions
    from vidcolor.render.streaming import Colorizer
    from vidcolor.reporter import Reporter
    from vidcolor.video import probe

    src = tmp_path / "in.mp4"
    rgb = make_video(src, frames=12, width=96, height=64, cut_at=6)
    (tmp_path / "keys").mkdir()
    cv.imwrite(str(tmp_path / "keys" / "2.png"), cv.cvtColor(rgb[2], cv.COLOR_RGB2BGR))
    said: list[str] = []

    class Heard(Reporter):
        def say(self, line: str) -> None:
            said.append(line)

    colorizer = Colorizer(tiny_model, "cpu")
    weights = {k: v.clone() for k, v in colorizer.G.state_dict().items()}
    options = RenderOptions(tiny_model, "cpu", keyframes=tmp_path / "keys", adapt=1.0)
    stages.render(src, tmp_path / "out.mp4", options, Heard(), colorizer=colorizer)
    assert probe(tmp_path / "out.mp4").frame_count == 12
    assert any(line.startswith("adapted to 1 keys in ") for line in said), said
    for k, v in colorizer.G.state_dict().items():  # the caller's colorizer is as it was
        assert torch.equal(v, weights[k]), k


def test_adapt_without_keyframes_is_one_line(tmp_path: Path, tiny_model: Path) -> None:
    from click.testing import CliRunner
    from conftest import make_video

    from cli import main

    make_video(tmp_path / "in.mp4", frames=4)
    done = CliRunner().invoke(
        main,
        [
            "render",
            str(tmp_path / "in.mp4"),
            str(tmp_path / "o.mp4"),
            "--model",
            str(tiny_model),
            "--adapt",
            "5",
        ],
    )
    lines = done.stderr.strip().splitlines()
    assert done.exit_code == 1 and len(lines) == 1 and "--keyframes" in lines[0], done.stderr


def test_crops_are_square_pieces_of_the_keys_flipped_at_random() -> None:
    from vidcolor.render.adapt import crops

    key = np.zeros((40, 200, 3), np.uint8)
    key[..., 0] = np.arange(200)[None, :]  # red rises left to right
    key[..., 1] = 90
    out = crops([key], 64, np.random.default_rng(0))
    assert out.shape == (64, 40, 40, 3)  # the keys' short side, under CROP
    assert (out[..., 1] == 90).all()  # pieces of the key, nothing else
    rising = np.mean([int(c[20, -1, 0]) > int(c[20, 0, 0]) for c in out])
    assert 0.25 < rising < 0.75  # flipped about half the time
    starts = {int(c[20, 0, 0]) for c in out}
    assert len(starts) > 20  # from all along the key
