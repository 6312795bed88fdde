"""Training crops that keep a GPU fed.

Each image of a frames folder is decoded once, scaled to a little above the working size, into a
uint8 cache in the run folder (one memory-mapped file, like a dataset's shards), reused on
``--resume`` and rebuilt when the files change or it fails its checks; a link or other file in
its place is refused, never read or written through. A built dataset's shards serve as they
are. A batch is then slices of those arrays: the resize, the flip and the Lab conversion run on
the device, in batches. Each crop is drawn from (seed, epoch, index) as before, and covers the same
part of the picture as the crop the decoded file would give.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidcolor.atomic import atomic_path, clear_stale
from vidcolor.errors import UserError
from vidcolor.ownership import NotOursError

CACHE_FORMAT = "vidcolor-crop-cache-2"
HEADROOM = 1.25  # crops scale the short side to size x U(1, 1.25): the cache keeps that much
FILES = ("cache.json", "frames.u8", "index.npy")  # what a cache folder holds
# frames.u8's digest reads the whole file up to SAMPLES blocks of BLOCK bytes, and that many
# blocks spread evenly over a larger one: opening a cache of any size costs one bounded read.
BLOCK, SAMPLES = 1 << 20, 64
MAX_SIDE = 1 << 20  # larger than any image: bounds the index's sizes before any arithmetic


class CacheError(UserError):
    """The training cache cannot be kept in the run folder: a link or another kind of file in
    its place, or no room to write it."""


class CacheDamaged(Exception):
    """A cache made under the right key that does not match its own record (why, in words)."""


@dataclass(frozen=True)
class Picture:
    """One training image as a crop sees it: ``pixels`` (h, w, 3) uint8, stored at a scale of
    its own, and the size ``original`` (h, w) that crops are drawn for."""

    pixels: np.ndarray
    original: tuple[int, int]


class FrameCache:
    """Images scaled to a short side of ``short`` pixels (smaller ones as they are), back to
    back in ``frames.u8``; ``index.npy`` holds each one's offset, stored and original size.
    Opening one checks it as a checkpoint is checked: the index's shape, dtype and bounds, the
    pictures back to back and filling frames.u8 exactly, and a digest of the index, the
    record's lists and frames.u8 (sampled when large) against the record."""

    def __init__(self, folder: Path, record: dict, root: Path) -> None:
        self.folder, self.record, self.root = folder, record, root
        files, grey = record.get("files"), record.get("grey")
        if not (isinstance(files, list) and files and all(isinstance(f, str) for f in files)):
            raise CacheDamaged("its record lists no files")
        if not isinstance(grey, list) or [type(g) for g in grey] != [bool] * len(files):
            raise CacheDamaged("its record's greyscale list does not match its files")
        self.index = _load_index(folder / "index.npy", len(files))
        sizes = self.index[:, 1] * self.index[:, 2] * 3
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        if not np.array_equal(self.index[:, 0], starts):
            raise CacheDamaged("index.npy's pictures do not lie back to back")
        total = int(sizes.sum())
        found = _size(folder / "frames.u8")
        if found != total:
            raise CacheDamaged(f"frames.u8 holds {found} bytes where its index says {total}")
        parts = _record_parts(self.index, files, grey)
        if _digest(folder / "frames.u8", total, parts) != record.get("digest"):
            raise CacheDamaged("its contents do not match its record's digest")
        self.flat = np.memmap(folder / "frames.u8", np.uint8, "r", shape=(total,))
        self.rows = {name: i for i, name in enumerate(files)}
        self.grey = grey

    def picture(self, path: Path) -> Picture:
        """The stored picture of ``path``, a file under the cache's DATA folder."""
        row = self.rows[os.path.relpath(path, self.root)]
        offset, h, w, h0, w0 = (int(v) for v in self.index[row])
        return Picture(self.flat[offset : offset + h * w * 3].reshape(h, w, 3), (h0, w0))

    @staticmethod
    def key(root: Path, files: list[Path], short: int) -> str:
        """What the cache was made from: each file's name, size and modification time, and
        the stored short side."""
        h = hashlib.sha256(f"{CACHE_FORMAT} {short}".encode())
        for f in files:
            st = f.stat()
            h.update(
                f"\0{os.path.relpath(f, root)}\0{st.st_size}\0{st.st_mtime_ns}".encode(
                    "utf-8", "surrogateescape"
                )
            )
        return h.hexdigest()[:24]

    @classmethod
    def open(cls, folder: Path, key: str, root: Path) -> FrameCache | None:
        """The cache in ``folder`` of DATA folder ``root`` if it was made under ``key``; None
        when there is none (or one of other files). CacheDamaged when it was made under
        ``key`` but fails its checks; CacheError for a link or other file in its place."""
        _guard(folder)
        try:
            record = json.loads((folder / "cache.json").read_text())
        except (OSError, ValueError):
            return None
        if (
            isinstance(record, dict)
            and record.get("format") == CACHE_FORMAT
            and record.get("key") == key
        ):
            return cls(folder, record, root)
        return None

    @classmethod
    def build(
        cls,
        folder: Path,
        key: str,
        root: Path,
        files: list[Path],
        short: int,
        read: Callable[[Path], np.ndarray],
        is_grey: Callable[[np.ndarray], bool],
        workers: int = 4,
        on_image: Callable[[int], None] | None = None,
    ) -> FrameCache:
        """Decode each of ``files`` once (``workers`` threads, in order), note whether it is
        greyscale and store it scaled; ``cache.json`` comes last, so a killed build is no
        cache and is made again."""
        _guard(folder)
        folder.mkdir(parents=True, exist_ok=True)
        record = folder / "cache.json"
        if record.exists():  # a stale cache of ours goes; anything else is not ours to touch
            try:
                value = json.loads(record.read_text())
                ours = str(value.get("format")).startswith("vidcolor-crop-cache-")
            except (OSError, ValueError, AttributeError):
                ours = False
            if not ours:
                raise NotOursError(f"{record}: not a vidcolor cache; move it away")
            record.unlink()

        def load(path: Path) -> tuple[np.ndarray, tuple[int, int], bool]:
            rgb = read(path)
            h0, w0 = rgb.shape[:2]
            scale = short / min(h0, w0)
            if scale < 1:  # never upscaled: the device does that, as crops need it
                size = (max(1, round(w0 * scale)), max(1, round(h0 * scale)))
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            return np.ascontiguousarray(rgb), (h0, w0), is_grey(rgb)

        index, grey, offset = [], [], 0
        names = [os.path.relpath(f, root) for f in files]
        try:
            with (
                atomic_path(folder / "frames.u8") as tmp,
                open(tmp, "wb") as out,
                ThreadPoolExecutor(max(1, workers)) as pool,
            ):
                for rgb, (h0, w0), g in pool.map(load, files):
                    out.write(rgb.tobytes())
                    index.append((offset, rgb.shape[0], rgb.shape[1], h0, w0))
                    grey.append(g)
                    offset += rgb.size
                    if on_image is not None:
                        on_image(len(index))
                out.flush()
                table = np.array(index, np.int64).reshape(-1, 5)
                digest = _digest(tmp, offset, _record_parts(table, names, grey))
            with atomic_path(folder / "index.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, table)
            record = {
                "format": CACHE_FORMAT,
                "key": key,
                "short": short,
                "files": names,
                "grey": grey,
                "digest": digest,
            }
            with atomic_path(folder / "cache.json") as tmp:
                tmp.write_text(json.dumps(record))
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise
            raise CacheError(
                f"{folder}: cannot write the training cache ({e.strerror}); free "
                "some space and run again"
            ) from None
        return cls(folder, record, root)


def open_cache(
    folder: Path,
    root: Path,
    files: list[Path],
    short: int,
    read: Callable[[Path], np.ndarray],
    is_grey: Callable[[np.ndarray], bool],
    workers: int = 4,
    on_image: Callable[[int], None] | None = None,
) -> tuple[FrameCache, str | None]:
    """The cache of ``files`` (under DATA folder ``root``) in ``folder``: reused when it was
    made from them and passes its checks, else made again (see FrameCache.build), with a note
    saying why when it was damaged. What a killed build left in ``folder`` is cleared first."""
    _guard(folder)
    clear_stale(folder)
    key = FrameCache.key(root, files, short)
    note = None
    try:
        cache = FrameCache.open(folder, key, root)
    except CacheDamaged as e:
        cache, note = None, f"{folder}: the training cache was damaged ({e}); made it again"
    if cache is None:
        cache = FrameCache.build(folder, key, root, files, short, read, is_grey, workers, on_image)
    return cache, note


def _guard(folder: Path) -> None:
    """Refuse, naming the path, a link or another kind of file where the cache folder or one
    of its files belongs: vidcolor reads and writes its cache only inside the run folder, and
    replaces only files it made."""
    for path in (folder, *(folder / name for name in FILES)):
        if path.is_symlink():
            raise CacheError(
                f"{path}: a link; vidcolor keeps the training cache inside the run "
                "folder and follows no link out of it; remove the link"
            )
        if path == folder and not path.exists():
            return
        if path.exists() and not (path.is_dir() if path == folder else path.is_file()):
            what = "a folder" if path == folder else "a plain file"
            raise CacheError(f"{path}: not {what}, so not vidcolor's training cache; move it away")


def _load_index(path: Path, rows: int) -> np.ndarray:
    """index.npy, checked: ``rows`` x 5 int64 (offset, stored h and w, original h and w), every
    size from 1 to MAX_SIDE and every offset from 0 on; read only when its size allows that."""
    if _size(path) > rows * 5 * 8 + 4096:  # the .npy header is at most a few KB
        raise CacheDamaged("index.npy is larger than its record allows")
    try:
        index = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        raise CacheDamaged("index.npy is not a readable array") from None
    if index.dtype != np.int64 or index.shape != (rows, 5):
        raise CacheDamaged(f"index.npy is {index.dtype} {index.shape}, not int64 ({rows}, 5)")
    sizes = index[:, 1:]
    if (sizes < 1).any() or (sizes > MAX_SIDE).any() or (index[:, 0] < 0).any():
        raise CacheDamaged("index.npy holds sizes or offsets out of bounds")
    return index


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        raise CacheDamaged(f"{path.name} is missing") from None


def _record_parts(index: np.ndarray, files: list[str], grey: list[bool]) -> list[bytes]:
    """What the digest covers besides frames.u8: the index and the record's two lists."""
    return [np.ascontiguousarray(index, "<i8").tobytes(), json.dumps([files, grey]).encode()]


def _digest(frames: Path, size: int, parts: list[bytes]) -> str:
    """A digest of ``parts`` and of the file ``frames`` (``size`` bytes): all of it up to
    SAMPLES blocks, else SAMPLES blocks spread over it, its first and last included."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(len(part).to_bytes(8, "little") + part)
    if size <= BLOCK * SAMPLES:
        starts: range | list[int] = range(0, size, BLOCK)
    else:
        starts = [k * (size - BLOCK) // (SAMPLES - 1) for k in range(SAMPLES)]
    with open(frames, "rb") as f:
        for start in starts:
            f.seek(start)
            h.update(f.read(BLOCK))
    return h.hexdigest()


def cache_short(size: int) -> int:
    """The short side a cache stores for crops of ``size``."""
    return math.ceil(size * HEADROOM)


class Crops:
    """Square ``size`` crops of ``pictures`` (a callable from item index to Picture), drawn as
    ``dataset.ColorCrops`` draws them: training crops scale the short side by U(1, 1.25), crop
    at random and flip half of them; validation crops are the centre at scale 1."""

    def __init__(
        self, count: int, picture: Callable[[int], Picture], size: int, train: bool, seed: int = 0
    ) -> None:
        self.count, self.picture, self.size, self.train, self.seed = (
            count,
            picture,
            size,
            train,
            seed,
        )

    def __len__(self) -> int:
        return self.count

    def region(self, index: int, epoch: int) -> tuple[float, float, float, float, bool]:
        """(y, x, height, width) of the crop in the original image's pixels, and the flip."""
        h, w = self.picture(index).original
        rng = np.random.default_rng((self.seed, epoch, index))
        short = self.size * (rng.uniform(1.0, HEADROOM) if self.train else 1.0)
        scale = short / min(h, w)
        nh, nw = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        if self.train:
            y = int(rng.integers(0, nh - self.size + 1))
            x = int(rng.integers(0, nw - self.size + 1))
        else:
            y, x = (nh - self.size) // 2, (nw - self.size) // 2
        flip = bool(self.train and rng.random() < 0.5)
        sy, sx = h / nh, w / nw  # as cv2.resize maps the scaled image onto the original
        return y * sy, x * sx, self.size * sy, self.size * sx, flip

    def batch(
        self, indices: list[int], epoch: int, pin: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each crop's pixels, sliced out of its stored picture with a pixel of margin, on one
        uint8 canvas (N, C, C, 3); and the affine maps (N, 2, 3) that ``on_device`` resamples
        them with."""
        cuts = []
        for i in indices:
            pic = self.picture(i)
            y, x, hh, ww, flip = self.region(i, epoch)
            k = pic.pixels.shape[0] / pic.original[0], pic.pixels.shape[1] / pic.original[1]
            y, hh, x, ww = y * k[0], hh * k[0], x * k[1], ww * k[1]  # to stored pixels
            y0, x0 = max(0, math.floor(y) - 1), max(0, math.floor(x) - 1)
            y1 = min(pic.pixels.shape[0], math.ceil(y + hh) + 1)
            x1 = min(pic.pixels.shape[1], math.ceil(x + ww) + 1)
            cuts.append((pic.pixels[y0:y1, x0:x1], y - y0, x - x0, hh, ww, flip))
        c = max(max(p.shape[0], p.shape[1]) for p, *_ in cuts) + 1
        canvas = torch.empty((len(cuts), c, c, 3), dtype=torch.uint8, pin_memory=pin)
        theta = torch.zeros((len(cuts), 2, 3))
        out = canvas.numpy()
        for n, (pixels, fy, fx, hh, ww, flip) in enumerate(cuts):
            ph, pw = pixels.shape[:2]
            out[n, :ph, :pw] = pixels
            out[n, ph:, :pw] = pixels[-1:]  # the edge repeated: bilinear never reads black
            out[n, :, pw:] = out[n, :, pw - 1 : pw]
            theta[n, 0, 0] = (-ww if flip else ww) / c
            theta[n, 0, 2] = -1 + (2 * fx + ww) / c
            theta[n, 1, 1] = hh / c
            theta[n, 1, 2] = -1 + (2 * fy + hh) / c
        return canvas, theta

    def batches(
        self, indices: list[int], batch_size: int, epoch: int, pin: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Whole batches of ``indices`` in order (a short last one is dropped)."""
        for start in range(0, len(indices) - batch_size + 1, batch_size):
            yield self.batch(indices[start : start + batch_size], epoch, pin)


def on_device(
    canvas: torch.Tensor, theta: torch.Tensor, size: int, device: torch.device
) -> torch.Tensor:
    """The crops of a ``Crops.batch`` resampled on ``device``: (N, 3, size, size) RGB in
    [0, 1], float32."""
    x = canvas.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    grid = F.affine_grid(theta.to(device), [len(x), 3, size, size], align_corners=False)
    rgb = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (rgb / 255).clamp_(0, 1)


def fixed_crops(items: list, picture: Callable[[object], Picture], size: int) -> torch.Tensor:
    """The centre crop of each item (validation crops, made once): (N, 3, S, S) uint8."""
    crops = Crops(len(items), lambda i: picture(items[i]), size, train=False)
    out = []
    for at in range(0, len(items), 64):
        canvas, theta = crops.batch(list(range(at, min(at + 64, len(items)))), 0)
        rgb = on_device(canvas, theta, size, torch.device("cpu"))
        out.append((rgb * 255).round().to(torch.uint8))
    return torch.cat(out)
