"""The keys of ``render --keyframes KEYS``: where they come from, and the checks that each is
the frame it says it is.

KEYS is a folder of images, each named by its frame: a stem ending in a timecode
(``00:01:02.500.png`` or ``00-01-02.500.png``, as ``vidcolor scenes`` prints them) is the
frame shown at that time; otherwise the last run of digits is a 0-based frame number
(``120.png``, ``frame_000120.png``). Or KEYS is a colour video as long as the input, whose
frames that are not black are keys. Each key is checked against its frame's luma, since a key
put on the wrong frame would smear wrong colour over the whole shot.
Keys are read one at a time, as the first pass reaches their frames, so their number does not
bound memory.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch

from vidcolor.color import rgb_to_cbcr
from vidcolor.errors import UserError
from vidcolor.images import IMAGE_SUFFIXES, ImageTooLargeError, read_rgb
from vidcolor.video import VideoError, VideoInfo, VideoReader, probe

# Mean absolute luma difference (gray levels, 0-255) between a key and its frame, at
# LUMA_SIZE, once a tone curve maps the key's luma onto the frame's: above it the key belongs
# to another frame. A JPEG or a mildly graded copy of the right frame stays under it; another
# shot, or the same shot some frames on in clear motion, goes over. A neighbour in a slow
# shot passes, and does little harm there: its colour is nearly where the frame's is.
LUMA_MISMATCH = 3.5
LUMA_SIZE = 64  # long side of the common size the luma check compares at
# A key video's frame is black, so no key, when its brightest 1% is darker than this
# (full-range gray): a dark key still has highlights; a black frame has at most noise.
BLACK = 24
TIMECODE = re.compile(r"(\d+)[:-](\d{2})[:-](\d{2}\.\d+)$")  # H:MM:SS.mmm, ':' or '-'


class KeyframeError(UserError):
    """A keyframe folder or file cannot be used as given."""


def frame_index(
    path: Path, frame_rate: Fraction | None = None, start: Fraction = Fraction(0)
) -> int:
    """The frame a key file is for: a stem ending in a timecode is the frame shown at that time
    (its offset from the video's ``start``, in seconds, at ``frame_rate``, to the nearest
    frame); otherwise the last run of digits in the stem, a 0-based frame number."""
    if match := TIMECODE.search(path.stem):
        if not frame_rate:
            raise KeyframeError(f"{path}: a timecode needs the video's frame rate")
        h, m, sec = match.groups()
        return max(0, round((int(h) * 3600 + int(m) * 60 + Fraction(sec) - start) * frame_rate))
    runs = re.findall(r"\d+", path.stem)
    if not runs:
        raise KeyframeError(
            f"{path}: no frame number in the name (name keys like 120.png, "
            "frame_000120.png (0-based) or 00:01:02.500.png)"
        )
    return int(runs[-1])


def key_files(
    folder: Path, frame_rate: Fraction | None = None, start: Fraction = Fraction(0)
) -> dict[int, Path]:
    """Frame index -> key file for every image in ``folder`` (dot files skipped; timecodes at
    ``frame_rate`` from ``start``). Anything that is not a key, and two keys for one frame,
    are a KeyframeError. The images are read later, one at a time (``read_key``)."""
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
        index = frame_index(path, frame_rate, start)
        if index in seen:
            raise KeyframeError(f"{path}: frame {index} already has a key ({seen[index].name})")
        seen[index] = path
    return dict(sorted(seen.items()))


def read_key(path: Path, width: int, height: int) -> np.ndarray:
    """A key file as HxWx3 uint8 RGB; a KeyframeError unless it is ``width`` x ``height``."""
    try:  # a key larger than the frame is refused from its header, before any decoding
        rgb = read_rgb(path, max_pixels=width * height)
        w, h = rgb.shape[1::-1]
    except ImageTooLargeError as e:
        w, h = e.size
    except UserError as e:
        raise KeyframeError(str(e)) from None
    if (w, h) != (width, height):
        raise KeyframeError(
            f"{path}: {w}x{h}, but the video is {width}x{height} (display "
            "size); keys must be the video's size"
        )
    return rgb


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


def check_luma(
    key_rgb: np.ndarray,
    frame_gray: np.ndarray,
    name: str,
    index: int,
    threshold: float = LUMA_MISMATCH,
) -> float:
    """``luma_difference``, or a KeyframeError naming the key when it is over ``threshold``:
    the key was made from another frame."""
    diff = luma_difference(key_rgb, frame_gray)
    if diff > threshold:
        raise KeyframeError(
            f"{name}: does not match frame {index} (luma differs by "
            f"{diff:.1f} gray levels, over {threshold:g}); is it the right "
            "frame?"
        )
    return diff


def key_chroma(
    key_rgb: np.ndarray, gray_shape: tuple[int, int], matrix: str, full_range: bool
) -> np.ndarray:
    """A key (HxWx3 uint8 RGB) -> its Cb/Cr at the working size ``gray_shape`` (h, w):
    hxwx2 float32 code values, what ``Colorizer.chroma`` blends."""
    h, w = gray_shape
    small = cv2.resize(key_rgb, (w, h), interpolation=cv2.INTER_AREA)
    rgb = torch.from_numpy(small).permute(2, 0, 1)[None].double() / 255
    return rgb_to_cbcr(rgb, matrix, full_range)[0].permute(1, 2, 0).float().numpy()


class FolderKeys:
    """Keys from a folder of images (``key_files``), read as their frames come."""

    def __init__(self, folder: Path, info: VideoInfo) -> None:
        self.folder, self.info = folder, info
        self.paths = key_files(folder, info.frame_rate, info.start_time)
        self.frames = list(self.paths)

    def name(self, index: int) -> str:
        """How an error names the key for frame ``index``."""
        return f"{self.paths[index]}"

    def images(self) -> Iterator[np.ndarray | None]:
        """Per frame of the input, in order and without end: its key (RGB, display size)."""
        width, height = self.info.display_size
        for index in itertools.count():
            path = self.paths.get(index)
            yield None if path is None else read_key(path, width, height)

    def check_length(self, count: int, src: Path) -> None:
        if late := [i for i in self.frames if i >= count]:
            raise KeyframeError(
                f"{self.folder}: a key for frame {late[0]}, but {src.name} has "
                f"{count} frames (keys: 0-based frame numbers)"
            )


class VideoKeys:
    """Keys from a colour video as long as the input: its frames that are not black."""

    def __init__(self, path: Path, info: VideoInfo) -> None:
        self.path = path
        try:
            keys = probe(path)
        except VideoError as e:
            raise KeyframeError(
                f"{path}: not a folder of keys nor a readable video ({e})"
            ) from None
        if keys.display_size != info.display_size:
            (w, h), (vw, vh) = keys.display_size, info.display_size
            raise KeyframeError(
                f"{path}: {w}x{h}, but the video is {vw}x{vh}; a key video must be its size"
            )
        self.frames, self.count = [], 0
        with VideoReader(path, gray=True, size=LUMA_SIZE) as reader:  # the keys: a first look
            for frame in reader:
                self.count += 1
                if np.percentile(frame.image, 99) >= BLACK:
                    self.frames.append(frame.index)
        if not self.frames:
            raise KeyframeError(f"{path}: every frame is black, so it holds no keyframes")

    def name(self, index: int) -> str:
        return f"{self.path}"

    def images(self) -> Iterator[np.ndarray | None]:
        keyed = set(self.frames)
        with VideoReader(self.path, autorotate=True) as reader:
            for frame in reader:
                yield frame.image if frame.index in keyed else None
        yield from itertools.repeat(None)  # a shorter video is found by check_length

    def check_length(self, count: int, src: Path) -> None:
        if self.count != count:
            raise KeyframeError(
                f"{self.path}: {self.count} frames, but {src.name} has {count}; "
                "a key video must be as long as the input"
            )


def open_keys(keys: Path, info: VideoInfo) -> FolderKeys | VideoKeys:
    """KEYS as given to ``render --keyframes``: a video file, or a folder of images."""
    return VideoKeys(keys, info) if keys.is_file() else FolderKeys(keys, info)
