"""`vidcolor dataset build` on generated episodes with known cuts, fade and flash."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result
from test_scenes import write_episode

from cli import main
from vidcolor.data.crops import Crops, on_device
from vidcolor.data.dataset import ShardFrame, open_training_data
from vidcolor.data.dataset_build import PRESETS, BuildError, BuildOptions, build_dataset
from vidcolor.data.scenes import detect_scenes
from vidcolor.synthetic import Episode, cartoon, replay


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
    crops = Crops(len(data.train), lambda i: data.picture(data.train[i]), 64, train=True)
    canvas, theta = crops.batch([0, 1], epoch=0)
    crop = on_device(canvas, theta, 64, torch.device("cpu"))
    assert crop.shape == (2, 3, 64, 64) and crop.min() >= 0 and crop.max() <= 1
    assert data.picture(data.train[0]).pixels.shape == tuple(
        np.load(data.train[0].shard, mmap_mode="r").shape[1:]
    )


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


def write_black(path: Path, width: int, height: int, frames: int = 48) -> Path:
    """Two seconds of black at 24 frames/s."""
    black = np.zeros((height, width, 3), np.uint8)
    return Episode(lambda i: black, frames, (width, height)).write(path)


def test_bad_inputs(episodes: list[Path], tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00" * 4000)
    manifest = build_dataset([corrupt, episodes[0]], tmp_path / "data")
    assert len(manifest["skipped"]) == 1 and "corrupt.mp4" in manifest["skipped"][0]
    assert {f["episode"] for f in manifest["frames"]} == {1}
    black = write_black(tmp_path / "black.mp4", 64, 48)
    with pytest.raises(BuildError, match="no usable frames"):
        build_dataset([black], tmp_path / "none")
    assert not (tmp_path / "none").exists()
    with pytest.raises(BuildError, match="exists"):
        build_dataset(episodes, tmp_path / "data")


def test_cli_build_and_info(episodes: list[Path], tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "data"
    result = runner.invoke(
        main, ["dataset", "build", *map(str, episodes), "-o", str(out), "--preset", "spongebob"]
    )
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
    found = [
        s.start_frame
        for s in detect_scenes(
            video, adaptive_threshold=sc2.adaptive_threshold, min_content=sc2.min_content
        )[1:]
    ]
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
    assert any(
        abs(y - panel_top) <= 2 and y + h >= 178 and bw >= 0.8 * w for x, y, bw, h in found["hud"]
    )
    assert found["picture"] == [0, 0, 320, 180]  # kept whole unless asked
    manifest = build_dataset([video], tmp_path / "b", BuildOptions("sc2", avoid_hud=True))
    _, y, _, ph = manifest["sources"][0]["picture"]
    assert y >= bar - 1 and y + ph <= panel_top + 1 and ph >= 0.9 * (panel_top - bar)
    shard = np.load(tmp_path / "b" / manifest["shards"]["train"]["file"], mmap_mode="r")
    panel = np.array([30, 34, 48])  # the HUD's flat colour never reaches the stored frames
    assert (np.abs(shard[:, -4:].astype(int) - panel).sum(axis=-1) > 12).mean() > 0.95
    cartoon_like = build_dataset([write_cartoon(tmp_path / "c.mp4")], tmp_path / "c")
    assert cartoon_like["sources"][0]["hud"] == []


def write_cartoon(path: Path, bars: int = 0, faststart: bool = False) -> Path:
    """A generated cartoon episode, with black bars of ``bars`` rows above and below."""
    episode = cartoon(5, length=240)
    if bars:
        inner = episode.frame
        episode.frame = lambda i: np.pad(inner(i), ((bars, bars), (0, 0), (0, 0)))
        episode.size = (episode.size[0], episode.size[1] + 2 * bars)
    return episode.write(path, faststart=faststart)


def test_letterbox_bars_judged_on_the_whole_video(tmp_path: Path) -> None:
    video = write_cartoon(tmp_path / "bars.mp4", bars=24)
    manifest = build_dataset([video], tmp_path / "data")
    x, y, w, h = manifest["sources"][0]["picture"]
    assert (x, w) == (0, 320) and 24 <= y <= 27 and 174 <= h <= 180 and y + h <= 204
    shard = np.load(tmp_path / "data" / "train.npy", mmap_mode="r")
    assert shard[:, :2].mean() > 20 and shard[:, -2:].mean() > 20  # no bar stored
    assert manifest["dropped"]["dark"] <= 1  # bars do not make frames "dark"


def test_an_interrupted_build_resumes_from_the_next_video(
    episodes: list[Path], tmp_path: Path
) -> None:
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
    recipe.write_text(
        f'inputs = ["{episodes[0].parent}/ep*.mp4"]\n\n'
        '[dataset]\npreset = "spongebob"\nsplit-by = "episode"\n'
    )
    runner = CliRunner()
    out = tmp_path / "data"
    result = runner.invoke(
        main, ["dataset", "build", "--recipe", str(recipe), "-o", str(out), "--seed", "4"]
    )
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
        "[dataset]\noutput = 5\n": "r.toml:2: [dataset] output: expected text in quotes",
        'inputs = ["nothing/*.mp4"]\n': "r.toml:1: inputs: 'nothing/*.mp4' matches no file",
        "[dataset\n": "r.toml: not valid TOML",
    }
    for text, message in bad.items():
        recipe.write_text(text)
        result = runner.invoke(
            main, ["dataset", "build", "--recipe", str(recipe), "-o", str(tmp_path / "x")]
        )
        assert result.exit_code == 1 and message in result.stderr, (text, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["spongebob.toml", "sc2replay.toml"])
def test_shipped_recipes_fit_the_command(name: str) -> None:
    from vidcolor.pipeline.check import stage_values
    from vidcolor.pipeline.recipe import load

    recipe = load(Path(__file__).parents[1] / "pipelines" / name)
    options = stage_values("dataset", recipe)
    assert options["preset"] in PRESETS and options["split-by"] == "episode"


@pytest.mark.parametrize("name", ["strategy_game.toml", "cartoon_game.toml"])
def test_footage_recipes_fit_their_commands(name: str) -> None:
    """The loop's recipes run on recorded footage CI lacks; their stages are checked here."""
    from vidcolor.pipeline.check import checked_stage
    from vidcolor.pipeline.recipe import load

    recipe = load(Path(__file__).parents[1] / "pipelines" / name)
    stages = ["dataset", "train", "render"]
    got = {s: checked_stage(recipe, s, stages)[1] for s in stages}
    assert got["dataset"]["preset"] in PRESETS
    assert got["train"]["size"] == 224  # the bundled model's, so train.init=default fits
    assert got["render"]["preview-frames"] > 0


def test_an_l_shaped_hud_is_kept_out_too(tmp_path: Path) -> None:
    episode = replay(3, length=480)
    inner = episode.frame

    def with_side_panel(i: int) -> np.ndarray:  # a left column joins the top bar and panel
        img = inner(i)
        img[:, :40] = (30, 34, 48)
        return img

    episode.frame = with_side_panel
    video = episode.write(tmp_path / "l.mp4")
    manifest = build_dataset([video], tmp_path / "d", BuildOptions("sc2", avoid_hud=True))
    x, y, w, h = manifest["sources"][0]["picture"]
    assert x >= 39 and y >= 11 and y + h <= 145 and w * h >= 0.7 * 280 * 132
    assert manifest["warnings"] == []


def test_the_first_video_with_frames_sets_the_shape(tmp_path: Path) -> None:
    black = write_black(tmp_path / "black.mp4", 128, 96)  # 4:3 and nothing usable in it
    manifest = build_dataset([black, write_cartoon(tmp_path / "c.mp4")], tmp_path / "d")
    h, w = manifest["shape"]
    assert w / h == pytest.approx(320 / 180, rel=0.01)
    assert manifest["sources"][1]["picture"] == [0, 0, 320, 180]


def test_truncated_and_resized_videos_are_used_with_a_word(tmp_path: Path) -> None:
    full = write_cartoon(tmp_path / "full.mp4", faststart=True)
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    parts = []
    for n, (w, h) in enumerate([(160, 96), (320, 192)]):  # MPEG-TS joins by concatenation
        part = tmp_path / f"p{n}.ts"
        with av.open(str(part), "w") as out:
            s = out.add_stream("libx264", rate=24)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            for i in range(48):
                img = cv2.resize(cartoon(1).frame(i + 48 * n), (w, h))
                f = av.VideoFrame.from_ndarray(img, format="rgb24")
                f.pts = i + 48 * n
                out.mux(s.encode(f))
            out.mux(s.encode(None))
        parts.append(part.read_bytes())
    resized = tmp_path / "resized.ts"
    resized.write_bytes(b"".join(parts))
    manifest = build_dataset([cut, resized], tmp_path / "d")
    assert manifest["skipped"] == []
    assert len(manifest["warnings"]) == 1 and "cut.mp4" in manifest["warnings"][0]
    assert "frames before it are used" in manifest["warnings"][0]
    assert {f["episode"] for f in manifest["frames"]} == {0, 1}
    assert manifest["sources"][1]["frames"] == 96


def test_a_write_error_is_not_blamed_on_the_video(episodes: list[Path], tmp_path: Path) -> None:
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))\n"
        "from cli import main\n"
        "main(sys.argv[1:])\n"
    )
    out = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-c", script, "dataset", "build", *map(str, episodes), "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    assert done.returncode == 1 and "File too large" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not out.exists()
    assert (tmp_path / ".data.partial").is_dir()  # kept: the build can resume


def test_inputs_named_twice_and_overwrite_guard(episodes: list[Path], tmp_path: Path) -> None:
    notes: list[str] = []
    twice = [episodes[0], episodes[0].parent / ".." / episodes[0].parent.name / "ep1.mp4"]
    manifest = build_dataset(twice, tmp_path / "d", on_note=notes.append)
    assert len(manifest["sources"]) == 1 and "given twice" in notes[0]
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(BuildError, match="not a vidcolor dataset"):
        build_dataset(episodes, precious, overwrite=True)
    assert (precious / "notes.txt").read_text() == "mine"
    build_dataset(episodes, tmp_path / "d", overwrite=True)  # a dataset may be replaced
    with pytest.raises(BuildError, match="the current folder"):
        build_dataset(episodes, Path(".").absolute().parent, overwrite=True)


def test_recipe_values_are_checked_like_the_command_line(
    episodes: list[Path], tmp_path: Path
) -> None:
    folder = tmp_path / "season [2024]"  # glob characters in the recipe's folder name
    folder.mkdir()
    for e in episodes:
        (folder / e.name).write_bytes(e.read_bytes())
    recipe = folder / "r.toml"
    runner = CliRunner()

    def build(text: str) -> Result:
        recipe.write_text(text)
        return runner.invoke(
            main, ["dataset", "build", "--recipe", str(recipe), "-o", str(tmp_path / "x")]
        )

    result = build('inputs = ["*.mp4"]\n[dataset]\noutput = "ignored"\n')
    assert result.exit_code == 0, result.output  # -o on the command line wins over output
    bad = {
        'inputs = ["*.mp4"]\n[dataset]\nseed = true\n': "r.toml:3: [dataset] seed: expected a",
        'inputs = ["*.mp4"]\n[dataset]\nseed = 2.9\n': "seed: expected a whole number",
        'inputs = ["*.mp4"]\n[dataset]\nseed = inf\n': "seed: expected a whole number",
        'inputs = ["*.mp4"]\n[dataset]\nseed = 2024-01-01\n': "seed: not a valid integer",
        'inputs = ["*.mp4"]\n[dataset]\nseed = -1\n': "seed: -1 is not in the range x>=0",
        "[dataset]\nseed = 1\n": "r.toml: no inputs",
        "inputs = []\n": "r.toml:1: inputs: the list is empty",
        'inputs = ["*.mp4"]\n[pipeline]\nx = 1\n': "r.toml:2: pipeline: unknown key",
    }
    for text, message in bad.items():
        result = build(text)
        assert result.exit_code == 1 and message in result.stderr, (text, result.stderr)
    result = runner.invoke(
        main, ["dataset", "build", str(episodes[0]), "-o", str(tmp_path / "y"), "--seed", "-1"]
    )
    assert result.exit_code == 2 and not list(tmp_path.glob(".y*"))


def test_info_on_a_dataset_from_an_earlier_version(episodes: list[Path], tmp_path: Path) -> None:
    build_dataset(episodes, tmp_path / "d")
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    del manifest["sources"]
    (tmp_path / "d" / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(main, ["dataset", "info", str(tmp_path / "d")])
    assert result.exit_code == 1 and "built by an earlier vidcolor" in result.stderr


def test_no_frame_from_inside_a_fade_or_dissolve(tmp_path: Path) -> None:
    episode = cartoon(1)
    manifest = build_dataset([episode.write(tmp_path / "c.mp4")], tmp_path / "d")
    spans = [(a, b) for a, b, kind in episode.cuts if kind != "cut"]
    assert manifest["dropped"]["in a fade or dissolve"] > 0
    assert not [f for f in manifest["frames"] for a, b in spans if a <= f["frame"] <= b]


def test_a_built_dataset_reads_back_through_its_manifest_type(
    episodes: list[Path], tmp_path: Path
) -> None:
    from vidcolor.data.dataset import DatasetManifest

    written = build_dataset(episodes, tmp_path / "d")
    manifest = DatasetManifest.load(tmp_path / "d")
    assert manifest.shape == tuple(written["shape"]) and manifest.preset == written["preset"]
    assert manifest.sources == written["sources"] and manifest.frames == written["frames"]
    for split, (name, count) in manifest.shards.items():
        assert (name, count) == (f"{split}.npy", written["shards"][split]["count"])
        assert manifest.open(split).shape == (count, *manifest.shape, 3)
        assert [r["offset"] for r in manifest.rows(split)] == list(range(count))
