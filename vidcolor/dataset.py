"""Reading training data: what `vidcolor train DATA` accepts, behind one small interface.

``open_training_data(path)`` returns the train/val image lists; ``ColorCrops`` turns a list into
fixed-size uint8 RGB crops. DATA today is a folder of images (recursive), with an optional
``manifest.jsonl`` from ``vidcolor extract`` (its ``scene`` field, when present, keeps whole
scenes on one side of the split). Datasets from ``vidcolor dataset build`` plug in here.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from vidcolor.errors import UserError
from vidcolor.extract import read_manifest
from vidcolor.ownership import file_in

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
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


@dataclass(frozen=True)
class DatasetManifest:
    """A built dataset's manifest.json, checked on ``load``: its format tag, and each shard's
    file a plain name inside ``root`` with a count of frames. The one way to read a dataset."""

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
            m = json.loads((root / "manifest.json").read_text())
        except (OSError, ValueError):
            raise TrainDataError(f"{root}: not a vidcolor dataset (no readable manifest.json)"
                                 ) from None  # fmt: skip
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
        shape = tuple(m["shape"]) if isinstance(m.get("shape"), list) else None
        return cls(root, shards, m.get("frames", []), m.get("preset"), m.get("split_by"),
                   shape, m.get("sources"), m.get("dropped", {}))  # fmt: skip

    def open(self, split: str) -> np.ndarray:
        """A split's shard as a read-only memory map (N, H, W, 3) uint8, checked against what
        the manifest says of it."""
        name, count = self.shards[split]
        path = self.root / name
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else "not a shard file"
            raise TrainDataError(f"{path}: cannot read ({why}); build the dataset again"
                                 ) from None  # fmt: skip
        if array.dtype != np.uint8 or array.ndim != 4 or len(array) < count:
            raise TrainDataError(f"{path}: not the shard its manifest describes; build the "
                                 "dataset again")  # fmt: skip
        return array

    def rows(self, split: str) -> list[dict]:
        """The split's frame rows, in shard order."""
        return sorted((f for f in self.frames if f["split"] == split), key=lambda f: f["offset"])


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


def read_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB, or TrainDataError naming the file. Decoded from bytes read in Python:
    cv2.imread crashes the process on file names that are not valid UTF-8."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as e:
        raise TrainDataError(f"{path}: cannot read ({e.strerror})") from None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise TrainDataError(f"{path}: not a readable image (corrupt or unsupported)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


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
) -> TrainingData:
    """Scan DATA, leave out greyscale images, split whole groups into train and val.

    ``val_fraction`` 0 validates on the training images themselves (said in ``notes``).
    ``exclude``: a folder inside DATA to pass over (the run folder, with its sample grids).
    Raises TrainDataError for a missing or empty folder, a corrupt image, or nothing in colour.
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
    with ThreadPoolExecutor(workers) as pool:
        grey = list(pool.map(lambda p: is_greyscale(read_rgb(p)), files))
    notes = []
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
    return TrainingData(train, val, notes)


class ColorCrops(Dataset):
    """Square ``size`` crops as uint8 RGB tensors (3, size, size).

    Training: the short side is scaled to ``size`` x U(1, 1.25), then a random crop and a coin
    flip mirror it. Validation: short side to ``size``, centre crop. Augmentation is drawn from
    (seed, epoch, index), so it does not depend on worker count or on resuming.
    """

    def __init__(
        self, files: list[Path | ShardFrame], size: int, train: bool, seed: int = 0
    ) -> None:
        self.files, self.size, self.train, self.seed = files, size, train, seed
        self.epoch = 0
        self._shards: dict[Path, np.ndarray] = {}  # memory maps, opened per worker process

    def _load(self, item: Path | ShardFrame) -> np.ndarray:
        if isinstance(item, ShardFrame):
            if item.shard not in self._shards:
                self._shards[item.shard] = np.load(item.shard, mmap_mode="r")
            return np.asarray(self._shards[item.shard][item.offset])
        return read_rgb(item)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        rgb = self._load(self.files[index])
        rng = np.random.default_rng((self.seed, self.epoch, index))
        h, w = rgb.shape[:2]
        short = self.size * (rng.uniform(1.0, 1.25) if self.train else 1.0)
        scale = short / min(h, w)
        nh, nw = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        rgb = cv2.resize(rgb, (nw, nh), interpolation=interp)
        if self.train:
            y = int(rng.integers(0, nh - self.size + 1))
            x = int(rng.integers(0, nw - self.size + 1))
        else:
            y, x = (nh - self.size) // 2, (nw - self.size) // 2
        crop = rgb[y : y + self.size, x : x + self.size]
        if self.train and rng.random() < 0.5:
            crop = crop[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)  # (3,S,S) uint8
