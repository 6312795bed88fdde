"""The stabiliser: steady colour on a static scene, follows motion without ghosting, resets at
a cut; its flows found ahead on a pool of threads, the same as found one by one; and `render
--temporal` end to end."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import LOSSLESS, make_video

from cli import main
from vidcolor.data.scenes import detect_scenes
from vidcolor.render import streaming as render
from vidcolor.render import temporal
from vidcolor.render.temporal import CutMarks, Stabilizer, measure_motion, motions_ahead
from vidcolor.synthetic import Episode, cartoon
from vidcolor.video import VideoReader, probe


def backdrop(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (12, 16)).astype(np.uint8)
    return cv2.resize(small, (128, 96), interpolation=cv2.INTER_CUBIC)


def test_static_scene_keeps_its_colour() -> None:
    rng = np.random.default_rng(1)
    gray, base = backdrop(), np.array([100.0, 160.0], np.float32)
    stab = Stabilizer()
    seen, out = [], []
    for _ in range(40):  # the model's guess flickers by whole-frame shifts of sd 8
        guess = np.broadcast_to(base + rng.normal(0, 8, 2), (96, 128, 2)).astype(np.float32)
        seen.append(guess[48, 64])
        out.append(stab.stabilize(gray, guess)[48, 64])
    assert np.std(np.array(out[10:]), axis=0).max() < 0.5 * np.std(np.array(seen), axis=0).min()
    assert np.abs(np.mean(out[10:], axis=0) - base).max() < 4  # steadier, not biased
    assert stab.resets == 0


def test_moving_object_is_followed_without_a_ghost() -> None:
    stab = Stabilizer()
    texture = backdrop() // 4
    for t in range(20):
        gray = cv2.add(np.full((96, 128), 90, np.uint8), texture)
        x = 10 + 3 * t
        gray[30:60, x : x + 30] = 200
        guess = np.zeros((96, 128, 2), np.float32)
        guess[...] = (110, 120)
        guess[30:60, x : x + 30] = (90, 200)
        out = stab.stabilize(gray, guess)
    inside = np.abs(out[32:58, x + 2 : x + 28] - np.array([90, 200]))
    assert inside[:, :18].max() < 3 and inside.max() < 8  # its colour, softened at its edges
    assert np.abs(out[35:55, x - 6 : x - 1] - (110, 120)).max() < 8  # nothing left behind it
    assert stab.resets == 0 and stab.trusted > 0.8


def test_a_cut_starts_afresh() -> None:  # unmarked: the flow fails over the whole picture
    stab = Stabilizer()
    a = np.full((96, 128, 2), 100, np.float32)
    for _ in range(5):
        stab.stabilize(backdrop(0), a)
    b = np.zeros_like(a) + np.array([200, 50], np.float32)
    out = stab.stabilize(255 - backdrop(3), b)
    assert np.array_equal(out, b) and stab.resets == 1


def test_a_marked_cut_starts_afresh_even_where_the_flow_would_carry() -> None:
    stab = Stabilizer()  # a dissolve's middle: the picture changes little, the scene does
    a = np.full((96, 128, 2), 100, np.float32)
    for _ in range(5):
        stab.stabilize(backdrop(0), a)
    b = np.zeros_like(a) + np.array([200, 50], np.float32)
    assert not np.array_equal(stab.stabilize(backdrop(0), b), b) and stab.resets == 0
    assert np.array_equal(stab.stabilize(backdrop(0), b, cut=True), b) and stab.resets == 1


def test_cut_marks_come_in_time_and_match_the_shot_detector(tmp_path: Path) -> None:
    episode = cartoon(0, length=300)  # hard cuts, two dissolves and a fade
    video = episode.write(tmp_path / "ep.mp4")
    truth = [s.start_frame for s in detect_scenes(video)[1:]]
    assert {kind for _, _, kind in episode.cuts} == {"cut", "dissolve", "fade"} and len(truth) >= 5
    with VideoReader(video, planes=True) as reader:
        marked = list(CutMarks.attach(reader).mark(reader))
    assert [f.index for f, _ in marked] == list(range(300))  # every frame, in order
    assert [f.index for f, cut in marked if cut] == truth  # decided within the look-ahead


def test_cut_marks_wait_for_a_long_dissolve_and_a_long_black_hold(tmp_path: Path) -> None:
    a, b = cartoon(1, length=200, size=(160, 96)), cartoon(2, length=200, size=(160, 96))
    still_a, still_b = a.frame(10), b.frame(10)

    def frame(i: int) -> np.ndarray:  # a 48-frame dissolve, then a fade with 2 s of black
        if i < 40:
            return still_a
        if i < 88:
            return cv2.addWeighted(still_a, 1 - (i - 39.5) / 48, still_b, (i - 39.5) / 48, 0)
        if i < 110:
            return b.frame(i)
        if i < 122:
            return (b.frame(i) * (1 - (i - 109.5) / 12)).astype(np.uint8)
        if i < 170:
            return np.zeros_like(still_a)
        return (a.frame(i) * min(1.0, (i - 169.5) / 12)).astype(np.uint8)

    video = Episode(frame, 200, (160, 96)).write(tmp_path / "long.mp4")
    truth = [s.start_frame for s in detect_scenes(video)[1:]]
    assert any(40 < c < 88 for c in truth) and any(121 < c < 182 for c in truth), truth
    with VideoReader(video, planes=True) as reader:
        marked = list(CutMarks.attach(reader).mark(reader))
    assert [f.index for f, _ in marked] == list(range(200))
    assert [f.index for f, cut in marked if cut] == truth


def test_render_resets_at_the_detected_cuts(tmp_path: Path) -> None:
    from vidcolor.render.streaming import Colorizer, render_video

    video = cartoon(0, length=300, size=(160, 96)).write(tmp_path / "ep.mp4")
    truth = [s.start_frame for s in detect_scenes(video)[1:]]
    result = render_video(video, tmp_path / "out.mp4", Colorizer(None, "cpu"), temporal=True)
    assert result.frames == 300
    assert len(truth) >= 3 and result.cuts == len(truth)


def test_render_temporal_keeps_every_frame(tmp_path: Path) -> None:
    video = cartoon(1, length=72, size=(160, 96)).write(tmp_path / "ep.mp4")
    out = tmp_path / "steady.mp4"
    result = CliRunner().invoke(main, ["render", str(video), str(out), "--temporal"])
    assert result.exit_code == 0, result.output
    assert probe(out).frame_count == 72
    with VideoReader(video, gray=True) as a, VideoReader(out, gray=True) as b:
        for fa, fb in zip(a, b, strict=True):  # the luma is the input's (up to x264)
            assert fa.pts == fb.pts and np.abs(fa.image.astype(int) - fb.image).mean() < 1.5


def test_a_reused_colorizer_starts_each_video_afresh(tmp_path: Path) -> None:
    from vidcolor.render.streaming import Colorizer, render_video

    # The shot goes out and back, ending where it began: state left over from the first
    # render would be trusted at the start of the second, not dropped as after a cut.
    shot = cartoon(2, length=24, size=(160, 96))
    order = [*range(0, 12, 2), *range(10, -1, -2)]
    frame_of = shot.frame
    shot.frame, shot.length = (lambda i: frame_of(order[i])), len(order)
    video = shot.write(tmp_path / "ep.mp4")
    colorizer = Colorizer(None, "cpu")
    for name in ("a.mp4", "b.mp4"):
        render_video(video, tmp_path / name, colorizer, LOSSLESS)
    first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
    with VideoReader(first, planes=True) as a, VideoReader(second, planes=True) as b:
        for fa, fb in zip(a, b, strict=True):
            assert all(np.array_equal(x, y) for x, y in zip(fa.chroma, fb.chroma, strict=True))


def panning(length: int, cut_at: int) -> Iterator[tuple[int, np.ndarray, bool]]:
    """(index, gray, starts a scene): a backdrop panning 2 pixels a frame, another after the cut."""
    for i in range(length):
        seed = 0 if i < cut_at else 5
        yield i, np.roll(backdrop(seed), 2 * i, axis=1), i == cut_at


def test_motions_found_ahead_are_those_found_one_by_one() -> None:
    grays = [g for _, g, _ in panning(40, cut_at=25)]
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    for workers in (1, 3):
        out = list(motions_ahead(panning(40, cut_at=25), workers=workers))
        assert [i for i, *_ in out] == list(range(40))
        assert [i for i, _, _, m in out if m is None] == [0, 25]  # first frame, the cut
        for i, gray, _, motion in out[1:25] + out[26:]:
            alone = measure_motion(flow, grays[i - 1], gray)
            assert np.array_equal(motion.back, alone.back) and motion.trusted == alone.trusted
            assert motion.soft is not None and np.array_equal(motion.soft, alone.soft)


def test_motions_ahead_keeps_few_frames_in_flight_and_stops_its_pool() -> None:
    pulled = 0

    def counted() -> Iterator[tuple[int, np.ndarray, bool]]:
        nonlocal pulled
        for item in panning(60, cut_at=30):
            pulled += 1
            yield item

    for i, *_ in motions_ahead(counted(), workers=2, ahead=3):
        assert pulled - i <= 3  # taken from the source, not yet handed on (this one included)
    assert pulled == 60
    early = motions_ahead(panning(60, cut_at=30), workers=2)
    next(early), next(early)
    early.close()  # as render's thread closes it on a stop or an error
    assert not [t for t in threading.enumerate() if t.name.startswith("vidcolor-flow")]


def test_flows_found_ahead_render_the_same_frames(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "in.mp4"
    make_video(src, frames=40, width=96, height=64, cut_at=21)
    trusted: list[float] = []

    def spied(*args: np.ndarray) -> temporal.Motion:
        motion = measure_motion(*args)
        trusted.append(motion.trusted)
        return motion

    monkeypatch.setattr(temporal, "measure_motion", spied)

    def rendered(found_by: object, on: bool = True) -> list[np.ndarray]:
        monkeypatch.setattr(render, "motions_ahead", found_by)
        dst = tmp_path / f"out{len(list(tmp_path.glob('out*')))}.mp4"
        colorizer = render.Colorizer(tiny_model, "cpu", batch_size=3)
        result = render.render_video(src, dst, colorizer, LOSSLESS, temporal=on)
        assert result.frames == 40
        with VideoReader(dst, planes=True) as reader:
            return [
                np.concatenate([f.image.ravel(), *(c.ravel() for c in f.chroma)]) for f in reader
            ]

    def one_by_one(items: Iterator) -> Iterator:  # the stabiliser finds each motion itself
        return ((item, gray, cut, None) for item, gray, cut in items)

    own = rendered(one_by_one)
    assert len(trusted) == 38 and min(trusted) > temporal.MIN_TRUSTED  # every motion carried
    for found_by in (
        functools.partial(motions_ahead, workers=1),
        functools.partial(motions_ahead, workers=4, ahead=2),
        motions_ahead,
    ):
        assert all(np.array_equal(a, b) for a, b in zip(own, rendered(found_by), strict=True))
    assert len(trusted) == 4 * 38
    plain = rendered(motions_ahead, on=False)
    assert not all(np.array_equal(a, b) for a, b in zip(own, plain, strict=True))
