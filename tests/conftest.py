"""Tiny real videos built with PyAV for the tests: moving coloured shapes, a hard cut, a tone."""

from __future__ import annotations

import signal
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vidcolor.video import EncodeOptions

SHARED_CLIP = Path(__file__).resolve().parents[2] / "shared" / "media" / "bbb_360p_60s.mp4"
# Backgrounds of the two shots either side of the hard cut (RGB).
# x264 crf 0: lossless, so decoded planes are what was written and luma compares exactly
LOSSLESS = EncodeOptions(crf=0, preset="ultrafast")
SHOT_COLOURS = [(200, 60, 40), (40, 90, 200)]


def default_signals() -> None:
    """A child's ``preexec_fn``: SIGINT and SIGTERM at their defaults. A suite started with
    ``&`` from a script passes SIGINT on ignored, and vidcolor rightly leaves an ignored stop
    signal ignored, so a test that stops its child with one would wait in vain."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def shapes_frame(i: int, width: int, height: int, cut_at: int | None = None) -> np.ndarray:
    """Frame ``i``: a flat background per shot, a yellow square moving right, a green bar."""
    shot = 0 if cut_at is None or i < cut_at else 1
    img = np.empty((height, width, 3), np.uint8)
    img[:] = SHOT_COLOURS[shot]
    s = max(4, min(width, height) // 4)
    x = (3 * i) % max(1, width - s)
    img[height // 4 : height // 4 + s, x : x + s] = (240, 220, 30)
    img[-max(2, height // 8) :, : width // 3] = (30, 180, 60)
    return img


def make_video(
    path: Path,
    *,
    frames: int = 24,
    width: int = 64,
    height: int = 48,
    fps: int = 24,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    codec: str = "libx264",
    audio: bool = False,
    rotation: int = 0,
    cut_at: int | None = None,
    faststart: bool = False,
    x264: dict[str, str] | None = None,
    audio_rate: int = 48000,
    audio_delay: float = 0.0,
) -> list[np.ndarray]:
    """Write a test video and return the RGB frames that went in.

    ``pts`` (ticks of ``time_base``) makes it variable-rate. ``audio`` adds a 440 Hz tone from
    ``audio_delay`` seconds to the video's end: AAC in MP4/MOV, PCM in Matroska. ``x264``:
    encoder options (default: near-lossless, no B-frames).
    """
    tb = time_base or Fraction(1, fps)
    ticks = pts or list(range(frames))
    opts = {"movflags": "faststart"} if faststart else {}
    images = []
    with av.open(str(path), "w", options=opts) as out:
        v = out.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.codec_context.time_base = tb
        if codec == "libx264":
            v.options = x264 or {"crf": "12", "preset": "ultrafast"}
        if rotation:
            v.set_display_rotation(rotation)
        a = None
        if audio:
            a_codec = "pcm_s16le" if path.suffix == ".mkv" else "aac"
            a = out.add_stream(a_codec, rate=audio_rate, layout="mono")
        for i, t in enumerate(ticks):
            img = shapes_frame(i, width, height, cut_at)
            images.append(img)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = t, tb
            f.duration = (ticks[i + 1] - t) if i + 1 < len(ticks) else round(1 / (fps * tb))
            out.mux(v.encode(f))
        out.mux(v.encode(None))
        if a is not None:
            sr, skip = audio_rate, round(audio_delay * audio_rate)
            n = round(sr * float((ticks[-1] * tb) + Fraction(1, fps))) - skip
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / sr) * 32767).astype(np.int16)
            for k in range(0, n, 1024):
                chunk = tone[k : k + 1024].reshape(1, -1)
                af = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
                af.sample_rate, af.pts, af.time_base = sr, skip + k, Fraction(1, sr)
                out.mux(a.encode(af))
            out.mux(a.encode(None))
    return images


def add_subtitles(video: Path, out: Path, tmp: Path) -> list[tuple[Fraction, bytes]]:
    """Remux ``video`` into Matroska ``out`` with a two-line SubRip track; return its cues.
    (PyAV cannot encode subtitles, but it can copy packets demuxed from an .srt file.)"""
    srt = tmp / "subs.srt"
    srt.write_text(
        "1\n00:00:00,200 --> 00:00:00,700\nhello\n\n2\n00:00:01,000 --> 00:00:01,500\nworld\n"
    )
    with av.open(str(video)) as v, av.open(str(srt)) as s, av.open(str(out), "w") as o:
        pairs = [
            (v, o.add_stream_from_template(v.streams.video[0])),
            (s, o.add_stream_from_template(s.streams[0])),
        ]
        for src, dst in pairs:
            for p in src.demux(src.streams[0]):
                if p.dts is not None:
                    p.stream = dst
                    o.mux(p)
    return [(Fraction(1, 5), b"hello"), (Fraction(1), b"world")]


def make_audio_only(path: Path) -> None:
    with av.open(str(path), "w") as out:
        a = out.add_stream("aac", rate=48000, layout="mono")
        for k in range(0, 48000, 1024):
            af = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.int16), format="s16", layout="mono"
            )
            af.sample_rate, af.pts = 48000, k
            out.mux(a.encode(af))
        out.mux(a.encode(None))


def packets(path: Path, kind: str) -> list[tuple[Fraction, Fraction, bytes]]:
    """(pts seconds, duration seconds, payload) of every packet of the first ``kind`` stream."""
    with av.open(str(path)) as c:
        s = getattr(c.streams, kind)[0]
        return [
            (p.pts * p.time_base, p.duration * p.time_base, bytes(p)) for p in c.demux(s) if p.size
        ]


def frame_times(path: Path) -> list[Fraction]:
    """Exact presentation times of every decoded video frame."""
    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(video=0)]


@pytest.fixture
def shared_clip() -> Path:
    if not SHARED_CLIP.exists():
        pytest.skip(f"shared clip not found at {SHARED_CLIP} (../shared is absent)")
    return SHARED_CLIP


PHOTOS = [
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "colorwheel",
    "retina",
]


def write_photos(folder: Path, names: list[str] = PHOTOS, size: int = 96) -> list[Path]:
    """Real colour photographs that ship inside scikit-image, scaled down, as PNG files."""
    import cv2
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        rgb = getattr(data, name)()[..., :3]
        h, w = rgb.shape[:2]
        s = size / min(h, w)
        rgb = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        paths.append(folder / f"{name}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return paths


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, tiny model bundle: trained a few steps on real photos with vidcolor's trainer."""
    from vidcolor.models import ModelConfig
    from vidcolor.train.checkpoint import save_bundle
    from vidcolor.train.loop import Dist, TrainConfig
    from vidcolor.train.runfolder import start_run

    root = tmp_path_factory.mktemp("tiny_model")
    write_photos(root / "photos", names=["astronaut", "coffee", "chelsea", "rocket"], size=48)
    cfg = TrainConfig(
        data=str(root / "photos"),
        size=32,
        epochs=2,
        batch_size=2,
        val_fraction=0.0,
        model=ModelConfig(base_width=8, depth=4),
    )
    start_run(cfg, root / "run", Dist(), workers=0).fit()
    save_bundle(root / "model.pt", root / "run" / "last.pt")
    return root / "model.pt"
