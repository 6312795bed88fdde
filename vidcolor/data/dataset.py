"""Reading training data: what `vidcolor train DATA` accepts, behind one small interface.

``open_training_data(path)`` returns the train/val image lists and how to read each one as a
``crops.Picture``. DATA is a folder of images (recursive), with an optional ``manifest.jsonl``
from ``vidcolor extract`` (its ``scene`` field, when present, keeps whole scenes on one side of
the split), or a dataset from ``vidcolor dataset build``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vidcolor.data.crops import FrameCache, Picture, open_cache
from vidcolor.data.extract import read_manifest
from vidcolor.errors import UserError
from vidcolor.images import IMAGE_SUFFIXES, read_rgb
from vidcolor.ownership import file_in

DATASET_FORMAT = "vidcolor-dataset"  # manifest.json of `vidcolor dataset build`
# An image is greyscale when 99% of its pixels have channels within this many levels.
GREY_SPREAD = 6


class TrainDataError(UserError):
    """The training data cannot be used as given."""


@dataclass(frozen=True)
class ShardFrame:
    """Frame ``offset`` of a built dataset's memory-mapped shard (an .npy of N x H x W x 3)."""

    shard: Path
    offset: int

    def __fspath__(self) -> str:  # a stable name, for fingerprints and messages
        return f"{self.shard}#{self.offset}"


@dataclass
class TrainingData:
    train: list[Path | ShardFrame]
    val: list[Path | ShardFrame]
    notes: list[str] = field(default_factory=list)  # what was left out, and why
    cache: FrameCache | None = None  # a folder's images, decoded once (see crops.py)

    def picture(self, item: Path | ShardFrame) -> Picture:
        """``item``'s pixels: from its shard, the cache, or else its file."""
        if isinstance(item, ShardFrame):
            return _shard_picture(item)
        if self.cache is not None:
            return self.cache.picture(item)
        rgb = read_rgb(item)
        return Picture(rgb, rgb.shape[:2])


_SHARDS: dict[Path, np.ndarray] = {}  # memory maps, opened once per process


def _shard_picture(item: ShardFrame) -> Picture:
    if item.shard not in _SHARDS:
        _SHARDS[item.shard] = np.load(item.shard, mmap_mode="r")
    pixels = _SHARDS[item.shard][item.offset]
    return Picture(pixels, pixels.shape[:2])


@dataclass(frozen=True)
class DatasetManifest:
    """A built dataset's manifest.json, checked on ``load``: its format tag, each shard's file
    a plain name inside ``root`` with a count of frames, the frame shape, and each frame row
    inside its shard (each shard's frames once each) with the source, episode and scene that
    the stages read; each shard is checked against all that when opened. The one way to read
    a dataset, so every stage refuses a damaged one with the same line."""

    root: Path
    shards: dict[str, tuple[str, int]]  # split -> (file, frames)
    frames: list[dict]  # a row per frame: source, frame, scene, split, shard, offset ...
    preset: str | None
    split_by: str | None
    shape: tuple[int, int] | None  # (height, width) of every stored frame
    sources: list[dict] | None  # per video: cuts, picture, HUD (None: an earlier vidcolor's)
    dropped: dict[str, int]

    @classmethod
    def load(cls, root: Path) -> DatasetManifest:
        """The dataset in ``root``; anything else is one TrainDataError (a UserError) naming
        the file."""
        try:
            if not (root / "manifest.json").is_file():  # a FIFO would wait for a writer
                raise ValueError
            m = json.loads((root / "manifest.json").read_text())
        except (OSError, ValueError):
            raise TrainDataError(
                f"{root}: not a vidcolor dataset (no readable manifest.json)"
            ) from None
        return cls.from_record(root, m)

    @classmethod
    def from_record(cls, root: Path, m: object) -> DatasetManifest:
        """The same checks on a manifest already read (JSON-decoded) from ``root``."""
        path = root / "manifest.json"
        if not isinstance(m, dict) or m.get("format") != DATASET_FORMAT:
            raise TrainDataError(f"{root}: not a vidcolor dataset")
        if not isinstance(m.get("shards"), dict) or not isinstance(m.get("frames", []), list):
            raise TrainDataError(f"{path}: damaged (no shard table); build the dataset again")
        shards = {}
        for split, shard in m["shards"].items():
            where = f"{path}: shard {split!r}"
            count = shard.get("count") if isinstance(shard, dict) else None
            if type(count) is not int or count < 0:
                raise TrainDataError(f"{where}: damaged; build the dataset again")
            shards[split] = (file_in(root, shard.get("file"), where).name, count)
        shape, sources, dropped = m.get("shape"), m.get("sources"), m.get("dropped", {})
        if shape is not None and not _is_ints(shape, 2, low=1):
            raise _damaged(path, f"its frame shape {shape!r} is not a height and width")
        if sources is not None and not _good_sources(sources):
            raise _damaged(path, "its table of sources is damaged")
        if not isinstance(dropped, dict):
            raise _damaged(path, "its count of dropped frames is damaged")
        _check_rows(path, m.get("frames", []), shards)
        return cls(
            root,
            shards,
            m.get("frames", []),
            m.get("preset"),
            m.get("split_by"),
            tuple(shape) if shape else None,
            sources,
            dropped,
        )

    def open(self, split: str) -> np.ndarray:
        """A split's shard as a read-only memory map (N, H, W, 3) uint8, checked against what
        the manifest says of it."""
        name, count = self.shards[split]
        path = self.root / name
        if path.exists() and not path.is_file():  # a FIFO would wait for a writer
            raise TrainDataError(f"{path}: not a plain file; build the dataset again")
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else "not a shard file"
            raise TrainDataError(f"{path}: cannot read ({why}); build the dataset again") from None
        frame = (*self.shape, 3) if self.shape else None
        if (
            array.dtype != np.uint8
            or array.ndim != 4
            or len(array) < count
            or min(array.shape[1:]) < 1
            or array.shape[3] != 3
            or frame not in (None, array.shape[1:])
        ):
            found = "x".join(map(str, array.shape))
            raise TrainDataError(
                f"{path}: {found} {array.dtype}, not the shard its manifest describes; build "
                "the dataset again"
            )
        return array

    def rows(self, split: str) -> list[dict]:
        """The split's frame rows, in shard order."""
        return sorted((f for f in self.frames if f["split"] == split), key=lambda f: f["offset"])


def _damaged(path: Path, why: str) -> TrainDataError:
    return TrainDataError(f"{path}: {why}; build the dataset again")


def _is_ints(value: object, count: int, low: int = 0) -> bool:
    """Whether ``value`` is a list of ``count`` whole numbers (not booleans), each >= low."""
    return (
        isinstance(value, list)
        and len(value) == count
        and all(type(v) is int and v >= low for v in value)
    )


def _good_sources(sources: object) -> bool:
    """A manifest's per-video table, as ``dataset info`` reads it."""
    return isinstance(sources, list) and all(
        isinstance(s, dict)
        and isinstance(s.get("source"), str)
        and type(s.get("episode")) is int
        and isinstance(s.get("cuts"), list)
        and _is_ints(s.get("picture"), 4)
        and isinstance(s.get("hud"), list)
        and all(_is_ints(box, 4) for box in s["hud"])
        for s in sources
    )


def _check_rows(path: Path, rows: list, shards: dict[str, tuple[str, int]]) -> None:
    """Each frame row names a shard of the table and a frame inside it, with the source,
    episode and scene the stages read; when there are rows, they list each shard's frames
    once each."""
    offsets: dict[str, list[int]] = {split: [] for split in shards}
    for i, row in enumerate(rows):
        split = row.get("split") if isinstance(row, dict) else None
        shard = shards.get(split) if isinstance(split, str) else None
        if shard is None or row.get("shard") != shard[0]:
            raise _damaged(path, f"frame row {i} names no shard of the dataset")
        offset, count = row.get("offset"), shard[1]
        if type(offset) is not int or not 0 <= offset < count:
            raise _damaged(
                path, f"frame row {i} has offset {offset!r}, outside its shard of {count} frames"
            )
        if not (
            isinstance(row.get("source"), str)
            and type(row.get("episode")) is int
            and type(row.get("scene")) is int
        ):
            raise _damaged(path, f"frame row {i} lacks its source, episode or scene")
        offsets[split].append(offset)
    for split, found in offsets.items():
        if rows and sorted(found) != list(range(shards[split][1])):
            count = shards[split][1]
            raise _damaged(path, f"the rows of shard {split!r} do not list its {count} frames")


def _from_manifest(manifest: DatasetManifest) -> TrainingData:
    """A built dataset: its train and val shards, split by scene or episode at build time."""

    def frames(split: str) -> list[Path | ShardFrame]:
        if split not in manifest.shards:
            return []
        manifest.open(split)  # checked now, not in a loader worker mid-epoch
        name, count = manifest.shards[split]
        return [ShardFrame(manifest.root / name, i) for i in range(count)]

    train, val, notes = frames("train"), frames("val"), []
    if not train:
        raise TrainDataError(f"{manifest.root}: the dataset has no training frames")
    if not val:
        notes.append("the dataset has no validation split: validating on training frames")
        val = train
    return TrainingData(train, val, notes)


def is_greyscale(rgb: np.ndarray) -> bool:
    """True when the image carries no colour to learn from (channel spread tiny everywhere)."""
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (64, max(1, 64 * h // w)), interpolation=cv2.INTER_AREA)
    spread = small.max(axis=2).astype(np.int16) - small.min(axis=2)
    return float(np.percentile(spread, 99)) <= GREY_SPREAD


def _groups(root: Path, files: list[Path]) -> list[list[Path]]:
    """Files that must stay on one side of the split together: a scene where the manifest
    names scenes, otherwise 20 runs of consecutive files (neighbouring frames of a video look
    alike, so a random per-frame split would leak; a run of 5% of an episode's frames is
    longer than most shots, so only the shots at run borders can straddle the split)."""
    scene_of: dict[Path, str] = {}
    for manifest in root.rglob("manifest.jsonl"):
        for row in read_manifest(manifest):
            if "scene" in row:
                scene_of[manifest.parent / row["file"]] = f"{row.get('source')}#{row['scene']}"
    if scene_of:
        by_scene: dict[str, list[Path]] = {}
        for f in files:
            by_scene.setdefault(scene_of.get(f, f"file:{f}"), []).append(f)
        return list(by_scene.values())
    run = max(1, -(-len(files) // 20))
    return [files[i : i + run] for i in range(0, len(files), run)]


def open_training_data(
    path: str | Path,
    val_fraction: float = 0.1,
    seed: int = 0,
    workers: int = 4,
    exclude: Path | None = None,
    cache: Path | None = None,
    cache_short: int = 0,
    on_image: Callable[[int, int], None] | None = None,
) -> TrainingData:
    """Scan DATA, leave out greyscale images, split whole groups into train and val.

    ``val_fraction`` 0 validates on the training images themselves (said in ``notes``).
    ``exclude``: a folder inside DATA to pass over (the run folder, with its sample grids).
    ``cache``: a folder for a FrameCache of the images at short side ``cache_short``, made in
    the same decode pass as the greyscale check (``on_image(done, total)``), or reused when the
    files are unchanged. Raises TrainDataError for a missing or empty folder, a corrupt image,
    or nothing in colour.
    """
    root = Path(path)
    if not root.is_dir():
        raise TrainDataError(f"{root}: not a folder of images")
    if (root / "manifest.json").is_file():
        try:
            record = json.loads((root / "manifest.json").read_text())
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise TrainDataError(f"{root}/manifest.json: unreadable")
        if record.get("format") == DATASET_FORMAT:
            return _from_manifest(DatasetManifest.from_record(root, record))
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    files = [p for p in files if not p.name.startswith(".")]  # temp files of a running extract
    if exclude is not None:
        skip = exclude.resolve()
        files = [p for p in files if not p.resolve().is_relative_to(skip)]
    if not files:
        raise TrainDataError(f"{root}: no images (png, jpg, webp) found")
    frame_cache, note = None, None
    if cache is not None:
        frame_cache, note = open_cache(
            cache,
            root,
            files,
            cache_short,
            read_rgb,
            is_greyscale,
            workers,
            on_image=(lambda n: on_image(n, len(files))) if on_image else None,
        )
        grey = frame_cache.grey
    else:
        with ThreadPoolExecutor(workers) as pool:
            grey = list(pool.map(lambda p: is_greyscale(read_rgb(p)), files))
    notes = [note] if note else []
    if any(grey):
        names = [p.name for p, g in zip(files, grey, strict=True) if g]
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        notes.append(f"left out {len(names)} greyscale image(s): {shown}")
    files = [p for p, g in zip(files, grey, strict=True) if not g]
    if not files:
        raise TrainDataError(f"{root}: every image is greyscale; a colorizer needs colour")
    groups = _groups(root, files)
    order = np.random.default_rng(seed).permutation(len(groups))
    n_val = 0  # at least one group each side when there is a split at all
    if val_fraction > 0 and len(groups) >= 2:
        n_val = min(max(round(len(groups) * val_fraction), 1), len(groups) - 1)
    val = sorted(p for i in order[:n_val] for p in groups[i])
    train = sorted(p for i in order[n_val:] for p in groups[i])
    if not val:
        notes.append("no held-out images: validating on the training images")
        val = train
    return TrainingData(train, val, notes, frame_cache)


def data_fingerprint(data: TrainingData, root: str | Path) -> str:
    """Which files train and validate (relative to DATA), as a short hash: resuming needs the
    same data, wherever the command runs from."""
    h = hashlib.sha256()
    for part in (data.train, data.val):
        names = "\n".join(os.path.relpath(p, root) for p in part)
        h.update(names.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()[:16]
