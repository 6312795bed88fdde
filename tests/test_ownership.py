"""vidcolor deletes or replaces only what it made: the guarded delete, paths read from records,
temporary files of killed runs, and the findings of issue 12 as regression tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_video, write_photos

from cli import main
from vidcolor.atomic import clear_own, clear_stale, temp_beside
from vidcolor.ownership import NotOursError, file_in, kind_of, remove_folder_of, remove_tree

ROOT = Path(__file__).parents[1]


def one_line(result: object, *needles: str) -> str:
    """The command failed with one error line on stderr (a pipeline's progress lines may come
    before it), no traceback, saying each needle."""
    err = result.stderr
    assert result.exit_code != 0, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and [ln for ln in lines if "error" in ln] == lines[-1:], err
    for needle in needles:
        assert needle in lines[-1], err
    return err


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def dataset_folder(folder: Path, files: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True)
    shards = {"train": {"file": "train.npy", "count": 2}}
    (folder / "manifest.json").write_text(
        json.dumps({"format": "vidcolor-dataset", "shards": shards})
    )
    np.save(folder / "train.npy", np.zeros((2, 8, 8, 3), np.uint8))
    for name, text in (files or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


# --- the guarded delete -----------------------------------------------------------------------


def test_remove_tree_deletes_a_folder_vidcolor_made(tmp_path: Path) -> None:
    data = dataset_folder(tmp_path / "data")
    assert kind_of(data) == "dataset"
    remove_tree(data, tmp_path, "dataset")
    assert not data.exists()


@pytest.mark.parametrize("case", ["user folder", "stray file", "outside", "link", "wrong kind"])
def test_remove_tree_refuses_anything_else_and_deletes_nothing(tmp_path: Path, case: str) -> None:
    if case == "user folder":
        target = tmp_path / "holiday"
        target.mkdir()
        (target / "photo1.txt").write_text("mine")
        match = "not made by vidcolor"
    elif case == "stray file":
        target = dataset_folder(tmp_path / "data", {"notes/thesis.txt": "mine"})
        match = "notes: not made by vidcolor"
    elif case == "outside":
        target = dataset_folder(tmp_path / "elsewhere" / "data")
        match = "outside"
    elif case == "link":
        real = dataset_folder(tmp_path / "real")
        target = tmp_path / "work" / "data"
        target.parent.mkdir()
        target.symlink_to(real, target_is_directory=True)
        match = "not made by vidcolor"
    else:
        target = dataset_folder(tmp_path / "data")
        match = "not made by vidcolor"
    within = tmp_path / "work" if case in ("outside", "link") else tmp_path
    before = tree(tmp_path)
    with pytest.raises(NotOursError, match=match):
        remove_tree(target, within, "train" if case == "wrong kind" else "dataset")
    assert tree(tmp_path) == before


def test_a_recipe_folder_is_removed_only_when_it_holds_its_files_alone(tmp_path: Path) -> None:
    folder = tmp_path / "stamps"
    folder.mkdir()
    (folder / "fox.png").write_bytes(b"png")
    remove_folder_of(folder, tmp_path, ("*.png",))
    assert not folder.exists()
    for stray in ("notes.txt", "sub/fox.png"):
        folder.mkdir()
        (folder / "fox.png").write_bytes(b"png")
        (folder / stray).parent.mkdir(exist_ok=True)
        (folder / stray).write_text("mine")
        with pytest.raises(NotOursError, match="not made by vidcolor"):
            remove_folder_of(folder, tmp_path, ("*.png",))
        assert (folder / stray).read_text() == "mine" and (folder / "fox.png").exists()
        shutil.rmtree(folder)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out/stamps").symlink_to(outside)
    with pytest.raises(NotOursError, match="left alone"):  # a link, never followed
        remove_folder_of(tmp_path / "out/stamps", tmp_path / "out", ("*.png",))
    with pytest.raises(NotOursError, match="left alone"):  # outside the folder it works in
        remove_folder_of(outside, tmp_path / "out", ("*.png",))
    assert outside.is_dir()


@pytest.mark.parametrize("name", ["../victim.txt", "/tmp/victim.txt", "a/b.png", "..", "", 7])
def test_names_read_from_records_stay_in_their_folder(tmp_path: Path, name: object) -> None:
    with pytest.raises(NotOursError, match="not a file name in its folder"):
        file_in(tmp_path, name, "manifest.jsonl:1")


def test_a_link_out_of_the_folder_is_not_read_through(tmp_path: Path) -> None:
    (tmp_path / "secret.npy").write_bytes(b"x")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.npy").symlink_to(tmp_path / "secret.npy")
    with pytest.raises(NotOursError, match="links out of"):
        file_in(tmp_path / "data", "train.npy", "manifest.json")


def test_temporary_files_of_dead_processes_are_cleared_and_no_others(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = tmp_path / f".out.part-{dead}.mp4"
    live = temp_beside(tmp_path / "out.mp4")  # this process's own
    other_live = tmp_path / f".out.part-{os.getppid()}.mp4"
    user = tmp_path / ".notes.part-1.txt.bak"
    for p in (stale, live, other_live, user):
        p.write_bytes(b"x")
    assert clear_stale(tmp_path) == 1
    assert not stale.exists() and live.exists() and other_live.exists() and user.exists()


def test_own_temporary_files_are_cleared_only_for_the_stems_asked(tmp_path: Path) -> None:
    """What extract sweeps after a stop: its own half-landed frames, no one else's files."""
    frame = temp_beside(tmp_path / "ep_000024.png")
    other_stem = temp_beside(tmp_path / "manifest.jsonl")
    other_pid = tmp_path / f".ep_000025.part-{os.getppid()}.png"
    user = tmp_path / "ep_000026.png"
    for p in (frame, other_stem, other_pid, user):
        p.write_bytes(b"x")
    assert clear_own(tmp_path, r"ep_\d{6,}") == 1
    assert not frame.exists() and other_stem.exists() and other_pid.exists() and user.exists()


# --- finding 1: pipeline run and user folders -------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    make_video(path, frames=24, width=64, height=48)
    return path


def pipeline(recipe: Path, text: str | None = None) -> object:
    if text is not None:
        recipe.write_text(text)
    return CliRunner().invoke(main, ["pipeline", "run", str(recipe)])


@pytest.mark.parametrize(
    "mine",
    ["frames/holiday/photo1.txt", "dataset/notes/thesis.txt", "train/old_experiment/results.csv"],
)
def test_a_work_folder_holding_user_files_is_refused(clip: Path, tmp_path: Path, mine: str) -> None:
    (tmp_path / mine).parent.mkdir(parents=True)
    (tmp_path / mine).write_text("mine")
    (tmp_path / "r.toml").write_text(
        f'work = "."\ninputs = ["{clip}"]\n[extract]\nfps = 1\nsize = 32\n'
    )
    before = tree(tmp_path)
    one_line(pipeline(tmp_path / "r.toml"), "not a vidcolor work folder")
    assert tree(tmp_path) == before


def test_a_home_or_root_work_folder_is_refused(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home" / "you"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    for work in (home, home.parent, Path("/")):
        result = pipeline(
            tmp_path / "r.toml", f'work = "{work}"\ninputs = ["{clip}"]\n[extract]\nfps = 1\n'
        )
        one_line(result, "too wide for a work folder")
    assert list(home.iterdir()) == []


def test_inputs_inside_the_work_folder_are_refused(clip: Path, tmp_path: Path) -> None:
    recipe = 'work = "work"\ninputs = ["INPUT"]\n[extract]\nfps = 1\nsize = 32\n'
    assert pipeline(tmp_path / "r.toml", recipe.replace("INPUT", str(clip))).exit_code == 0
    (tmp_path / "work" / "footage").mkdir()
    make_video(tmp_path / "work" / "footage" / "ep.mp4", frames=12)
    result = pipeline(tmp_path / "r.toml", recipe.replace("INPUT", "work/*/*.mp4"))
    one_line(result, "footage/ep.mp4: an input inside the work folder")


def test_pipeline_leaves_user_files_in_its_work_folder_alone(clip: Path, tmp_path: Path) -> None:
    recipe = (
        f'work = "work"\ninputs = ["{clip}"]\n[extract]\nfps = 2\nsize = 32\n[render]\ncrf = 40\n'
    )
    assert pipeline(tmp_path / "r.toml", recipe).exit_code == 0
    work = tmp_path / "work"
    # a render output that the user replaced with a file of their own, under the output's name
    ledger = work / "pipeline" / "render.items" / "clip.mp4.json"
    ledger.unlink()
    (work / "render" / "clip.mp4").write_bytes(b"my own edit")
    result = pipeline(tmp_path / "r.toml", recipe.replace("crf = 40", "crf = 41"))
    one_line(result, "clip.mp4: not rendered by this pipeline")
    assert (work / "render" / "clip.mp4").read_bytes() == b"my own edit"
    # a folder of the user's among the extracted episodes
    (work / "render" / "clip.mp4").unlink()
    (work / "frames" / "holiday").mkdir()
    (work / "frames" / "holiday" / "photo1.txt").write_text("mine")
    result = pipeline(tmp_path / "r.toml", recipe.replace("fps = 2", "fps = 3"))
    one_line(result, "holiday: not made by vidcolor")
    assert (work / "frames" / "holiday" / "photo1.txt").read_text() == "mine"


# --- finding 2: extract --overwrite and manifest rows -----------------------------------------


@pytest.mark.parametrize("row_file", ["../victimA.txt", "ABS"])
def test_extract_overwrite_deletes_nothing_outside_its_folder(
    clip: Path, tmp_path: Path, row_file: str
) -> None:
    out = tmp_path / "frames"
    assert CliRunner().invoke(main, ["extract", str(clip), "-o", str(out)]).exit_code == 0
    victim = tmp_path / "victimA.txt" if row_file != "ABS" else tmp_path / "x" / "victimB.txt"
    victim.parent.mkdir(exist_ok=True)
    victim.write_text("precious")
    with open(out / "manifest.jsonl", "a") as f:
        f.write(
            json.dumps({"file": row_file if row_file != "ABS" else str(victim), "frame": 99}) + "\n"
        )
    result = CliRunner().invoke(main, ["extract", str(clip), "-o", str(out), "--overwrite"])
    one_line(result, "is not a file name in its folder")
    assert victim.read_text() == "precious"


# --- finding 3: dataset shard paths ---------------------------------------------------------


@pytest.mark.parametrize("shard", ["../outside.npy", "/etc/passwd", "train.npy"])
def test_dataset_shards_are_read_only_inside_the_dataset(
    tmp_path: Path, tiny_model: Path, shard: str
) -> None:
    outside = tmp_path / "outside.npy"
    np.save(outside, np.zeros((4, 40, 40, 3), np.uint8))
    data = tmp_path / "data"
    data.mkdir()
    if shard == "train.npy":  # a link that leads out of the folder
        (data / "train.npy").symlink_to(outside)
    manifest = {
        "format": "vidcolor-dataset",
        "frames": [],
        "sources": [],
        "shards": {"train": {"file": shard, "count": 4}, "test": {"file": shard, "count": 4}},
    }
    (data / "manifest.json").write_text(json.dumps(manifest))
    want = "links out of" if shard == "train.npy" else "not a file name in its folder"
    runner = CliRunner()
    one_line(runner.invoke(main, ["train", str(data), "-o", str(tmp_path / "run")]), want)
    one_line(runner.invoke(main, ["dataset", "info", str(data)]), want)
    one_line(runner.invoke(main, ["eval", str(data), "--model", str(tiny_model)]), want)


def test_a_shard_that_is_not_one_is_one_line(tmp_path: Path) -> None:
    data = dataset_folder(tmp_path / "data")
    (data / "train.npy").write_text("root:x:0:0:root:/root:/bin/bash\n")
    result = CliRunner().invoke(main, ["train", str(data), "-o", str(tmp_path / "run")])
    one_line(result, "train.npy: cannot read (not a shard file)")


def test_train_refuses_a_run_folder_of_other_files(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    write_photos(photos, size=40)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"my": "own settings"}')
    result = CliRunner().invoke(main, ["train", str(photos), "-o", str(run), "--size", "32"])
    one_line(result, "is not a training run vidcolor made")
    assert (run / "config.json").read_text() == '{"my": "own settings"}'


# --- finding 7: signals ---------------------------------------------------------------------


def test_an_interrupt_while_the_model_loads_exits_130_in_one_line(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vidcolor.render.colorizer

    def interrupted(path: Path) -> None:  # Ctrl-C arriving inside torch.load
        raise KeyboardInterrupt

    monkeypatch.setattr(vidcolor.render.colorizer, "load_model", interrupted)
    result = CliRunner().invoke(main, ["render", str(clip), str(tmp_path / "o.mp4")])
    assert result.exit_code == 130 and "Aborted" not in result.output
    one_line(result, "interrupted")


def _heed_sighup() -> None:
    """In the child: SIGHUP back to its default, which a suite run under nohup would otherwise
    pass on as ignored (and vidcolor rightly leaves an ignored SIGHUP ignored)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.parametrize(("signal_name", "code"), [("TERM", 143), ("HUP", 129)])
def test_sigterm_and_sighup_mid_render_leave_no_temporary_file(
    clip: Path, tiny_model: Path, tmp_path: Path, signal_name: str, code: int
) -> None:
    out = tmp_path / "out.mp4"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VIDCOLOR_TEST_FAULT": f"{signal_name}@0.5"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "render",
            str(clip),
            str(out),
            "--model",
            str(tiny_model),
            "--batch-size",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_heed_sighup,
    )
    assert done.returncode == code, done.stderr
    assert "was not written; run the command again" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # neither out.mp4 nor .out.part-NNNN.mp4


# --- finding 9: folders of images -----------------------------------------------------------


def test_a_folder_render_skips_and_names_unreadable_images(
    tmp_path: Path, tiny_model: Path
) -> None:
    photos = tmp_path / "photos"
    write_photos(photos, names=["astronaut", "coffee", "chelsea"], size=40)
    (photos / "broken.png").write_bytes(b"not a png")
    result = CliRunner().invoke(
        main, ["render", str(photos), str(tmp_path / "out"), "--model", str(tiny_model)]
    )
    assert result.exit_code == 1
    assert "broken.png: not a readable image" in result.stderr
    assert "1 of 4 images could not be read" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "astronaut.png",
        "chelsea.png",
        "coffee.png",
    ]


# --- finding 8: a full disk -----------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    """A 1 MB file system (tmpfs) that fills up quickly."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill ({done.stderr.strip()}); needs root")
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=True)


def test_extract_on_a_full_disk_names_the_path(small_disk: Path, tmp_path: Path) -> None:
    import av

    video = tmp_path / "noise.mp4"  # noise: PNG cannot shrink it, so the disk fills
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=24, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(24):
            rgb = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    out = small_disk / "frames"
    result = CliRunner().invoke(main, ["extract", str(video), "-o", str(out)])
    one_line(result, f"{out}/", "No space left on device")
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert 0 < len(rows) < 24 and all((out / r["file"]).is_file() for r in rows)
    assert not list(out.glob(".*.part-*"))  # no half-written frame left behind


@pytest.mark.parametrize(
    ("length", "left"),
    [
        (240, ["plan.json"]),  # the scan itself overflows: it is dropped
        (48, ["plan.json", "scan_0.json", "scan_0.small.u8", "scan_0.std.npy", "scan_0.u8"]),
    ],
)  # 48 frames: the scan fits and is kept to resume from; the shard overflows and is dropped
def test_dataset_build_on_a_full_disk_keeps_only_what_can_resume(
    small_disk: Path, tmp_path: Path, length: int, left: list[str]
) -> None:
    from vidcolor.synthetic import cartoon

    video = cartoon(1, length=length, size=(160, 96)).write(tmp_path / "ep1.mp4")
    result = CliRunner().invoke(
        main, ["dataset", "build", str(video), "-o", str(small_disk / "data")]
    )
    one_line(
        result,
        f"{small_disk}/.data.partial: cannot write (No space left on device)",
        "run the same command again to resume",
    )
    assert sorted(p.name for p in (small_disk / ".data.partial").iterdir()) == left


def test_extract_overwrite_deletes_nothing_of_a_folder_it_did_not_make(
    clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    (out / "manifest.jsonl").write_text(json.dumps({"file": "precious.txt", "frame": 0}) + "\n")
    result = CliRunner().invoke(main, ["extract", str(clip), "-o", str(out), "--overwrite"])
    one_line(result, "is not a vidcolor extraction's")
    assert (out / "precious.txt").read_text() == "keep" and (out / "manifest.jsonl").exists()


def test_a_build_stopped_between_its_plan_and_the_next_resumes(tmp_path: Path) -> None:
    from vidcolor.data.dataset_build import build_dataset
    from vidcolor.synthetic import cartoon

    video = cartoon(1, length=48, size=(160, 96)).write(tmp_path / "ep1.mp4")
    (tmp_path / ".data.partial").mkdir()
    (tmp_path / ".data.partial" / "lock").touch()  # all that was left: no plan.json yet
    build_dataset([video], tmp_path / "data")
    assert (tmp_path / "data" / "manifest.json").is_file()
    assert not (tmp_path / ".data.partial").exists()
