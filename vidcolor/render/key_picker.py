"""``vidcolor keys VIDEO -o KEYS/``: the frames worth painting. A user paints them in any image
editor and hands the folder back to ``render --keyframes KEYS/`` (the names are frame numbers,
``frame_000120.png``, which ``keys.key_files`` reads).

One frame per shot by default: the one most like the rest of its shot (the highest mean
correlation of small normalised grays, fades and black frames passed over), so its colours
reach the most of the shot by carry and by matching. Where the shot moves far from every
frame chosen so far (a pan, a scroll, a new room), the frame least like them is added, until
each frame of the shot correlates at least ``COVER`` with one of them, or ``MOST`` are chosen.

Two passes: the first decodes small grays with the render's own shot detector (so the shots
are the ones ``render --keyframes`` carries keys through) and chooses, holding at most
``SAMPLES`` grays of one shot at a time; the second writes the chosen frames, upright, each
whole under its final name (a temporary file, then a move that never replaces).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from vidcolor.atomic import atomic_path
from vidcolor.errors import UserError
from vidcolor.render.temporal import CutMarks
from vidcolor.thinned import Thinned
from vidcolor.video import VideoReader

THUMB = (48, 27)  # the small gray a frame is compared by (w, h)
SAMPLES = 256  # grays of a shot held at once: a longer shot keeps every other one, and so on
MIN_SPREAD = 8.0  # gray levels: a frame flatter than this (a fade, black) is never chosen
COVER = 0.6  # correlation with a chosen frame at which a frame counts as covered
MOST = 4  # frames chosen in one shot at most


class KeyPickError(UserError):
    """The keys cannot be written as asked."""


def choose(grays: list[tuple[int, np.ndarray]], gap: int = 24) -> list[int]:
    """The frames worth painting in one shot, from (frame, small gray) pairs: the most typical
    frame first, then the least covered, while some frame correlates under ``COVER``; no two
    chosen closer than ``gap`` frames (a second: the carry spans that)."""
    usable = [(i, g) for i, g in grays if float(g.std()) >= MIN_SPREAD] or grays
    x = np.stack([g.astype(np.float32).ravel() for _, g in usable])
    x -= x.mean(axis=1, keepdims=True)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    similar = x @ x.T
    frames = np.array([i for i, _ in usable])
    chosen = [int(similar.mean(axis=1).argmax())]
    while len(chosen) < MOST:
        cover = similar[:, chosen].max(axis=1)
        near = np.abs(frames[:, None] - frames[chosen][None, :]).min(axis=1) < gap
        cover[near] = np.inf  # too near a chosen frame to be worth its own key
        if cover.min() >= COVER:
            break
        chosen.append(int(cover.argmin()))
    return sorted(usable[c][0] for c in chosen)


def thumb(luma: np.ndarray) -> np.ndarray:
    """The small gray a frame is compared by, from its stored Y plane."""
    return cv2.resize(luma, THUMB, interpolation=cv2.INTER_AREA)


def pick(video: Path, on_frame: Callable[[int], None] | None = None) -> list[list[int]]:
    """The first pass: for each shot of ``video``, the frames to paint (``choose``)."""
    shots: list[list[int]] = []
    shot: Thinned[tuple[int, np.ndarray]] = Thinned(SAMPLES)
    with VideoReader(video, planes=True) as reader:  # as the render's first pass decodes it
        gap = round(reader.info.frame_rate or 24)
        for frame, cut in CutMarks.attach(reader).mark(reader):
            if cut and shot.items:
                shots.append(choose(shot.items, gap))
                shot = Thinned(SAMPLES)
            shot.offer(lambda f=frame: (f.index, thumb(f.image)))
            if on_frame is not None:
                on_frame(frame.index + 1)
    if shot.items:
        shots.append(choose(shot.items, gap))
    return shots


def key_name(index: int) -> str:
    return f"frame_{index:06d}.png"


def check_folder(folder: Path) -> None:
    """KEYS must be new or empty: the command never writes among a user's files."""
    if folder.exists() and not folder.is_dir():
        raise KeyPickError(f"{folder}: not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise KeyPickError(f"{folder}: not empty; name a new folder for the keys")


def write_keys(
    video: Path, folder: Path, frames: list[int], on_frame: Callable[[int], None] | None = None
) -> list[Path]:
    """The second pass: ``frames`` of ``video``, upright and whole, as PNGs in ``folder``. If
    it stops before all are written, the keys it wrote are removed again, and ``folder`` too
    if it made it: a second try starts from an empty folder."""
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    wanted, written, done = set(frames), [], set()
    try:
        with VideoReader(video, autorotate=True) as reader:
            for frame in reader:
                if frame.index in wanted:
                    target = folder / key_name(frame.index)
                    with atomic_path(target, replace=False) as part:
                        bgr = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
                        part.write_bytes(cv2.imencode(".png", bgr)[1].tobytes())
                    written.append(target)
                    done.add(frame.index)
                if on_frame is not None:
                    on_frame(frame.index + 1)
                if len(written) == len(wanted):
                    break
        if len(written) < len(wanted):  # a frame the first pass saw and this one did not
            missing = min(wanted - done)
            raise KeyPickError(f"{video}: frame {missing} could not be read again")
    except BaseException:
        for path in written:  # its own files only
            path.unlink(missing_ok=True)
        if made and not any(folder.iterdir()):
            folder.rmdir()
        raise
    return written
