"""Training for real on tiny models: it learns, resumes exactly, runs data-parallel, and turns
bad data and bad checkpoints into one clear line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result
from conftest import default_signals, write_photos
from torch import nn

from cli import main
from vidcolor.models import ModelConfig
from vidcolor.options import DEFAULT_LR
from vidcolor.train.average import WeightAverage
from vidcolor.train.checkpoint import CheckpointError, load_checkpoint
from vidcolor.train.loop import Dist, TrainConfig, Trainer, lr_factor
from vidcolor.train.runfolder import resume_run, start_run

TINY = ModelConfig(base_width=8, depth=4)
ROOT = Path(__file__).resolve().parents[1]


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def tiny_config(data: Path, **kw: object) -> TrainConfig:
    base = dict(
        data=str(data),
        size=32,
        epochs=2,
        batch_size=2,
        val_fraction=0.25,
        checkpoint_every=1000,
        log_every=1,
        samples=2,
        model=TINY,
    )
    return TrainConfig(**{**base, **kw})


def test_lr_decays_linearly_over_the_last_epochs() -> None:
    f = [lr_factor(s, pretrain_steps=10, gan_steps=20, decay_steps=10) for s in range(31)]
    assert f[:20] == [1.0] * 20  # warm-up and the first half of the GAN phase
    assert f[20:] == pytest.approx([1 - k / 10 for k in range(11)])


def test_tiny_gan_overfits_real_photos(tmp_path: Path) -> None:
    """Validation L1 falls by at least half in a few hundred adversarial steps."""
    write_photos(tmp_path / "photos", names=["astronaut", "coffee", "chelsea", "rocket"], size=40)
    # 4 images, batch 4: one step an epoch, so 300 epochs keep the lr schedule alive throughout
    cfg = tiny_config(tmp_path / "photos", val_fraction=0.0, batch_size=4, lr=2e-3, epochs=300)
    torch.manual_seed(0)
    trainer = Trainer(cfg, tmp_path / "run", Dist(), workers=0)
    batch = torch.stack([trainer.val_set[i] for i in range(4)])  # the validation crops
    before = trainer.validate()["val_L1"]
    losses = [trainer.train_step(batch, adversarial=True) for _ in range(300)]
    after = trainer.validate()["val_L1"]
    assert after <= 0.5 * before, (before, after)
    assert all(k in losses[-1] for k in ("G_GAN", "G_L1", "D_real", "D_fake", "D_acc"))


def test_cli_run_writes_checkpoints_samples_metrics_and_curves(tmp_path: Path) -> None:
    write_photos(tmp_path / "photos")
    cv2.imwrite(str(tmp_path / "photos" / "grey.png"), np.full((40, 40), 128, np.uint8))
    out = tmp_path / "run"
    result = run(
        "train",
        tmp_path / "photos",
        "-o",
        out,
        "--size",
        "32",
        "--epochs",
        "2",
        "--pretrain-epochs",
        "1",
        "--batch-size",
        "2",
        "--base-width",
        "8",
        "--depth",
        "4",
        "--val-fraction",
        "0.25",
        "--workers",
        "0",
        "--checkpoint-every",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert "left out 1 greyscale image(s): grey.png" in result.stderr
    cfg = json.loads((out / "config.json").read_text())
    model = {"base_width": 8, "depth": 4, "disc": "patch", "dropout": 0.5, "encoder": "unet"}
    assert cfg["model"] == model
    for name in (
        "last.pt",
        "best.pt",
        "model.pt",
        "curves.png",
        "samples/step_0000003.png",
        "samples/step_0000009.png",
        "cache/cache.json",
    ):
        assert (out / name).is_file(), name
    grid = cv2.imread(str(out / "samples/step_0000009.png"))
    assert grid.shape == (2 * 32, 3 * 32, 3)  # 2 rows of gray | truth | generated
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == 9 and state["epoch"] == 3  # 6 train images / 2 = 3 steps x 3 epochs
    assert {"G", "D", "opt_G", "opt_D", "scaler", "config", "vidcolor"} <= state.keys()
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert {r["phase"] for r in rows} == {"pretrain", "gan"}
    assert all(r["G_GAN"] == "" for r in rows if r["phase"] == "pretrain" and r["G_L1"])
    assert sum(1 for r in rows if r["val_L1"]) == 3 and not any(
        p.name.startswith(".") for p in out.iterdir()
    )


@pytest.mark.parametrize(("ema", "shade", "size"), [(0.0, 0.0, 32), (0.9, 0.5, 48)])
def test_interrupted_run_resumes_exactly(
    tmp_path: Path, ema: float, shade: float, size: int
) -> None:
    write_photos(tmp_path / "photos")
    # 3 steps an epoch; at 48 --windows (on by default) cuts the crops too
    cfg = tiny_config(tmp_path / "photos", epochs=2, ema=ema, shade=shade, size=size)

    straight = start_run(cfg, tmp_path / "a", Dist(), workers=0)
    straight.fit()

    def stop_at_4(status: object) -> None:
        if status.step == 4:
            raise KeyboardInterrupt

    broken = start_run(cfg, tmp_path / "b", Dist(), workers=0)
    with pytest.raises(KeyboardInterrupt):
        broken.fit(stop_at_4)  # Ctrl-C in the middle of epoch 2: last.pt saved at step 4
    assert load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 4
    resumed = resume_run(tmp_path / "b", Dist(), workers=0)
    assert resumed.step == 4 and resumed.epoch == 1
    assert resumed.sched_G.last_epoch == 4
    resumed.fit()

    assert resumed.step == straight.step == 6
    for net in ("G", "generator"):  # the trained weights, and with --ema their average
        a, b = getattr(straight, net).state_dict(), getattr(resumed, net).state_dict()
        for x, y in zip(a.values(), b.values(), strict=True):
            assert torch.allclose(x.float(), y.float(), atol=1e-6)
    saved = load_checkpoint(tmp_path / "a" / "last.pt")
    assert ("G_train" in saved) == bool(ema)  # what a resume trains on, beside the average
    weight = "out.weight"  # the average is what the checkpoint (and model.pt) hold as G
    assert torch.equal(saved["G"][weight], straight.generator.state_dict()[weight])
    assert torch.equal(saved["G"][weight], saved.get("G_train", saved["G"])[weight]) != bool(ema)
    opt_a, opt_b = straight.opt_G.state_dict()["state"], resumed.opt_G.state_dict()["state"]
    assert opt_a.keys() == opt_b.keys()
    for k in opt_a:
        assert torch.allclose(opt_a[k]["exp_avg"], opt_b[k]["exp_avg"], atol=1e-6)
        assert float(opt_a[k]["step"]) == float(opt_b[k]["step"]) == 6


def test_weight_average_folds_each_step_in_with_a_warm_up() -> None:
    net = nn.BatchNorm1d(1)
    average = WeightAverage(net, decay=0.9)
    assert not average.module.training and not any(
        p.requires_grad for p in average.module.parameters()
    )
    with torch.no_grad():
        net.weight.fill_(2.0)  # from 1.0
        net.running_mean.fill_(5.0)
    average.update(net, step=1)  # early: keeps 2/11 of the old weights, not 0.9
    assert average.module.weight.item() == pytest.approx(1 + 9 / 11)
    assert average.module.running_mean.item() == 5.0  # buffers: the trained network's own
    average.update(net, step=1000)  # later: the decay itself
    assert average.module.weight.item() == pytest.approx(2 - 0.9 * (1 - 9 / 11))


def test_two_process_gloo_run_writes_one_checkpoint(tmp_path: Path) -> None:
    write_photos(tmp_path / "photos")
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "cli",
        "train",
        str(tmp_path / "photos"),
        "-o",
        str(out),
        "--size",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "1",
        "--base-width",
        "8",
        "--depth",
        "4",
        "--val-fraction",
        "0.25",
        "--workers",
        "0",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "x2" in done.stderr  # both ranks in one process group
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == 6  # 6 images / (1 per rank x 2 ranks) = 3 steps x 2 epochs
    pts = sorted(p.name for p in out.iterdir() if p.suffix == ".pt")
    assert pts == ["best.pt", "last.pt", "model.pt"]  # rank 0 alone writes them


def test_bad_data_gives_one_clear_line(tmp_path: Path) -> None:
    def error(result: Result) -> str:
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output
        return lines[0]

    args = ("--size", "32", "--base-width", "8", "--depth", "4", "--workers", "0")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in error(run("train", empty, "-o", tmp_path / "r1", *args))
    grey = tmp_path / "grey"
    grey.mkdir()
    for i in range(3):
        cv2.imwrite(str(grey / f"{i}.png"), np.full((40, 40), 60 * i, np.uint8))
    assert "every image is greyscale" in error(run("train", grey, "-o", tmp_path / "r2", *args))
    broken = tmp_path / "broken"
    write_photos(broken, names=["coffee", "rocket"])
    (broken / "cut.png").write_bytes((broken / "coffee.png").read_bytes()[:200])
    assert "cut.png: not a readable image" in error(
        run("train", broken, "-o", tmp_path / "r3", *args)
    )
    assert "not a folder" in error(run("train", tmp_path / "nope", "-o", tmp_path / "r4", *args))
    assert "no last.pt" in error(run("train", "--resume", tmp_path / "r5"))


def test_foreign_and_unsafe_checkpoints_are_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no 'vidcolor-training-checkpoint' tag"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"format": "vidcolor-training-checkpoint", "x": os.system}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not a vidcolor checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")  # weights_only: the function is never loaded
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a vidcolor checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(b"junk")
    result = run("train", "--resume", run_dir)
    assert result.exit_code == 1 and "not a vidcolor checkpoint" in result.stderr


def test_existing_run_is_not_overwritten(tmp_path: Path) -> None:
    write_photos(tmp_path / "photos", names=["coffee", "rocket"])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text('{"format": "vidcolor-run"}')
    (tmp_path / "run" / "last.pt").write_bytes(b"a real run's checkpoint")
    result = run("train", tmp_path / "photos", "-o", tmp_path / "run")
    assert result.exit_code == 1 and "--resume" in result.stderr
    assert (tmp_path / "run" / "last.pt").read_bytes() == b"a real run's checkpoint"


def test_a_run_that_never_saved_can_start_again(tmp_path: Path) -> None:
    write_photos(tmp_path / "photos", names=["coffee", "rocket", "chelsea", "astronaut"])
    out = tmp_path / "run"
    args = (
        "-o",
        out,
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--base-width",
        "8",
        "--depth",
        "4",
        "--workers",
        "0",
        "--val-fraction",
        "0.25",
    )
    failed = run("train", tmp_path / "photos", *args, "--size", "32", "--batch-size", "64")
    assert failed.exit_code == 1 and "no full batch" in failed.stderr
    (out).mkdir(exist_ok=True)
    config = TrainConfig(data=str(tmp_path / "photos"), size=32).to_dict()
    record = {"format": "vidcolor-run", **config}  # a run that crashed before its first save
    (out / "config.json").write_text(json.dumps(record))
    assert run("train", tmp_path / "photos", *args, "--size", "32").exit_code == 0
    assert load_checkpoint(out / "last.pt")["step"] == 1


def test_ctrl_c_saves_a_checkpoint_at_the_step_it_names(tmp_path: Path) -> None:
    import re
    import signal
    import time

    write_photos(tmp_path / "photos")
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-c",
        "from cli import main; main()",
        "train",
        str(tmp_path / "photos"),
        "-o",
        str(out),
        "--size",
        "32",
        "--epochs",
        "1000",
        "--batch-size",
        "2",
        "--base-width",
        "8",
        "--depth",
        "4",
        "--workers",
        "0",
        "--checkpoint-every",
        "25",
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals
    )
    deadline = time.time() + 120
    while not (out / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    said = re.search(r"interrupted at step (\d+)", err)
    assert said and "vidcolor train --resume" in err and "Traceback" not in err
    assert load_checkpoint(out / "last.pt")["step"] == int(said.group(1))


def test_odd_file_names_and_a_run_folder_inside_data(tmp_path: Path) -> None:
    from vidcolor.data.dataset import open_training_data

    photos = tmp_path / "photos"
    write_photos(photos, names=["coffee", "rocket", "chelsea", "astronaut"])
    odd = os.fsdecode(bytes(photos) + b"/bad\xffname \xe6\x97\xa5.png")  # not UTF-8, and CJK
    os.rename(photos / "coffee.png", odd)
    data = open_training_data(photos, val_fraction=0.25)
    assert len(data.train) + len(data.val) == 4  # read, not a crash

    args = (
        "--size",
        "32",
        "--batch-size",
        "1",
        "--base-width",
        "8",
        "--depth",
        "4",
        "--workers",
        "0",
        "--val-fraction",
        "0.25",
    )
    out = photos / "run"  # inside DATA: its sample grids must not become training data
    assert run("train", photos, "-o", out, "--epochs", "1", *args).exit_code == 0
    result = run("train", "--resume", out, "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out / "last.pt")["step"] == 6  # 3 train images x 2 epochs


def test_resume_refuses_changed_data_and_other_settings(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    write_photos(photos)
    cfg = tiny_config(photos, epochs=2)
    trainer = start_run(cfg, tmp_path / "run", Dist(), workers=0)
    trainer.fit()
    resumed = resume_run(tmp_path / "run", Dist(), workers=0, epochs=4)
    # A longer schedule: the lr comes from it, not from the file (which holds the decayed 0)
    factor = lr_factor(6, 0, 4 * 3, 2 * 3)
    assert cfg.lr is None  # from scratch: the default lr, resolved when the run started
    assert resumed.opt_G.param_groups[0]["lr"] == pytest.approx(DEFAULT_LR * factor)
    assert factor == 1.0
    resumed.hold.close()  # the run's lock, which fit would release: this trainer is not fitted
    result = run("train", "--resume", tmp_path / "run", "--lr", "0.1")
    assert result.exit_code == 2 and "only --epochs, --device and --workers" in result.output
    (photos / "coffee.png").unlink()
    result = run("train", "--resume", tmp_path / "run")
    assert result.exit_code == 1 and "training images changed" in result.stderr


@pytest.mark.parametrize(
    ("device", "message"),
    [("gpu", "not a device"), ("cuda:7", "CUDA device"), ("meta", "only cpu and cuda")],
)
def test_bad_device_names(tmp_path: Path, device: str, message: str) -> None:
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    write_photos(tmp_path / "photos", names=["coffee", "rocket"])
    result = run("train", tmp_path / "photos", "-o", tmp_path / "run", "--device", device)
    assert result.exit_code == 1 and message in result.stderr and "Traceback" not in result.output
