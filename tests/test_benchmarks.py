"""The benchmarks' own plumbing: a failing case is reported beside the others' figures, clips
without audio are cut and rendered, the data path is timed on data smaller than asked for, and
a real `vidcolor train` stopped by SIGINT is read back from its metrics.csv."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import frame_times, make_video, write_photos

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "benchmarks/photos"), str(ROOT / "pipelines")]

import bench_render  # noqa: E402
import bench_train  # noqa: E402
import calibrate_gain  # noqa: E402
import make_photos  # noqa: E402
from common import run_cases  # noqa: E402
from sample_clip import cut  # noqa: E402

from vidcolor.models import ModelConfig  # noqa: E402
from vidcolor.runtime import Dist  # noqa: E402
from vidcolor.train.loop import TrainConfig, Trainer  # noqa: E402

KEY_EVERY_12 = {
    "crf": "12",
    "preset": "ultrafast",
    "x264-params": "keyint=12:min-keyint=12:scenecut=0",
}


def test_a_failing_case_is_reported_and_the_others_still_run() -> None:
    def broken() -> dict:
        raise ValueError("3 frames make no batch of 4\n(second line)")

    lines: list[str] = []
    r = run_cases(
        {"a": lambda: {"fps": 10.0}, "b": broken, "c": lambda: {"fps": 20.0}}, log=lines.append
    )
    assert r == {
        "a": {"fps": 10.0},
        "b": {"error": "ValueError: 3 frames make no batch of 4"},
        "c": {"fps": 20.0},
    }
    assert lines[1] == "b: error: ValueError: 3 frames make no batch of 4"
    assert lines[0].startswith("a: done") and lines[2].startswith("c: done")


def test_an_interrupt_keeps_what_was_measured() -> None:
    def stopped() -> dict:
        raise KeyboardInterrupt

    r = run_cases(
        {"a": lambda: {"fps": 1.0}, "b": stopped, "c": lambda: {"fps": 2.0}}, log=lambda line: None
    )
    assert r == {
        "a": {"fps": 1.0},
        "b": {"error": "interrupted"},
        "c": {"error": "not run (interrupted)"},
    }


def test_the_render_table_shows_figures_beside_an_error(capsys: pytest.CaptureFixture) -> None:
    def case(name: str, fps: float, rss: float = 500.0) -> dict:
        return {
            "case": name,
            "frames": 240,
            "seconds": 240 / fps,
            "fps": fps,
            "peak_rss_mb": rss,
            "batch": 4,
        }

    r = {
        "io-floor": case("io-floor", 200.0),
        "model": case("model", 40.0),
        "render": case("render", 30.0),
        "render-temporal": case("render-temporal", 24.0),
        "naive": case("naive", 15.0),
        "render-10s": {"error": "KeyError: 'audio'"},
    }
    args = argparse.Namespace(clip=Path("clip.mp4"), batch_size=None, naive_seconds=10.0)
    summary = bench_render.report(r, args, "")
    out = capsys.readouterr().out
    assert "| render-10s | error: KeyError: 'audio' | | | |" in out
    assert "| render | 240 | 8.00 | 30.0 | 500 |" in out
    assert "render vs naive (target >= 2; 1080p on a GPU: >= 5): 2.00" in out
    assert "(target <= 1.2): n/a" in out  # the memory ratio needs render-10s
    assert summary["ratios"]["render --temporal vs without (target >= 0.8)"] == pytest.approx(0.8)


def test_cut_copies_a_clip_without_audio(tmp_path: Path) -> None:
    src, dst = tmp_path / "silent.mp4", tmp_path / "cut.mp4"
    make_video(src, frames=48, x264=KEY_EVERY_12)  # keyframes every 0.5 s, no audio
    stop = cut(src, dst, Fraction(1, 2), Fraction(9, 10))  # the end moves on to 1.0 s
    assert stop == 1
    with av.open(str(dst)) as c:
        assert len(c.streams.audio) == 0
    assert frame_times(dst) == [Fraction(i, 24) for i in range(12)]


def test_cut_stops_the_audio_where_the_video_stops(tmp_path: Path) -> None:
    src, dst = tmp_path / "tone.mp4", tmp_path / "cut.mp4"
    make_video(src, frames=48, audio=True, x264=KEY_EVERY_12)
    assert cut(src, dst, Fraction(0), Fraction(1)) == 1
    assert len(frame_times(dst)) == 24
    with av.open(str(dst)) as c:
        a = c.streams.audio[0]
        starts = [p.pts * p.time_base for p in c.demux(a) if p.pts is not None]
    assert starts and max(starts) < 1


def test_bench_render_runs_on_from_a_failed_case(tmp_path: Path) -> None:
    """The model case has too few frames (its error is its row); render-10s, on a clip without
    audio (it used to fail there), still runs and prints its figures. The bundled model."""
    clip, out = tmp_path / "silent.mp4", tmp_path / "render.json"
    make_video(clip, frames=36, x264=KEY_EVERY_12)
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_render.py"),
        "--clip",
        str(clip),
        "--cases",
        "model,render-10s",
        "--naive-seconds",
        "0.01",
        "--json",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # a case failed, and says so
    assert "| model | error: RuntimeError: exit code 1: ValueError: 1 frames" in done.stdout
    assert "| render-10s | 36 |" in done.stdout
    cases = json.loads(out.read_text())["cases"]
    assert cases["render-10s"]["frames"] == 36 and "error" in cases["model"]


@pytest.fixture
def tiny_trainer(tmp_path: Path) -> Trainer:
    """A real trainer on 8 photos: 2 batches of 4 an epoch."""
    write_photos(tmp_path / "photos", size=48)
    cfg = TrainConfig(
        data=str(tmp_path / "photos"),
        size=32,
        batch_size=4,
        val_fraction=0.0,
        model=ModelConfig(base_width=8, depth=4),
    )
    return Trainer(cfg, tmp_path / "run", Dist(), workers=0)


def test_loader_rate_goes_round_data_smaller_than_asked(tiny_trainer: Trainer) -> None:
    got = bench_train.loader_rate(
        lambda e: bench_train.trainer_batches(tiny_trainer, e), 5, torch.device("cpu")
    )
    # 1 untimed batch + 5 timed = 6 batches: 3 epochs of 2
    assert got["batches"] == 5 and got["epochs"] == 3 and got["images_per_s"] > 0


def test_step_rate_runs_on_the_trainers_own_batches(tiny_trainer: Trainer) -> None:
    assert bench_train.step_rate(tiny_trainer, 2) > 0


def test_end_to_end_reads_a_training_run_stopped_by_sigint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `vidcolor train` long enough for a metrics.csv row (one every 20 steps)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny steps: a second thread only waits
    write_photos(tmp_path / "photos", size=48)
    got = bench_train.end_to_end(
        tmp_path / "photos",
        tmp_path / "run",
        12.0,
        size=32,
        batch_size=2,
        model=ModelConfig(base_width=8, depth=4),
        device="cpu",
        workers=1,
    )
    assert got["exit_code"] == 130  # Ctrl-C's code: the planned stop, not an error
    assert got["rows"] >= 1 and got["steps_logged"] >= 20 and got["images_per_s"] > 0
    assert (tmp_path / "run" / "last.pt").exists()


def test_the_gain_picked_is_the_best_that_keeps_every_kind_near_gray() -> None:
    margins = {
        1.0: {"photos": -0.9, "game": 3.0},  # best mean, but photos fall 0.9 dB below gray
        0.6: {"photos": -0.1, "game": 1.5},
        0.3: {"photos": 0.1, "game": 0.6},
    }
    assert calibrate_gain.pick(margins, floor=0.2) == 0.6
    assert calibrate_gain.pick(margins, floor=1.0) == 1.0
    worse = {g: {"photos": m["photos"] - 1, "game": m["game"]} for g, m in margins.items()}
    assert calibrate_gain.pick(worse, floor=0.2) == 0.3  # none is safe: the best worst kind


def test_calibrate_gain_stores_the_hedge_it_printed(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    from vidcolor.color import Hedge
    from vidcolor.render.streaming import Colorizer

    for kind in ("photos", "more"):
        write_photos(tmp_path / "calibrate" / kind, ["coffee", "chelsea"], size=40)
    model = tmp_path / "model.pt"
    shutil.copy(tiny_model, model)
    script = ROOT / "benchmarks" / "calibrate_gain.py"
    args = [tmp_path / "calibrate", "--model", model, "--gains", "0.5,1.0", "--shrinks", "0,4"]
    out = subprocess.run(
        [sys.executable, script, *map(str, args), "--write"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split(" | ")[:2] for line in out.splitlines() if line.startswith("| 0.5 |")]
    rows += [line.split(" | ")[:2] for line in out.splitlines() if line.startswith("| 1 |")]
    assert rows == [["| 0.5", "0"], ["| 0.5", "4"], ["| 1", "0"], ["| 1", "4"]], out
    said = out.split("picked chroma gain ")[1].split()
    picked = Hedge(float(said[0].rstrip(",")), float(said[2]))
    assert picked.gain in (0.5, 1.0) and picked.shrink in (0, 4)
    assert Colorizer(model, "cpu").hedge == picked


def test_the_gate_names_each_kind_under_the_floor_and_a_thin_average() -> None:
    import score_model

    def row(gray: float, model: float) -> dict:
        return {"gray input": {"psnr": gray}, "model": {"psnr": model}}

    table = {"photos": row(20.0, 19.9), "game": row(15.0, 18.0), "average": row(17.5, 18.95)}
    assert score_model.misses(table) == []
    table["photos"] = row(20.0, 19.7)  # 0.3 dB under gray
    table["average"] = row(17.5, 17.8)  # only 0.3 over it
    assert score_model.misses(table) == [
        "photos -0.30 dB against the gray input (at least -0.2)",
        "average +0.30 dB against the gray input (at least +0.5)",
    ]


def test_a_model_that_adds_no_colour_fails_the_gate_in_one_line(
    tiny_model: Path, tmp_path: Path
) -> None:
    for kind in ("photos", "more"):
        write_photos(tmp_path / "heldout" / kind, ["coffee", "chelsea"], size=40)
    script = ROOT / "benchmarks" / "score_model.py"
    args = [tmp_path / "heldout", "--model", tiny_model, "--gain", "0", "--gate"]
    run = subprocess.run([sys.executable, script, *map(str, args)], capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith(f"score_model: {tiny_model} misses: ")
    average = re.search(
        r"average ([+-][\d.]+) dB against the gray input \(at least \+0\.5\)", run.stderr
    )
    assert average and abs(float(average[1])) < 0.2, run.stderr  # gray out: gray's own score
    assert "| **average** |" in run.stdout  # the table is printed first


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: backgrounds

Files: *
Copyright: 2018, Someone
License: GPL-2+

Files: nature/Aqua.jpg
       nature/Dune.jpg
Copyright: 2008, A Photographer
License: CC-BY-4.0
 The licence's text runs on here,
 over lines of its own.

Files: desktop/Brand-*-no-logo.png
Copyright: 2020, A Designer
License: CC-BY-SA-4.0

Files: debian/*
Copyright: 2022, A Packager
License: Expat
"""


def test_each_picture_gets_the_licence_its_copyright_stanza_names(tmp_path: Path) -> None:
    doc = tmp_path / "usr/share/doc/backgrounds"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    licences = make_photos.file_licences(tmp_path, "backgrounds")
    assert licences == {
        "Aqua.jpg": "CC-BY-4.0",
        "Dune.jpg": "CC-BY-4.0",
        "Brand-*-no-logo.png": "CC-BY-SA-4.0",
    }

    def of(name: str) -> str:
        return make_photos.licence_of(Path("usr/share/backgrounds") / name, licences, "GPL-2+")

    assert of("Dune.jpg") == "CC-BY-4.0"  # the second line of a Files field
    assert of("Brand-Cold-no-logo.png") == "CC-BY-SA-4.0"
    assert of("Storm.jpg") == "GPL-2+"  # no stanza of its own: the package's licence


def test_the_averaged_bundle_holds_the_mean_of_the_generators(
    tiny_model: Path, tmp_path: Path
) -> None:
    from vidcolor.train.checkpoint import load_checkpoint, load_model, save_checkpoint

    first = tiny_model.parent / "run" / "last.pt"
    state = load_checkpoint(first)
    for key in ("format", "vidcolor"):
        state.pop(key)
    moved = {k: v + 0.5 if v.is_floating_point() else v for k, v in state["G"].items()}
    save_checkpoint(tmp_path / "second.pt", {**state, "G": moved})
    script = ROOT / "pipelines" / "average_checkpoints.py"
    out = tmp_path / "mean.pt"
    args = [sys.executable, script, out, first, tmp_path / "second.pt", "--about", "tiny photos"]
    subprocess.run([str(a) for a in args], check=True, capture_output=True)
    G, info = load_model(out)
    for key, value in G.state_dict().items():
        if value.is_floating_point():  # the bundle keeps fp16 weights
            torch.testing.assert_close(value, state["G"][key].float() + 0.25, atol=2e-3, rtol=1e-3)
    assert info["provenance"]["about"] == "tiny photos (generator: the mean of steps 4, 4)"

    model = {**state["config"]["model"], "dropout": 0.0}  # another model than the first's
    save_checkpoint(tmp_path / "other.pt", {**state, "config": {**state["config"], "model": model}})
    args[4] = tmp_path / "other.pt"
    done = subprocess.run([str(a) for a in args[:5]], capture_output=True, text=True)
    assert done.returncode != 0 and "holds a model other than" in done.stderr
    assert done.stderr.strip().count("\n") == 0  # one line, no traceback
    G_after, _ = load_model(out)  # the bundle already there is left as it was
    assert all(torch.equal(G_after.state_dict()[k], v) for k, v in G.state_dict().items())


def test_photographs_are_never_trained_on_and_art_is_scored_as_wallpapers() -> None:
    names = [f"picture_{i}" for i in range(200)]
    eval_only = {make_photos.split_of(n, trained=False) for n in names}
    assert eval_only == {"calibrate", "heldout"}
    assert {make_photos.split_of(n, trained=True) for n in names} == {
        "train",
        "calibrate",
        "heldout",
    }
    photos = "lomiri-wallpapers-16.04"
    assert make_photos.kind_of(photos, Path("sunset_by_Aitzol_Berasategi.jpg")) == "photographs"
    assert make_photos.kind_of(photos, Path("umang_by_Abhishek_Mudgal.jpg")) == "wallpapers"
    assert make_photos.kind_of("gnome-backgrounds", Path("adwaita-d.webp")) == "wallpapers"


def test_hue_shares_count_greenish_and_reddish_pixels() -> None:
    import score_model

    from vidcolor.color import rgb_to_lab_np

    picture = np.zeros((10, 20, 3), np.uint8)
    picture[:, :5] = (40, 160, 40)  # green
    picture[:, 5:15] = (200, 30, 30)  # red
    picture[:, 15:] = (128, 128, 128)  # gray: neither
    assert score_model.hue_shares(rgb_to_lab_np(picture)) == (0.25, 0.5)


def test_the_tint_on_whites_is_the_chroma_given_to_the_originals_white_pixels() -> None:
    import score_model

    from vidcolor.color import rgb_to_lab_np

    truth = np.zeros((10, 20, 3), np.uint8)
    truth[:, :8] = (245, 245, 245)  # white
    truth[:, 8:] = (200, 30, 30)  # red: not counted
    out = truth.copy()
    out[:, :8] = (250, 240, 170)  # the white painted yellow
    out, truth = rgb_to_lab_np(out), rgb_to_lab_np(truth)
    tint, count = score_model.white_tint(out, truth)
    yellow = rgb_to_lab_np(np.uint8([[[250, 240, 170]]]))[0, 0]
    assert count == 80 and abs(tint - np.hypot(yellow[1], yellow[2])) < 1e-3 and tint > 20
    assert score_model.white_tint(truth, truth)[0] < 0.5  # left white: no tint
    assert score_model.white_tint(out[:, 8:], truth[:, 8:]) == (0.0, 0)  # no whites at all


def test_a_picture_painted_one_wrong_hue_counts_as_under_gray() -> None:
    import score_model

    from vidcolor.metrics import psnr_np

    def shifted(rgb: np.ndarray, by: tuple[int, int, int]) -> np.ndarray:
        return np.clip(rgb.astype(int) + np.array(by), 0, 255).astype(np.uint8)

    snow = shifted(np.random.default_rng(0).normal(215, 25, (40, 60, 1)), (0, 4, 12))
    yellow = shifted(snow, (10, 5, -45))  # a polar bear's
    faint = shifted(snow, (2, 1, -4))  # a tint that gray beats by less than 1 dB

    def under_gray(out: np.ndarray) -> bool:
        return score_model.db_under_gray(psnr_np(out, snow), snow) > score_model.UNDER_GRAY

    assert under_gray(yellow)
    assert not under_gray(snow)
    assert not under_gray(faint)


def test_the_worst_sheet_picks_the_pictures_furthest_under_gray() -> None:
    import model_sheet

    class Painter:  # shifts each picture's colour, the more the brighter it is
        def colorize_frame(self, rgb: np.ndarray) -> np.ndarray:
            k = int(rgb[0, 0, 1]) // 4
            return np.clip(rgb.astype(int) + np.array([k, k, -k]), 0, 255).astype(np.uint8)

    tinted = [np.full((8, 8, 3), (v + 10, v, v - 10), np.uint8) for v in (40, 120, 200)]
    kinds = {"a": tinted[:2], "b": tinted[2:]}
    picked = model_sheet.worst(kinds, Painter(), 2)
    assert [int(p[0, 0, 1]) for p in picked] == [200, 120]  # furthest under gray first
    assert [int(p[0, 0, 1]) for p in model_sheet.spread(kinds, 2)] == [40, 120, 200]
