"""`vidcolor dataset build`: scene-aware training sets from episodes, in memory-mapped shards.

One decode pass per video: the reader's tap feeds the shot detector every frame, while frames
sampled every ``stride`` seconds, at storage size, go to a candidate file on disk (memory stays
flat). Once the video's cuts are known, candidates next to a cut, dark, blown out, greyscale or
near-duplicate are dropped, long scenes are capped, and each scene (or episode) is assigned to
one split. The set is built in a temporary folder and renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from vidcolor import __version__
from vidcolor.dataset import DATASET_FORMAT, is_greyscale
from vidcolor.errors import UserError
from vidcolor.scenes import TAP_SIZE, ShotDetector, scene_of
from vidcolor.video import VideoError, VideoReader


class BuildError(UserError):
    """The dataset cannot be built as asked."""


@dataclass(frozen=True)
class Preset:
    size: int  # training crop size; frames are stored with a short side ~15% larger
    stride: float  # seconds between candidate frames
    per_scene: int  # at most this many frames from one scene
    margin: int  # frames skipped on each side of a cut (transitions, motion blur)
    duplicate: float  # mean |difference| of 16x16 gray thumbnails below which frames are twins


PRESETS = {
    "spongebob": Preset(size=224, stride=0.5, per_scene=24, margin=6, duplicate=4.0),
    "sc2": Preset(size=480, stride=1.0, per_scene=12, margin=4, duplicate=3.0),
    "generic": Preset(size=256, stride=0.5, per_scene=16, margin=6, duplicate=4.0),
}
SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def crop_letterbox(rgb: np.ndarray, level: int = 16) -> np.ndarray:
    """Cut black bars (rows/columns darker than ``level`` everywhere) off the edges."""
    gray = rgb.max(axis=2)
    rows = np.flatnonzero(gray.max(axis=1) > level)
    cols = np.flatnonzero(gray.max(axis=0) > level)
    if rows.size == 0 or cols.size == 0:
        return rgb
    return rgb[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def usable(rgb: np.ndarray) -> str | None:
    """Why a frame cannot teach colour, or None when it can."""
    mean = float(rgb.mean())
    if mean < 20:
        return "dark"
    if mean > 235:
        return "blown out"
    if is_greyscale(rgb):
        return "greyscale"
    return None


def _thumb(rgb: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (16, 16), interpolation=cv2.INTER_AREA).astype(np.int16)


def _split_of(seed: int, episode: int, scene: int | None) -> str:
    """A deterministic split for a scene (or, with ``scene`` None, a whole episode)."""
    key = (seed, episode) if scene is None else (seed, episode, scene)
    u = np.random.default_rng(key).random()
    acc = 0.0
    for name, share in SPLITS:
        acc += share
        if u < acc:
            return name
    return SPLITS[-1][0]


def _candidates(video: Path, preset: Preset, shape: tuple[int, int] | None, store: Path
                ) -> tuple[list[dict], list[int], tuple[int, int]]:  # fmt: skip
    """Decode once: candidate frames (letterbox cut, at storage ``shape``) appended to the raw
    file ``store``; returns their rows, the video's cuts and the storage shape."""
    short = round(preset.size * 1.15)
    rows: list[dict] = []
    with VideoReader(video, fps=1 / preset.stride, autorotate=True, tap_size=TAP_SIZE,
                     tap=lambda i, t, bgr: detector.push(i, bgr, t)) as reader:  # fmt: skip
        detector = ShotDetector(reader.info.frame_rate)
        with open(store, "wb") as out:
            for frame in reader:
                rgb = crop_letterbox(frame.image)
                if shape is None:  # the first frame sets the dataset's storage shape
                    h, w = rgb.shape[:2]
                    s = short / min(h, w)
                    shape = (round(h * s), round(w * s))
                rgb = cv2.resize(rgb, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
                out.write(rgb.tobytes())
                rows.append({"frame": frame.index, "pts": frame.pts,
                             "time": round(frame.time, 6)})  # fmt: skip
    return rows, detector.cuts(), shape


def build_dataset(
    videos: list[Path],
    out: Path,
    preset_name: str = "generic",
    split_by: str = "scene",
    seed: int = 0,
    overwrite: bool = False,
    on_video: Callable[[Path, int], None] | None = None,
) -> dict:
    """Build a dataset from ``videos`` into ``out``; returns the manifest. A video that cannot
    be read is named in ``manifest["skipped"]`` and the rest are built."""
    if preset_name not in PRESETS:
        raise BuildError(f"unknown preset '{preset_name}' ({', '.join(PRESETS)})")
    if split_by not in ("scene", "episode"):
        raise BuildError("--split-by takes scene or episode")
    if out.exists() and not overwrite:
        raise BuildError(f"{out}: exists; use --overwrite to replace it")
    preset = PRESETS[preset_name]
    work = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        manifest = _build(videos, work, preset, preset_name, split_by, seed, on_video)
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


def _build(videos: list[Path], work: Path, preset: Preset, preset_name: str, split_by: str,
           seed: int, on_video: Callable[[Path, int], None] | None) -> dict:  # fmt: skip
    shape: tuple[int, int] | None = None
    kept: dict[str, list[tuple[Path, int, dict]]] = {name: [] for name, _ in SPLITS}
    skipped, dropped = [], {"near a cut": 0, "dark": 0, "blown out": 0, "greyscale": 0,
                            "duplicate": 0, "over the scene cap": 0}  # fmt: skip
    for episode, video in enumerate(videos):
        store = work / f"candidates_{episode}.u8"
        try:
            rows, cuts, shape = _candidates(video, preset, shape, store)
        except VideoError as e:
            skipped.append(str(e))
            store.unlink(missing_ok=True)
            continue
        frames = np.memmap(store, np.uint8, "r", shape=(len(rows), *shape, 3)) if rows else []
        source = {"source": str(video.resolve()), "sha256": file_hash(video), "episode": episode}
        by_scene: dict[int, list[int]] = {}
        for k, row in enumerate(rows):
            near = bisect_left(cuts, row["frame"] - preset.margin)
            if near < len(cuts) and abs(cuts[near] - row["frame"]) <= preset.margin:
                dropped["near a cut"] += 1
                continue
            reason = usable(np.asarray(frames[k]))
            if reason:
                dropped[reason] += 1
                continue
            by_scene.setdefault(scene_of(row["frame"], cuts), []).append(k)
        for scene, ks in sorted(by_scene.items()):
            picked, thumbs = [], []
            for k in ks:
                t = _thumb(np.asarray(frames[k]))
                if any(np.abs(t - o).mean() < preset.duplicate for o in thumbs):
                    dropped["duplicate"] += 1
                    continue
                picked.append(k)
                thumbs.append(t)
            if len(picked) > preset.per_scene:  # evenly through the scene, not its start
                keep = np.linspace(0, len(picked) - 1, preset.per_scene).round().astype(int)
                dropped["over the scene cap"] += len(picked) - preset.per_scene
                picked = [picked[i] for i in sorted(set(keep.tolist()))]
            split = _split_of(seed, episode, None if split_by == "episode" else scene)
            for k in picked:
                kept[split].append((store, k, {**rows[k], **source, "scene": scene}))
        if on_video is not None:
            on_video(video, len(rows))
    if shape is None or not any(kept.values()):
        why = "; ".join(skipped) or "every frame was dropped (dark, greyscale, duplicate ...)"
        raise BuildError(f"no usable frames: {why}")
    manifest_frames, shards = [], {}
    for split, items in kept.items():
        if not items:
            continue
        name = f"{split}.npy"
        array = np.lib.format.open_memmap(work / name, "w+", np.uint8, (len(items), *shape, 3))
        stores: dict[Path, np.memmap] = {}
        for offset, (store, k, row) in enumerate(items):
            if store not in stores:
                n = store.stat().st_size // (shape[0] * shape[1] * 3)
                stores[store] = np.memmap(store, np.uint8, "r", shape=(n, *shape, 3))
            array[offset] = stores[store][k]
            manifest_frames.append({**row, "split": split, "shard": name, "offset": offset})
        array.flush()
        del array, stores
        shards[split] = {"file": name, "count": len(items)}
    for store in work.glob("candidates_*.u8"):
        store.unlink()
    manifest = {
        "format": DATASET_FORMAT, "vidcolor": __version__, "preset": preset_name,
        "settings": asdict(PRESETS[preset_name]), "split_by": split_by, "seed": seed,
        "shape": list(shape), "shards": shards, "dropped": dropped, "skipped": skipped,
        "frames": manifest_frames,
    }  # fmt: skip
    (work / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def dataset_summary(data: Path, sheet: Path) -> list[str]:
    """Lines of counts per split, scene and source; writes ``sheet`` (one frame per scene)."""
    from vidcolor.report import save_png

    path = data / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise BuildError(f"{data}: not a vidcolor dataset (no readable manifest.json)") from None
    if manifest.get("format") != DATASET_FORMAT:
        raise BuildError(f"{data}: not a vidcolor dataset")
    frames = manifest["frames"]
    lines = [f"{data}: preset {manifest['preset']}, frames {manifest['shape'][1]}x"
             f"{manifest['shape'][0]}, split by {manifest['split_by']}"]  # fmt: skip
    for split, shard in manifest["shards"].items():
        rows = [f for f in frames if f["split"] == split]
        scenes = {(f["episode"], f["scene"]) for f in rows}
        lines.append(f"  {split:5} {shard['count']:6} frames  {len(scenes):4} scenes")
    for source in sorted({f["source"] for f in frames}):
        rows = [f for f in frames if f["source"] == source]
        scenes = {f["scene"] for f in rows}
        lines.append(f"  {Path(source).name}: {len(rows)} frames, {len(scenes)} scenes")
    dropped = ", ".join(f"{k} {v}" for k, v in manifest["dropped"].items() if v)
    lines.append(f"  dropped: {dropped or 'none'}")
    first: dict[tuple[int, int], dict] = {}
    for f in frames:
        first.setdefault((f["episode"], f["scene"]), f)
    shards = {s["file"]: np.load(data / s["file"], mmap_mode="r")
              for s in manifest["shards"].values()}  # fmt: skip
    thumbs = []
    for f in first.values():
        img = np.asarray(shards[f["shard"]][f["offset"]])
        h, w = img.shape[:2]
        thumbs.append(cv2.resize(img, (160, round(160 * h / w)), interpolation=cv2.INTER_AREA))
    cols = 6
    blank = np.zeros_like(thumbs[0])
    thumbs += [blank] * (-len(thumbs) % cols)
    grid = np.concatenate([np.concatenate(thumbs[r : r + cols], axis=1)
                           for r in range(0, len(thumbs), cols)])  # fmt: skip
    save_png(sheet, grid)
    lines.append(f"  contact sheet: {sheet} ({len(first)} scenes)")
    return lines
