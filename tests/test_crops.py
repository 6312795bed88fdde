"""Training data that keeps a GPU fed: the decode-once cache, crops resampled on the device, and
checkpoints written in the background."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import write_photos

from vidcolor.data.crops import Crops, FrameCache, cache_short, on_device
from vidcolor.data.dataset import open_training_data
from vidcolor.images import read_rgb
from vidcolor.train.checkpoint import save_checkpoint
from vidcolor.train.saver import Saver

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["astronaut", "coffee", "chelsea", "rocket", "colorwheel"]


def old_crop(
    rgb: np.ndarray, size: int, train: bool, seed: int, epoch: int, index: int
) -> np.ndarray:
    """The crop as training drew it from the decoded file before the cache (the reference)."""
    rng = np.random.default_rng((seed, epoch, index))
    h, w = rgb.shape[:2]
    short = size * (rng.uniform(1.0, 1.25) if train else 1.0)
    scale = short / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    if train:
        y, x = int(rng.integers(0, nh - size + 1)), int(rng.integers(0, nw - size + 1))
    else:
        y, x = (nh - size) // 2, (nw - size) // 2
    crop = rgb[y : y + size, x : x + size]
    return crop[:, ::-1] if train and rng.random() < 0.5 else crop


def new_crops(data, items: list, size: int, train: bool, epoch: int, seed: int = 0) -> np.ndarray:
    crops = Crops(len(items), lambda i: data.picture(items[i]), size, train, seed)
    canvas, theta = crops.batch(list(range(len(items))), epoch)
    rgb = on_device(canvas, theta, size, torch.device("cpu"))
    return (rgb * 255).round().byte().permute(0, 2, 3, 1).numpy()


def test_crops_from_the_cache_match_the_decoded_files(tmp_path: Path) -> None:
    files = write_photos(tmp_path / "photos", NAMES, size=120)
    size = 96
    data = open_training_data(
        tmp_path / "photos", val_fraction=0, cache=tmp_path / "cache", cache_short=cache_short(size)
    )
    assert data.cache is not None and data.train == sorted(files)
    for train in (True, False):
        for epoch in (0, 3):
            got = new_crops(data, data.train, size, train, epoch)
            assert np.array_equal(got, new_crops(data, data.train, size, train, epoch))  # fixed
            for i, path in enumerate(data.train):
                want = old_crop(read_rgb(path), size, train, 0, epoch, i)
                diff = np.abs(got[i].astype(float) - want)
                # the same part of the picture, the same flip: resampling differs, nothing more
                assert diff.mean() < 2.0 and np.percentile(diff, 90) < 6, (path.name, epoch)
    other_epoch = new_crops(data, data.train, size, True, 1)
    assert not np.array_equal(other_epoch, new_crops(data, data.train, size, True, 0))


def test_the_cache_is_reused_and_rebuilt_when_the_files_change(tmp_path: Path) -> None:
    files = write_photos(tmp_path / "photos", NAMES[:3], size=80)
    decoded = []

    def open_data() -> object:
        return open_training_data(
            tmp_path / "photos",
            val_fraction=0,
            cache=tmp_path / "c",
            cache_short=40,
            on_image=lambda n, total: decoded.append(n),
        )

    first = open_data()
    assert len(decoded) == 3  # each image decoded once
    record = (tmp_path / "c" / "cache.json").stat().st_mtime_ns
    again = open_data()
    assert len(decoded) == 3 and (tmp_path / "c" / "cache.json").stat().st_mtime_ns == record
    assert np.array_equal(again.picture(files[1]).pixels, first.picture(files[1]).pixels)
    # A changed file: the cache is made again, and holds the new picture.
    rgb = read_rgb(files[1])
    cv2.imwrite(str(files[1]), cv2.cvtColor(255 - rgb, cv2.COLOR_RGB2BGR))
    changed = open_data()
    assert len(decoded) == 6
    assert changed.picture(files[1]).pixels.mean() == pytest.approx(
        255 - first.picture(files[1]).pixels.mean(), abs=2
    )
    # A killed build (no cache.json yet) is no cache: it is made again.
    (tmp_path / "c" / "cache.json").unlink()
    assert FrameCache.open(tmp_path / "c", "any", tmp_path / "photos") is None
    open_data()
    assert len(decoded) == 9


def test_a_failed_write_surfaces_on_the_training_thread(tmp_path: Path) -> None:
    saver = Saver()
    saver.submit(lambda: (tmp_path / "ok").write_text("1"))

    def broken() -> None:
        raise OSError(28, "No space left on device", str(tmp_path / "last.pt"))

    saver.submit(broken)
    saver.submit(lambda: (tmp_path / "after").write_text("1"))  # not written after a failure
    with pytest.raises(OSError, match="No space left"):
        saver.wait()
    assert (tmp_path / "ok").exists() and not (tmp_path / "after").exists()


WRITER = """
import sys, time, torch
from pathlib import Path
from vidcolor.train.checkpoint import save_checkpoint
from vidcolor.train.saver import Saver, snapshot
path = Path(sys.argv[1])
big = {"G": {"w": torch.ones(64_000_000)}, "step": 2}  # 256 MB: the kill lands mid-write
saver = Saver()
saver.submit(lambda: save_checkpoint(path, snapshot(big)))
print("writing", flush=True)
time.sleep(60)
"""


def test_a_kill_during_a_background_write_leaves_the_last_checkpoint_whole(tmp_path: Path) -> None:
    last = tmp_path / "last.pt"
    save_checkpoint(last, {"G": {"w": torch.zeros(10)}, "step": 1})
    before = last.read_bytes()
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(last)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "writing"
    deadline = time.time() + 60
    while not [p for p in tmp_path.iterdir() if p.name != "last.pt"] and time.time() < deadline:
        time.sleep(0.005)  # the temporary file appears: the write is under way
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert last.read_bytes() == before  # the old checkpoint, whole
    stray = [p.name for p in tmp_path.iterdir() if p.name != "last.pt"]
    assert stray and all(n.startswith(".") for n in stray)  # a temp file, for clear_stale
    from vidcolor.atomic import clear_stale

    clear_stale(tmp_path)
    assert os.listdir(tmp_path) == ["last.pt"]
    assert torch.load(last, weights_only=True)["step"] == 1


def test_a_cache_folder_with_someone_elses_record_is_refused(tmp_path: Path) -> None:
    from vidcolor.ownership import NotOursError

    write_photos(tmp_path / "photos", NAMES[:2], size=60)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "cache.json").write_text('{"format": "my own notes"}')
    with pytest.raises(NotOursError, match="not a vidcolor cache"):
        open_training_data(tmp_path / "photos", cache=tmp_path / "c", cache_short=40)
    assert (tmp_path / "c" / "cache.json").read_text() == '{"format": "my own notes"}'
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["cache.json"]
