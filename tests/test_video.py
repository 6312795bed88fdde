"""Probe, reader and writer on small generated videos and the shared clip."""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import (
    SHOT_COLOURS,
    add_subtitles,
    frame_times,
    make_audio_only,
    make_video,
    packets,
)

from vidcolor.video import (
    CorruptVideoError,
    EncodeOptions,
    NoFramesError,
    NotAVideoError,
    NoVideoStreamError,
    OutputError,
    VideoReader,
    VideoWriter,
    probe,
)

VFR_PTS = [0, 40, 80, 200, 240, 500, 540, 580, 1000, 1033]  # ms: pauses and bursts


def copy_video(src: Path, dst: Path, **encode: object) -> VideoWriter:
    with VideoReader(src) as r, VideoWriter.like(r.info, dst, EncodeOptions(**encode)) as w:
        for f in r:
            w.write(f.image, f.pts, f.duration)
    return w


def test_probe_reports_stream_facts(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    make_video(path, frames=30, width=80, height=48, fps=30, audio=True)
    info = probe(path)
    assert (info.width, info.height) == (80, 48)
    assert info.frame_rate == Fraction(30)
    assert info.frame_count == 30 and info.frame_count_exact
    assert info.duration == pytest.approx(1.0, abs=1e-3)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p" and info.rotation == 0
    assert [a.codec for a in info.audio] == ["aac"] and info.audio[0].sample_rate == 48000


def test_probe_marks_estimated_frame_count(tmp_path: Path) -> None:
    path = tmp_path / "a.mkv"  # Matroska stores no frame count
    make_video(path, frames=48, fps=24)
    info = probe(path)
    assert not info.frame_count_exact
    assert info.frame_count == pytest.approx(48, abs=1)


def test_reader_yields_every_frame_with_its_pts_and_colours(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    sent = make_video(path, frames=40, cut_at=20)
    with VideoReader(path) as r:
        frames = list(r)
    assert [f.index for f in frames] == list(range(40))
    assert [f.pts * f.time_base for f in frames] == [Fraction(i, 24) for i in range(40)]
    for f, img in zip(frames, sent, strict=True):
        assert f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8
        assert np.abs(f.image.astype(int) - img).mean() < 3  # codec error only
    # The hard cut: shot colours either side of it.
    assert np.abs(frames[19].image[2, -2].astype(int) - SHOT_COLOURS[0]).max() < 8
    assert np.abs(frames[20].image[2, -2].astype(int) - SHOT_COLOURS[1]).max() < 8


def test_gray_frames_are_the_luma(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    make_video(path, frames=3)
    with VideoReader(path, gray=True) as r:
        gray = next(iter(r)).image
    with VideoReader(path) as r:
        rgb = next(iter(r)).image.astype(float)
    assert gray.shape == (48, 64)
    luma = rgb @ [0.299, 0.587, 0.114]
    assert np.abs(gray - luma).mean() < 3


def test_every_fps_start_end_sampling(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    make_video(path, frames=72, fps=24)
    with VideoReader(path, every=5) as r:
        assert [f.index for f in r] == list(range(0, 72, 5))
    with VideoReader(path, fps=6) as r:
        assert [f.index for f in r] == list(range(0, 72, 4))
    with VideoReader(path, start=1.0, end=2.0) as r:
        assert [f.index for f in r] == list(range(24, 48))


def test_seek_keeps_indices_and_pixels_exact(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    make_video(path, frames=120)  # x264 keyframes are far apart: the seek lands mid-GOP
    with VideoReader(path) as r:
        whole = {f.index: f for f in r}
    with VideoReader(path, start=3.3) as r:
        tail = list(r)
    assert tail[0].index == 80 and tail[-1].index == 119  # 3.3 s * 24 = 79.2 -> frame 80
    for f in tail:
        assert f.pts == whole[f.index].pts
        assert np.array_equal(f.image, whole[f.index].image)


@pytest.mark.parametrize(
    ("name", "x264"),
    [
        ("open_gop.mp4", {"preset": "medium", "x264-params": "open-gop=1:keyint=24:bframes=3"}),
        ("stream.ts", {"preset": "medium", "x264-params": "keyint=24"}),  # seeks by bytes
    ],
)
def test_every_start_lands_on_the_exact_frame(tmp_path: Path, name: str, x264: dict) -> None:
    path = tmp_path / name
    make_video(path, frames=96, x264=x264)
    with VideoReader(path) as r:
        whole = [(f.index, f.pts, f.time) for f in r]
    assert [i for i, _, _ in whole] == list(range(96))
    for k in range(1, 95, 7):
        start = whole[k][2] - 0.01  # just before frame k (MPEG-TS does not start at 0)
        with VideoReader(path, start=start) as r:
            got = [(f.index, f.pts) for f in r]
        assert got == [(i, p) for i, p, _ in whole[k:]], start


def test_edit_list_is_not_truncation(tmp_path: Path) -> None:
    # A cut made without re-encoding: the first 12 frames stay in the file but an edit list
    # hides them. The container counts 48 frames, 36 are shown.
    src, cut = tmp_path / "a.mp4", tmp_path / "cut.mp4"
    make_video(src, frames=48)
    with av.open(str(src)) as i, av.open(str(cut), "w") as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for p in i.demux(video=0):
            if p.dts is not None:
                p.pts, p.dts = p.pts - 12 * 512, p.dts - 12 * 512  # 512 ticks a frame
                p.stream = s
                o.mux(p)
    with VideoReader(cut) as r:
        frames = list(r)
    assert [f.index for f in frames] == list(range(36))
    with VideoReader(cut, start=1.0) as r:
        assert next(iter(r)).index == 24


def test_raw_h264_without_timestamps(tmp_path: Path) -> None:
    src, raw = tmp_path / "a.mp4", tmp_path / "a.h264"
    make_video(src, frames=48)
    with av.open(str(src)) as i, av.open(str(raw), "w", format="h264") as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for p in i.demux(video=0):
            if p.size:
                p.stream = s
                o.mux(p)
    info = probe(raw)
    tick = 1 / info.frame_rate
    with VideoReader(raw) as r:
        times = [f.pts * f.time_base for f in r]
    assert times == [n * tick for n in range(48)]
    with VideoReader(raw, start=1.0) as r:
        first = next(iter(r))
    assert first.index == round(info.frame_rate) and first.pts * first.time_base == 1


def test_size_scales_the_short_side(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    make_video(path, frames=2, width=96, height=64)
    with VideoReader(path, size=32) as r:
        assert next(iter(r)).image.shape == (32, 48, 3)


B_FRAMES = {"crf": "12", "preset": "medium", "bf": "3"}  # decode order != display order


@pytest.mark.parametrize(
    ("preset", "suffix"), [("ultrafast", ".mp4"), ("medium", ".mp4"), ("medium", ".mkv")]
)
@pytest.mark.parametrize("vfr", [True, False])
def test_timestamps_and_duration_survive_a_round_trip(
    tmp_path: Path, preset: str, suffix: str, vfr: bool
) -> None:
    """Every pts kept and the output ending where the input does, with and without B-frames
    (medium), for variable and constant frame rates."""
    src, dst = tmp_path / f"src{suffix}", tmp_path / f"out{suffix}"
    if vfr:
        make_video(src, pts=VFR_PTS, time_base=Fraction(1, 1000), fps=25, x264=B_FRAMES)
        expected = [Fraction(p, 1000) for p in VFR_PTS]
    else:
        make_video(src, frames=30, fps=24, x264=B_FRAMES)
        expected = [Fraction(i, 24) for i in range(30)]
    # Matroska keeps milliseconds: its times are the expected ones rounded, and kept exactly
    assert frame_times(src) == pytest.approx(expected, abs=5e-4)
    copy_video(src, dst, preset=preset)
    assert frame_times(dst) == frame_times(src)
    end = float(expected[-1]) + (0.04 if vfr else 1 / 24)
    assert probe(dst).duration == pytest.approx(end, abs=1e-3)


def test_audio_packets_copied_unchanged_and_duration_kept(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.mp4", tmp_path / "out.mp4"
    make_video(src, frames=48, audio=True)
    w = copy_video(src, dst, preset="ultrafast")
    assert w.notes == []
    assert packets(dst, "audio") == packets(src, "audio")
    assert len(frame_times(dst)) == 48
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        assert b.duration == pytest.approx(a.duration, abs=2000)  # microseconds
        assert b.streams.video[0].duration * b.streams.video[0].time_base == 2


def test_aac_into_matroska_moves_no_video_frame(tmp_path: Path) -> None:
    # AAC starts with a negative timestamp (encoder priming); Matroska must not shift the
    # whole file to make it zero.
    src, dst = tmp_path / "a.mp4", tmp_path / "out.mkv"
    make_video(src, frames=24, audio=True)
    assert packets(src, "audio")[0][0] < 0
    copy_video(src, dst, preset="ultrafast")
    # Matroska keeps milliseconds; the bug this guards against moved every frame by 21 ms
    assert frame_times(dst) == pytest.approx(frame_times(src), abs=5e-4)
    assert [p[2] for p in packets(dst, "audio")] == [p[2] for p in packets(src, "audio")]


def test_reencoded_audio_keeps_a_late_start(tmp_path: Path) -> None:
    src, dst = tmp_path / "late.mkv", tmp_path / "out.mp4"
    make_video(src, frames=48, audio=True, audio_delay=0.5)  # PCM from 0.5 s
    copy_video(src, dst, preset="ultrafast")
    audio = packets(dst, "audio")
    # AAC adds its own 1024-sample priming before the first real sample
    assert float(audio[0][0]) == pytest.approx(0.5 - 1024 / 48000, abs=1e-3)
    assert float(audio[-1][0] + audio[-1][1]) == pytest.approx(2.0, abs=0.03)


def test_44khz_audio_into_webm_becomes_48khz_opus(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.mp4", tmp_path / "out.webm"
    make_video(src, frames=24, audio=True, audio_rate=44100)
    w = copy_video(src, dst, codec="vp9")
    assert w.notes == ["audio stream 1 (aac) cannot go in .webm unchanged: re-encoded as libopus"]
    assert [(a.codec, a.sample_rate) for a in probe(dst).audio] == [("opus", 48000)]


def test_audio_reencoded_where_the_container_refuses_it(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.mkv", tmp_path / "out.mp4"
    make_video(src, frames=24, audio=True)  # PCM audio: MP4 does not take it
    w = copy_video(src, dst, preset="ultrafast")
    assert any("re-encoded as aac" in n for n in w.notes)
    info = probe(dst)
    assert [a.codec for a in info.audio] == ["aac"]
    audio = packets(dst, "audio")
    heard = float(audio[-1][0] + audio[-1][1])
    assert heard == pytest.approx(1.0, abs=0.05)


def test_subtitles_copied_where_the_container_takes_them(tmp_path: Path) -> None:
    plain, src = tmp_path / "v.mkv", tmp_path / "subs.mkv"
    make_video(plain, frames=48)
    cues = add_subtitles(plain, src, tmp_path)
    assert [s.codec for s in probe(src).subtitles] == ["srt"]
    copy_video(src, tmp_path / "out.mkv", preset="ultrafast")
    got = [(t, data) for t, _, data in packets(tmp_path / "out.mkv", "subtitles")]
    assert got == cues
    w = copy_video(src, tmp_path / "out.mp4", preset="ultrafast")  # MP4 takes only mov_text
    assert probe(tmp_path / "out.mp4").subtitles == ()
    assert w.notes == ["subtitle stream 1 (srt) cannot go in .mp4: left out"]


@pytest.mark.parametrize(
    ("codec", "suffix", "stored"),
    [
        ("h264", ".mp4", (62, 98)),  # 4:2:0 H.264 needs even sizes: one edge row/column added
        ("vp9", ".webm", (61, 97)),
    ],
)
def test_odd_sizes_survive_undistorted(
    tmp_path: Path, codec: str, suffix: str, stored: tuple[int, int]
) -> None:
    src, dst = tmp_path / "odd.webm", tmp_path / f"out{suffix}"
    sent = make_video(src, frames=6, width=97, height=61, codec="libvpx-vp9")
    copy_video(src, dst, codec=codec, crf=10)
    with VideoReader(dst) as r:
        out = [f.image for f in r]
    assert len(out) == 6
    for img, ref in zip(out, sent, strict=True):
        assert img.shape[:2] == stored
        assert np.abs(img[:61, :97].astype(int) - ref).mean() < 4  # same picture, not rescaled


@pytest.mark.parametrize("degrees", [90, 180, -90])
def test_probe_reads_each_rotation(tmp_path: Path, degrees: int) -> None:
    path = tmp_path / "r.mp4"
    make_video(path, frames=2, rotation=degrees)
    assert probe(path).rotation == degrees


def test_rotation_kept_and_autorotate_turns_upright(tmp_path: Path) -> None:
    src, dst = tmp_path / "rot.mp4", tmp_path / "out.mp4"
    make_video(src, frames=4, width=64, height=48, rotation=90)
    assert probe(src).rotation == 90
    assert probe(src).display_size == (48, 64)
    copy_video(src, dst, preset="ultrafast")
    assert probe(dst).rotation == 90
    with VideoReader(dst) as r:
        stored = next(iter(r)).image
    with VideoReader(dst, autorotate=True) as r:
        upright = next(iter(r)).image
    assert stored.shape == (48, 64, 3) and upright.shape == (64, 48, 3)
    assert np.array_equal(upright, np.rot90(stored))  # 90 degrees counter-clockwise


def test_missing_file_and_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(NotAVideoError, match="no such file"):
        probe(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, np.uint8).tobytes())
    with pytest.raises(NotAVideoError, match="not a readable video"):
        VideoReader(junk)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "tone.m4a"
    make_audio_only(path)
    with pytest.raises(NoVideoStreamError, match="no video stream"):
        probe(path)


def test_truncated_file_reports_how_far_it_got(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    make_video(path, frames=96, width=128, height=96, faststart=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    seen = []
    with pytest.raises(CorruptVideoError, match="ended after frame") as e, VideoReader(path) as r:
        seen.extend(r)
    assert 0 < len(seen) < 96 and e.value.frames_read == len(seen)


def test_failed_write_leaves_the_old_file_alone(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.mp4", tmp_path / "out.mp4"
    make_video(src, frames=10)
    dst.write_bytes(b"precious")
    with pytest.raises(RuntimeError), VideoReader(src) as r, VideoWriter.like(r.info, dst) as w:
        for f in r:
            w.write(f.image, f.pts)
            if f.index == 5:
                raise RuntimeError("boom")
    assert dst.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "out.mp4"]


def test_writer_refuses_nothing_written_and_bad_places(tmp_path: Path) -> None:
    w = VideoWriter(tmp_path / "empty.mp4", frame_rate=24)
    with pytest.raises(NoFramesError, match="no frames were written"):
        w.close()
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot write here"):
        VideoWriter(tmp_path / "file" / "out.mp4", frame_rate=24)
    with pytest.raises(OutputError, match="unknown video container"):
        VideoWriter(tmp_path / "out.xyz", frame_rate=24)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    with pytest.raises(NotAVideoError):
        VideoWriter(tmp_path / "out.mp4", frame_rate=24, copy_streams_from=junk)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    with pytest.raises(OutputError, match="unknown video encoder"):
        VideoWriter(tmp_path / "out.mp4", frame_rate=24, encode=EncodeOptions(codec="nope"))


def test_shared_clip_decodes_every_frame(shared_clip: Path) -> None:
    info = probe(shared_clip)
    assert (info.width, info.height, info.frame_count) == (640, 360, 1440)
    with VideoReader(shared_clip, gray=True, size=90) as r:
        indices = [f.index for f in r]
    assert indices == list(range(1440))


def test_fast_luma_matches_swscale_gray(tmp_path: Path) -> None:
    from vidcolor.video.reader import luma

    path = tmp_path / "a.mp4"
    make_video(path, frames=5, width=66, height=50)  # line size wider than the picture
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            assert np.array_equal(luma(frame), frame.to_ndarray(format="gray"))
            assert luma(frame.reformat(format="rgb24")) is None


def test_prefetch_gives_the_same_frames_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    make_video(path, frames=96, width=128, height=96, faststart=True)
    with VideoReader(path, every=5) as plain, VideoReader(path, every=5, prefetch=4) as ahead:
        a, b = list(plain), list(ahead)
    assert [f.pts for f in a] == [f.pts for f in b] and len(a) == 20
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    threads = threading.active_count()
    with VideoReader(path, prefetch=4) as r:  # leaving early stops the decoding thread
        for f in r:
            if f.index == 3:
                break
    assert threading.active_count() == threads
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    seen = []
    with pytest.raises(CorruptVideoError) as e, VideoReader(path, prefetch=8) as r:
        seen.extend(r)
    assert 0 < len(seen) < 96 and e.value.frames_read == len(seen)  # counted where consumed
