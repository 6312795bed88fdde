"""Temporal stabilisation of predicted chroma: frame-by-frame colorizers flicker, because each
frame is guessed afresh. The ``Stabilizer`` carries the previous output's chroma along optical
flow computed on the luma (which the output keeps exactly), and blends it with the new
prediction where the carried chroma can be trusted: the flow passes the forward-backward check,
and the carried luma matches the frame's own luma (so a surface that was hidden a frame ago
never inherits the colour of what hid it). Elsewhere the new prediction stands as it is. After
a cut (the luma jumps, or the flow fails over most of the picture) it starts afresh. It sees
one frame at a time: no look-ahead, memory of one frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidcolor.metrics import reliable, warp

CARRY = 0.75  # share of the carried chroma where it is trusted (the rest: the new prediction)
LUMA_MATCH = 10.0  # gray levels: a carried pixel whose luma is further off is another surface
CUT_JUMP = 25.0  # mean |gray difference| of consecutive frames that means a cut
MIN_TRUSTED = 0.4  # below this share of trusted pixels, start afresh (a cut the jump missed)


class Stabilizer:
    """Feed frames in order: ``stabilize(gray, chroma)`` returns the chroma to use."""

    def __init__(self, carry: float = CARRY) -> None:
        self.carry = carry
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._gray: np.ndarray | None = None
        self._chroma: np.ndarray | None = None
        self.resets = 0  # cuts it started afresh at (the first frame not counted)
        self.trusted = 0.0  # share of pixels carried in the last frame

    def reset(self) -> None:
        self._gray = self._chroma = None

    def stabilize(self, gray: np.ndarray, chroma: np.ndarray) -> np.ndarray:
        """``gray``: HxW uint8 luma of this frame; ``chroma``: HxWxC float32 predicted for
        it. Returns HxWxC float32."""
        prev_gray, prev = self._gray, self._chroma
        self._gray = gray
        if prev_gray is None or prev_gray.shape != gray.shape:
            self._chroma = chroma
            return chroma
        jump = float(np.abs(gray.astype(np.int16) - prev_gray).mean())
        back = self._flow.calc(gray, prev_gray, None)  # this frame -> the one before
        forth = self._flow.calc(prev_gray, gray, None)
        trust = reliable(back, forth)
        trust &= np.abs(warp(prev_gray, back).astype(np.float32) - gray) < LUMA_MATCH
        self.trusted = float(trust.mean())
        if jump > CUT_JUMP or self.trusted < MIN_TRUSTED:
            self.resets += 1
            self._chroma = chroma
            return chroma
        # Soft inside the trusted area (no seams), zero outside it (no colour bleeds into it).
        hard = trust.astype(np.float32)
        weight = (cv2.GaussianBlur(hard, (0, 0), 1.5) * hard * self.carry)[..., None]
        out = weight * warp(prev, back) + (1 - weight) * chroma
        self._chroma = out
        return out
