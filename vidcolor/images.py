"""Still images in and out of the library: one reader for every stage that takes them
(training folders, rendered folders, eval, keyframes), so each can say what went wrong with
a file in its own words without catching another stage's error."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vidcolor.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


class ImageError(UserError):
    """An image file cannot be read."""


def read_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB, or ImageError naming the file. Decoded from bytes read in Python:
    cv2.imread crashes the process on file names that are not valid UTF-8."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror})") from None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ImageError(f"{path}: not a readable image (corrupt or unsupported)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
