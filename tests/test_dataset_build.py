"""`vidcolor dataset build` on generated episodes with known cuts, fade and flash."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_scenes import write_episode

from cli import main
from vidcolor.dataset import ColorCrops, ShardFrame, open_training_data
from vidcolor.dataset_build import PRESETS, BuildError, build_dataset
from vidcolor.scenes import detect_scenes


@pytest.fixture(scope="module")
def episodes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("episodes")
    paths = [root / "ep1.mp4", root / "ep2.mp4"]
    for p in paths:
        write_episode(p)
    return paths


def test_no_scene_in_two_splits_and_no_frame_by_a_cut(episodes: list[Path], tmp_path: Path) -> None:
    manifest = build_dataset(episodes, tmp_path / "data", "generic", seed=3)
    frames = manifest["frames"]
    assert frames and manifest["skipped"] == []
    split_of: dict[tuple[int, int], set[str]] = {}
    for f in frames:
        split_of.setdefault((f["episode"], f["scene"]), set()).add(f["split"])
    assert all(len(s) == 1 for s in split_of.values())  # no scene in two splits
    cuts = [s.start_frame for s in detect_scenes(episodes[0])[1:]]
    margin = PRESETS["generic"].margin
    assert all(abs(f["frame"] - c) > margin for f in frames for c in cuts)  # none by a cut
    for split, shard in manifest["shards"].items():
        array = np.load(tmp_path / "data" / shard["file"], mmap_mode="r")
        assert array.shape == (shard["count"], *manifest["shape"], 3)
        assert array.dtype == np.uint8
        assert sum(f["split"] == split for f in frames) == shard["count"]
    assert all(len(f["sha256"]) == 64 for f in frames)
    assert all(f["time"] == pytest.approx(f["frame"] / 24, abs=1e-6) for f in frames)


def test_builds_are_reproducible_and_split_by_episode(episodes: list[Path], tmp_path: Path) -> None:
    a = build_dataset(episodes, tmp_path / "a", "generic", split_by="episode", seed=1)
    b = build_dataset(episodes, tmp_path / "b", "generic", split_by="episode", seed=1)
    assert a == b
    for shard in a["shards"].values():
        name = shard["file"]
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    by_episode: dict[int, set[str]] = {}
    for f in a["frames"]:
        by_episode.setdefault(f["episode"], set()).add(f["split"])
    assert all(len(s) == 1 for s in by_episode.values())
    assert not list(tmp_path.glob(".*partial*"))  # built aside, renamed when complete


def test_training_reads_the_shards(episodes: list[Path], tmp_path: Path) -> None:
    build_dataset(episodes, tmp_path / "data", "generic", seed=0)
    data = open_training_data(tmp_path / "data")
    assert data.train and all(isinstance(x, ShardFrame) for x in data.train)
    crop = ColorCrops(data.train, 64, train=True)[0]
    assert crop.shape == (3, 64, 64) and crop.dtype == torch.uint8


def test_duplicates_dropped(tmp_path: Path) -> None:
    still = tmp_path / "still.mp4"  # one shot, nothing moves: one frame is enough
    with av.open(str(still), "w") as out:
        s = out.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        img = np.zeros((96, 160, 3), np.uint8)
        img[:, :80], img[:, 80:] = (200, 60, 40), (40, 90, 200)
        for i in range(96):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    manifest = build_dataset([still], tmp_path / "data", "generic")
    assert len(manifest["frames"]) == 1 and manifest["dropped"]["duplicate"] == 7


def test_bad_inputs(episodes: list[Path], tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00" * 4000)
    manifest = build_dataset([corrupt, episodes[0]], tmp_path / "data", "generic")
    assert len(manifest["skipped"]) == 1 and "corrupt.mp4" in manifest["skipped"][0]
    assert {f["episode"] for f in manifest["frames"]} == {1}
    black = tmp_path / "black.mp4"
    with av.open(str(black), "w") as out:
        s = out.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(48):
            f = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            f.pts = i
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    with pytest.raises(BuildError, match="no usable frames"):
        build_dataset([black], tmp_path / "none", "generic")
    assert not (tmp_path / "none").exists()
    with pytest.raises(BuildError, match="exists"):
        build_dataset(episodes, tmp_path / "data", "generic")


def test_cli_build_and_info(episodes: list[Path], tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "data"
    result = runner.invoke(main, ["dataset", "build", *map(str, episodes), "-o", str(out),
                                  "--preset", "spongebob"])  # fmt: skip
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["dataset", "info", str(out)])
    assert result.exit_code == 0, result.output
    assert "ep1.mp4" in result.output and (out / "scenes.png").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["preset"] == "spongebob" and manifest["shape"][0] == round(224 * 1.15)
    result = runner.invoke(main, ["dataset", "info", str(tmp_path)])
    assert result.exit_code == 1 and "not a vidcolor dataset" in result.stderr
