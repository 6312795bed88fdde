"""Keyframe propagation on synthetic footage of known motion: a textured square moving right
over a still background, then a hard cut; a textured pan for the luma check."""

from __future__ import annotations

import itertools
import tracemalloc
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidcolor.render.key_files import (
    LUMA_MISMATCH,
    KeyframeError,
    check_luma,
    frame_index,
    key_chroma,
    key_files,
    luma_difference,
    read_key,
)
from vidcolor.render.keyframes import DECAY, Propagator, blend

W, H = 128, 96
SIDE, TOP, X0, STEP = 32, 32, 10, 3  # the square: size, top row, first left column, px/frame
NEUTRAL = (128.0, 128.0)
RED = (90.0, 200.0)  # Cb, Cr of the key's square


def _texture(seed: int, h: int, w: int, blur: float, lo: int, hi: int) -> np.ndarray:
    noise = np.random.default_rng(seed).random((h, w)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), blur)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return (lo + noise * (hi - lo)).astype(np.uint8)


BACKGROUND = _texture(1, H, W, 4.0, 90, 150)
SQUARE = _texture(2, SIDE, SIDE, 1.2, 20, 240)
OTHER_SCENE = _texture(3, H, W, 2.0, 30, 220)


def square_x(i: int) -> int:
    return X0 + STEP * i


def shot_gray(i: int, cut_at: int | None = None) -> np.ndarray:
    """Frame ``i`` (HxW uint8): the square moving right, or after ``cut_at`` another scene."""
    if cut_at is not None and i >= cut_at:
        return OTHER_SCENE.copy()
    img = BACKGROUND.copy()
    img[TOP : TOP + SIDE, square_x(i) : square_x(i) + SIDE] = SQUARE
    return img


def key_for(i: int) -> np.ndarray:
    """HxWx2 Cb/Cr key of frame ``i``: the square red, the background neutral."""
    key = np.empty((H, W, 2), np.float32)
    key[:] = NEUTRAL
    key[TOP : TOP + SIDE, square_x(i) : square_x(i) + SIDE] = RED
    return key


def inside(i: int, inset: int = 5) -> tuple[slice, slice]:
    """The square's interior on frame ``i`` (its edges are where flow is least sure)."""
    x = square_x(i)
    return slice(TOP + inset, TOP + SIDE - inset), slice(x + inset, x + SIDE - inset)


def run(
    keys: dict[int, np.ndarray],
    frames: int,
    cut_at: int | None = None,
    mark: bool = True,
    decay: float = DECAY,
    tmp: Path | None = None,
) -> list:
    with Propagator(keys, decay=decay, folder=tmp) as prop:
        for i in range(frames):
            prop.push(shot_gray(i, cut_at), cut=mark and i == cut_at, key=keys.get(i))
        return list(prop.carried())


def test_colour_follows_the_moving_square_forwards():
    out = run({0: key_for(0)}, 10)
    chroma0, conf0 = out[0]
    assert np.array_equal(chroma0, key_for(0)) and (conf0 == 1).all()
    chroma, conf = out[8]
    err = np.abs(chroma[inside(8)] - RED).mean()
    assert err < 8, err
    assert conf[inside(8)].mean() > 0.5
    # Where the square was and is no longer: the background, which must stay neutral.
    uncovered = (slice(TOP + 4, TOP + SIDE - 4), slice(X0 + 2, square_x(8) - 2))
    shown = blend(np.full_like(chroma, 128), chroma, conf)
    assert np.abs(shown[uncovered] - NEUTRAL).max() < 10
    assert np.abs(shown[: TOP - 4] - NEUTRAL).max() < 2  # the background above the square


def test_confidence_falls_with_distance():
    out = run({0: key_for(0)}, 10)
    means = [out[i][1][inside(i)].mean() for i in range(10)]
    assert means[0] == 1
    assert all(b < a for a, b in itertools.pairwise(means)), means
    assert means[9] <= DECAY**9 + 1e-6


def test_a_key_holds_through_a_long_steady_shot():
    """Where the flow is trusted, distance alone fades the colour slowly (DECAY): five
    seconds on, a key still colours its held square."""
    with Propagator([0]) as prop:
        for i in range(120):
            prop.push(shot_gray(0), key=key_for(0) if i == 0 else None)
        chroma, conf = list(prop.carried())[-1]
    assert conf[inside(0)].min() > 0.75
    assert np.abs(chroma[inside(0)] - RED).max() < 1


@pytest.mark.parametrize("mark", [True, False])
def test_nothing_crosses_a_cut(mark: bool):
    """Marked by the detector or not (the flow's trust fails over the whole picture)."""
    out = run({0: key_for(0)}, 12, cut_at=6, mark=mark)
    assert all(o is not None for o in out[:6])
    assert all(o is None for o in out[6:])


def test_backward_from_a_key_in_the_middle():
    out = run({8: key_for(8)}, 16)
    chroma, conf = out[8]
    assert np.array_equal(chroma, key_for(8)) and (conf == 1).all()
    for i in (3, 13):  # before the key (carried backwards) and after it (forwards)
        chroma, conf = out[i]
        err = np.abs(chroma[inside(i)] - RED).mean()
        assert err < 8, (i, err)
        assert 0.3 < conf[inside(i)].mean() < 1
    assert out[3][1][inside(3)].mean() < out[6][1][inside(6)].mean()


def test_two_keys_cross_fade_by_nearness_and_confidence():
    blue = key_for(10)
    blue[TOP : TOP + SIDE, square_x(10) : square_x(10) + SIDE] = (200.0, 90.0)
    both = run({0: key_for(0), 10: blue}, 11)
    red_only, blue_only = run({0: key_for(0)}, 11), run({10: blue}, 11)
    for i in (2, 8):  # a cross-fade: each key by its confidence and its nearness
        (cr, wr), (cb, wb) = red_only[i], blue_only[i]
        wr, wb = wr[..., None], wb[..., None]
        nr, nb = wr * (10 - i) / 10, wb * i / 10
        expected = (nr * cr + nb * cb) / np.maximum(nr + nb, 1e-6)
        both_chroma, both_conf = both[i]
        reached = (nr + nb)[..., 0] > 0
        assert np.allclose(both_chroma[reached], expected[reached], atol=1e-3)
        assert np.array_equal(both_conf, np.maximum(wr, wb)[..., 0])
    assert both[2][0][inside(2)][..., 1].mean() > both[2][0][inside(2)][..., 0].mean() + 10
    assert both[8][0][inside(8)][..., 0].mean() > both[8][0][inside(8)][..., 1].mean() + 10
    assert np.array_equal(both[10][0], blue)


def test_the_fade_is_per_second_whatever_the_frame_rate():
    from vidcolor.render.keyframes import decay_at

    assert decay_at(24) == DECAY and decay_at(None) == DECAY
    assert decay_at(60) ** 60 == pytest.approx(DECAY**24)  # one second at each rate
    assert decay_at(12) < DECAY < decay_at(60)


def test_blend_keeps_the_key_exactly():
    predicted = np.random.default_rng(0).random((H, W, 2)).astype(np.float32) * 255
    key = key_for(0)
    assert np.array_equal(blend(predicted, key, np.ones((H, W), np.float32)), key)
    half = blend(predicted, key, np.full((H, W), 0.5, np.float32))
    assert np.allclose(half, (predicted + key) / 2, atol=1e-4)
    assert np.array_equal(blend(predicted, key, np.zeros((H, W), np.float32)), predicted)


def test_blend_softens_a_speckle_in_the_confidence():
    """A lone pixel the flow checks dropped takes mostly the carried colour, not a dot of the
    prediction that would flicker on and off."""
    predicted, key = np.zeros((H, W, 2), np.float32), key_for(0)
    confidence = np.ones((H, W), np.float32)
    confidence[50, 20] = 0
    out = blend(predicted, key, confidence)
    assert np.abs(out[50, 20] - key[50, 20]).max() < 0.25 * np.abs(key[50, 20]).max()


def test_key_chroma_of_gray_is_neutral_and_of_red_is_red():
    rgb = np.full((H * 2, W * 2, 3), 120, np.uint8)
    rgb[:, :W] = (220, 30, 30)
    cbcr = key_chroma(rgb, (H, W), "bt709", full_range=True)
    assert cbcr.shape == (H, W, 2) and cbcr.dtype == np.float32
    assert np.allclose(cbcr[:, -4:], 128, atol=0.01)
    assert cbcr[:, :4, 1].min() > 200 and cbcr[:, :4, 0].max() < 110


def test_memory_does_not_grow_with_shot_length(tmp_path: Path):
    """Keys at both ends and no decay, so every frame is carried both ways and spilled."""

    def peak(frames: int) -> int:
        keys = {0: key_for(0), frames - 1: key_for(0)}  # ends: the square is held still
        tracemalloc.start()
        with Propagator(keys, decay=1.0, folder=tmp_path) as prop:
            for i in range(frames):
                prop.push(shot_gray(0), key=keys.get(i))
            reached = sum(c is not None for c in prop.carried())
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert reached == frames
        return top

    short, long = peak(40), peak(400)
    assert long < 1.5 * short, (short, long)
    assert not list(tmp_path.iterdir())  # the spill folder is gone


# --- the luma check: a textured pan, 4 px a frame ------------------------------------------

PAN = cv2.cvtColor(
    np.dstack([_texture(s, 120, 400, 2.5, 10, 245) for s in (4, 5, 6)]), cv2.COLOR_RGB2BGR
)


def pan_rgb(i: int) -> np.ndarray:
    return np.ascontiguousarray(PAN[:, 4 * i : 4 * i + 160])


def pan_gray(i: int) -> np.ndarray:
    return cv2.cvtColor(pan_rgb(i), cv2.COLOR_RGB2GRAY)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    _, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]


def graded(rgb: np.ndarray) -> np.ndarray:
    """Warmer, brighter, a touch more contrast: a colourist's copy of the frame."""
    x = rgb.astype(np.float32) / 255
    x = np.clip((x - 0.5) * 1.1 + 0.55, 0, 1) ** 0.9 * np.array([1.06, 1.0, 0.92])
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def test_right_frame_passes_the_luma_check():
    frame = pan_gray(10)
    for copy in (pan_rgb(10), jpeg(pan_rgb(10), 60), graded(jpeg(pan_rgb(10), 80))):
        assert check_luma(copy, frame, "keys/10.png", 10) < LUMA_MISMATCH / 2


def test_a_frame_a_few_frames_away_fails_the_luma_check():
    frame = pan_gray(10)
    assert luma_difference(pan_rgb(12), frame) > 2 * LUMA_MISMATCH
    with pytest.raises(KeyframeError) as e:
        check_luma(graded(jpeg(pan_rgb(13), 80)), frame, "keys/10.png", 10)
    message = str(e.value)
    assert "\n" not in message and "keys/10.png" in message and "frame 10" in message


# --- loading -------------------------------------------------------------------------------


def save(folder: Path, name: str, w: int = 64, h: int = 48) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    cv2.imwrite(str(path), np.full((h, w, 3), 100, np.uint8))
    return path


def test_names_give_the_frame_index():
    assert frame_index(Path("120.png")) == 120
    assert frame_index(Path("frame_000120.png")) == 120
    assert frame_index(Path("shot2_0007.jpg")) == 7  # the last run of digits
    # A timecode, as `vidcolor scenes` prints it, is the frame shown then: 24 fps from 0.5 s.
    rate, start = Fraction(24), Fraction(1, 2)
    assert frame_index(Path("00:00:02.500.png"), rate, start) == 48
    assert frame_index(Path("shot_00-00-02.510.jpg"), rate, start) == 48  # to the nearest
    assert frame_index(Path("01:00:00.500.png"), rate, start) == 86400
    with pytest.raises(KeyframeError, match="frame rate"):
        frame_index(Path("00:00:02.500.png"))


def test_key_files_in_frame_order(tmp_path: Path):
    save(tmp_path, "0.png")
    save(tmp_path, "frame_000120.jpg")
    (tmp_path / ".DS_Store").write_bytes(b"")
    keys = key_files(tmp_path)
    assert list(keys) == [0, 120] and keys[120].name == "frame_000120.jpg"
    rgb = read_key(keys[120], 64, 48)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8


@pytest.mark.parametrize(
    ("names", "bad", "words"),
    [
        (["1.png", "key.png"], "key.png", "no frame number"),
        (["0120.png", "frame_120.jpg"], "frame_120.jpg", "frame 120 already has a key"),
        (["3.png", "notes.txt"], "notes.txt", "not an image"),
    ],
)
def test_bad_names_are_one_line_naming_the_file(tmp_path: Path, names, bad, words):
    for name in names:
        if name.endswith(".txt"):
            (tmp_path / name).write_text("x")
        else:
            save(tmp_path, name)
    with pytest.raises(KeyframeError) as e:
        key_files(tmp_path)
    message = str(e.value)
    assert "\n" not in message and bad in message and words in message


def test_a_key_of_another_size_is_refused(tmp_path: Path):
    with pytest.raises(KeyframeError) as e:
        read_key(save(tmp_path, "5.png", 32, 24), 64, 48)
    message = str(e.value)
    assert "\n" not in message and "5.png" in message
    assert "32x24" in message and "64x48" in message


def test_an_empty_or_missing_folder_is_refused(tmp_path: Path):
    with pytest.raises(KeyframeError, match="no keyframes"):
        key_files(tmp_path)
    with pytest.raises(KeyframeError, match="not a folder"):
        key_files(tmp_path / "missing")


# -- render --keyframes: the keys carried through a real video ------------------------------


def chroma_planes(path: Path) -> list[np.ndarray]:
    """Each frame's U and V planes, stacked (2, h, w) float."""
    import av

    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            uv = [
                np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width]
                for p in f.planes[1:]
            ]
            out.append(np.stack(uv).astype(float))
    return out


def plain_and_keyed(
    src: Path, keys: Path, model: Path, match: bool = True
) -> tuple[list, list, list]:
    """The chroma planes of ``src``, of its render without keys and of its render with
    ``keys`` (lossless, beside ``src``; ``match``: RenderOptions.match)."""
    from vidcolor import stages
    from vidcolor.options import RenderOptions

    for name, folder in (("plain.mp4", None), ("keyed.mp4", keys)):
        options = RenderOptions(
            model, "cpu", crf=0, preset="ultrafast", keyframes=folder, match=match
        )
        stages.render(src, src.parent / name, options)
    return (
        chroma_planes(src),
        chroma_planes(src.parent / "plain.mp4"),
        chroma_planes(src.parent / "keyed.mp4"),
    )


def test_render_carries_a_key_through_its_shot_and_not_past_the_cut(
    tmp_path: Path, tiny_model: Path
) -> None:
    import cv2 as cv
    from conftest import make_video

    src = tmp_path / "in.mp4"
    rgb = make_video(src, frames=36, width=96, height=64, cut_at=20)
    (tmp_path / "keys").mkdir()
    cv.imwrite(str(tmp_path / "keys" / "frame_0.png"), cv.cvtColor(rgb[0], cv.COLOR_RGB2BGR))
    # The carry alone (matching: test_matching), so that it fades into the model's guess.
    truth, without, keyed = plain_and_keyed(src, tmp_path / "keys", tiny_model, match=False)
    assert len(truth) == len(without) == len(keyed) == 36

    def error(frames: list[np.ndarray], i: int) -> float:
        return float(np.abs(frames[i] - truth[i]).mean())

    assert error(keyed, 0) < 4  # the keyed frame: the key's colour (4:2:0, working size)
    for i in range(1, 5):  # carried along the motion: far closer than the model's guess
        assert error(keyed, i) < 0.5 * error(without, i), (i, error(keyed, i), error(without, i))
    fading = [error(keyed, i) for i in range(12)]  # into the model's guess, with distance
    assert fading == sorted(fading) and fading[-1] < error(without, 11)
    for i in range(21, 36):  # after the cut: nothing carried, the same frames as without keys
        assert np.array_equal(keyed[i], without[i]), i


def test_render_refuses_a_key_for_another_frame(tmp_path: Path, tiny_model: Path) -> None:
    import cv2 as cv
    from click.testing import CliRunner
    from conftest import make_video

    from cli import main

    src = tmp_path / "in.mp4"
    rgb = make_video(src, frames=24, width=96, height=64)
    (tmp_path / "keys").mkdir()
    cv.imwrite(str(tmp_path / "keys" / "0.png"), cv.cvtColor(rgb[12], cv.COLOR_RGB2BGR))
    args = [
        "render",
        str(src),
        str(tmp_path / "out.mp4"),
        "--model",
        str(tiny_model),
        "--keyframes",
        str(tmp_path / "keys"),
    ]
    done = CliRunner().invoke(main, args)
    lines = done.stderr.strip().splitlines()
    assert done.exit_code == 1 and len(lines) == 1 and "does not match frame 0" in lines[0]
    assert not (tmp_path / "out.mp4").exists()
    cv.imwrite(str(tmp_path / "keys" / "0.png"), cv.cvtColor(rgb[0][:32], cv.COLOR_RGB2BGR))
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 1 and "96x64" in done.stderr and "Traceback" not in done.stderr


def write_video(path: Path, frames: list[np.ndarray]) -> None:
    """RGB frames as a near-lossless H.264 video at 24 fps (a key video)."""
    import av

    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=24)
        v.height, v.width = frames[0].shape[:2]
        v.pix_fmt, v.options = "yuv420p", {"crf": "12", "preset": "ultrafast"}
        for img in frames:
            out.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(v.encode(None))


def test_a_key_video_colours_like_the_same_key_in_a_folder(tmp_path: Path, tiny_model: Path):
    """Its frames that are not black are the keys: frame 0 here, black after it."""
    import cv2 as cv
    from conftest import make_video

    from vidcolor import stages
    from vidcolor.options import RenderOptions

    src = tmp_path / "in.mp4"
    rgb = make_video(src, frames=12, width=96, height=64)
    write_video(tmp_path / "keys.mp4", [rgb[0]] + [np.zeros_like(rgb[0])] * 11)
    (tmp_path / "keys").mkdir()
    cv.imwrite(str(tmp_path / "keys" / "0.png"), cv.cvtColor(rgb[0], cv.COLOR_RGB2BGR))
    outs = {}
    for name in ("keys.mp4", "keys"):
        outs[name] = tmp_path / f"out_{name}.mp4"
        stages.render(
            src,
            outs[name],
            RenderOptions(tiny_model, "cpu", crf=0, preset="ultrafast", keyframes=tmp_path / name),
        )
    from_video, from_folder = chroma_planes(outs["keys.mp4"]), chroma_planes(outs["keys"])
    truth = chroma_planes(src)
    assert len(from_video) == len(from_folder) == 12
    assert np.abs(from_video[0] - truth[0]).mean() < 4
    for a, b in zip(from_video, from_folder, strict=True):
        assert np.abs(a - b).mean() < 1.5  # the key video's own compression, no more


@pytest.mark.parametrize(
    ("frames", "black", "words"),
    [(10, False, "10 frames, but in.mp4 has 12"), (12, True, "every frame is black")],
)
def test_a_key_video_of_another_length_or_all_black_is_one_line(
    tmp_path: Path, tiny_model: Path, frames: int, black: bool, words: str
) -> None:
    from click.testing import CliRunner
    from conftest import make_video

    from cli import main

    rgb = make_video(tmp_path / "in.mp4", frames=12, width=96, height=64)
    write_video(tmp_path / "keys.mp4", [np.zeros_like(f) if black else f for f in rgb[:frames]])
    done = CliRunner().invoke(
        main,
        [
            "render",
            str(tmp_path / "in.mp4"),
            str(tmp_path / "o.mp4"),
            "--model",
            str(tiny_model),
            "--keyframes",
            str(tmp_path / "keys.mp4"),
        ],
    )
    lines = done.stderr.strip().splitlines()
    assert done.exit_code == 1 and len(lines) == 1 and words in lines[0], done.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_a_rotated_video_takes_its_keys_upright(tmp_path: Path, tiny_model: Path) -> None:
    """Keys are drawn as the video is shown: a video stored sideways turns them to match."""
    import cv2 as cv
    from conftest import make_video

    src = tmp_path / "in.mp4"
    rgb = make_video(src, frames=8, width=96, height=64, rotation=90)
    (tmp_path / "keys").mkdir()
    upright = np.ascontiguousarray(np.rot90(rgb[0], 1))  # 64x96 on screen
    cv.imwrite(str(tmp_path / "keys" / "0.png"), cv.cvtColor(upright, cv.COLOR_RGB2BGR))
    truth, without, keyed = plain_and_keyed(src, tmp_path / "keys", tiny_model)
    assert np.abs(keyed[0] - truth[0]).mean() < 4
    assert np.abs(keyed[1] - truth[1]).mean() < 0.5 * np.abs(without[1] - truth[1]).mean()


def test_the_first_pass_on_a_pool_carries_as_one_thread_does(tmp_path: Path) -> None:
    """carry_keys finds the forward flows ahead on a pool; fed one frame at a time with the
    flows found in turn, a Propagator gives the same colour, bit for bit."""
    import cv2 as cv
    from conftest import make_video

    from vidcolor.render.key_files import key_chroma
    from vidcolor.render.keyframes import carry_keys
    from vidcolor.render.temporal import CutMarks
    from vidcolor.video import VideoReader, probe

    src = tmp_path / "in.mp4"
    rgb = make_video(src, frames=30, width=96, height=64, cut_at=20)
    (tmp_path / "keys").mkdir()
    for i in (3, 22):
        cv.imwrite(str(tmp_path / "keys" / f"{i}.png"), cv.cvtColor(rgb[i], cv.COLOR_RGB2BGR))
    info = probe(src)

    def gray(y: np.ndarray) -> np.ndarray:
        return cv.resize(y, (48, 32), interpolation=cv.INTER_AREA)

    with carry_keys(src, tmp_path / "keys", info, (48, 32), gray) as pooled:
        got = list(pooled.carried())
    with Propagator([3, 22]) as alone, VideoReader(src, planes=True) as reader:
        for frame, cut in CutMarks.attach(reader).mark(reader):
            key = None
            if frame.index in (3, 22):
                key = key_chroma(rgb[frame.index], (32, 48), info.matrix, info.full_range)
            alone.push(gray(frame.image), cut, key)
        want = list(alone.carried())
    assert [g is None for g in got] == [w is None for w in want]
    assert sum(g is not None for g in got) >= 20  # both keys carried, both ways
    for g, w in zip(got, want, strict=True):
        if g is not None:
            assert np.array_equal(g[0], w[0]) and np.array_equal(g[1], w[1])
