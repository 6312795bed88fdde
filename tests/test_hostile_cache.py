"""Hostile and careless edits of the training cache and a dataset's manifest (issue 20): each
ends as one line naming the file and a non-zero exit, or as a cache rebuilt to equal a fresh one;
never a traceback, never garbage trained on in silence, nothing written outside the run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from conftest import write_photos

from cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ("--size", "32", "--base-width", "8", "--depth", "3", "--batch-size", "4", "--workers", "0")
CACHE_FILES = ("cache.json", "frames.u8", "index.npy")


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line(result: Result, *needles: str) -> None:
    """Failed with exactly one line on stderr, no traceback, saying each needle."""
    err = result.stderr
    assert result.exit_code == 1, (result.exit_code, err, result.exception)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("vidcolor: error: ")
    for needle in needles:
        assert needle in err, err


def tree(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder``: a file's bytes, a link's target (links not followed)."""
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        out[rel] = os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else "/"
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """A real run of one epoch on five photos, and its cache's files as that run made them."""
    root = tmp_path_factory.mktemp("hostile_cache")
    write_photos(
        root / "photos", ["astronaut", "coffee", "chelsea", "rocket", "colorwheel"], size=48
    )
    result = run("train", root / "photos", "-o", root / "run", "--epochs", "1", *TINY)
    assert result.exit_code == 0, result.output
    return root / "run", {n: (root / "run" / "cache" / n).read_bytes() for n in CACHE_FILES}


@pytest.fixture
def run_copy(tiny_run: tuple[Path, dict[str, bytes]], tmp_path: Path) -> Path:
    """A fresh copy of the tiny run to tamper with (its DATA folder is shared, unchanged)."""
    shutil.copytree(tiny_run[0], tmp_path / "run", symlinks=True)
    return tmp_path / "run"


def resume(run_dir: Path) -> Result:
    return run("train", "--resume", run_dir, "--epochs", "2", "--workers", "0")


# --- finding 7: the training cache is trusted ----------------------------------------------


def edit_index(change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def edit(cache: Path) -> None:
        index = np.load(cache / "index.npy")
        np.save(cache / "index.npy", change(index))

    return edit


def edit_record(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def edit(cache: Path) -> None:
        record = json.loads((cache / "cache.json").read_text())
        (cache / "cache.json").write_text(json.dumps(change(record)))

    return edit


def offset_far(index: np.ndarray) -> np.ndarray:
    index[2, 0] = 1_000_000_000
    return index


def one_image(index: np.ndarray) -> np.ndarray:
    index[:] = index[0]  # every row points at the first picture
    return index


def renamed_files(record: dict) -> dict:
    record["names"] = record.pop("files")
    return record


def short_grey(record: dict) -> dict:
    record["grey"] = record["grey"][:2]
    return record


def random_bytes(cache: Path) -> None:
    size = (cache / "frames.u8").stat().st_size
    (cache / "frames.u8").write_bytes(np.random.default_rng(0).bytes(size))


REBUILT = {
    "index offset 1e9": edit_index(offset_far),
    "index 1-D": edit_index(lambda index: index[:, 0].copy()),
    "index empty": edit_index(lambda index: index[:0]),
    "index short": edit_index(lambda index: index[:3]),
    "index as float": edit_index(lambda index: index.astype(np.float64)),
    "record without files": edit_record(renamed_files),
    "record with a short grey list": edit_record(short_grey),
    "every row one image": edit_index(one_image),
    "random bytes of the right size": random_bytes,
    "frames.u8 missing": lambda cache: (cache / "frames.u8").unlink(),
}


@pytest.mark.parametrize("tamper", REBUILT.values(), ids=REBUILT.keys())
def test_a_damaged_cache_is_rebuilt_to_equal_a_fresh_one(
    tiny_run: tuple[Path, dict[str, bytes]], run_copy: Path, tamper: Callable[[Path], None]
) -> None:
    tamper(run_copy / "cache")
    result = resume(run_copy)
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Traceback" not in result.output
    said = [ln for ln in result.output.splitlines() if "training cache was damaged" in ln]
    assert len(said) == 1 and f"{run_copy / 'cache'}: " in said[0] and "made it again" in said[0]
    fresh = tiny_run[1]
    assert {n: (run_copy / "cache" / n).read_bytes() for n in CACHE_FILES} == fresh
    assert sorted(p.name for p in (run_copy / "cache").iterdir()) == sorted(CACHE_FILES)


def test_a_record_that_is_not_ours_is_refused_and_kept(run_copy: Path) -> None:
    (run_copy / "cache" / "cache.json").write_text("[1, 2, 3]")
    before = tree(run_copy / "cache")
    one_line(resume(run_copy), f"{run_copy / 'cache' / 'cache.json'}: not a vidcolor cache")
    assert tree(run_copy / "cache") == before


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A user's folder beside the run, with a file of the size frames.u8 has."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    return folder


def test_frames_linked_to_an_outside_file_is_refused(run_copy: Path, outside: Path) -> None:
    frames = run_copy / "cache" / "frames.u8"
    (outside / "big.bin").write_bytes(np.random.default_rng(1).bytes(frames.stat().st_size))
    frames.unlink()
    frames.symlink_to(outside / "big.bin")
    before = tree(outside)
    one_line(resume(run_copy), f"{frames}: a link", "remove the link")
    assert tree(outside) == before and os.readlink(frames) == str(outside / "big.bin")


def test_a_cache_folder_linked_outside_is_refused_and_nothing_written_there(
    run_copy: Path, outside: Path
) -> None:
    shutil.rmtree(run_copy / "cache")
    (run_copy / "cache").symlink_to(outside, target_is_directory=True)
    before = tree(outside)
    one_line(resume(run_copy), f"{run_copy / 'cache'}: a link")
    assert tree(outside) == before


def test_a_fifo_in_place_of_the_index_is_refused_not_read(run_copy: Path) -> None:
    (run_copy / "cache" / "index.npy").unlink()
    os.mkfifo(run_copy / "cache" / "index.npy")
    args = ["train", "--resume", str(run_copy), "--epochs", "2", "--workers", "0"]
    # A read of the FIFO would wait for ever: a child process, with a hard timeout.
    done = subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    fifo = run_copy / "cache" / "index.npy"
    want = f"{fifo}: not a plain file, so not vidcolor's training cache; move it away"
    assert done.stderr.strip() == f"vidcolor: error: {want}"


# --- finding 13: what SIGKILL leaves in the cache is cleared --------------------------------


def test_a_killed_builds_temporary_file_is_cleared(
    tiny_run: tuple[Path, dict[str, bytes]], run_copy: Path
) -> None:
    child = subprocess.Popen(["true"])  # a process that has ended: its pid names no live one
    child.wait()
    stale = run_copy / "cache" / f".frames.part-{child.pid}.u8"
    stale.write_bytes(b"\0" * 100_000)
    (run_copy / "cache" / "cache.json").unlink()  # as a build killed before its record
    result = resume(run_copy)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (run_copy / "cache").iterdir()) == sorted(CACHE_FILES)
    assert (run_copy / "cache" / "frames.u8").read_bytes() == tiny_run[1]["frames.u8"]


# --- finding 14: a full disk while the cache is written names the path ----------------------


@pytest.fixture
def small_cache_disk(run_copy: Path) -> Iterator[Path]:
    """The run's cache folder on a 16 KB file system (tmpfs), too small for the cache."""
    cache = run_copy / "cache"
    shutil.rmtree(cache)
    cache.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(cache)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill ({done.stderr.strip()}); needs root")
    yield cache
    subprocess.run(["umount", "--lazy", str(cache)], check=True)


def test_a_full_disk_while_caching_names_the_folder(small_cache_disk: Path) -> None:
    one_line(
        resume(small_cache_disk.parent),
        f"{small_cache_disk}: cannot write the training "
        "cache (No space left on device); free some space",
    )
    assert list(small_cache_disk.iterdir()) == []  # no half-written file left


# --- finding 10: a dataset's manifest and shards, tampered ----------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real dataset built from a short cartoon: one 'train' shard of a few frames."""
    from vidcolor.data.dataset_build import build_dataset
    from vidcolor.synthetic import cartoon

    root = tmp_path_factory.mktemp("hostile_dataset")
    video = cartoon(1, length=48, size=(160, 96)).write(root / "ep1.mp4")
    build_dataset([video], root / "data")
    return root / "data"


def edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], str]:
    def edit(data: Path) -> str:
        manifest = json.loads((data / "manifest.json").read_text())
        change(manifest)
        (data / "manifest.json").write_text(json.dumps(manifest))
        return str(data / "manifest.json")

    return edit


def set_row(key: str, value: object) -> Callable[[Path], str]:
    return edit_manifest(lambda m: m["frames"][1].update({key: value}))


def replace_shard(array: np.ndarray) -> Callable[[Path], str]:
    def edit(data: Path) -> str:
        np.save(data / "train.npy", array)
        return str(data / "train.npy")

    return edit


def shard_fifo(data: Path) -> str:
    (data / "train.npy").unlink()
    os.mkfifo(data / "train.npy")
    return f"{data / 'train.npy'}: not a plain file"


DAMAGED = {
    "row offset 1e9": (set_row("offset", 1_000_000_000), "frame row 1 has offset 1000000000"),
    "row offset 1e9 as a float": (set_row("offset", 1e9), "frame row 1 has offset 1000000000.0"),
    "row offset -1": (set_row("offset", -1), "frame row 1 has offset -1"),
    "row of a split with no shard": (set_row("split", "val"), "frame row 1 names no shard"),
    "row without its scene": (
        edit_manifest(lambda m: m["frames"][1].pop("scene")),
        "frame row 1 lacks its source, episode or scene",
    ),
    "two rows for one frame": (set_row("offset", 0), "do not list its"),
    "rows but one gone": (
        edit_manifest(lambda m: m.update(frames=m["frames"][:1])),
        "do not list its",
    ),
    "a frame shape of zero": (
        edit_manifest(lambda m: m.update(shape=[0, 5])),
        "its frame shape [0, 5] is not a height and width",
    ),
    "shard 4x0x5x3": (
        replace_shard(np.zeros((4, 0, 5, 3), np.uint8)),
        "4x0x5x3 uint8, not the shard its manifest describes",
    ),
    "shard of another frame size": (
        replace_shard(np.zeros((4, 8, 8, 3), np.uint8)),
        "4x8x8x3 uint8, not the shard its manifest describes",
    ),
    "shard of floats": (
        replace_shard(np.zeros((4, 294, 490, 3), np.float32)),
        "float32, not the shard its manifest describes",
    ),
}


@pytest.fixture
def data_copy(built: Path, tmp_path: Path) -> Path:
    shutil.copytree(built, tmp_path / "data")
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["shape"] == [294, 490] and manifest["shards"]["train"]["count"] >= 3
    assert set(manifest["shards"]) == {"train"}
    return tmp_path / "data"


@pytest.mark.parametrize(("tamper", "says"), DAMAGED.values(), ids=DAMAGED.keys())
def test_every_stage_refuses_a_damaged_dataset_with_the_same_line(
    data_copy: Path, tmp_path: Path, tiny_model: Path, tamper: Callable[[Path], str], says: str
) -> None:
    named = tamper(data_copy)
    before = tree(data_copy)
    lines = []
    for args in (
        ["dataset", "info", data_copy, "--sheet", tmp_path / "sheet.png"],
        ["eval", data_copy, "--model", tiny_model, "--split", "train", "--device", "cpu"],
        ["train", data_copy, "-o", tmp_path / "run", "--epochs", "1", *TINY],
    ):
        result = run(*args)
        one_line(result, f"{named}: ", says, "build the dataset again")
        lines.append(result.stderr)
    assert lines[0] == lines[1] == lines[2]
    assert tree(data_copy) == before and not (tmp_path / "sheet.png").exists()


def test_a_fifo_in_place_of_a_shard_is_refused_not_read(data_copy: Path, tmp_path: Path) -> None:
    says = shard_fifo(data_copy)
    for args in (
        ["dataset", "info", data_copy, "--sheet", tmp_path / "sheet.png"],
        ["train", data_copy, "-o", tmp_path / "run", "--epochs", "1", *TINY],
    ):
        # A read of the FIFO would wait for ever: a child process, with a hard timeout.
        done = subprocess.run(
            [sys.executable, "-m", "cli", *map(str, args)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip() == f"vidcolor: error: {says}; build the dataset again"


def test_dataset_info_refuses_a_manifest_without_rows(data_copy: Path, tmp_path: Path) -> None:
    named = edit_manifest(lambda m: m.update(frames=[]))(data_copy)
    before = tree(data_copy)
    result = run("dataset", "info", data_copy, "--sheet", tmp_path / "sheet.png")
    one_line(result, f"{named}: lists no frames; build the dataset again")
    assert tree(data_copy) == before and not (tmp_path / "sheet.png").exists()
