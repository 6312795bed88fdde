"""`vidcolor train --init MODEL`: a new run that starts from a bundle, a checkpoint or the bundled
model, with MODEL's architecture and fine-tuning defaults; conflicts refused in one line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result
from conftest import write_photos

from cli import main, plan_pipeline
from vidcolor.bundled import bundled_model, default_model
from vidcolor.options import ModelConfig, TrainConfig
from vidcolor.runtime import Dist
from vidcolor.train.checkpoint import load_checkpoint
from vidcolor.train.finetune import D_WARMUP, FINE_TUNE_LR, starting_point
from vidcolor.train.loop import Trainer

TINY = [
    "--size",
    "32",
    "--epochs",
    "1",
    "--batch-size",
    "2",
    "--workers",
    "0",
    "--val-fraction",
    "0",
]


def tiny(photos: Path, **kw: object) -> TrainConfig:
    return TrainConfig(
        **{"data": str(photos), "size": 32, "batch_size": 2, "val_fraction": 0.0, **kw}
    )


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("finetune") / "photos"
    write_photos(folder, names=["astronaut", "coffee", "chelsea", "rocket"], size=48)
    return folder


def test_init_from_a_bundle_starts_from_its_generator(
    photos: Path, tiny_model: Path, tmp_path: Path
) -> None:
    cfg, g, d, said = starting_point(tiny(photos, init=str(tiny_model)))
    bundle = torch.load(tiny_model, weights_only=True)
    assert cfg.model == ModelConfig(**bundle["model"]) and d is None
    assert cfg.lr == FINE_TUNE_LR and cfg.d_warmup == D_WARMUP  # a new D learns alone first
    assert cfg.init_sha256 == hashlib.sha256(tiny_model.read_bytes()).hexdigest()
    trainer = Trainer(cfg, tmp_path / "t", Dist(), workers=0, start=(g, d))
    for name, w in trainer.G.state_dict().items():
        assert torch.equal(w, bundle["generator"][name].float()), name
    assert any("new discriminator" in line for line in said)
    # The command: the run records where it started, and --resume carries on.
    out = tmp_path / "run"
    done = run("train", photos, "-o", out, "--init", tiny_model, *TINY)
    assert done.exit_code == 0, done.output
    assert "fine-tuning" in done.stderr and "learning rate 5e-05" in done.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["init"] == str(tiny_model.resolve()) and config["lr"] == FINE_TUNE_LR
    assert config["init_sha256"] == cfg.init_sha256 and config["model"]["base_width"] == 8
    again = run("train", "--resume", out, "--epochs", "2")
    assert again.exit_code == 0, again.output
    assert load_checkpoint(out / "last.pt")["config"]["init"] == config["init"]


def test_init_from_a_checkpoint_keeps_its_discriminator(photos: Path, tmp_path: Path) -> None:
    first = run("train", photos, "-o", tmp_path / "a", "--base-width", "8", "--depth", "4", *TINY)
    assert first.exit_code == 0, first.output
    checkpoint = load_checkpoint(tmp_path / "a" / "last.pt")
    last = str(tmp_path / "a" / "last.pt")
    cfg, g, d, _ = starting_point(tiny(photos, init=last, lr=1e-3))
    assert d is not None and cfg.d_warmup == 0 and cfg.lr == 1e-3  # a set lr stands
    trainer = Trainer(cfg, tmp_path / "t", Dist(), workers=0, start=(g, d))
    for name, w in trainer.D.state_dict().items():
        assert torch.equal(w, checkpoint["D"][name]), name
    # Another kind of discriminator: that one starts afresh.
    cfg, _, d, _ = starting_point(tiny(photos, init=last, model=ModelConfig(disc="global")))
    assert d is None and cfg.model.disc == "global" and cfg.d_warmup == D_WARMUP
    assert (cfg.model.base_width, cfg.model.depth) == (8, 4)  # the rest from the checkpoint


def test_init_default_is_the_bundled_model(photos: Path) -> None:
    cfg, g, d, _ = starting_point(tiny(photos, init="default"))
    bundle = torch.load(default_model(), weights_only=True)
    made_before_encoders = {"encoder": "unet", **bundle["model"]}  # a bundle without one: a unet
    assert cfg.init == "default" and cfg.model == ModelConfig(**made_before_encoders) and d is None
    assert g.keys() == bundle["generator"].keys()


def test_init_names_the_imagenet_model(photos: Path) -> None:
    cfg, g, _, said = starting_point(tiny(photos, init="imagenet"))
    assert cfg.init == "imagenet" and cfg.model.encoder == "mobilenet_v2"
    assert cfg.model.depth == 5 and "stages.0.0.0.weight" in g
    assert str(bundled_model("imagenet")) in said[0]


def test_conflicting_architecture_is_refused_in_one_line(
    photos: Path, tiny_model: Path, tmp_path: Path
) -> None:
    for flag, value in (("--base-width", "16"), ("--depth", "5")):
        done = run(
            "train", photos, "-o", tmp_path / "run", "--init", tiny_model, flag, value, *TINY
        )
        assert done.exit_code == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and f"{flag} {value}" in lines[0] and "leave" in lines[0]
        assert not (tmp_path / "run").exists()  # refused before anything was made
    missing = run("train", photos, "-o", tmp_path / "run", "--init", tmp_path / "no.pt", *TINY)
    assert missing.exit_code == 1 and "no such file" in missing.stderr


def test_a_recipe_names_its_init_model_relative_to_itself(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "start.pt").write_bytes(tiny_model.read_bytes())
    (tmp_path / "ep.mp4").write_bytes(b"")
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'inputs = ["ep.mp4"]\nwork = "work"\n[extract]\nfps = 2\n'
        '[train]\ninit = "models/start.pt"\n'
    )
    plan = plan_pipeline(recipe, ())
    assert plan.stages["train"].config.init == str(tmp_path / "models" / "start.pt")
    recipe.write_text('inputs = ["ep.mp4"]\nwork = "work"\n[extract]\n[train]\ninit = "x.pt"\n')
    with pytest.raises(Exception, match=r"x\.pt: no such file"):
        plan_pipeline(recipe, ())
    # a recipe that starts from a model is run from scratch with --set train.init= (empty)
    assert plan_pipeline(recipe, ("train.init=",)).stages["train"].config.init == ""


def test_a_recipe_names_a_bundled_model(tmp_path: Path) -> None:
    (tmp_path / "ep.mp4").write_bytes(b"")
    recipe = tmp_path / "r.toml"
    recipe.write_text('inputs = ["ep.mp4"]\nwork = "work"\n[extract]\n[train]\ninit = "imagenet"\n')
    assert plan_pipeline(recipe, ()).stages["train"].config.init == "imagenet"
    recipe.write_text('inputs = ["ep.mp4"]\nwork = "work"\n[render]\nmodel = "imagenet"\n')
    assert plan_pipeline(recipe, ()).model == bundled_model("imagenet")
