"""Keyframe propagation: colour a user gives on a few frames (``render --keyframes KEYS``) is
carried along the motion to the frames around them, forwards and backwards within the shot.

Keys are files named by their 0-based frame index (``120.png``, ``frame_000120.png``: the last
run of digits in the stem). Each is checked against its frame's luma, since a key put on the
wrong frame would smear wrong colour over the whole shot.

The carried colour is Cb/Cr (code values 0-255, as ``render.rgb_to_cbcr`` gives them) at the
render's working size: that is where ``Colorizer.chroma`` holds its prediction and where the
stabiliser blends, so the carried chroma blends with the prediction with no conversion, and
the output keeps the video's own luma (Lab ab would need the key's L, which the video replaces).

``Propagator`` works on one video's working-size grays, pushed in order with the cut marks.
The forward carry runs as frames arrive; the backward carry needs the frames before a key
after the key itself, so the grays it will need (those within ``horizon`` frames before a
later key) and the carried results are spilled to files in a temporary folder, and read back
one frame at a time: memory holds a few frames whatever the shot's length; disk holds only
frames within reach of a key.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from vidcolor.dataset import IMAGE_SUFFIXES, read_rgb
from vidcolor.errors import UserError
from vidcolor.metrics import warp
from vidcolor.temporal import LUMA_MATCH, CutMarks, measure_motion
from vidcolor.video import VideoInfo, VideoReader

# Confidence kept per frame carried, where the flow is trusted: it halves in about 17 frames
# and falls under MIN_CONFIDENCE after about 73 (3 s at 24 fps): far from a key, the model's
# own guess is worth more than colour carried through many imperfect flows.
DECAY = 0.96
MIN_CONFIDENCE = 0.05  # below this a carried pixel counts as nothing carried
# Mean absolute luma difference (gray levels, 0-255) between a key and its frame, at
# LUMA_SIZE, once a tone curve maps the key's luma onto the frame's: above it the key belongs
# to another frame. A JPEG or a mildly graded copy of the right frame stays under it; another
# shot, or the same shot some frames on in clear motion, goes over. A neighbour in a slow
# shot passes, and does little harm there: its colour is nearly where the frame's is.
LUMA_MISMATCH = 3.5
LUMA_SIZE = 64  # long side of the common size the luma check compares at
STILL = 1.0  # pixels of flow under which a matching luma is trust enough (flow noise on flats)


class KeyframeError(UserError):
    """A keyframe folder or file cannot be used as given."""


def frame_index(path: Path) -> int:
    """The frame a key file is for: the last run of digits in its stem, 0-based."""
    runs = re.findall(r"\d+", path.stem)
    if not runs:
        raise KeyframeError(f"{path}: no frame number in the name (name keys like 120.png "
                            "or frame_000120.png, 0-based)")  # fmt: skip
    return int(runs[-1])


def load_keyframes(folder: Path, width: int, height: int) -> dict[int, np.ndarray]:
    """Frame index -> HxWx3 uint8 RGB key for every image in ``folder`` (dot files skipped),
    each the video's display size ``width`` x ``height``. Any file that is not a usable key
    (no frame number, a frame given twice, not an image, another size) is a KeyframeError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KeyframeError(f"{folder}: not a folder of keyframes")
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not files:
        raise KeyframeError(f"{folder}: no keyframes in it")
    seen: dict[int, Path] = {}
    for path in files:
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            raise KeyframeError(f"{path}: not an image (keys are png, jpg, webp or bmp)")
        index = frame_index(path)
        if index in seen:
            raise KeyframeError(f"{path}: frame {index} already has a key ({seen[index].name})")
        seen[index] = path
    keys: dict[int, np.ndarray] = {}
    for index, path in sorted(seen.items()):
        try:
            rgb = read_rgb(path)
        except UserError as e:
            raise KeyframeError(str(e)) from None
        h, w = rgb.shape[:2]
        if (w, h) != (width, height):
            raise KeyframeError(f"{path}: {w}x{h}, but the video is {width}x{height} (display "
                                "size); keys must be the video's size")  # fmt: skip
        keys[index] = rgb
    return keys


def _small(gray: np.ndarray) -> np.ndarray:
    h, w = gray.shape
    scale = LUMA_SIZE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float64)


def luma_difference(key_rgb: np.ndarray, frame_gray: np.ndarray) -> float:
    """Mean absolute difference in gray levels between a key's luma (HxWx3 uint8 RGB) and its
    frame's full-range gray (uint8, any size), at a common small size, once a quadratic tone
    curve is fitted (so a graded key still matches: grading changes tones, not the picture)."""
    key = _small(cv2.cvtColor(key_rgb, cv2.COLOR_RGB2GRAY))
    frame = _small(cv2.resize(frame_gray, key_rgb.shape[1::-1], interpolation=cv2.INTER_AREA))
    k = key.ravel() / 255
    a = np.stack([k * k, k, np.ones(k.size)], 1)  # a curve: grading is rarely a straight line
    fit, *_ = np.linalg.lstsq(a, frame.ravel(), rcond=None)
    return float(np.abs(a @ fit - frame.ravel()).mean())


def check_luma(key_rgb: np.ndarray, frame_gray: np.ndarray, name: str, index: int,
               threshold: float = LUMA_MISMATCH) -> float:  # fmt: skip
    """``luma_difference``, or a KeyframeError naming the key when it is over ``threshold``:
    the key was made from another frame."""
    diff = luma_difference(key_rgb, frame_gray)
    if diff > threshold:
        raise KeyframeError(f"{name}: does not match frame {index} (luma differs by "
                            f"{diff:.1f} gray levels, over {threshold:g}); is it the right "
                            "frame?")  # fmt: skip
    return diff


def key_chroma(key_rgb: np.ndarray, gray_shape: tuple[int, int], matrix: str,
               full_range: bool) -> np.ndarray:  # fmt: skip
    """A key (HxWx3 uint8 RGB) -> its Cb/Cr at the working size ``gray_shape`` (h, w):
    hxwx2 float32 code values, what ``Colorizer.chroma`` blends."""
    import torch  # here, not above: render will import this module

    from vidcolor.render import rgb_to_cbcr

    h, w = gray_shape
    small = cv2.resize(key_rgb, (w, h), interpolation=cv2.INTER_AREA)
    rgb = torch.from_numpy(small).permute(2, 0, 1)[None].double() / 255
    return rgb_to_cbcr(rgb, matrix, full_range)[0].permute(1, 2, 0).float().numpy()


def blend(predicted: np.ndarray, carried: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """confidence * carried + (1 - confidence) * predicted, per pixel. ``predicted`` and
    ``carried``: HxWxC float32; ``confidence``: HxW in [0, 1]. Where it is 1 (a key's own
    frame) the result is the carried chroma exactly."""
    c = confidence[..., None].astype(np.float32)
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


class Propagator:
    """One video's keys carried along the motion. ``keys``: frame index -> the key's chroma
    at the working size (``key_chroma``). Push every frame's working-size gray in order
    (``push``), then read ``carried()``: for each frame, in order, (chroma hxwxC float32,
    confidence hxw float32 in [0, 1]) or None where nothing reaches it.

    Confidence is 1 on a key's frame and is multiplied, per frame carried, by ``decay`` and by
    the flow's soft trust (``temporal.measure_motion``: forward-backward and luma checks), so it
    falls with distance and wherever the flow fails; under ``MIN_CONFIDENCE`` it is 0. Nothing
    crosses a cut, a frame whose flow fails over most of the picture, or another key. A frame
    reached from both sides takes the confidence-weighted mean of the two and the larger
    confidence. A context manager: the spill folder is removed on close."""

    def __init__(self, keys: dict[int, np.ndarray], decay: float = DECAY,
                 folder: Path | None = None) -> None:  # fmt: skip
        self.keys, self.decay = keys, decay
        # Frames a carry can reach before its confidence falls under MIN_CONFIDENCE.
        self.horizon = (math.inf if decay >= 1 else
                        math.ceil(math.log(MIN_CONFIDENCE) / math.log(decay)))  # fmt: skip
        self._tmp = tempfile.TemporaryDirectory(prefix="vidcolor-keys-", dir=folder)
        self._spills: dict[str, _Spill] = {}
        # The medium preset, not the stabiliser's fast one: a carry chains dozens of flows, so
        # a flow that falls short of the motion drags colour off its surface frame by frame.
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._count = 0
        self._cuts: set[int] = set()
        self._prev: np.ndarray | None = None
        self._state: tuple[np.ndarray, np.ndarray] | None = None  # forward carry
        self._finished = False

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

    def _step(self, state: tuple[np.ndarray, np.ndarray] | None, gray_from: np.ndarray,
              gray_to: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
        """``state`` (chroma, confidence) on the frame of ``gray_from`` carried to the frame
        of ``gray_to``; None when nothing is left of it."""
        if state is None or gray_from.shape != gray_to.shape:
            return None
        motion = measure_motion(self._flow, gray_from, gray_to)
        if motion.soft is None:  # the flow fails over most of the picture: an unmarked cut
            return None
        chroma, confidence = state
        # Trusted: the flow's checks pass, or it barely moves and the carried luma matches. On
        # flat areas the forward-backward check fails on harmless sub-pixel noise, and what a
        # carry loses once stays lost for every frame after; where something really moves (an
        # uncovered background), the check still decides.
        carried_luma = warp(gray_from, motion.back).astype(np.float32)
        still = (np.hypot(motion.back[..., 0], motion.back[..., 1]) < STILL) & (
            np.abs(carried_luma - gray_to) < LUMA_MATCH)  # fmt: skip
        trusted = ((motion.soft > 0) | still).astype(np.float32)
        confidence = warp(confidence, motion.back) * trusted * np.float32(self.decay)
        confidence[confidence < MIN_CONFIDENCE] = 0
        if not confidence.any():
            return None
        return warp(chroma, motion.back), confidence

    def push(self, gray: np.ndarray, cut: bool = False) -> None:
        """The next frame's working-size full-range gray (hxw uint8); ``cut``: it starts a new
        scene (nothing is carried across)."""
        index, self._count = self._count, self._count + 1
        if cut:
            self._cuts.add(index)
        state = None if cut or self._prev is None else self._step(self._state, self._prev, gray)
        if index in self.keys:
            key = self.keys[index].astype(np.float32)
            state = key, np.ones(gray.shape, np.float32)
        self._state, self._prev = state, gray
        if state is not None:
            self._spill("forward", (*gray.shape, state[0].shape[2] + 1)).put(
                index, np.dstack([state[0], state[1]])
            )
        if any(0 <= k - index <= self.horizon for k in self.keys):  # a backward carry needs it
            self._spill("grays", gray.shape, np.uint8).put(index, gray)

    def _backward(self) -> None:
        """Each key's colour carried back towards the start of its shot, until it fades, meets
        a cut or meets the key before it; spilled one frame at a time."""
        grays = self._spills.get("grays")
        ordered = sorted(k for k in self.keys if k < self._count)
        for before, key in zip([-1, *ordered], ordered, strict=False):
            chroma = self.keys[key].astype(np.float32)
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
        for index in range(self._count):
            ahead = forward.get(index) if forward is not None else None
            behind = backward.get(index) if backward is not None else None
            yield _merged(ahead, behind)


def _merged(ahead: np.ndarray | None, behind: np.ndarray | None
            ) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
    """(chroma, confidence) of a frame from its forward and backward records (hxwx(C+1):
    chroma then confidence), weighted by confidence where both reach it."""
    if ahead is None or behind is None:
        one = ahead if ahead is not None else behind
        return None if one is None else (one[..., :-1], one[..., -1])
    wa, wb = ahead[..., -1:], behind[..., -1:]
    total = wa + wb
    chroma = np.where(total > 0, (wa * ahead[..., :-1] + wb * behind[..., :-1])
                      / np.maximum(total, 1e-6), ahead[..., :-1])  # fmt: skip
    return chroma.astype(np.float32), np.maximum(wa, wb)[..., 0]


def carry_keys(src: Path, folder: Path, info: VideoInfo, size: tuple[int, int],
               gray: Callable[[np.ndarray], np.ndarray]) -> Propagator:  # fmt: skip
    """The first pass of ``render --keyframes``: ``src``'s luma alone, decoded with the render's
    own shot detector, ``gray`` turning each stored luma plane into the working size ``size``
    (w, h); each key checked against its frame and carried through its shot. A key past the
    end is a KeyframeError too."""
    keys = load_keyframes(folder, info.width, info.height)
    chroma = {i: key_chroma(k, size[::-1], info.matrix, info.full_range) for i, k in keys.items()}
    propagator, count = Propagator(chroma), 0
    try:
        with VideoReader(src, planes=True) as reader:
            for frame, cut in CutMarks.attach(reader).mark(reader):
                small = gray(frame.image)
                if count in keys:
                    check_luma(keys[count], small, f"{folder}: the key for frame {count}", count)
                propagator.push(small, cut)
                count += 1
        if late := sorted(i for i in keys if i >= count):
            raise KeyframeError(f"{folder}: a key for frame {late[0]}, but {src.name} has "
                                f"{count} frames (keys: 0-based frame numbers)")  # fmt: skip
    except BaseException:
        propagator.close()
        raise
    return propagator
