"""Keyframe propagation: colour a user gives on a few frames (``render --keyframes KEYS``) is
carried along the motion to the frames around them, forwards and backwards within the shot
(the keys themselves, and how they are named and checked: ``vidcolor.render.key_files``).

The carried colour is Cb/Cr (code values 0-255, as ``color.rgb_to_cbcr`` gives them) at the
render's working size: that is where ``Colorizer.chroma`` holds its prediction and where the
stabiliser blends, so the carried chroma blends with the prediction with no conversion, and
the output keeps the video's own luma (Lab ab would need the key's L, which the video replaces).

``Propagator`` works on one video's working-size grays, pushed in order with the cut marks.
The forward carry runs as frames arrive; the backward carry needs the frames before a key
after the key itself, so the grays it will need (those within ``horizon`` frames before a
later key), the keys' own chroma and the carried results are spilled to files in a temporary
folder, and read back one frame at a time: memory holds a few frames whatever the shot's
length or the number of keys; disk holds only frames within reach of a key. The folder is
named with the process id, so that the next run clears one a killed run left
(``clear_stale_spills``).
"""

from __future__ import annotations

import bisect
import math
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np

from vidcolor.atomic import alive
from vidcolor.metrics import warp
from vidcolor.render.key_files import check_luma, key_chroma, open_keys
from vidcolor.render.temporal import LUMA_MATCH, CutMarks, Motion, measure_motion, motions_ahead
from vidcolor.video import VideoInfo, VideoReader

if TYPE_CHECKING:
    from vidcolor.render.matching import Bank

# Confidence kept per frame carried where the flow is trusted, at 24 fps (``decay_at`` for
# other rates): it halves in about 14 s. The flow's checks, not the distance, end most of a
# carry: a shorter fade (0.96, two seconds) threw away colour the flow still carried well
# (docs/benchmarks.md).
DECAY = 0.998
MIN_CONFIDENCE = 0.05  # below this a carried pixel counts as nothing carried
STILL = 1.0  # pixels of flow under which a matching luma is trust enough (flow noise on flats)
# Working-size pixels over which ``blend`` softens the confidence (the carry keeps its own):
# the speckle the flow checks leave in texture, and the edges of what is carried, blend in
# instead of flickering from frame to frame (docs/benchmarks.md).
SEAM = 2.0
# The spill folder: this prefix, the process id, "-", tempfile's random part; and its files.
SPILL_PREFIX = "vidcolor-keys-"
SPILL_FILES = ("keys", "forward", "grays", "backward")  # each NAME.bin
_SPILL_FOLDER = re.compile(rf"{SPILL_PREFIX}(?P<pid>\d+)-\w+")


class Keyed(NamedTuple):
    """What a frame's keys give it: the colour carried along the motion with its confidence
    (None where nothing reaches it), and its shot's keys to match (a matching.Bank, or None
    where its shot has no key)."""

    carried: tuple[np.ndarray, np.ndarray] | None
    bank: Bank | None = None


def decay_at(frame_rate: float | None) -> float:
    """The decay per frame that fades a carry as fast per second at ``frame_rate`` as
    ``DECAY`` does at 24 fps."""
    return DECAY ** (24 / float(frame_rate)) if frame_rate else DECAY


def blend(predicted: np.ndarray, carried: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """confidence * carried + (1 - confidence) * predicted, per pixel, the confidence first
    softened over ``SEAM`` pixels. ``predicted`` and ``carried``: HxWxC float32;
    ``confidence``: HxW in [0, 1]. Where it is 1 all over (a key's own frame) the result is
    the carried chroma exactly."""
    c = cv2.GaussianBlur(confidence.astype(np.float32), (0, 0), SEAM)[..., None]
    return (c * carried + (1 - c) * predicted).astype(np.float32)


class _Spill:
    """Fixed-size records, each for a frame index, appended to a file and read back one at a
    time through a memory map: what would not fit in memory for a long shot."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: type) -> None:
        self.path, self.shape, self.dtype = path, shape, np.dtype(dtype)
        self.slots: dict[int, int] = {}
        self._file = open(path, "wb")  # noqa: SIM115 (closed in close())
        self._map: np.memmap | None = None

    def put(self, index: int, record: np.ndarray) -> None:
        self.slots[index] = len(self.slots)
        self._file.write(np.ascontiguousarray(record, self.dtype).tobytes())

    def get(self, index: int) -> np.ndarray | None:
        slot = self.slots.get(index)
        if slot is None:
            return None
        if self._map is None or self._map.shape[0] <= slot:
            self._file.flush()
            self._map = np.memmap(self.path, self.dtype, "r", shape=(len(self.slots), *self.shape))
        return np.array(self._map[slot])

    def close(self) -> None:
        self._map = None
        self._file.close()


def clear_stale_spills(folder: Path | None = None) -> int:
    """Delete the spill folders in ``folder`` (the system's temporary folder by default) that
    ``render --keyframes`` runs killed before their cleanup left; returns how many. Only a
    folder named as ``Propagator`` names its own, of a process that no longer runs, this user's
    and holding nothing but spill files, is deleted: anything else there is left alone."""
    root = Path(folder or tempfile.gettempdir())
    try:
        entries = list(root.iterdir())
    except OSError:
        return 0
    spills = {f"{name}.bin" for name in SPILL_FILES}
    removed = 0
    for entry in entries:
        m = _SPILL_FOLDER.fullmatch(entry.name)
        if m is None or int(m["pid"]) == os.getpid() or alive(int(m["pid"])):
            continue
        try:
            info = entry.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != getattr(os, "getuid", int)():
                continue  # a link, or someone else's
            files = list(entry.iterdir())
            if any(f.name not in spills or not stat.S_ISREG(f.lstat().st_mode) for f in files):
                continue
            for f in files:
                f.unlink()
            entry.rmdir()
            removed += 1
        except OSError:
            continue
    return removed


def motion_flow() -> cv2.DISOpticalFlow:
    """The DIS flow a carry follows: the medium preset, not the stabiliser's fast one; a carry
    chains dozens of flows, so one that falls short of the motion drags colour off its surface
    frame by frame."""
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


class Propagator:
    """One video's keys carried along the motion. ``frames``: the frames that have keys. Push
    every frame's working-size gray in order (``push``), with its key's chroma at the working
    size (``key_chroma``) on those frames, then read ``carried()``: for each frame, in order,
    (chroma hxwxC float32, confidence hxw float32 in [0, 1]) or None where nothing reaches it.

    Confidence is 1 on a key's frame and is multiplied, per frame carried, by ``decay`` and by
    the flow's soft trust (``temporal.measure_motion``: forward-backward and luma checks), so it
    falls with distance and wherever the flow fails; under ``MIN_CONFIDENCE`` it is 0. Nothing
    crosses a cut, a frame whose flow fails over most of the picture, or another key. A frame
    reached from the keys either side of it cross-fades between them: each side weighted by
    its confidence and by its nearness (1 at its key, 0 at the other), the larger confidence
    kept. A context manager: the spill folder is removed on close; one that a killed run left
    is removed as the next one starts."""

    def __init__(
        self, frames: Iterable[int], decay: float = DECAY, folder: Path | None = None
    ) -> None:
        self.frames, self.decay = sorted(set(frames)), decay
        self._keyed = set(self.frames)
        # Frames a carry can reach before its confidence falls under MIN_CONFIDENCE.
        self.horizon = (
            math.inf if decay >= 1 else math.ceil(math.log(MIN_CONFIDENCE) / math.log(decay))
        )
        clear_stale_spills(folder)
        prefix = f"{SPILL_PREFIX}{os.getpid()}-"
        self._tmp = tempfile.TemporaryDirectory(prefix=prefix, dir=folder)
        self._spills: dict[str, _Spill] = {}
        self._flow = motion_flow()
        self._count = 0
        self._cuts: set[int] = set()
        self._cut_list: list[int] = []  # the same, in order (frames come in order)
        self._prev: np.ndarray | None = None
        self._state: tuple[np.ndarray, np.ndarray] | None = None  # forward carry
        self._finished = False
        self.banks: dict[int, Bank] = {}  # a shot's first frame -> its keys' Bank, to match

    def __enter__(self) -> Propagator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for spill in self._spills.values():
            spill.close()
        self._tmp.cleanup()

    def _spill(self, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> _Spill:
        if name not in self._spills:
            self._spills[name] = _Spill(Path(self._tmp.name) / f"{name}.bin", shape, dtype)
        return self._spills[name]

    def _step(
        self,
        state: tuple[np.ndarray, np.ndarray] | None,
        gray_from: np.ndarray,
        gray_to: np.ndarray,
        motion: Motion | None = None,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """``state`` (chroma, confidence) on the frame of ``gray_from`` carried to the frame
        of ``gray_to`` (``motion``: between the two, found here when not given); None when
        nothing is left of it."""
        if state is None or gray_from.shape != gray_to.shape:
            return None
        motion = motion or measure_motion(self._flow, gray_from, gray_to)
        if motion.soft is None:  # the flow fails over most of the picture: an unmarked cut
            return None
        chroma, confidence = state
        # Trusted: the flow's checks pass, or it barely moves and the carried luma matches. On
        # flat areas the forward-backward check fails on harmless sub-pixel noise, and what a
        # carry loses once stays lost for every frame after; where something really moves (an
        # uncovered background), the check still decides.
        carried_luma = warp(gray_from, motion.back).astype(np.float32)
        still = (np.hypot(motion.back[..., 0], motion.back[..., 1]) < STILL) & (
            np.abs(carried_luma - gray_to) < LUMA_MATCH
        )
        trusted = ((motion.soft > 0) | still).astype(np.float32)
        confidence = warp(confidence, motion.back) * trusted * np.float32(self.decay)
        confidence[confidence < MIN_CONFIDENCE] = 0
        if not confidence.any():
            return None
        return warp(chroma, motion.back), confidence

    def starts_scene(self, index: int) -> bool:
        """Whether frame ``index`` starts a shot, as the shot detector of this pass marked it:
        the render's pass takes these rather than detecting the cuts again."""
        return index in self._cuts

    def push(
        self,
        gray: np.ndarray,
        cut: bool = False,
        key: np.ndarray | None = None,
        motion: Motion | None = None,
    ) -> None:
        """The next frame's working-size full-range gray (hxw uint8); ``cut``: it starts a new
        scene (nothing is carried across); ``key``: its key's chroma, on a frame in ``frames``;
        ``motion``: from the frame before (``motion_flow``), found here when needed and not
        given."""
        index, self._count = self._count, self._count + 1
        if (key is not None) != (index in self._keyed):
            raise ValueError(f"frame {index}: a key must come with the frames that have keys")
        if cut:
            self._cuts.add(index)
            self._cut_list.append(index)
        state = (
            None if cut or self._prev is None else self._step(self._state, self._prev, gray, motion)
        )
        if key is not None:
            key = key.astype(np.float32)
            self._spill("keys", key.shape).put(index, key)
            state = key, np.ones(gray.shape, np.float32)
        self._state, self._prev = state, gray
        if state is not None:
            self._spill("forward", (*gray.shape, state[0].shape[2] + 1)).put(
                index, np.dstack([state[0], state[1]])
            )
        later = self.frames[bisect.bisect_left(self.frames, index) :][:1]
        if later and later[0] - index <= self.horizon:  # a backward carry will need it
            self._spill("grays", gray.shape, np.uint8).put(index, gray)

    def reaches(self, index: int, last_cut: int) -> bool:
        """Whether a forward carry can reach frame ``index`` (so needs the motion into it),
        the last cut at or before it being at ``last_cut``: a key after that cut and before
        it, within ``horizon`` frames."""
        before = bisect.bisect_left(self.frames, index)
        return (
            before > 0
            and last_cut <= self.frames[before - 1]
            and (index - self.frames[before - 1] <= self.horizon)
        )

    def _backward(self) -> None:
        """Each key's colour carried back towards the start of its shot, until it fades, meets
        a cut or meets the key before it; spilled one frame at a time."""
        grays, keys = self._spills.get("grays"), self._spills.get("keys")
        ordered = [k for k in self.frames if k < self._count]
        for before, key in zip([-1, *ordered], ordered, strict=False):
            chroma = keys.get(key)
            state: tuple[np.ndarray, np.ndarray] | None = (
                chroma,
                np.ones(chroma.shape[:2], np.float32),
            )
            later = grays.get(key) if grays is not None and key in grays.slots else None
            index = key - 1
            while state is not None and index > before and index + 1 not in self._cuts:
                gray = grays.get(index) if grays is not None else None
                if gray is None or later is None:
                    break
                state = self._step(state, later, gray)
                if state is not None:
                    self._spill("backward", (*gray.shape, chroma.shape[2] + 1)).put(
                        index, np.dstack([state[0], state[1]])
                    )
                later, index = gray, index - 1

    def carried(self) -> Iterator[tuple[np.ndarray, np.ndarray] | None]:
        """For each frame pushed, in order: (chroma, confidence) or None. Can be read again."""
        if not self._finished:
            self._backward()
            self._finished = True
        forward, backward = self._spills.get("forward"), self._spills.get("backward")
        keys = self.frames
        for index in range(self._count):
            ahead = forward.get(index) if forward is not None else None
            behind = backward.get(index) if backward is not None else None
            near = 0.5
            if ahead is not None and behind is not None:  # a key either side reaches it
                after = bisect.bisect_right(keys, index)
                near = (keys[after] - index) / (keys[after] - keys[after - 1])
            yield _merged(ahead, behind, near)

    def shot_start(self, index: int) -> int:
        """The first frame of frame ``index``'s shot, as the cuts pushed mark them."""
        at = bisect.bisect_right(self._cut_list, index)
        return self._cut_list[at - 1] if at else 0

    def key_frames(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(first frame of its shot, gray, chroma) of each key pushed, in order."""
        grays, keys = self._spills.get("grays"), self._spills.get("keys")
        for index in (k for k in self.frames if k < self._count):
            yield self.shot_start(index), grays.get(index), keys.get(index)

    def keyed(self) -> Iterator[Keyed]:
        """For each frame pushed, in order: its ``Keyed``, the carry and its shot's bank."""
        for index, carried in enumerate(self.carried()):
            yield Keyed(carried, self.banks.get(self.shot_start(index)))


def _merged(
    ahead: np.ndarray | None, behind: np.ndarray | None, near: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """(chroma, confidence) of a frame from its forward and backward records (hxwx(C+1):
    chroma then confidence). Where both reach it, each weighs by its confidence times its
    nearness: ``near`` for the key before, 1 - ``near`` for the key after."""
    if ahead is None or behind is None:
        one = ahead if ahead is not None else behind
        return None if one is None else (one[..., :-1], one[..., -1])
    wa, wb = ahead[..., -1:], behind[..., -1:]
    confidence = np.maximum(wa, wb)[..., 0]
    wa, wb = wa * near, wb * (1 - near)
    total = wa + wb
    chroma = np.where(
        total > 0,
        (wa * ahead[..., :-1] + wb * behind[..., :-1]) / np.maximum(total, 1e-6),
        ahead[..., :-1],
    )
    return chroma.astype(np.float32), confidence


def carry_keys(
    src: Path,
    keys: Path,
    info: VideoInfo,
    size: tuple[int, int],
    gray: Callable[[np.ndarray], np.ndarray],
    on_frame: Callable[[int], None] | None = None,
    keep: Callable[[np.ndarray], None] | None = None,
) -> Propagator:
    """The first pass of ``render --keyframes``: ``src``'s luma alone, decoded with the render's
    own shot detector, ``gray`` turning each stored luma plane into the working size ``size``
    (w, h); the keys (a folder, or a video) checked against their frames and carried through
    their shots. Keys are upright, as the video is shown; a rotated video's planes are stored
    turned, so each key is turned the same way first. A key past the end, or a key video of
    another length, is a KeyframeError too. ``on_frame(frames done)`` hears after each frame;
    ``keep`` is handed each key's RGB as the model's frames are turned (``adapt.KeySample``)."""
    source = open_keys(keys, info)
    turn = -(info.rotation // 90)  # display -> stored orientation
    propagator, count, last_cut = Propagator(source.frames, decay_at(info.frame_rate)), 0, -1
    images = source.images()
    try:
        with VideoReader(src, planes=True) as reader:

            def grays() -> Iterator[tuple[int, np.ndarray, bool]]:
                nonlocal last_cut
                for frame, cut in CutMarks.attach(reader).mark(reader):
                    last_cut = frame.index if cut else last_cut
                    yield frame.index, gray(frame.image), cut

            # The forward carry's flows depend on the grays alone: found ahead on a pool.
            for _, small, cut, motion in motions_ahead(
                grays(), flow=motion_flow, needed=lambda i: propagator.reaches(i, last_cut)
            ):
                key = next(images)
                if key is not None:
                    key = np.ascontiguousarray(np.rot90(key, turn))
                    check_luma(key, small, source.name(count), count)
                    if keep is not None:
                        keep(key)
                    key = key_chroma(key, small.shape, info.matrix, info.full_range)
                propagator.push(small, cut, key, motion)
                count += 1
                if on_frame is not None:
                    on_frame(count)
        source.check_length(count, src)
    except BaseException:
        propagator.close()
        raise
    finally:
        images.close()  # a key video's reader
    return propagator
