"""`vidcolor dataset info`: what a built dataset holds, in lines and one picture."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vidcolor.data.dataset import DatasetManifest
from vidcolor.data.dataset_build.presets import BuildError


def dataset_summary(data: Path, sheet: Path) -> list[str]:
    """Lines of counts per split, scene and source; writes ``sheet`` (one frame per scene)."""
    from vidcolor.pictures import save_png

    manifest = DatasetManifest.load(data)
    if manifest.sources is None or manifest.shape is None:
        raise BuildError(
            f"{data}: built by an earlier vidcolor; build it again to see it here "
            "(training still reads it)"
        )
    if not manifest.frames:
        raise BuildError(f"{data / 'manifest.json'}: lists no frames; build the dataset again")
    frames = manifest.frames
    lines = [
        f"{data}: preset {manifest.preset}, frames {manifest.shape[1]}x"
        f"{manifest.shape[0]}, split by {manifest.split_by}"
    ]
    for split, (_, count) in manifest.shards.items():
        scenes = {(f["episode"], f["scene"]) for f in manifest.rows(split)}
        lines.append(f"  {split:5} {count:6} frames  {len(scenes):4} scenes")
    for source in manifest.sources:
        rows = [f for f in frames if f["episode"] == source["episode"]]
        scenes = {f["scene"] for f in rows}
        x, y, w, h = source["picture"]
        line = (
            f"  {Path(source['source']).name}: {len(rows)} frames, {len(scenes)} scenes "
            f"kept of {len(source['cuts']) + 1}; picture {w}x{h} at ({x}, {y})"
        )
        hud = "; ".join(f"{w}x{h} at ({x}, {y})" for x, y, w, h in source["hud"])
        lines.append(line + (f"; static overlay {hud}" if hud else ""))
    dropped = ", ".join(f"{k} {v}" for k, v in manifest.dropped.items() if v)
    lines.append(f"  dropped: {dropped or 'none'}")
    first: dict[tuple[int, int], dict] = {}
    for f in frames:
        first.setdefault((f["episode"], f["scene"]), f)
    shards = {split: manifest.open(split) for split in manifest.shards}
    thumbs = []
    for f in first.values():
        img = np.asarray(shards[f["split"]][f["offset"]])
        h, w = img.shape[:2]
        thumbs.append(cv2.resize(img, (160, round(160 * h / w)), interpolation=cv2.INTER_AREA))
    cols = 6
    blank = np.zeros_like(thumbs[0])
    thumbs += [blank] * (-len(thumbs) % cols)
    grid = np.concatenate(
        [np.concatenate(thumbs[r : r + cols], axis=1) for r in range(0, len(thumbs), cols)]
    )
    save_png(sheet, grid)
    lines.append(f"  contact sheet: {sheet} ({len(first)} scenes)")
    return lines
