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
from vidcolor.dataset_build import PRESETS, BuildError, BuildOptions, build_dataset
from vidcolor.scenes import detect_scenes
from vidcolor.synthetic import cartoon, replay


@pytest.fixture(scope="module")
def episodes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("episodes")
    paths = [root / "ep1.mp4", root / "ep2.mp4"]
    for p in paths:
        write_episode(p)
    return paths


def test_no_scene_in_two_splits_and_no_frame_by_a_cut(episodes: list[Path], tmp_path: Path) -> None:
    manifest = build_dataset(episodes, tmp_path / "data", BuildOptions(seed=3))
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
    a = build_dataset(episodes, tmp_path / "a", BuildOptions(split_by="episode", seed=1))
    b = build_dataset(episodes, tmp_path / "b", BuildOptions(split_by="episode", seed=1))
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
    build_dataset(episodes, tmp_path / "data")
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
    manifest = build_dataset([still], tmp_path / "data")
    assert len(manifest["frames"]) == 1 and manifest["dropped"]["duplicate"] == 7


def test_bad_inputs(episodes: list[Path], tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00" * 4000)
    manifest = build_dataset([corrupt, episodes[0]], tmp_path / "data")
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
        build_dataset([black], tmp_path / "none")
    assert not (tmp_path / "none").exists()
    with pytest.raises(BuildError, match="exists"):
        build_dataset(episodes, tmp_path / "data")


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


def test_camera_jumps_are_cuts_with_the_sc2_preset(tmp_path: Path) -> None:
    episode = replay(0, length=360)
    video = episode.write(tmp_path / "replay.mp4")
    sc2 = PRESETS["sc2"]
    found = [s.start_frame for s in detect_scenes(video, adaptive_threshold=sc2.adaptive_threshold,
                                                  min_content=sc2.min_content)[1:]]  # fmt: skip
    jumps = [first for first, _, _ in episode.cuts]
    assert len(found) == len(jumps) and all(
        abs(a - b) <= 1 for a, b in zip(found, jumps, strict=True)
    )
    assert [s.start_frame for s in detect_scenes(video)[1:]] == []  # cartoon settings miss them


def test_static_hud_found_and_kept_out_on_request(tmp_path: Path) -> None:
    episode = replay(3, length=480)
    video = episode.write(tmp_path / "replay.mp4")
    found = build_dataset([video], tmp_path / "a", BuildOptions("sc2"))["sources"][0]
    (_, _, w, bar), (_, panel_top, _, _) = episode.hud  # top bar and bottom panel
    assert any(y <= 1 and h >= bar - 1 and bw >= 0.9 * w for x, y, bw, h in found["hud"])
    assert any(abs(y - panel_top) <= 2 and y + h >= 178 and bw >= 0.8 * w
               for x, y, bw, h in found["hud"])  # fmt: skip
    assert found["picture"] == [0, 0, 320, 180]  # kept whole unless asked
    manifest = build_dataset([video], tmp_path / "b", BuildOptions("sc2", avoid_hud=True))
    _, y, _, ph = manifest["sources"][0]["picture"]
    assert y >= bar - 1 and y + ph <= panel_top + 1 and ph >= 0.9 * (panel_top - bar)
    shard = np.load(tmp_path / "b" / manifest["shards"]["train"]["file"], mmap_mode="r")
    panel = np.array([30, 34, 48])  # the HUD's flat colour never reaches the stored frames
    assert (np.abs(shard[:, -4:].astype(int) - panel).sum(axis=-1) > 12).mean() > 0.95
    cartoon_like = build_dataset([write_cartoon(tmp_path / "c.mp4")], tmp_path / "c")
    assert cartoon_like["sources"][0]["hud"] == []


def write_cartoon(path: Path, bars: int = 0) -> Path:
    """A generated cartoon episode, with black bars of ``bars`` rows above and below."""
    episode = cartoon(5, length=240)
    if bars:
        inner = episode.frame
        episode.frame = lambda i: np.pad(inner(i), ((bars, bars), (0, 0), (0, 0)))
        episode.size = (episode.size[0], episode.size[1] + 2 * bars)
    return episode.write(path)


def test_letterbox_bars_judged_on_the_whole_video(tmp_path: Path) -> None:
    video = write_cartoon(tmp_path / "bars.mp4", bars=24)
    manifest = build_dataset([video], tmp_path / "data")
    x, y, w, h = manifest["sources"][0]["picture"]
    assert (x, w) == (0, 320) and 24 <= y <= 27 and 174 <= h <= 180 and y + h <= 204
    shard = np.load(tmp_path / "data" / "train.npy", mmap_mode="r")
    assert shard[:, :2].mean() > 20 and shard[:, -2:].mean() > 20  # no bar stored
    assert manifest["dropped"]["dark"] <= 1  # bars do not make frames "dark"


def test_an_interrupted_build_resumes_from_the_next_video(episodes: list[Path], tmp_path: Path
                                                          ) -> None:  # fmt: skip
    seen = 0

    def interrupt(n: int) -> None:  # Ctrl-C once the first video is scanned
        nonlocal seen
        seen += n
        if seen > 150:
            raise KeyboardInterrupt

    out = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        build_dataset(episodes, out, on_frames=interrupt)
    assert not out.exists() and (tmp_path / ".data.partial" / "scan_0.json").is_file()
    notes: list[str] = []
    frames: list[int] = []
    resumed = build_dataset(episodes, out, on_note=notes.append, on_frames=frames.append)
    assert notes == ["resuming an interrupted build: 1 of 2 videos already scanned"]
    assert not (tmp_path / ".data.partial").exists()
    clean = build_dataset(episodes, tmp_path / "clean")
    assert resumed["frames"] == clean["frames"]
    assert (out / "train.npy").read_bytes() == (tmp_path / "clean" / "train.npy").read_bytes()
    with pytest.raises(KeyboardInterrupt):  # other options: the partial build is not reused
        build_dataset(episodes, tmp_path / "other", on_frames=interrupt)
    notes.clear()
    build_dataset(episodes, tmp_path / "other", BuildOptions(seed=9), on_note=notes.append)
    assert notes == []


def test_recipe_gives_inputs_and_options(episodes: list[Path], tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'inputs = ["{episodes[0].parent}/ep*.mp4"]\n\n'
                      '[dataset]\npreset = "spongebob"\nsplit-by = "episode"\n')  # fmt: skip
    runner = CliRunner()
    out = tmp_path / "data"
    result = runner.invoke(main, ["dataset", "build", "--recipe", str(recipe), "-o", str(out),
                                  "--seed", "4"])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["preset"], manifest["split_by"], manifest["seed"]) == (
        "spongebob",
        "episode",
        4,
    )
    assert len(manifest["sources"]) == 2
    bad = {
        '[dataset]\npreset = "sc2"\nsplitby = "scene"\n': "r.toml:3: [dataset] splitby: unknown",
        '[dataset]\nseed = "many"\n': "r.toml:2: [dataset] seed: 'many' is not a valid integer",
        '[dataset]\npreset = "anime"\n': "r.toml:2: [dataset] preset: 'anime' is not one of",
        '[dataset]\navoid-hud = "yes"\n': "r.toml:2: [dataset] avoid-hud: expected true or false",
        'inputs = ["nothing/*.mp4"]\n': "r.toml:1: inputs: 'nothing/*.mp4' matches no file",
        "[dataset\n": "r.toml: not valid TOML",
    }
    for text, message in bad.items():
        recipe.write_text(text)
        result = runner.invoke(main, ["dataset", "build", "--recipe", str(recipe), "-o",
                                      str(tmp_path / "x")])  # fmt: skip
        assert result.exit_code == 1 and message in result.stderr, (text, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
