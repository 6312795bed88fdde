"""Which candidates a dataset keeps: none next to a cut or inside a fade or dissolve, none dark,
blown out, greyscale or a near-duplicate, at most a preset's number per scene, spread evenly;
and which split each scene (or episode) goes to."""

from __future__ import annotations

from bisect import bisect_left
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from vidcolor.data.dataset import is_greyscale
from vidcolor.data.dataset_build.picture import hud, largest_free_box
from vidcolor.data.dataset_build.presets import BLOWN_OUT, DARK, SPLITS, Box, Preset
from vidcolor.data.dataset_build.scan import SMALL_WIDTH, Scan
from vidcolor.data.scenes import scene_of
from vidcolor.options import BuildOptions

DROPPED = (
    "near a cut",
    "in a fade or dissolve",
    "dark",
    "blown out",
    "greyscale",
    "duplicate",
    "over the scene cap",
)  # why candidates are left out, counted in the manifest


class Pick(NamedTuple):
    """A kept candidate: candidate ``k`` of ``scan`` (whose frames are in ``store``), the part
    of it to store (``box``), and its manifest row."""

    store: Path
    scan: Scan
    k: int
    box: Box
    row: dict


def usable(rgb: np.ndarray) -> str | None:
    """Why a frame cannot teach colour, or None when it can."""
    mean = float(rgb.mean())
    if mean < DARK:
        return "dark"
    if mean > BLOWN_OUT:
        return "blown out"
    if is_greyscale(rgb):
        return "greyscale"
    return None


def thumb(rgb: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (16, 16), interpolation=cv2.INTER_AREA).astype(np.int16)


def split_of(seed: int, episode: int, scene: int | None) -> str:
    """A deterministic split for a scene (or, with ``scene`` None, a whole episode)."""
    key = (seed, episode) if scene is None else (seed, episode, scene)
    u = np.random.default_rng(key).random()
    acc = 0.0
    for name, share in SPLITS:
        acc += share
        if u < acc:
            return name
    return SPLITS[-1][0]


def usable_candidates(
    scan: Scan, base: Path, preset: Preset, dropped: dict[str, int]
) -> dict[int, np.ndarray]:
    """Candidate index -> its 16x16 gray thumbnail (for the duplicate check), for the
    candidates away from cuts and transitions whose picture can teach colour."""
    rows, cuts = scan.rows, scan.cuts
    x, y, w, h = scan.picture
    sh, sw = scan.shape
    small_shape = (len(rows), max(1, SMALL_WIDTH * sh // sw), SMALL_WIDTH, 3)
    smalls = np.memmap(f"{base}.small.u8", np.uint8, "r", shape=small_shape)
    s = SMALL_WIDTH / sw  # the picture box in the small copies
    sx0, sy0 = min(SMALL_WIDTH - 1, int(x * s)), min(smalls.shape[1] - 1, int(y * s))
    sx1, sy1 = max(sx0 + 1, round((x + w) * s)), max(sy0 + 1, round((y + h) * s))
    thumbs: dict[int, np.ndarray] = {}
    for k, row in enumerate(rows):
        near = bisect_left(cuts, row["frame"] - preset.margin)
        if near < len(cuts) and abs(cuts[near] - row["frame"]) <= preset.margin:
            dropped["near a cut"] += 1
            continue
        if any(a <= row["frame"] <= b for a, b in scan.transitions):
            dropped["in a fade or dissolve"] += 1
            continue
        small = np.ascontiguousarray(smalls[k, sy0:sy1, sx0:sx1])
        reason = usable(small)  # the small picture's mean and colour spread are enough
        if reason:
            dropped[reason] += 1
            continue
        thumbs[k] = thumb(small)
    return thumbs


def picture_box(
    scan: Scan, base: Path, avoid_hud: bool, warnings: list[str], video: Path
) -> tuple[Box, list[Box]]:
    """The part of the candidates to store (inside the bars; clear of a static HUD with
    ``avoid_hud``, where enough stays clear), and the HUD's boxes, candidate pixels."""
    box = scan.picture
    x, y, w, h = box
    boxes, mask = hud(np.load(f"{base}.std.npy"), scan.samples, box, scan.shape)
    if avoid_hud and boxes and mask is not None:
        free = largest_free_box(mask)
        if free is None or free[2] * free[3] < 0.25 * mask.size:
            warnings.append(
                f"{video}: its static overlay leaves too little of the picture "
                "clear to keep it out; frames stored whole"
            )
        else:
            fx, fy, fw, fh = free
            sx, sy = w / mask.shape[1], h / mask.shape[0]
            box = (x + round(fx * sx), y + round(fy * sy), round(fw * sx), round(fh * sy))
    return box, boxes


def pick_per_scene(
    thumbs: dict[int, np.ndarray], scan: Scan, preset: Preset, dropped: dict[str, int]
) -> dict[int, list[int]]:
    """Scene -> the candidates kept from it: near-duplicates out, then at most
    ``preset.per_scene`` spread evenly through the scene (not its start)."""
    by_scene: dict[int, list[int]] = {}
    for k in thumbs:
        by_scene.setdefault(scene_of(scan.rows[k]["frame"], scan.cuts), []).append(k)
    picks = {}
    for scene, ks in sorted(by_scene.items()):
        picked, seen = [], []
        for k in ks:
            if any(np.abs(thumbs[k] - o).mean() < preset.duplicate for o in seen):
                dropped["duplicate"] += 1
                continue
            picked.append(k)
            seen.append(thumbs[k])
        if len(picked) > preset.per_scene:
            keep = np.linspace(0, len(picked) - 1, preset.per_scene).round().astype(int)
            dropped["over the scene cap"] += len(picked) - preset.per_scene
            picked = [picked[i] for i in sorted(set(keep.tolist()))]
        picks[scene] = picked
    return picks


def split_picks(
    picks: dict[int, list[int]],
    scan: Scan,
    store: Path,
    box: Box,
    episode: int,
    options: BuildOptions,
) -> dict[str, list[Pick]]:
    """The picks of one episode, by split: whole scenes (or the whole episode) on one side."""
    out: dict[str, list[Pick]] = {name: [] for name, _ in SPLITS}
    source = {"source": scan.source["source"], "sha256": scan.source["sha256"], "episode": episode}
    for scene, ks in picks.items():
        split = split_of(options.seed, episode, None if options.split_by == "episode" else scene)
        out[split] += [
            Pick(store, scan, k, box, {**scan.rows[k], **source, "scene": scene}) for k in ks
        ]
    return out
