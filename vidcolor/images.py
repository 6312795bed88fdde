"""Still images in and out of the library: one reader for every stage that takes them
(training folders, rendered folders, eval, keyframes), so each can say what went wrong with
a file in its own words without catching another stage's error.

The reader is careful with what it is handed: it reads only regular files (files.py), and it
reads the size an image declares in its header before decoding it, so a small file that
declares a huge image (an image bomb) is refused in one line instead of asking for gigabytes."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from vidcolor.errors import UserError
from vidcolor.files import read_regular

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}

# The most pixels an image may declare: 2**27 (134 Mpx, e.g. 16384 x 8192) holds 8K video
# frames (33 Mpx) and the largest camera photos with room to spare, and stays 8x below
# OpenCV's own limit (2**30), whose refusal comes only after the allocation it guards.
MAX_PIXELS = 2**27


class ImageError(UserError):
    """An image file cannot be read."""


class ImageTooLargeError(ImageError):
    """An image declares more pixels than the reader was allowed: ``size`` is its (w, h)."""

    def __init__(self, message: str, size: tuple[int, int]) -> None:
        super().__init__(message)
        self.size = size


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(w, h) from a JPEG's first start-of-frame segment (SOF0-15 but DHT, JPG and DAC)."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length field
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """(w, h) from a WebP's first chunk: lossy (VP8), lossless (VP8L) or extended (VP8X)."""
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) that a PNG, JPEG, WebP or BMP file's header declares, read without
    decoding; None for anything else, or a header too short to say."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP" and len(data) >= 30:
        return _webp_size(data)
    if data.startswith(b"BM") and len(data) >= 26:
        if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER
            return struct.unpack("<HH", data[18:22])
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h)  # a negative height: rows stored top-down
    return None


def read_rgb(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """HxWx3 uint8 RGB, or ImageError naming the file: a file that is not regular, a header
    that is not PNG, JPEG, WebP or BMP, more than ``max_pixels`` declared (ImageTooLargeError,
    refused before any decoding), or data OpenCV cannot decode. Decoded from bytes read in
    Python: cv2.imread crashes the process on file names that are not valid UTF-8."""
    try:
        data = read_regular(path, "images")
    except UserError as e:  # an ImageError, which a folder render catches to go on
        raise ImageError(str(e)) from None
    size = declared_size(data)
    if size is None:
        raise ImageError(f"{path}: not a readable image (corrupt, or not PNG, JPEG, WebP or BMP)")
    w, h = size
    if w * h > max_pixels:
        raise ImageTooLargeError(
            f"{path}: declares {w}x{h} pixels, more than vidcolor reads ({max_pixels} pixels)",
            size,
        )
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:  # OpenCV refuses some damaged files by raising, others by None
        img = None
    if img is None:
        raise ImageError(f"{path}: not a readable image (corrupt or unsupported)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
