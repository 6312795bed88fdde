"""Checkpoints and model bundles are checked whole before anything is built from them: a broken
file is one line naming it and the problem, and a tiny file never makes vidcolor allocate a big
network."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result
from conftest import make_video

from cli import main
from vidcolor.color import Hedge
from vidcolor.models import ModelConfig, build_generator
from vidcolor.train.checkpoint import (
    BUNDLE_FORMAT,
    HEDGE_FIELDS,
    CheckpointError,
    load_checkpoint,
    load_model,
    save_bundle,
)
from vidcolor.train.loop import Dist, RunError, TrainConfig, Trainer
from vidcolor.train.runfolder import resume_run

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("vidcolor: error: ")
    return lines[0]


def rewrite(path: Path, change: Callable[[dict], object]) -> None:
    """Load ``path``, apply ``change`` to its dict, save it back."""
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


@pytest.fixture
def tiny_run(tiny_model: Path, tmp_path: Path) -> Path:
    """A copy of the tiny model's run folder (its last.pt: step 4 of 4), to resume or break."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("config.json", "last.pt"):
        shutil.copy(tiny_model.parent / "run" / name, run_dir / name)
    return run_dir


BROKEN_CHECKPOINTS: dict[str, tuple[Callable[[dict], object], str]] = {
    "no config": (lambda s: s.pop("config"), "config is missing"),
    "config a list": (lambda s: s.update(config=[32, 2]), "config is a list; it must be a dict"),
    "unknown config field": (
        lambda s: s["config"].update(colour=True),
        "config has an unknown field 'colour'",
    ),
    "step a string": (lambda s: s.update(step="4"), "step is '4'; it must be an int"),
    "bool for an int": (
        lambda s: s["config"].update(batch_size=True),
        "config.batch_size is True; it must be an int",
    ),
    "huge base width": (
        lambda s: s["config"]["model"].update(base_width=20000),
        "config.model.base_width is 20000; it must be from 4 to 256",
    ),
    "no data": (lambda s: s["config"].pop("data"), "config.data is missing"),
    "lr left to resolve": (
        lambda s: s["config"].update(lr=None),
        "config.lr is None; it must be a finite number",
    ),
    "width left to resolve": (
        lambda s: s["config"]["model"].update(base_width=None),
        "config.model.base_width is None; a stored model names its own",
    ),
    "another width": (
        lambda s: s["config"]["model"].update(base_width=16),
        "weights do not fit the model it describes (G.downs.0.0.weight is "
        "8x1x4x4 float32, the model's 16x1x4x4 float32)",
    ),
    "moments of another shape": (
        lambda s: s["opt_G"]["state"][0].update(exp_avg=torch.zeros(1)),
        "opt_G.state[0].exp_avg is 1 float32; parameter 0 is 8x1x4x4",
    ),
    "training weights of another shape": (
        lambda s: s.update(G_train={k: v[:1] if v.dim() else v for k, v in s["G"].items()}),
        "weights do not fit the model it describes (G_train.downs.0.0.weight is",
    ),
    "rng of floats": (
        lambda s: s.update(rng=torch.zeros(5056)),
        "rng is a 5056 float32 tensor; it must be a generator state",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_CHECKPOINTS))
def test_resume_refuses_a_broken_checkpoint_in_one_line(tiny_run: Path, case: str) -> None:
    change, message = BROKEN_CHECKPOINTS[case]
    rewrite(tiny_run / "last.pt", change)
    line = one_line_error(run("train", "--resume", tiny_run))
    assert line.startswith(f"vidcolor: error: {tiny_run / 'last.pt'}: {message}"), line


def test_a_good_checkpoint_resumes_and_loads_as_a_model(tiny_run: Path) -> None:
    saved = torch.load(tiny_run / "last.pt", weights_only=True)
    trainer = resume_run(tiny_run, Dist(), workers=0)
    assert trainer.step == saved["step"] == 4 and trainer.sched_G.last_epoch == 4
    for name, t in trainer.G.state_dict().items():
        assert torch.equal(t, saved["G"][name]), name
    opt = trainer.opt_G.state_dict()["state"]
    assert torch.equal(opt[0]["exp_avg"], saved["opt_G"]["state"][0]["exp_avg"])
    g, info = load_model(tiny_run / "last.pt")
    assert info["model"] == {
        "base_width": 8,
        "depth": 4,
        "disc": "patch",
        "dropout": 0.5,
        "encoder": "unet",
    }
    assert g(torch.zeros(1, 1, 40, 56)).shape == (1, 2, 40, 56)


def test_a_checkpoint_of_another_model_is_not_loaded_into_a_run(tiny_run: Path) -> None:
    cfg = TrainConfig.from_dict(load_checkpoint(tiny_run / "last.pt")["config"])
    other = replace(cfg, model=replace(cfg.model, base_width=16))
    trainer = Trainer(other, tiny_run, Dist(), workers=0)
    with pytest.raises(RunError, match="holds a model other than this run's"):
        trainer.load(tiny_run / "last.pt")


def test_a_good_bundle_loads(tiny_model: Path) -> None:
    g, info = load_model(tiny_model)
    assert info["format"] == BUNDLE_FORMAT and info["size"] == 32 and not g.training
    assert g(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_a_bundles_chroma_gain_scales_the_colour_it_renders(
    tiny_model: Path, tmp_path: Path
) -> None:
    from conftest import write_photos

    from vidcolor.color import rgb_to_lab
    from vidcolor.images import read_rgb
    from vidcolor.render.streaming import Colorizer, default_model

    old = tmp_path / "old.pt"
    shutil.copy(tiny_model, old)
    rewrite(old, lambda s: s.pop("chroma_gain"))
    assert Colorizer(old, "cpu").hedge == Hedge(1.0, 0.0)  # made before it had one
    bold, modest = tmp_path / "bold.pt", tmp_path / "modest.pt"  # the bundled model's weights
    for path, gain in ((bold, 1.0), (modest, 0.5)):  # colour a photograph
        shutil.copy(default_model(), path)
        rewrite(path, lambda s, gain=gain: s.update(chroma_gain=gain))
    photo = read_rgb(write_photos(tmp_path / "photo", ["coffee"], size=64)[0])
    full, half = (
        rgb_to_lab(torch.from_numpy(Colorizer(m, "cpu").colorize_rgb(photo)).float() / 255)
        for m in (bold, modest)
    )
    assert full[..., 1:].abs().mean() > 2
    off = (half[..., 1:] - full[..., 1:] / 2).abs()  # uint8 rounding; out-of-gamut clipping
    assert off.mean() < 0.5 and off.quantile(0.99) < 3, (off.mean(), off.quantile(0.99))
    assert (half[..., 0] - full[..., 0]).abs().mean() < 0.5  # the lightness stays


def test_a_hedge_takes_faint_tints_away_and_keeps_strong_colour_in_its_hue() -> None:
    ab = torch.tensor([[3.0, 4.0], [12.0, 16.0], [-30.0, 40.0]]).T.reshape(1, 2, 3, 1)  # 5, 20, 50
    out = Hedge(gain=0.5, shrink=10.0)(ab)
    chroma = out.norm(dim=1).flatten()
    torch.testing.assert_close(chroma, torch.tensor([0.0, 5.0, 20.0]))  # (c - 10)+ x 0.5
    hue_in, hue_out = (torch.atan2(x[:, 1], x[:, 0]).flatten()[1:] for x in (ab, out))
    torch.testing.assert_close(hue_out, hue_in)
    assert torch.equal(Hedge()(ab), ab)


def test_a_bundle_keeps_the_hedge_it_was_saved_with(tiny_model: Path, tmp_path: Path) -> None:
    from vidcolor.render.streaming import Colorizer

    run = tiny_model.parent / "run" / "last.pt"
    save_bundle(tmp_path / "hedged.pt", run, hedge=Hedge(0.8, 6.0))
    assert Colorizer(tmp_path / "hedged.pt", "cpu").hedge == Hedge(0.8, 6.0)
    assert Colorizer(run, "cpu").hedge == Hedge()  # a training checkpoint: no hedge


@pytest.mark.parametrize(
    "key, value",
    [("chroma_gain", v) for v in (0.0, -0.5, 2.5, float("nan"), "0.5", 1)]
    + [("chroma_shrink", v) for v in (-1.0, 100.0, float("inf"), None)],
)
def test_a_bundle_with_a_wrong_hedge_is_refused_in_one_line(
    tiny_model: Path, tmp_path: Path, key: str, value: object
) -> None:
    bundle = tmp_path / "hedge.pt"
    shutil.copy(tiny_model, bundle)
    rewrite(bundle, lambda s: s.update({key: value}))
    with pytest.raises(CheckpointError) as e:
        load_model(bundle)
    assert str(e.value).startswith(f"{bundle}: {key} is ")
    low, high = HEDGE_FIELDS[key][1:]
    assert str(e.value).endswith(f"it must be a number from {low:g} to {high:g}")


def test_weights_that_do_not_fit_the_declared_model_are_refused(
    tiny_model: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "wider.pt"
    shutil.copy(tiny_model, bundle)
    rewrite(bundle, lambda s: s["model"].update(base_width=16))
    with pytest.raises(CheckpointError) as e:
        load_model(bundle)
    assert str(e.value) == (
        f"{bundle}: weights do not fit the model it describes (generator.downs.0.0.weight is "
        "8x1x4x4 float16, the model's 16x1x4x4 float32)"
    )
    shutil.copy(tiny_model, bundle)
    rewrite(bundle, lambda s: s["generator"].pop("out.bias"))
    with pytest.raises(CheckpointError, match=r"the file has no generator\.out\.bias"):
        load_model(bundle)


def largest_generator() -> dict[str, torch.Tensor]:
    """Weights of the largest network a file may declare, each a stride-0 view of one zero:
    every shape right, and the file a few kB."""
    cfg = ModelConfig(base_width=256, depth=10)
    with torch.device("meta"):
        shapes = build_generator(cfg, init=False).state_dict()
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in shapes.items()}


TINY_HUGE = {
    "base width 20000": (
        {"base_width": 20000, "depth": 8},
        lambda: {"out.bias": torch.zeros(2)},
        "model.base_width is 20000; it must be from 4 to 256",
    ),
    "largest model, no weights": (
        {"base_width": 256, "depth": 10},
        lambda: {"out.bias": torch.zeros(2)},
        "weights do not fit the model it describes (the file has no",
    ),
    "largest model, stride-0 weights": (
        {"base_width": 256, "depth": 10},
        largest_generator,
        "generator declares more elements than the file stores",
    ),
}

MEASURE = """
import json, resource, sys, time
from vidcolor.train.checkpoint import CheckpointError, load_model
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    load_model(sys.argv[1])
    error = None
except CheckpointError as e:
    error = str(e)
seconds = time.perf_counter() - t
grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"error": error, "seconds": seconds, "grew_mb": grew_mb}))
"""


@pytest.mark.parametrize("case", list(TINY_HUGE))
def test_a_tiny_file_declaring_a_huge_model_is_refused_at_once(tmp_path: Path, case: str) -> None:
    """Refused before any network is built: in milliseconds, with no memory to speak of (a
    fresh process, so its peak memory is this load's alone)."""
    model, generator, message = TINY_HUGE[case]
    path = tmp_path / "huge.pt"
    torch.save(
        {
            "format": BUNDLE_FORMAT,
            "vidcolor": "0",
            "size": 256,
            "provenance": {},
            "model": {**model, "disc": "patch", "dropout": 0.5},
            "generator": generator(),
        },
        path,
    )
    assert path.stat().st_size < (2 if case == "base width 20000" else 100) * 1024
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["error"] is not None and result["error"].startswith(f"{path}: ")
    assert message in result["error"]
    assert result["seconds"] < 0.5, result
    assert result["grew_mb"] < 50, result


def test_render_says_a_huge_model_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "huge.pt"
    torch.save(
        {
            "format": BUNDLE_FORMAT,
            "vidcolor": "0",
            "size": 256,
            "provenance": {},
            "model": {"base_width": 20000, "depth": 8, "disc": "patch", "dropout": 0.5},
            "generator": {},
        },
        path,
    )
    make_video(tmp_path / "in.mp4", frames=2)
    line = one_line_error(run("render", tmp_path / "in.mp4", tmp_path / "out.mp4", "--model", path))
    assert "huge.pt: weights do not fit the model it describes (model.base_width is 20000" in line
    assert not (tmp_path / "out.mp4").exists()


class Payload:
    """Unpickling it would make a folder: the proof that loading ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("kind", ["bundle", "checkpoint"])
def test_pickled_objects_are_refused_for_safety_in_plain_words(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.pt"
    fmt = BUNDLE_FORMAT if kind == "bundle" else "vidcolor-training-checkpoint"
    torch.save({"format": fmt, "generator": {"x": Payload(marker)}, "hook": os.system}, path)
    with pytest.raises(CheckpointError) as e:
        (load_model if kind == "bundle" else load_checkpoint)(path)
    message = str(e.value)
    assert message.startswith(f"{path}: not a vidcolor ")
    assert "holds objects other than tensors and plain data" in message
    assert "refused for safety" in message
    assert "PyTorch 2.6" not in message and "weights_only" not in message
    assert "\n" not in message and not marker.exists()


def test_unreadable_files_get_a_short_message_cut_between_words(
    tiny_model: Path, tmp_path: Path
) -> None:
    empty, junk, cut = tmp_path / "empty.pt", tmp_path / "junk.pt", tmp_path / "cut.pt"
    empty.write_bytes(b"")
    junk.write_bytes(b"not a model at all")
    data = tiny_model.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    said = {}
    for path in (empty, junk, cut):
        with pytest.raises(CheckpointError) as e:
            load_model(path)
        said[path.stem] = str(e.value)
    assert said["empty"] == f"{empty}: not a vidcolor model: the file is empty"
    assert said["junk"] == (
        f"{junk}: not a vidcolor model: it cannot be read (damaged, or not a file PyTorch wrote)"
    )
    head = f"{cut}: not a vidcolor model: it cannot be read ("
    assert said["cut"].startswith(head) and said["cut"].endswith(")")
    reason = said["cut"][len(head) : -1].removesuffix(" ...")
    with pytest.raises(RuntimeError) as e:
        torch.load(cut, weights_only=True)
    torch_said = " ".join(str(e.value).split())  # the reason is its start, in whole words
    assert 0 < len(reason) <= 90 and torch_said.startswith(reason)
    assert not torch_said[len(reason) : len(reason) + 1].isalnum()
    assert not any("\n" in m or "PyTorch 2.6" in m or "safety" in m for m in said.values())
