"""Where the picture is: letterbox bars (never lit over the whole video) and a static HUD
(never changing), from the statistics of a video's whole run of candidates."""

from __future__ import annotations

import cv2
import numpy as np

from vidcolor.data.dataset_build.presets import (
    HUD_MAX_AREA,
    HUD_MIN_AREA,
    HUD_MIN_SAMPLES,
    HUD_STD,
    LETTERBOX_LEVEL,
    Box,
)


def letterbox(brightest: np.ndarray) -> Box:
    """The picture inside the bars, from the per-pixel maximum over the whole video: rows and
    columns at the edges that were never lit are bars. Judged on the whole video, not frame by
    frame, so a dark frame or a fade cannot shrink the picture."""
    h, w = brightest.shape
    rows = np.flatnonzero(brightest.max(axis=1) > LETTERBOX_LEVEL)
    cols = np.flatnonzero(brightest.max(axis=0) > LETTERBOX_LEVEL)
    if rows.size == 0 or cols.size == 0:
        return 0, 0, w, h
    # Where there is a bar, step a little further in: compression smears the bar's edge into
    # a row or two of neither bar nor picture.
    step_y, step_x = max(2, h // 100), max(2, w // 100)
    top = rows[0] + step_y if rows[0] > 0 else 0
    bottom = rows[-1] + 1 - step_y if rows[-1] < h - 1 else h
    left = cols[0] + step_x if cols[0] > 0 else 0
    right = cols[-1] + 1 - step_x if cols[-1] < w - 1 else w
    if bottom <= top or right <= left:
        return 0, 0, w, h
    return int(left), int(top), int(right - left), int(bottom - top)


def static_regions(std: np.ndarray, samples: int) -> tuple[list[Box], np.ndarray]:
    """HUD boxes (in ``std``'s pixels) and the HUD's mask: connected areas whose temporal
    standard deviation stayed under ``HUD_STD``, closed and with their holes filled (a
    minimap's moving marker is still HUD). Nothing when there are too few samples, or when
    most of the picture is static (a still shot, not a HUD)."""
    mask = (std < HUD_STD).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    keep = np.zeros_like(mask)
    if samples < HUD_MIN_SAMPLES or mask.mean() > HUD_MAX_AREA:
        return [], keep
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    boxes = []
    for k in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[k])
        if area >= HUD_MIN_AREA * mask.size:
            boxes.append((x, y, w, h))
            keep[labels == k] = 1
    keep = cv2.morphologyEx(keep, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    outside = np.pad(keep, 1)  # flood the background from the border: what it misses is a hole
    cv2.floodFill(outside, None, (0, 0), 1)
    keep |= (outside[1:-1, 1:-1] == 0).astype(np.uint8)
    return boxes, cv2.dilate(keep, np.ones((3, 3), np.uint8))  # a pixel of margin


def largest_free_box(blocked: np.ndarray) -> Box | None:
    """The largest axis-aligned rectangle with no blocked pixel (histogram method, one pass),
    or None when every pixel is blocked."""
    rows, cols = blocked.shape
    heights = np.zeros(cols + 1, np.int64)
    best: tuple[int, Box | None] = (0, None)
    for y in range(rows):
        heights[:cols] = np.where(blocked[y], 0, heights[:cols] + 1)
        stack: list[int] = []
        for x in range(cols + 1):
            while stack and heights[stack[-1]] >= heights[x]:
                h = int(heights[stack.pop()])
                left = stack[-1] + 1 if stack else 0
                if h * (x - left) > best[0]:
                    best = (h * (x - left), (left, y - h + 1, x - left, h))
            stack.append(x)
    return best[1]


class RunningStd:
    """Per-pixel standard deviation over a stream of images (Welford), in constant memory."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, image: np.ndarray) -> None:
        x = image.astype(np.float64)
        if self.mean is None:
            self.mean, self.m2 = np.zeros_like(x), np.zeros_like(x)
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def std(self) -> np.ndarray | None:
        return None if self.m2 is None else np.sqrt(self.m2 / self.n)


def hud(
    std: np.ndarray, samples: int, box: Box, shape: tuple[int, int]
) -> tuple[list[Box], np.ndarray | None]:
    """Static HUD boxes (candidate pixels) inside ``box``, from the whole frame's quarter-size
    temporal statistics, with their mask over ``box`` at that size."""
    if std.size == 0:
        return [], None
    x, y, w, h = box
    sx, sy = shape[1] / std.shape[1], shape[0] / std.shape[0]
    x0, y0 = round(x / sx), round(y / sy)
    inside = std[y0 : y0 + max(1, round(h / sy)), x0 : x0 + max(1, round(w / sx))]
    boxes, mask = static_regions(inside, samples)
    scaled = [
        (x + round(a * sx), y + round(b * sy), round(c * sx), round(d * sy)) for a, b, c, d in boxes
    ]
    return scaled, mask


def scaled(box: Box, factor: float) -> list[int]:
    return [round(v * factor) for v in box]


def fit(box: Box, aspect: float) -> Box:
    """The centred part of ``box`` with width/height ``aspect``."""
    x, y, w, h = box
    if w / h > aspect:
        nw = max(1, round(h * aspect))
        return x + (w - nw) // 2, y, nw, h
    nh = max(1, round(w / aspect))
    return x, y + (h - nh) // 2, w, nh
