"""Shot detection on generated episodes whose cuts, fade and flash are known."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from vidcolor.data.extract import read_manifest
from vidcolor.data.scenes import ShotDetector, detect_scenes, scene_of
from vidcolor.synthetic import cartoon
from vidcolor.video import VideoReader

CUTS = [30, 70]  # hard cuts: the first frame of each new shot
FADE = (100, 120)  # fade to black over 100-109, back up over 110-119 into a new shot
FLASH = (50, 52)  # two white frames inside shot 1: not a cut
LENGTH = 150


def episode_frame(i: int, w: int = 160, h: int = 96) -> np.ndarray:
    """Shot by shot: its own background, a textured stripe and a moving square."""
    shot = sum(i >= c for c in CUTS) + (i >= FADE[0] + 10)
    rng = np.random.default_rng(shot)
    bg = rng.integers(40, 215, 3)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bg
    img[h // 2 : h // 2 + 12] = rng.integers(0, 255, (12, w, 3))  # texture per shot
    x = (2 * i) % (w - 20)
    img[10:30, x : x + 20] = 255 - bg
    if FLASH[0] <= i < FLASH[1]:
        img[:] = 255
    if FADE[0] <= i < FADE[1]:
        k = i - FADE[0]
        level = 1 - k / 9 if k < 10 else (k - 10) / 9  # down to black, back up
        img = (img * max(0.0, min(1.0, level))).astype(np.uint8)
    return img


def write_episode(path: Path, length: int = LENGTH) -> None:
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        s.options = {"crf": "12", "preset": "ultrafast"}
        for i in range(length):
            f = av.VideoFrame.from_ndarray(episode_frame(i), format="rgb24")
            f.pts = i
            out.mux(s.encode(f))
        out.mux(s.encode(None))


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenes") / "episode.mp4"
    write_episode(path)
    return path


def test_cuts_found_within_a_frame_fade_once_and_no_cut_at_the_flash(episode: Path) -> None:
    scenes = detect_scenes(episode)
    cuts = [s.start_frame for s in scenes[1:]]
    hard = [c for c in cuts if not FADE[0] <= c <= FADE[1]]
    assert len(hard) == len(CUTS) and all(abs(a - b) <= 1 for a, b in zip(hard, CUTS, strict=True))
    in_fade = [c for c in cuts if FADE[0] <= c <= FADE[1]]
    assert len(in_fade) == 1  # the fade through black is one boundary
    assert not [c for c in cuts if FLASH[0] - 2 <= c <= FLASH[1] + 2]
    assert scenes[0].start_frame == 0 and scenes[-1].end_frame == LENGTH - 1
    assert sum(s.end_frame - s.start_frame + 1 for s in scenes) == LENGTH  # every frame, once
    assert scenes[1].start_time == pytest.approx(cuts[0] / 24)


def test_scene_of_counts_the_cuts_before_a_frame() -> None:
    assert [scene_of(i, [3, 7]) for i in (0, 2, 3, 6, 7, 100)] == [0, 0, 1, 1, 2, 2]
    assert scene_of(5, []) == 0


def test_cli_scenes_and_extract_with_scene_ids(episode: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["scenes", str(episode), "--json"])
    assert result.exit_code == 0, result.output
    scenes = json.loads(result.output)
    assert len(scenes) == 4 and scenes[1]["start_frame"] in (29, 30, 31)
    out = tmp_path / "frames"
    result = runner.invoke(
        main, ["extract", str(episode), "-o", str(out), "--every", "10", "--scenes", "--size", "48"]
    )
    assert result.exit_code == 0, result.output
    rows = read_manifest(out / "manifest.jsonl")
    assert [r["frame"] for r in rows] == list(range(0, LENGTH, 10))
    cuts = [s["start_frame"] for s in scenes[1:]]
    assert [r["scene"] for r in rows] == [scene_of(r["frame"], cuts) for r in rows]
    assert {r["scene"] for r in rows} == {0, 1, 2, 3}


def test_one_frame_and_all_black_videos(tmp_path: Path) -> None:
    one = tmp_path / "one.mp4"
    write_episode(one, length=1)
    assert [(s.start_frame, s.end_frame) for s in detect_scenes(one)] == [(0, 0)]
    detector = ShotDetector(24)
    for i in range(48):
        detector.push(i, np.zeros((54, 96, 3), np.uint8))
    assert detector.cuts() == [] and len(detector.scenes()) == 1


def test_generated_episode_cuts_fades_and_dissolves(tmp_path: Path) -> None:
    episode = cartoon(0)  # hard cuts, a fade through black, dissolves, flashes
    assert {kind for _, _, kind in episode.cuts} == {"cut", "fade", "dissolve"}
    found = [s.start_frame for s in detect_scenes(episode.write(tmp_path / "c.mp4"))[1:]]
    assert len(found) == len(episode.cuts)
    for c, (first, last, _) in zip(found, episode.cuts, strict=True):
        assert first - 1 <= c <= last + 1  # on the cut, or inside its transition


def test_fade_and_dissolve_spans(tmp_path: Path) -> None:
    episode = cartoon(1)  # a dissolve over 52-63, a fade through black over 443-462
    video = episode.write(tmp_path / "c.mp4")
    detector: ShotDetector | None = None
    with VideoReader(video, every=10**9, tap=lambda i, t, bgr: detector.push(i, bgr, t)) as r:
        detector = ShotDetector(r.info.frame_rate)
        for _ in r:
            pass
    detector.cuts()
    truth = [(a, b) for a, b, kind in episode.cuts if kind != "cut"]
    assert len(detector.transitions) == len(truth) == 2
    for (a, b), (ta, tb) in zip(detector.transitions, truth, strict=True):
        assert abs(a - ta) <= 1 and abs(b - tb) <= 1


def test_a_size_change_mid_stream_is_seen_at_the_first_size() -> None:
    rng = np.random.default_rng(0)
    first = rng.integers(0, 255, (72, 128, 3), dtype=np.uint8)
    second = rng.integers(0, 255, (80, 128, 3), dtype=np.uint8)  # another shot, another size
    detector = ShotDetector(24)
    for i in range(40):
        detector.push(i, first if i < 20 else second)
    assert detector.cuts() == [20]


def test_the_dissolve_check_is_a_pyscenedetect_detector(tmp_path: Path) -> None:
    """DissolveDetector runs in PySceneDetect's own SceneManager, on its own video backend."""
    from scenedetect import SceneManager, open_video

    from vidcolor.data.scenes import DissolveDetector

    episode = cartoon(1)  # a dissolve over 52-63
    video = episode.write(tmp_path / "c.mp4")
    manager, dissolves = SceneManager(), DissolveDetector()
    manager.add_detector(dissolves)
    manager.detect_scenes(video=open_video(str(video), backend="pyav"))
    [(first, last)] = [(a, b) for a, b, kind in episode.cuts if kind == "dissolve"]
    assert len(dissolves.middles) == 1 and first <= dissolves.middles[0] <= last


def test_finish_gives_the_same_shots_when_asked_again(tmp_path: Path) -> None:
    video = cartoon(1).write(tmp_path / "c.mp4")
    with VideoReader(video, every=10**9) as reader:
        detector = ShotDetector.attach(reader)
        for _ in reader:
            pass
    shots = detector.finish()
    assert len(shots.cuts) >= 2 and len(shots.transitions) == 2
    assert detector.finish() == shots and detector.cuts() == shots.cuts
    assert detector.scenes() == detector.scenes()
    with pytest.raises(RuntimeError, match="finished"):
        detector.push(10**6, np.zeros((54, 96, 3), np.uint8))


def test_fades_with_repeated_frames_and_at_the_stream_ends() -> None:
    """Captured footage repeats frames (a game drawn faster than it is recorded, animation on
    twos): a fade's ramp holds each level for up to three frames and goes on. A fade in from
    the first frame, or out to the last, has no dark stretch on one side, and is found too."""
    picture = np.random.default_rng(0).integers(60, 200, (54, 96, 3)).astype(np.float32)
    gains = (
        [0.2 + 0.08 * (i // 3) for i in range(30)]  # 0-29: in from a dim first frame
        + [1.0] * 40  # 30-69: the shot
        + [1 - (i // 3) / 10 for i in range(30)]
        + [0.0] * 3  # 70-102: out to black
        + [1.0] * 40  # 103-142: the next shot, cut in
        + [1 - (i // 2) / 12 for i in range(20)]
    )  # 143-162: out, to the last frame
    detector = ShotDetector(24)
    for i, gain in enumerate(gains):
        detector.push(i, (picture * gain).astype(np.uint8))
    spans, fades = detector.transitions, [(0, 30), (72, 103), (143, 162)]
    for ta, tb in fades:  # each fade found whole, give or take a frame
        assert any(abs(a - ta) <= 1 and abs(b - tb) <= 1 for a, b in spans), spans
    assert all(any(ta - 1 <= a and b <= tb + 1 for ta, tb in fades) for a, b in spans), spans
    assert detector.cuts() and all(72 <= c <= 103 for c in detector.cuts())  # in the fade
