"""`vidcolor pipeline run/status` on generated episodes: end to end, skipping, reruns, resume,
bad recipes, and render shared out under torchrun."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from vidcolor.synthetic import cartoon
from vidcolor.video import probe

ROOT = Path(__file__).parents[1]
RECIPE = """\
inputs = ["eps/*.mp4"]
work = "work"

[dataset]
preset = "generic"

[train]
size = 64
epochs = 1
batch-size = 4
base-width = 8
depth = 4
workers = 0

[render]
crf = 30
"""


@pytest.fixture(scope="module")
def episodes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("season")
    (folder / "eps").mkdir()
    for seed in (1, 2):
        cartoon(seed, length=240, size=(160, 96)).write(folder / "eps" / f"ep{seed}.mp4")
    return folder


@pytest.fixture
def project(episodes: Path, tmp_path: Path) -> Path:
    """A folder with the episodes and the recipe, as a user would lay it out."""
    shutil.copytree(episodes / "eps", tmp_path / "eps")
    (tmp_path / "r.toml").write_text(RECIPE)
    return tmp_path


def run(project: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["pipeline", "run", str(project / "r.toml"), *args])
    return result.exit_code, result.stderr


def mtimes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()
    }


def test_end_to_end_then_everything_skipped(project: Path) -> None:
    code, err = run(project)
    assert code == 0, err
    work = project / "work"
    for ep in ("ep1.mp4", "ep2.mp4"):  # every frame of every episode, in colour
        assert probe(work / "render" / ep).frame_count == probe(project / "eps" / ep).frame_count
    records = {
        s: json.loads((work / "pipeline" / f"{s}.json").read_text())
        for s in ("dataset", "train", "render")
    }
    assert all(r["status"] == "done" for r in records.values())
    assert records["train"]["options"]["epochs"] == 1
    before = mtimes(work / "dataset") | mtimes(work / "train") | mtimes(work / "render")
    code, err = run(project)
    assert code == 0, err
    assert err.count("done, skipped") == 3
    assert mtimes(work / "dataset") | mtimes(work / "train") | mtimes(work / "render") == before
    status = CliRunner().invoke(main, ["pipeline", "status", str(project / "r.toml")])
    assert status.exit_code == 0 and status.output.count(" done ") == 3


def test_a_training_option_reruns_training_and_render_only(project: Path) -> None:
    assert run(project)[0] == 0
    work = project / "work"
    dataset, model = mtimes(work / "dataset"), (work / "train" / "model.pt").stat().st_mtime_ns
    out = (work / "render" / "ep1.mp4").stat().st_mtime_ns
    status = CliRunner().invoke(
        main, ["pipeline", "status", str(project / "r.toml"), "--set", "train.epochs=2"]
    )
    assert "train    stale" in status.output and "dataset  done" in status.output
    code, err = run(project, "--set", "train.epochs=2")
    assert code == 0, err
    assert "[dataset] done, skipped" in err and "[train] done, skipped" not in err
    assert mtimes(work / "dataset") == dataset
    assert (work / "train" / "model.pt").stat().st_mtime_ns != model
    assert (work / "render" / "ep1.mp4").stat().st_mtime_ns != out
    assert json.loads((work / "pipeline" / "train.json").read_text())["options"]["epochs"] == 2


def test_a_run_killed_in_training_resumes_from_its_checkpoint(project: Path) -> None:
    args = ["--set", "train.epochs=20", "--set", "train.checkpoint-every=4"]
    cmd = [sys.executable, "-m", "cli", "pipeline", "run", str(project / "r.toml"), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        cmd, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    last = project / "work" / "train" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # a few more steps and checkpoints
    proc.send_signal(signal.SIGKILL)  # no chance to save or record anything
    proc.wait()
    assert last.exists() and proc.returncode == -signal.SIGKILL
    record = json.loads((project / "work" / "pipeline" / "train.json").read_text())
    assert record["status"] == "running"
    status = CliRunner().invoke(main, ["pipeline", "status", str(project / "r.toml"), *args])
    assert "train    interrupted  will resume" in status.output
    code, err = run(project, *args)
    assert code == 0, err
    step, total = (int(w) for w in err.split(" at step ")[1].split()[:3:2])  # "12 of 80"
    assert 0 < step < total  # picked up from the checkpoint, not from zero
    assert f"done: {total} steps" in err and total == 20 * 4  # 20 epochs of 16 images / 4
    assert json.loads((project / "work" / "pipeline" / "train.json").read_text())["status"] == (
        "done"
    )


BAD = {
    'inputs = ["eps/*.mp4"]\nwork = "w"\n[train]\nepochs = 1\nepoch = 2\n':
        "r.toml:5: [train] epoch: unknown option",
    'inputs = ["eps/*.mp4"]\nwork = "w"\n[dataset]\n[train]\nepochs = "many"\n':
        "r.toml:5: [train] epochs: 'many' is not a valid integer",
    'inputs = ["eps/*.mkv"]\nwork = "w"\n[dataset]\n':
        "r.toml:1: inputs: 'eps/*.mkv' matches no file",
    'inputs = ["eps/*.mp4"]\nwork = "w"\n\n[train]\nepochs = 1\n':
        "r.toml:4: train: the train stage needs a [dataset] or [extract] stage",
    'inputs = ["eps/*.mp4"]\nwork = "w"\n[dataset]\noutput = "x"\n':
        "r.toml:4: [dataset] output: set by the pipeline itself",
    'inputs = ["eps/*.mp4"]\n[dataset]\n': "work: a work folder is needed",
    'inputs = ["eps/*.mp4"]\nwork = "w"\n[render]\ninputs = ["none/*.mp4"]\n':
        "r.toml:4: [render] inputs: 'none/*.mp4' matches no file",
    'inputs = ["eps/*.mp4"]\nwork = "w"\nstages = 3\n[dataset]\n':
        "r.toml:3: stages: unknown key",
    'inputs = ["eps/*.mp4"]\nwork = "w"\n[extract]\nfps = 2\nevery = 3\n':
        "r.toml:3: extract: use --every or --fps, not both",
    'inputs = ["eps/*.mp4"]\nwork = "w"\n[render]\ncodec = ["h264"]\n':
        "r.toml:4: [render] codec: expected text in quotes",
    'inputs = ["eps/*.mp4"]\nwork = "w"\n[render]\ncodec = "h266"\n':
        "r.toml:3: render: unknown video encoder 'h266'",
    'inputs = ["eps/*.mp4"]\nwork = "w"\n[dataset]\n[train]\ndevice = "gpu"\n':
        "r.toml:4: train: --device gpu: not a device",
    'inputs = ["eps/*.mp4"]\nwork = "w"\n[render]\nmodel = "nope.pt"\n':
        "r.toml:4: [render] model: ",
    'inputs = ["eps/*.mp4"]\nwork = "w"\n[dataset]\n[train]\n[render]\nmodel = "m.pt"\n':
        "r.toml:6: [render] model: set by the pipeline itself",
    'inputs = ["eps/*.mp4"]\nwork = "w"\n[render]\nkeyframes = "keys"\n':
        "r.toml:4: [render] keyframes: keyframes belong to one video",
    'inputs = ["eps/*.mp4"]\nwork = "w"\n[render]\nadapt = 30\n':
        "r.toml:4: [render] adapt: keyframes belong to one video",
}  # fmt: skip


@pytest.mark.parametrize("text", list(BAD))
def test_bad_recipes_fail_before_any_work(project: Path, text: str) -> None:
    (project / "r.toml").write_text(text)
    code, err = run(project)
    assert code == 1 and BAD[text] in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (project / "w").exists()


def test_set_overrides_are_checked_and_named(project: Path) -> None:
    code, err = run(project, "--set", "train.epochs=0")
    assert code == 1 and "--set train.epochs: 0 is not in the range x>=1" in err
    code, err = run(project, "--set", "epochs")
    assert code == 1 and "--set epochs: expected KEY=VALUE" in err
    assert not (project / "work").exists()


def test_torchrun_shares_the_episodes_out(episodes: Path, tmp_path: Path) -> None:
    shutil.copytree(episodes / "eps", tmp_path / "eps")
    cartoon(3, length=48, size=(160, 96)).write(tmp_path / "eps" / "ep3.mp4")
    (tmp_path / "r.toml").write_text('inputs = ["eps/*.mp4"]\nwork = "work"\n[render]\ncrf = 30\n')
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "-m",
            "cli",
            "pipeline",
            "run",
            "r.toml",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for name, frames in (("ep1.mp4", 240), ("ep2.mp4", 240), ("ep3.mp4", 48)):
        assert done.stderr.count(f"frames in {tmp_path}/work/render/{name}") == 1  # one rank
        assert probe(tmp_path / "work" / "render" / name).frame_count == frames


def test_new_and_edited_inputs_are_rendered_and_only_they(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "r.toml").write_text(
        'inputs = ["**/*.mp4", "**/*.webm"]\nwork = "work"\n[render]\ncrf = 30\n'
    )
    clip = cartoon(4, length=24, size=(160, 96))
    clip.write(project / "eps" / "short.webm", codec="libvpx-vp9")
    assert run(project)[0] == 0
    render = project / "work" / "render"
    assert sorted(p.name for p in render.iterdir()) == ["ep1.mp4", "ep2.mp4", "short.mkv"]
    before = mtimes(render)
    cartoon(5, length=30, size=(160, 96)).write(project / "eps" / "ep1.mp4")  # edited
    cartoon(6, length=20, size=(160, 96)).write(project / "eps" / "ep3.mp4")  # new
    monkeypatch.chdir(project / "eps")  # and run from another folder this time
    code, err = run(project)  # the outputs under work/ are not taken for inputs
    assert code == 0, err
    after = mtimes(render)
    assert after["ep2.mp4"] == before["ep2.mp4"] and after["short.mkv"] == before["short.mkv"]
    assert after["ep1.mp4"] != before["ep1.mp4"] and "ep3.mp4" in after
    assert probe(render / "ep1.mp4").frame_count == 30
    code, err = run(project)
    assert code == 0 and "[render] done, skipped" in err


def test_extract_stage_trains_on_the_current_inputs_only(project: Path) -> None:
    (project / "r.toml").write_text(
        RECIPE.replace('[dataset]\npreset = "generic"\n', "[extract]\nfps = 2\nsize = 64\n")
    )
    code, err = run(project)
    assert code == 0, err
    both = int(err.split("training on ")[1].split()[0])
    (project / "eps" / "ep2.mp4").unlink()
    code, err = run(project)
    assert code == 0, err
    assert not (project / "work" / "frames" / "ep2").exists()
    one = int(err.split("training on ")[1].split()[0])
    assert 0 < one < both and "ep2" not in err.split("[render]")[0]


def test_a_damaged_stage_output_is_rebuilt(project: Path) -> None:
    assert run(project)[0] == 0
    (project / "work" / "dataset" / "manifest.json").unlink()
    status = CliRunner().invoke(main, ["pipeline", "status", str(project / "r.toml")])
    assert "dataset  stale        output missing" in status.output
    code, err = run(project)
    assert code == 0, err
    assert (project / "work" / "dataset" / "manifest.json").is_file()


def test_the_library_runs_a_plan_and_loads_the_model_once(
    episodes: Path, tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No command line: a Plan built by hand, run silently; one model load for two episodes."""
    import vidcolor.render.colorizer
    from vidcolor.options import RenderOptions
    from vidcolor.pipeline import Plan, Reporter, WorkLayout, run_pipeline
    from vidcolor.runtime import Dist

    loads = []
    real = vidcolor.render.colorizer.load_model
    monkeypatch.setattr(
        vidcolor.render.colorizer, "load_model", lambda p: loads.append(p) or real(p)
    )
    videos = sorted((episodes / "eps").glob("*.mp4"))
    options = RenderOptions(model=tiny_model, crf=30, temporal=False)
    plan = Plan(
        tmp_path / "r.toml",
        WorkLayout(tmp_path / "work"),
        videos,
        videos,
        {"render": options},
        {"render": {"crf": 30}},
    )
    run_pipeline(plan, Dist(), Reporter())
    for video in videos:
        assert probe(plan.layout.render(video)).frame_count == probe(video).frame_count
    assert loads == [tiny_model]
    record = json.loads((tmp_path / "work" / "pipeline" / "render.json").read_text())
    assert record["status"] == "done"


def test_a_failing_stage_is_recorded_with_its_reason(project: Path) -> None:
    (project / "broken").mkdir()
    (project / "broken" / "ep9.mp4").write_bytes(b"not a video at all")
    (project / "r.toml").write_text('inputs = ["broken/*.mp4"]\nwork = "work"\n[render]\n')
    code, err = run(project)
    assert code == 1 and "ep9.mp4" in err.splitlines()[-1] and "Traceback" not in err
    record = json.loads((project / "work" / "pipeline" / "render.json").read_text())
    assert record["status"] == "failed" and "ep9.mp4" in record["error"]
    status = CliRunner().invoke(main, ["pipeline", "status", str(project / "r.toml")])
    assert "render   failed       will resume; it failed: " in status.output
