"""The dataset's frames in one memory-mapped .npy per split (N x H x W x 3 uint8)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import cv2
import numpy as np

from vidcolor.data.dataset_build.scan import candidates
from vidcolor.data.dataset_build.select import Pick


def new_shard(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A writable memory-mapped .npy whose disk space is taken up front: writing into a sparse
    map on a full disk kills the process with SIGBUS, where this raises OSError (ENOSPC)."""
    array = np.lib.format.open_memmap(path, "w+", np.uint8, shape)
    if hasattr(os, "posix_fallocate"):  # not on macOS or Windows
        with open(path, "r+b") as f:
            try:
                os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it
                    del array  # unmapped now, not whenever the traceback goes
                    raise
    return array


def write_shards(
    work: Path, kept: dict[str, list[Pick]], shape: tuple[int, int]
) -> tuple[list[dict], dict[str, dict]]:
    """Each split's picks, cut to their box and scaled to ``shape``, into ``work``/SPLIT.npy;
    returns the manifest's frame rows and shard table."""
    manifest_frames, shards = [], {}
    for split, items in kept.items():
        if not items:
            continue
        name = f"{split}.npy"
        array = new_shard(work / name, (len(items), *shape, 3))
        opened: dict[Path, np.ndarray] = {}
        for offset, (store, scan, k, (bx, by, bw, bh), row) in enumerate(items):
            if store not in opened:
                opened[store] = candidates(store, scan)
            picture = np.asarray(opened[store][k, by : by + bh, bx : bx + bw])
            interpolation = cv2.INTER_AREA if bh > shape[0] else cv2.INTER_CUBIC
            array[offset] = cv2.resize(picture, shape[::-1], interpolation=interpolation)
            manifest_frames.append({**row, "split": split, "shard": name, "offset": offset})
        array.flush()
        del array, opened
        shards[split] = {"file": name, "count": len(items)}
    return manifest_frames, shards
