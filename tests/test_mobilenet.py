"""`train --encoder mobilenet_v2 [--encoder-weights PTH]`: a U-Net on MobileNetV2's stages, its
encoder started from torchvision's ImageNet weights, trained, resumed, bundled and rendered with
like the pix2pix U-Net; bad weights and conflicting options refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result
from conftest import write_photos

from cli import main
from vidcolor.memory import MOBILENET_BYTES, MODEL_BYTES, model_bytes
from vidcolor.mobilenet import ENCODER_LR, MobileNetUNet, load_imagenet
from vidcolor.models import build_generator, generator_groups
from vidcolor.options import ModelConfig
from vidcolor.render.colorizer import Colorizer
from vidcolor.synthetic import cartoon
from vidcolor.train.checkpoint import CheckpointError, load_checkpoint, load_model

TINY = ["--size", "32", "--batch-size", "2", "--workers", "0", "--val-fraction", "0"]
MOBILE = ["--encoder", "mobilenet_v2", "--base-width", "8"]


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def torchvision_weights(path: Path, seed: int = 1) -> dict[str, torch.Tensor]:
    """A state dict laid out as torchvision's ``mobilenet_v2()``'s (``features.N.*``, the last
    1x1 conv and the classifier too), values of our own from ``seed``, saved at ``path``."""
    torch.manual_seed(seed)
    g = MobileNetUNet(8)
    state = {}
    for stage in g.stages:
        for j, block in stage.named_children():  # sliced Sequentials keep the original index
            for name, t in block.state_dict().items():
                if t.is_floating_point():  # its own init, moved; a variance stays positive
                    t = t + 0.1 * torch.randn_like(t)
                    t = t.abs() + 0.5 if name.endswith("running_var") else t
                state[f"features.{j}.{name}"] = t
    state["features.18.0.weight"] = torch.randn(1280, 320, 1, 1)
    state["classifier.1.weight"] = torch.randn(1000, 1280)
    torch.save(state, path)
    return state


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mobilenet") / "photos"
    write_photos(folder, names=["astronaut", "coffee", "chelsea", "rocket"], size=48)
    return folder


@pytest.mark.parametrize("size", [(32, 32), (45, 77), (8, 8)])
def test_any_size_maps_L_to_ab_of_that_size(size: tuple[int, int]) -> None:
    g = build_generator(ModelConfig(8, encoder="mobilenet_v2")).eval()
    with torch.no_grad():
        ab = g(torch.rand(2, 1, *size) * 2 - 1)
    assert ab.shape == (2, 2, *size) and ab.abs().max() <= 1


def test_torchvision_weights_load_into_the_encoder(tmp_path: Path) -> None:
    theirs = torchvision_weights(tmp_path / "w.pth")
    g = MobileNetUNet(8)
    decoder = {k: v.clone() for k, v in g.state_dict().items() if not k.startswith("stages.")}
    load_imagenet(g, tmp_path / "w.pth")
    mine = g.state_dict()
    assert torch.equal(mine["stages.0.0.0.weight"], theirs["features.0.0.weight"])
    assert torch.equal(mine["stages.4.17.conv.2.weight"], theirs["features.17.conv.2.weight"])
    assert all(torch.equal(mine[k], v) for k, v in decoder.items())  # the decoder untouched


def test_files_that_are_not_the_weights_are_refused(tmp_path: Path) -> None:
    (tmp_path / "text.pth").write_text("not weights")
    torch.save({"layer.weight": torch.zeros(3)}, tmp_path / "other.pth")
    state = torchvision_weights(tmp_path / "w.pth")
    state["features.3.conv.1.0.weight"] = torch.zeros(5, 1, 3, 3)
    torch.save(state, tmp_path / "misfit.pth")
    said = {}
    for name in ("text", "other", "misfit"):
        with pytest.raises(ValueError) as e:
            load_imagenet(MobileNetUNet(8), tmp_path / f"{name}.pth")
        said[name] = str(e.value)
    assert "not a PyTorch state dict" in said["text"]
    assert "not torchvision's MobileNetV2 weights" in said["other"]
    assert "features.0.0.weight" in said["other"]
    assert "'features.3.conv.1.0.weight' is (5, 1, 3, 3)" in said["misfit"]


def test_the_pretrained_encoder_learns_at_a_share_of_the_rate() -> None:
    g = build_generator(ModelConfig(8, encoder="mobilenet_v2"))
    encoder, decoder = generator_groups(g, 1e-3)
    assert encoder["lr"] == pytest.approx(1e-3 * ENCODER_LR) and decoder["lr"] == 1e-3
    assert len(encoder["params"]) + len(decoder["params"]) == len(list(g.parameters()))
    unet = generator_groups(build_generator(ModelConfig(8, depth=4)), 1e-3)
    assert len(unet) == 1 and unet[0]["lr"] == 1e-3


def test_a_run_starts_from_the_weights_trains_resumes_and_renders(
    photos: Path, tmp_path: Path
) -> None:
    weights = torchvision_weights(tmp_path / "w.pth")
    out = tmp_path / "run"
    r = run("train", photos, "-o", out, *TINY, *MOBILE, "--encoder-weights", tmp_path / "w.pth",
            "--pretrain-epochs", "1", "--epochs", "1")  # fmt: skip
    assert r.exit_code == 0, r.output
    first = load_checkpoint(out / "last.pt")
    assert first["config"]["model"] == {
        "base_width": 8, "depth": 5, "disc": "patch", "dropout": 0.5, "encoder": "mobilenet_v2"
    }  # fmt: skip
    assert len(first["sched_G"]["base_lrs"]) == 2
    # 4 steps at a fifth of 2e-4 move the encoder a little from the file's weights, not away
    moved = first["G"]["stages.2.5.conv.0.0.weight"] - weights["features.5.conv.0.0.weight"]
    assert 0 < moved.abs().max() < 0.01
    (tmp_path / "w.pth").unlink()  # a resumed run never reads the weights again
    r = run("train", "--resume", out, "--epochs", "2")
    assert r.exit_code == 0, r.output
    assert load_checkpoint(out / "last.pt")["step"] == first["step"] + 2
    g, info = load_model(out / "model.pt")
    assert isinstance(g, MobileNetUNet) and info["model"]["encoder"] == "mobilenet_v2"
    frame = (torch.rand(40, 56, 3) * 255).to(torch.uint8).numpy()
    assert Colorizer(out / "model.pt", "cpu").colorize_frame(frame).shape == (40, 56, 3)


def test_a_recipe_names_weights_beside_it_and_a_new_file_retrains(tmp_path: Path) -> None:
    cartoon(1, length=48, size=(96, 64)).write(tmp_path / "ep.mp4")
    torchvision_weights(tmp_path / "w.pth")
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'inputs = ["ep.mp4"]\nwork = "work"\n[extract]\nfps = 4\n[train]\nsize = 32\n'
        'batch-size = 2\nworkers = 0\nepochs = 1\nencoder = "mobilenet_v2"\nbase-width = 8\n'
        'encoder-weights = "w.pth"\n'
    )
    r = run("pipeline", "run", recipe)  # from another folder: w.pth is the recipe's neighbour
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "work" / "train" / "config.json").read_text())
    assert config["encoder_weights"] == str(tmp_path / "w.pth")
    assert "train    done" in run("pipeline", "status", recipe).output
    torchvision_weights(tmp_path / "w.pth", seed=2)  # a new file at the same path
    status = run("pipeline", "status", recipe).output
    assert "train    stale" in status and "extract  done" in status
    (tmp_path / "w.pth").unlink()
    r = run("pipeline", "run", recipe)
    assert r.exit_code == 1 and r.output.strip().endswith("w.pth: no such file"), r.output
    assert "r.toml:12: [train] encoder-weights:" in r.output


def test_fine_tuning_keeps_the_encoder_and_refuses_another(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "first"
    assert run("train", photos, "-o", out, *TINY, *MOBILE, "--epochs", "1").exit_code == 0
    tuned = tmp_path / "tuned"
    r = run("train", photos, "-o", tuned, *TINY, "--epochs", "1", "--init", out / "model.pt")
    assert r.exit_code == 0, r.output
    assert load_checkpoint(tuned / "last.pt")["config"]["model"]["encoder"] == "mobilenet_v2"
    r = run("train", photos, "-o", tmp_path / "t2", *TINY, "--init", out / "model.pt",
            "--encoder", "unet")  # fmt: skip
    assert r.exit_code != 0 and not (tmp_path / "t2").exists()
    assert "--encoder unet: --init model.pt is a model of --encoder mobilenet_v2" in r.output


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--depth", "6"], "--depth 6: --encoder mobilenet_v2 has depth 5"),
        (["--encoder", "unet", "--encoder-weights", "w.pth"], "needs --encoder mobilenet_v2"),
        ([*MOBILE, "--encoder-weights", "missing.pth"], "missing.pth: no such file"),
        ([*MOBILE, "--encoder-weights", "text.pth"], "text.pth: not a PyTorch state dict"),
    ],
)
def test_bad_encoder_options_are_refused_in_one_line(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], said: str
) -> None:
    monkeypatch.chdir(tmp_path)
    torchvision_weights(tmp_path / "w.pth")
    (tmp_path / "text.pth").write_text("not weights")
    extra = [*MOBILE[:2], *extra] if extra[0] == "--depth" else extra
    r = run("train", photos, "-o", tmp_path / "run", *TINY, *extra)
    assert r.exit_code != 0 and not (tmp_path / "run").exists()
    assert said in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_weights_with_init_are_refused(photos: Path, tmp_path: Path, tiny_model: Path) -> None:
    torchvision_weights(tmp_path / "w.pth")
    r = run("train", photos, "-o", tmp_path / "run", *TINY, "--init", tiny_model,
            "--encoder-weights", tmp_path / "w.pth")  # fmt: skip
    assert r.exit_code != 0 and not (tmp_path / "run").exists()
    assert r.output == (
        "vidcolor: error: --encoder-weights starts a new model; --init brings its model's weights\n"
    )


def test_a_stored_mobilenet_of_another_depth_is_refused(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run("train", photos, "-o", out, *TINY, *MOBILE, "--epochs", "1").exit_code == 0
    bundle = torch.load(out / "model.pt", weights_only=True)
    bundle["model"]["depth"] = 6
    torch.save(bundle, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="encoder mobilenet_v2's is 5"):
        load_model(tmp_path / "bad.pt")
    state = torch.load(out / "last.pt", weights_only=True)
    state["sched_G"]["base_lrs"] = state["sched_G"]["base_lrs"][:1]
    torch.save(state, tmp_path / "bad_last.pt")
    with pytest.raises(CheckpointError, match=r"sched_G.base_lrs .*has 2 group"):
        load_checkpoint(tmp_path / "bad_last.pt")


def test_render_memory_is_estimated_for_each_encoder() -> None:
    assert model_bytes({"base_width": 64, "depth": 8}) == 2 * MODEL_BYTES  # made before encoders
    assert model_bytes({"base_width": 32, "encoder": "mobilenet_v2"}) == MOBILENET_BYTES
