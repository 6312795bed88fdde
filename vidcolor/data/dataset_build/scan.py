"""One decode pass per video: the shot detector sees every frame, while candidate frames go
to files on disk (memory stays flat however long the video); a finished scan is kept to resume
from."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vidcolor.data.dataset_build.picture import RunningStd, letterbox
from vidcolor.data.dataset_build.presets import BLOWN_OUT, DARK, HEADROOM, STORE, Box, Preset
from vidcolor.data.scenes import ShotDetector
from vidcolor.video import CorruptVideoError, VideoError, VideoReader
from vidcolor.video.probe import check_file


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Scan:
    """What one decode pass of a video leaves (besides its files): candidate rows, cuts,
    candidate shape, and the picture inside any letterbox bars."""

    rows: list[dict]
    cuts: list[int]
    shape: tuple[int, int]  # candidate (height, width)
    frames: int  # frames decoded
    source: dict  # path, sha256, size and mtime of the video
    picture: Box  # inside the bars, candidate pixels
    samples: int  # candidates in the temporal statistics (neither dark nor blown out)
    warning: str | None = None  # e.g. a truncated file: what was decoded is used
    transitions: list[tuple[int, int]] = field(default_factory=list)  # fades, dissolves


SMALL_WIDTH = 64  # the small copy of each candidate that the checks look at


def _source(video: Path) -> dict:
    """Which file an episode's frames come from: its path, hash, size and modification time."""
    check_file(video)  # before the hash reads it: not a FIFO or a device
    try:
        stat = video.stat()
        return {
            "source": str(video.resolve()),
            "sha256": file_hash(video),
            "bytes": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
    except OSError as e:
        raise VideoError(f"{video}: {e.strerror or e}") from None


def scan_video(video: Path, preset: Preset, base: Path, on_frames: Callable[[int], None]) -> Scan:
    """Decode once. The shot detector sees every frame; each candidate (upright, short side
    ``size`` x STORE x HEADROOM) goes to ``base``.u8, a 64-wide copy of it to ``base``.small.u8,
    and its quarter-size gray into running statistics (``base``.std.npy) that find a static HUD.
    All per-candidate work happens here, where it overlaps the decoder's threads."""
    short = round(preset.size * STORE * HEADROOM)
    rows: list[dict] = []
    seen = 0

    source = _source(video)
    stats = RunningStd()
    warning = None
    brightest: np.ndarray | None = None
    shape = (0, 0)
    with VideoReader(
        video, fps=1 / preset.stride, autorotate=True, size=short, prefetch=8
    ) as reader:
        detector = ShotDetector.attach(
            reader, adaptive_threshold=preset.adaptive_threshold, min_content=preset.min_content
        )
        detect = reader.tap

        def tap(index: int, seconds: float, bgr: np.ndarray) -> None:  # and count, for progress
            nonlocal seen
            detect(index, seconds, bgr)
            seen += 1
            if seen % 64 == 0:
                on_frames(64)

        reader.tap = tap
        source["width"], source["height"] = reader.info.display_size
        if min(reader.info.width, reader.info.height) <= short * 1.1:
            reader.size = None  # a small source is kept as it is: no upscaling, no cost
        with open(f"{base}.u8", "wb") as out, open(f"{base}.small.u8", "wb") as small_out:
            frames = iter(reader)
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except CorruptVideoError as e:  # keep what decoded, and say so
                    if not rows:
                        raise
                    warning = f"{e}: the frames before it are used"
                    break
                img = frame.image
                if rows and img.shape[:2] != shape:  # the size changed mid-stream
                    img = cv2.resize(img, shape[::-1], interpolation=cv2.INTER_AREA)
                h, w = shape = img.shape[:2]
                out.write(img.tobytes())
                rows.append({"frame": frame.index, "pts": frame.pts, "time": round(frame.time, 6)})
                flat = img.reshape(h, w * 3)  # OpenCV's max: numpy's over channels is 20x slower
                brightest = flat.copy() if brightest is None else cv2.max(brightest, flat)
                small = cv2.resize(
                    img, (SMALL_WIDTH, max(1, SMALL_WIDTH * h // w)), interpolation=cv2.INTER_AREA
                )
                small_out.write(small.tobytes())
                if DARK <= small.mean() <= BLOWN_OUT:  # fades would hide a HUD
                    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
                    quarter = (max(1, w // 4), max(1, h // 4))
                    stats.add(cv2.resize(gray, quarter, interpolation=cv2.INTER_AREA))
            for f in (out, small_out):
                f.flush()
                os.fsync(f.fileno())
    on_frames(seen % 64)
    warning = "; ".join([*([warning] if warning else []), *reader.notes]) or None
    picture = (
        (0, 0, 0, 0) if brightest is None else letterbox(brightest.reshape(*shape, 3).max(axis=2))
    )
    std = stats.std()
    np.save(f"{base}.std.npy", np.zeros((0, 0)) if std is None else std.astype(np.float32))
    cuts = detector.cuts()
    return Scan(rows, cuts, shape, seen, source, picture, stats.n, warning, detector.transitions)


def candidates(store: Path, scan: Scan) -> np.ndarray:
    h, w = scan.shape
    return np.memmap(store, np.uint8, "r", shape=(len(scan.rows), h, w, 3))


def load_scan(base: Path, video: Path) -> Scan | None:
    """A finished scan of ``video`` from an interrupted build, if the video is unchanged and
    its files are whole."""
    try:
        scan = Scan(**json.loads(Path(f"{base}.json").read_text()))
        stat = video.stat()
        scan.shape = tuple(scan.shape)  # type: ignore[assignment]
        scan.picture = tuple(scan.picture)  # type: ignore[assignment]
        h, w = scan.shape
        sizes = (Path(f"{base}.u8").stat().st_size, Path(f"{base}.small.u8").stat().st_size)
        np.load(f"{base}.std.npy")
    except (OSError, ValueError, TypeError):
        return None
    n = len(scan.rows)
    want = (n * h * w * 3, n * max(1, SMALL_WIDTH * h // max(1, w)) * SMALL_WIDTH * 3)
    same = (scan.source["bytes"], scan.source["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
    return scan if same and sizes == want else None
