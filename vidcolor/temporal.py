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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from vidcolor.metrics import reliable, warp
from vidcolor.scenes import ShotDetector
from vidcolor.video import Frame, VideoReader

CARRY = 0.75  # share of the carried chroma where it is trusted (the rest: the new prediction)
LUMA_MATCH = 10.0  # gray levels: a carried pixel whose luma is further off is another surface
MIN_TRUSTED = 0.4  # below this share of trusted pixels, start afresh (nothing worth carrying)
# Most frames held back for the shot detector to decide on (2 s at 24 fps; 150 MB of planes
# at 1080p). It decides a hard cut 6 frames on (its flash check), a 12-frame dissolve or a
# short fade 8-9 frames on; a long dissolve or a long black hold takes as long as it lasts.
LOOKAHEAD = 48


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


class Stabilizer:
    """Feed frames in order: ``stabilize(gray, chroma)`` returns the chroma to use."""

    def __init__(self, carry: float = CARRY) -> None:
        self.carry = carry
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._gray: np.ndarray | None = None
        self._chroma: np.ndarray | None = None
        self.resets = 0  # times it started afresh (the first frame not counted)
        self.cuts = 0  # of which at a marked cut
        self.trusted = 0.0  # share of pixels carried in the last frame

    def stabilize(self, gray: np.ndarray, chroma: np.ndarray, cut: bool = False) -> np.ndarray:
        """``gray``: HxW uint8 luma of this frame; ``chroma``: HxWxC float32 predicted for
        it; ``cut``: this frame starts a new scene. Returns HxWxC float32."""
        prev_gray, prev = self._gray, self._chroma
        self._gray = gray
        if prev_gray is None or prev_gray.shape != gray.shape or cut:
            self.resets += prev_gray is not None
            self.cuts += cut and prev_gray is not None
            self._chroma, self.trusted = chroma, 0.0
            return chroma
        back = self._flow.calc(gray, prev_gray, None)  # this frame -> the one before
        forth = self._flow.calc(prev_gray, gray, None)
        trust = reliable(back, forth)
        trust &= np.abs(warp(prev_gray, back).astype(np.float32) - gray) < LUMA_MATCH
        self.trusted = float(trust.mean())
        if self.trusted < MIN_TRUSTED:
            self.resets += 1
            self._chroma = chroma
            return chroma
        # Soft inside the trusted area (no seams), zero outside it (no colour bleeds into it).
        hard = trust.astype(np.float32)
        weight = (cv2.GaussianBlur(hard, (0, 0), 1.5) * hard * self.carry)[..., None]
        out = weight * warp(prev, back) + (1 - weight) * chroma
        self._chroma = out
        return out
