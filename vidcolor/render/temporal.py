"""Temporal stabilisation of predicted chroma: frame-by-frame colorizers flicker, because each
frame is guessed afresh. The ``Stabilizer`` carries the previous output's chroma along optical
flow computed on the luma (which the output keeps exactly), and blends it with the new
prediction where the carried chroma can be trusted: the flow passes the forward-backward check,
and the carried luma matches the frame's own luma (so a surface that was hidden a frame ago
never inherits the colour of what hid it). Elsewhere the new prediction stands as it is.

It starts afresh at every scene cut the project's shot detector finds (``CutMarks``: the
detector runs on the render's own decode pass and decides about a frame some frames after it,
so frames wait until it has, never more than ``LOOKAHEAD`` of them), and wherever the flow
fails over most of the picture (a cut the detector passed over, or no usable motion). Memory:
one frame of state, at most ``LOOKAHEAD`` waiting frames, and the detector's few bytes a frame.

The flows and the trust mask depend on the luma alone, which is known before the model runs:
``motions_ahead`` finds them for upcoming frames on a pool of threads (OpenCV lets go of the
GIL), and the stabiliser takes them instead of finding them itself; the result is the same.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

from vidcolor.data.scenes import ShotDetector
from vidcolor.metrics import reliable, warp
from vidcolor.video import Frame, VideoReader

CARRY = 0.75  # share of the carried chroma where it is trusted (the rest: the new prediction)
LUMA_MATCH = 10.0  # gray levels: a carried pixel whose luma is further off is another surface
MIN_TRUSTED = 0.4  # below this share of trusted pixels, start afresh (nothing worth carrying)
# Most frames held back for the shot detector to decide on (2 s at 24 fps; 150 MB of planes
# at 1080p). It decides a hard cut 6 frames on (its flash check), a 12-frame dissolve or a
# short fade 8-9 frames on; a long dissolve or a long black hold takes as long as it lasts.
LOOKAHEAD = 48

T = TypeVar("T")


class CutMarks:
    """The shot detector on a render's decode pass (``attach``): ``mark(frames)`` yields
    ``(frame, starts_a_scene)`` once the detector has decided about that frame, or once
    ``LOOKAHEAD`` frames wait behind it (a cut decided later than that goes unmarked; the
    stabiliser's trust check is the fallback)."""

    def __init__(self, detector: ShotDetector) -> None:
        self.detector = detector

    @classmethod
    def attach(cls, reader: VideoReader) -> CutMarks:
        return cls(ShotDetector.attach(reader))

    def mark(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, bool]]:
        ahead: deque[Frame] = deque()
        last = -self.detector.min_scene_len

        def marked(frame: Frame, cuts: set[int]) -> tuple[Frame, bool]:
            nonlocal last
            cut = self.detector.starts_scene(frame.index, cuts, last)
            last = frame.index if cut else last
            return frame, cut

        for frame in frames:  # the reader's tap has pushed it to the detector already
            ahead.append(frame)
            decided = self.detector.undecided_from()
            while ahead and (ahead[0].index < decided or len(ahead) > LOOKAHEAD):
                yield marked(ahead.popleft(), self.detector.settled())
        cuts = set(self.detector.cuts())  # the stream has ended: every cut is decided
        for frame in ahead:
            yield marked(frame, cuts)


@dataclass(frozen=True, eq=False)
class Motion:
    """What the stabiliser needs of two consecutive frames, found from their grays alone."""

    back: np.ndarray  # HxWx2 float32: flow from this frame to the one before (pixels)
    trusted: float  # share of pixels whose carried chroma can be trusted
    soft: np.ndarray | None  # HxW float32 in [0, 1]: trust, softened inside; None below MIN_TRUSTED


def _dis() -> cv2.DISOpticalFlow:
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)


def measure_motion(flow: cv2.DISOpticalFlow, prev_gray: np.ndarray, gray: np.ndarray) -> Motion:
    """The motion from ``prev_gray`` to ``gray`` (HxW uint8 each). ``flow`` is used by one
    thread at a time (OpenCV's DIS objects are not thread-safe)."""
    back = flow.calc(gray, prev_gray, None)  # this frame -> the one before
    forth = flow.calc(prev_gray, gray, None)
    trust = reliable(back, forth)
    trust &= np.abs(warp(prev_gray, back).astype(np.float32) - gray) < LUMA_MATCH
    trusted = float(trust.mean())
    if trusted < MIN_TRUSTED:
        return Motion(back, trusted, None)
    # Soft inside the trusted area (no seams), zero outside it (no colour bleeds into it).
    hard = trust.astype(np.float32)
    return Motion(back, trusted, cv2.GaussianBlur(hard, (0, 0), 1.5) * hard)


def motions_ahead(
    items: Iterable[tuple[T, np.ndarray, bool]],
    workers: int | None = None,
    ahead: int | None = None,
    flow: Callable[[], cv2.DISOpticalFlow] = _dis,
    needed: Callable[[T], bool] | None = None,
) -> Iterator[tuple[T, np.ndarray, bool, Motion | None]]:
    """``(item, gray, cut)`` in, ``(item, gray, cut, motion)`` out, in order: the motion from
    the frame before (None for the first frame, at a cut and at a size change, where the
    stabiliser starts afresh, and where ``needed(item)``, asked as the item arrives, is
    false), found on ``workers`` threads (default: one per core) with a DIS object ``flow``
    makes for each, at most ``ahead`` frames (default: two per worker) before they are handed
    on, so memory stays bounded however long the video. The pool is shut down when the
    generator is closed."""
    workers = max(1, workers or os.cpu_count() or 1)
    ahead = max(1, ahead or 2 * workers)
    local = threading.local()  # one DIS object per worker thread

    def measure(prev_gray: np.ndarray, gray: np.ndarray) -> Motion:
        if not hasattr(local, "flow"):
            local.flow = flow()
        return measure_motion(local.flow, prev_gray, gray)

    def handed_on(
        entry: tuple[T, np.ndarray, bool, Future[Motion] | None],
    ) -> tuple[T, np.ndarray, bool, Motion | None]:
        item, gray, cut, future = entry
        return item, gray, cut, None if future is None else future.result()

    pending: deque[tuple[T, np.ndarray, bool, Future[Motion] | None]] = deque()
    prev: np.ndarray | None = None
    pool = ThreadPoolExecutor(workers, thread_name_prefix="vidcolor-flow")
    try:
        for item, gray, cut in items:
            wanted = prev is not None and prev.shape == gray.shape and not cut
            wanted = wanted and (needed is None or needed(item))
            pending.append((item, gray, cut, pool.submit(measure, prev, gray) if wanted else None))
            prev = gray
            while pending and (len(pending) >= ahead or _ready(pending[0][3])):
                yield handed_on(pending.popleft())
        while pending:
            yield handed_on(pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ready(future: Future | None) -> bool:
    return future is None or future.done()


class Stabilizer:
    """Feed frames in order: ``stabilize(gray, chroma)`` returns the chroma to use."""

    def __init__(self, carry: float = CARRY) -> None:
        self.carry = carry
        self._flow: cv2.DISOpticalFlow | None = None  # made when a motion is not given
        self._gray: np.ndarray | None = None
        self._chroma: np.ndarray | None = None
        self.resets = 0  # times it started afresh (the first frame not counted)
        self.cuts = 0  # of which at a marked cut
        self.trusted = 0.0  # share of pixels carried in the last frame

    def keep(self, chroma: np.ndarray) -> None:
        """What this frame finally got (a keyframe's colour blended in): the chroma the next
        frame carries on from."""
        self._chroma = chroma

    def stabilize(
        self, gray: np.ndarray, chroma: np.ndarray, cut: bool = False, motion: Motion | None = None
    ) -> np.ndarray:
        """``gray``: HxW uint8 luma of this frame; ``chroma``: HxWxC float32 predicted for
        it; ``cut``: this frame starts a new scene; ``motion``: from the gray fed before to
        this one (``motions_ahead``), found here when not given. Returns HxWxC float32."""
        prev_gray, prev = self._gray, self._chroma
        self._gray = gray
        if prev_gray is None or prev_gray.shape != gray.shape or cut:
            self.resets += prev_gray is not None
            self.cuts += cut and prev_gray is not None
            self._chroma, self.trusted = chroma, 0.0
            return chroma
        if motion is None:
            if self._flow is None:
                self._flow = _dis()
            motion = measure_motion(self._flow, prev_gray, gray)
        self.trusted = motion.trusted
        if motion.soft is None:  # under MIN_TRUSTED
            self.resets += 1
            self._chroma = chroma
            return chroma
        weight = (motion.soft * self.carry)[..., None]
        out = weight * warp(prev, motion.back) + (1 - weight) * chroma
        self._chroma = out
        return out
