"""Shot boundaries from the frame stream, with PySceneDetect's detectors (no detector of our own).

``ShotDetector`` is push-style: feed it every frame in presentation order (small BGR images
are enough, and fast), then ask for the cuts. It runs PySceneDetect's ``AdaptiveDetector``
for cuts (content change against its neighbours') and ``ThresholdDetector`` for fades to and
from black. On top, one check of ours: a content cut after which the picture soon returns to
what it was before is a flash (an explosion, a camera flash), not a cut; the adaptive window
alone does not absorb a flash of two frames or more. PySceneDetect has no detector for
dissolves (one shot cross-fading into the next, each frame changing little), so a second
check: where the frame ``DISSOLVE_HALF`` frames back differs from the current one as much as
a cut would, and the frame halfway between is their average (a blend, which motion is not),
the middle is a dissolve boundary, unless one end is the other scaled (a fade, or a light
going up: not a new shot). Memory is a few thumbnails, whatever the length. It plugs into
``VideoReader(tap=...)``, so detection shares another job's decode pass.
"""

from __future__ import annotations

import sys
from array import array
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
from scenedetect.common import FrameTimecode
from scenedetect.detector import SceneDetector
from scenedetect.detectors import AdaptiveDetector, ThresholdDetector

from vidcolor.video import VideoReader

TAP_SIZE = 72  # short side the detectors see: 128x72 for 16:9, enough for whole-frame change
FLASH_LOOKAHEAD = 6  # frames after a content cut in which a return to "before" means a flash
FLASH_SIMILAR = 0.8  # x min_content: mean |BGR difference| of 32x18 thumbnails, "looks alike"
DISSOLVE_HALF = 6  # frames from either end of a dissolve window to its middle (0.25 s at 24)
DISSOLVE_BLEND = 0.2  # the middle is within this share of the ends' difference of their mean
DISSOLVE_MIN = 15.0  # mean |BGR difference| of the ends' thumbnails: as much as a cut changes
DISSOLVE_SCALED = 0.35  # ends this close (share of their difference) to scaled copies: a fade
FADE_RAMP = 0.5  # mean level gained per frame while a fade is still going, or less ...
FADE_SHARE = 0.01  # ... this share of the level a frame: a dark picture fades in smaller steps
FADE_HOLD = 6  # a ramp goes on over up to this many frames at one level (repeated frames)
EDGE_FADE_MIN = 4  # frames of ramp at the stream's first or last frame that make a fade there


@dataclass(frozen=True)
class Scene:
    index: int
    start_frame: int  # first frame of the scene
    end_frame: int  # last frame (inclusive)
    start_time: float  # seconds
    end_time: float  # seconds, end of the last frame


def _thumb(bgr: np.ndarray) -> np.ndarray:
    """The 32x18 picture the flash and dissolve checks compare, int16."""
    return cv2.resize(bgr, (32, 18), interpolation=cv2.INTER_AREA).astype(np.int16)


class DissolveDetector(SceneDetector):
    """Dissolves, which PySceneDetect has no detector for: where the frame ``DISSOLVE_HALF``
    frames back differs from the current one as much as a cut would, and the frame halfway
    between is their average (a blend, which motion is not), the middle is a cut, unless one
    end is the other scaled (a fade, or a light going up: not a new shot). Neighbouring windows
    see the same dissolve; its cut goes where the change peaks."""

    def __init__(self) -> None:
        super().__init__()
        self._thumbs: deque[tuple[int, np.ndarray]] = deque(maxlen=2 * DISSOLVE_HALF + 1)
        self.in_view: tuple[int, float] | None = None  # (middle, change) of the one in view
        self.middles: list[int] = []  # the cuts found, in order

    def process_frame(self, timecode: FrameTimecode, frame_img: np.ndarray) -> list[FrameTimecode]:
        self._thumbs.append((timecode.frame_num, _thumb(frame_img)))
        if len(self._thumbs) < 2 * DISSOLVE_HALF + 1:
            return []
        a, (m, mid), b = self._thumbs[0][1], self._thumbs[DISSOLVE_HALF], self._thumbs[-1][1]
        change = float(np.abs(a - b).mean())
        blended = (
            change >= DISSOLVE_MIN and np.abs(2 * mid - a - b).mean() / 2 < DISSOLVE_BLEND * change
        )
        if blended:  # but a fade changes brightness only: one end is a multiple of the other
            af, bf = a.astype(np.float32), b.astype(np.float32)
            k = float((af * bf).sum() / max(1.0, float((bf * bf).sum())))
            blended = float(np.abs(af - k * bf).mean()) >= DISSOLVE_SCALED * change
        if blended and (self.in_view is None or change > self.in_view[1]):
            self.in_view = (m, change)
        elif not blended and self.in_view is not None and m > self.in_view[0] + 1:
            return self._found(timecode)
        return []

    def post_process(self, timecode: FrameTimecode) -> list[FrameTimecode]:
        return self._found(timecode) if self.in_view is not None else []

    def _found(self, timecode: FrameTimecode) -> list[FrameTimecode]:
        middle, self.in_view = self.in_view[0], None
        self.middles.append(middle)
        return [FrameTimecode(middle, fps=timecode)]  # at the stream's rate


class FlashFilter:
    """A post-filter on content cuts: a cut after which the picture soon returns to what it
    was before is a flash (an explosion, a camera flash), not a cut; the adaptive window alone
    does not absorb a flash of two frames or more. Decides ``FLASH_LOOKAHEAD`` frames on."""

    def __init__(self, similar: float) -> None:
        self.similar = similar  # mean |BGR difference| of thumbnails that "looks alike"
        self.pending: list[int] = []  # cuts waiting for their frames after
        self._thumbs: deque[tuple[int, np.ndarray]] = deque(maxlen=FLASH_LOOKAHEAD + 8)

    def push(self, index: int, thumb: np.ndarray) -> None:
        self._thumbs.append((index, thumb))

    def settle(self, now: int, final: bool = False) -> list[int]:
        """The pending cuts decided by frame ``now`` (all of them when ``final``) that are not
        flashes."""
        if not self.pending:
            return []
        thumbs, kept = dict(self._thumbs), []
        for c in [c for c in self.pending if final or now >= c + FLASH_LOOKAHEAD]:
            self.pending.remove(c)
            before = thumbs.get(c - 1)
            if before is None or c not in thumbs:
                kept.append(c)
                continue
            jump = np.abs(thumbs[c] - before).mean()
            after = [
                np.abs(thumbs[k] - before).mean()
                for k in range(c + 1, c + FLASH_LOOKAHEAD + 1)
                if k in thumbs
            ]
            if not after or min(after) > max(self.similar, 0.35 * jump):
                kept.append(c)
        return kept


@dataclass(frozen=True)
class Shots:
    """What a finished detection found: where scenes start, and the frames of its fades and
    dissolves (first, last)."""

    cuts: list[int]
    transitions: list[tuple[int, int]]


class ShotDetector:
    """Cuts, fades and dissolves in a frame stream, push-style: ``push`` every frame in order
    (``attach`` wires it to a reader's decode pass), then ``finish()`` for the ``Shots``; it
    can be asked again and answers the same. ``min_scene_len`` frames at least between cuts.

    PySceneDetect's ``AdaptiveDetector`` (content cuts, then the ``FlashFilter``) and
    ``ThresholdDetector`` (fades through black), and our ``DissolveDetector``."""

    def __init__(
        self,
        frame_rate: Fraction | float,
        min_scene_len: int = 8,
        adaptive_threshold: float = 3.0,
        min_content: float = 15.0,
        fade_threshold: float = 12.0,
    ) -> None:
        self.fps = Fraction(frame_rate)
        self.min_scene_len = min_scene_len
        self._content = AdaptiveDetector(
            adaptive_threshold=adaptive_threshold,
            min_content_val=min_content,
            min_scene_len=min_scene_len,
        )
        self._fades = ThresholdDetector(threshold=fade_threshold, min_scene_len=min_scene_len)
        self._dissolves = DissolveDetector()
        self._flashes = FlashFilter(FLASH_SIMILAR * min_content)
        self._cuts: set[int] = set()  # content cuts that are not flashes
        self._fade_cuts: set[int] = set()
        self._fade_level = fade_threshold
        self._levels = array("f")  # mean level of each frame: 4 bytes a frame, for fade spans
        self._last = -1
        self._first: int | None = None
        self._times = array("d")  # seconds of each pushed frame: 8 bytes a frame
        self._shape: tuple[int, ...] | None = None
        self._dark_from: int | None = None  # first frame of the dark stretch the stream is in
        self._shots: Shots | None = None

    @classmethod
    def attach(cls, reader: VideoReader, **options: float) -> ShotDetector:
        """A detector on ``reader``'s decode pass: it sees every frame of the range, at
        ``TAP_SIZE``, whatever the reader yields. ``options`` as the constructor's."""
        detector = cls(reader.info.frame_rate, **options)
        reader.tap, reader.tap_size = detector.tap, TAP_SIZE
        return detector

    def tap(self, index: int, seconds: float, bgr: np.ndarray) -> None:
        """``VideoReader(tap=...)``'s signature."""
        self.push(index, bgr, seconds)

    def push(self, index: int, bgr: np.ndarray, time: float | None = None) -> None:
        """The next frame (HxWx3 uint8 BGR) and its index in the stream."""
        if self._shots is not None:
            raise RuntimeError("the detector has finished; it takes no more frames")
        if self._shape is None:
            self._shape = bgr.shape
        elif bgr.shape != self._shape:  # the size changed mid-stream: seen at the first size
            bgr = cv2.resize(bgr, self._shape[1::-1], interpolation=cv2.INTER_AREA)
        tc = FrameTimecode(index, fps=self.fps)
        thumb = _thumb(bgr)
        self._flashes.push(index, thumb)
        self._flashes.pending += [c.frame_num for c in self._content.process_frame(tc, bgr)]
        self._fade_cuts.update(c.frame_num for c in self._fades.process_frame(tc, bgr))
        self._dissolves.process_frame(tc, bgr)
        self._levels.append(float(thumb.mean()))
        if self._levels[-1] >= self._fade_level + 1:  # +1: the thumbnail's rounding
            self._dark_from = None
        elif self._dark_from is None:
            self._dark_from = index
        if self._first is None:
            self._first = index
        self._last = index
        self._times.append(float(index / self.fps) if time is None else time)
        self._cuts.update(self._flashes.settle(index))

    def _fade_span(self, cut: int) -> tuple[int, int]:
        """The frames of a fade around its cut: the dark stretch, then the ramps on either side
        for as long as the brightness keeps climbing away from it."""
        k = cut - (self._first or 0)
        return self._walk(k, -1), self._walk(k, 1)

    def _walk(self, k: int, step: int) -> int:
        """From the ``k``-th pushed frame, ``step`` by ``step``: through the dark, then up the
        ramp while the level climbs (FADE_RAMP, FADE_SHARE). A frame repeated (FADE_HOLD frames
        at one level: captured and on-twos footage) does not end the ramp. The frame index of
        the last frame of the fade that way."""
        level, inside = self._levels, range(len(self._levels))
        while k + step in inside and level[k + step] < self._fade_level:
            k += step  # through the dark
        while True:
            ahead = [j for j in range(k + step, k + step * (FADE_HOLD + 1), step) if j in inside]
            rate = min(FADE_RAMP, FADE_SHARE * level[k])
            up = [j for j in ahead if level[j] > level[k] + rate * abs(j - k)]
            if not up:
                return (self._first or 0) + k
            k = up[0]

    def _edge_fades(self) -> list[tuple[int, int]]:
        """A fade in from the stream's first frame, or out to its last: the stream starts or
        ends inside it, so no dark stretch is seen on both sides, and no cut is found."""
        if not self._levels:
            return []
        first, last = self._first or 0, self._last
        spans = []
        end = self._walk(0, 1)  # from the first frame, up the ramp
        if end - first >= EDGE_FADE_MIN:
            spans.append((first, end))
        start = self._walk(len(self._levels) - 1, -1)
        if last - start >= EDGE_FADE_MIN:
            spans.append((start, last))
        return spans

    def settled(self) -> set[int]:
        """The cuts decided so far, before the stream has ended: content cuts past the flash
        check, and the fades and dissolves already seen through."""
        return self._cuts | self._fade_cuts | set(self._dissolves.middles)

    def undecided_from(self) -> int:
        """The first frame that may still turn out to start a scene: every cut before it is in
        ``settled()`` already. Behind the newest frame by the dissolve check's half window (the
        adaptive detector's is shorter), earlier while a content cut awaits its flash check, a
        dissolve is in view, or the picture is dark (a fade's cut goes in its dark stretch)."""
        bound = self._last - DISSOLVE_HALF
        if self._flashes.pending:
            bound = min(bound, *self._flashes.pending)
        if self._dissolves.in_view is not None:
            bound = min(bound, self._dissolves.in_view[0])
        if self._dark_from is not None:
            bound = min(bound, self._dark_from)
        return bound

    def starts_scene(self, index: int, cuts: set[int], last: int) -> bool:
        """Whether frame ``index`` starts a scene, given the cuts found and the last scene start
        (cuts closer than ``min_scene_len``, both detectors seeing one fade, count once)."""
        return index in cuts and index - last >= self.min_scene_len

    def finish(self) -> Shots:
        """The stream has ended: every cut and transition, decided. Asked again, the same."""
        if self._shots is not None:
            return self._shots
        if self._last >= 0:
            end = FrameTimecode(self._last, fps=self.fps)
            self._flashes.pending += [c.frame_num for c in self._content.post_process(end)]
            self._fade_cuts.update(c.frame_num for c in self._fades.post_process(end))
            self._cuts.update(self._flashes.settle(self._last, final=True))
            self._dissolves.post_process(end)
        transitions = sorted(
            [self._fade_span(c) for c in self._fade_cuts if 0 < c <= self._last]
            + [(m - DISSOLVE_HALF, m + DISSOLVE_HALF) for m in set(self._dissolves.middles)]
            + self._edge_fades()
        )
        cuts: list[int] = []
        for c in sorted(c for c in self.settled() if 0 < c <= self._last):
            if self.starts_scene(c, {c}, cuts[-1] if cuts else -self.min_scene_len):
                cuts.append(c)
        self._shots = Shots(cuts, transitions)
        return self._shots

    def cuts(self) -> list[int]:
        """Frame indices where a new scene starts (``finish().cuts``)."""
        return self.finish().cuts

    @property
    def transitions(self) -> list[tuple[int, int]]:
        """(first, last) frames of each fade and dissolve (``finish().transitions``)."""
        return self.finish().transitions

    def scenes(self, cuts: list[int] | None = None) -> list[Scene]:
        """The scenes between the cuts, with times where frames were pushed with them."""
        cuts = self.cuts() if cuts is None else cuts
        bounds = [self._first or 0, *cuts, self._last + 1]
        tick = 1 / float(self.fps)

        def t(i: int) -> float:
            k = i - (self._first or 0)
            return self._times[k] if 0 <= k < len(self._times) else i * tick

        pairs = [(a, b) for a, b in pairwise(bounds) if b > a]
        return [Scene(k, a, b - 1, t(a), t(b - 1) + tick) for k, (a, b) in enumerate(pairs)]


def scene_of(index: int, cuts: list[int]) -> int:
    """The scene a frame belongs to: how many cuts come at or before it."""
    return int(np.searchsorted(np.asarray(cuts), index, side="right"))


def detect_scenes(path: str | Path, min_scene_len: int = 8, **options: float) -> list[Scene]:
    """Decode ``path`` once at detector size and return its scenes. ``options`` go to the
    ``ShotDetector`` (``adaptive_threshold``, ``min_content``, ``fade_threshold``)."""
    with VideoReader(path, every=sys.maxsize) as reader:
        detector = ShotDetector.attach(reader, min_scene_len=min_scene_len, **options)
        for _ in reader:  # the tap sees every frame; the iteration yields only the first
            pass
    return detector.scenes()
