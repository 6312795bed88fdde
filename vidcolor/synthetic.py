"""Generated footage whose shot boundaries are known: for tests, benchmarks and demos.

``cartoon(seed)`` draws flat-colour shapes with outlines over a panning background, shot by
shot, joined by hard cuts, fades through black and cross-dissolves, with white flashes inside
some shots (not boundaries). ``replay(seed)`` imitates a strategy-game replay: a camera that
scrolls over one large map and sometimes jumps (a boundary), under a static HUD (bottom panel
with a minimap, top bar). Each returns an ``Episode``: a frame function plus the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np


@dataclass
class Episode:
    frame: Callable[[int], np.ndarray]  # index -> HxWx3 uint8 RGB
    length: int
    size: tuple[int, int]  # (width, height)
    cuts: list[tuple[int, int, str]] = field(default_factory=list)  # (first, last, kind)
    flashes: list[int] = field(default_factory=list)  # first frame of each flash
    hud: list[tuple[int, int, int, int]] = field(default_factory=list)  # (x, y, w, h)

    def write(
        self,
        path: Path,
        fps: int = 24,
        crf: int = 16,
        faststart: bool = False,
        codec: str = "libx264",
    ) -> Path:
        """Encode (H.264 unless told; the container from the suffix; MP4 index first on
        request)."""
        w, h = self.size
        options = {"movflags": "+faststart"} if faststart else {}
        with av.open(str(path), "w", options=options) as out:
            s = out.add_stream(codec, rate=fps)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.options = {"crf": str(crf)} | ({"preset": "ultrafast"} if codec == "libx264" else {})
            for i in range(self.length):
                f = av.VideoFrame.from_ndarray(self.frame(i), format="rgb24")
                f.pts = i
                out.mux(s.encode(f))
            out.mux(s.encode(None))
        return path


def _shot_picture(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, list]:
    """A background twice the frame's width (to pan over) and the shot's moving shapes."""
    bg = np.empty((h, 2 * w, 3), np.uint8)
    top, bottom = rng.integers(30, 225, 3), rng.integers(30, 225, 3)
    ramp = np.linspace(0, 1, h)[:, None, None]
    bg[:] = (top * (1 - ramp) + bottom * ramp).astype(np.uint8)
    for _ in range(int(rng.integers(3, 7))):  # scenery: filled, outlined blobs
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        centre = (int(rng.integers(0, 2 * w)), int(rng.integers(h // 3, h)))
        axes = (int(rng.integers(w // 12, w // 4)), int(rng.integers(h // 10, h // 3)))
        cv2.ellipse(bg, centre, axes, 0, 0, 360, c, -1)
        cv2.ellipse(bg, centre, axes, 0, 0, 360, (0, 0, 0), 2)
    shapes = []
    for _ in range(int(rng.integers(1, 4))):  # characters: they move on their own
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        size = int(rng.integers(h // 8, h // 4))
        start = rng.uniform([0, h * 0.2], [w, h * 0.8])
        speed = rng.uniform(-3, 3, 2)
        shapes.append((colour, size, start, speed))
    return bg, shapes


def cartoon(seed: int, length: int = 480, size: tuple[int, int] = (320, 180)) -> Episode:
    """Shots of 24-96 frames: 60% hard cuts, 20% fades through black (20 frames), 20%
    dissolves (12 frames); a two-frame white flash inside one shot in three."""
    rng = np.random.default_rng(seed)
    w, h = size
    starts, kinds, i = [0], [], 0
    while True:
        i += int(rng.integers(24, 97))
        if i >= length - 24:
            break
        starts.append(i)
        kinds.append(str(rng.choice(["cut", "fade", "dissolve"], p=[0.6, 0.2, 0.2])))
    shots = [_shot_picture(np.random.default_rng((seed, k)), w, h) for k in range(len(starts))]
    pans = [float(v) for v in rng.uniform(-1.5, 1.5, len(starts))]  # never past the edge
    ep = Episode(lambda i: _cartoon_frame(i), length, size)
    spans = {"cut": 0, "fade": 20, "dissolve": 12}
    for s, kind in zip(starts[1:], kinds, strict=True):
        n = spans[kind]
        ep.cuts.append((s - n // 2, s + max(0, n - n // 2 - 1), kind))
    for k, (a, b) in enumerate(zip(starts, [*starts[1:], length], strict=True)):
        if k % 3 == 1 and b - a > 40:
            ep.flashes.append(a + (b - a) // 2)

    def shot(k: int, i: int) -> np.ndarray:
        bg, shapes = shots[k]
        t = i - starts[k]
        x0 = round(w / 2 + pans[k] * t) % w
        img = np.ascontiguousarray(bg[:, x0 : x0 + w])
        for colour, r, start, speed in shapes:
            cx, cy = np.abs((start + speed * t + [w, h]) % [2 * w, 2 * h] - [w, h])  # bounce
            cv2.circle(img, (int(cx), int(cy)), r, colour, -1)
            cv2.circle(img, (int(cx), int(cy)), r, (0, 0, 0), 2)
        return img

    def _cartoon_frame(i: int) -> np.ndarray:
        k = int(np.searchsorted(starts, i, side="right")) - 1
        img = shot(k, i)
        for first, last, kind in ep.cuts:
            if kind == "cut" or not first <= i <= last:
                continue
            pos = (i - first + 0.5) / (last - first + 1)  # 0..1 through the transition
            boundary = first + (last - first + 1) // 2
            if kind == "fade":
                level = 1 - 2 * pos if pos < 0.5 else 2 * pos - 1
                img = (img * level).astype(np.uint8)
            else:  # dissolve: the old shot continues under the new one
                a = shot(k - 1, i) if i >= boundary else img
                b = img if i >= boundary else shot(k + 1, i)
                img = cv2.addWeighted(a, 1 - pos, b, pos, 0)
        if any(f <= i < f + 2 for f in ep.flashes):
            img = np.full_like(img, 255)
        return img

    return ep


def replay(seed: int, length: int = 480, size: tuple[int, int] = (320, 180)) -> Episode:
    """A camera over one 8x-frame map: it scrolls (1-4 px a frame) and every 40-120 frames
    jumps somewhere else (a boundary). A static HUD: top bar, bottom panel with a minimap
    whose viewport marker moves with the camera."""
    rng = np.random.default_rng(seed)
    w, h = size
    mw, mh = 4 * w, 4 * h
    noise = cv2.resize(
        rng.random((mh // 16, mw // 16)).astype(np.float32), (mw, mh), interpolation=cv2.INTER_CUBIC
    )
    terrain = np.stack([90 + 60 * noise, 110 + 50 * noise, 60 + 30 * noise], -1)
    world = np.clip(terrain, 0, 255).astype(np.uint8)
    for _ in range(160):  # bases, rocks and units of many colours
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, mw)), int(rng.integers(0, mh))
        r = int(rng.integers(4, 18))
        cv2.rectangle(world, (x, y), (x + 2 * r, y + r), c, -1)
    bar, panel = h // 15, h // 5
    hud = [(0, 0, w, bar), (0, h - panel, w, panel)]
    mini = cv2.resize(world, (panel * 4 // 3 - 8, panel - 8), interpolation=cv2.INTER_AREA)
    pos = rng.uniform([0, 0], [mw - w, mh - h])
    path, jumps, next_jump = [], [], int(rng.integers(40, 121))
    vel = rng.uniform(-4, 4, 2)
    for i in range(length):
        if i == next_jump:
            far = pos
            while np.abs(far - pos).max() < w:  # a jump lands well outside the old view
                far = rng.uniform([0, 0], [mw - w, mh - h])
            pos, vel = far, rng.uniform(-4, 4, 2)
            jumps.append(i)
            next_jump = i + int(rng.integers(40, 121))
        pos = np.clip(pos + vel, 0, [mw - w, mh - h])
        path.append(pos.astype(int))

    def frame(i: int) -> np.ndarray:
        x, y = path[i]
        img = world[y : y + h, x : x + w].copy()
        img[:bar] = (24, 28, 40)
        cv2.putText(
            img,
            "MINERALS 500  GAS 200",
            (w // 2, bar - 3),
            cv2.FONT_HERSHEY_PLAIN,
            0.7,
            (200, 220, 255),
            1,
        )
        img[h - panel :] = (30, 34, 48)
        img[h - panel + 4 : h - 4, 4 : 4 + mini.shape[1]] = mini
        mx = 4 + x * mini.shape[1] // mw
        my = h - panel + 4 + y * mini.shape[0] // mh
        cv2.rectangle(
            img, (mx, my), (mx + mini.shape[1] // 4, my + mini.shape[0] // 4), (255, 255, 255), 1
        )
        return img

    return Episode(frame, length, size, [(j, j, "jump") for j in jumps], [], hud)
