"""Colour and temporal metrics against hand-computed values, and `vidcolor eval`."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from vidcolor.metrics import (
    colourfulness,
    histograms,
    js_divergence,
    optical_flow,
    psnr_np,
    reliable,
    warp,
    warp_error,
)
from vidcolor.synthetic import cartoon


def texture(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth colour texture (flow can follow it)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 8, w // 8, 3)).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def test_psnr_colourfulness_and_divergence_by_hand() -> None:
    a = np.full((8, 8, 3), 0.5, np.float32)
    assert psnr_np(a + 0.1, a) == pytest.approx(20.0, abs=1e-4)  # mse 0.01
    assert psnr_np(a, a) == 100.0
    gray = np.full((8, 8, 3), 120, np.uint8)
    assert colourfulness(gray) == 0.0
    red_green = np.zeros((8, 8, 3), np.uint8)
    red_green[:, :4, 0] = 255
    red_green[:, 4:, 1] = 255
    # rg = +-255 (std 255, mean 0); yb = 127.5 everywhere: 255 + 0.3 * 127.5
    assert colourfulness(red_green) == pytest.approx(293.25)
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert js_divergence(p, p) == 0.0
    assert js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(np.log(2))


def test_warping_error_zero_for_identical_frames_and_for_a_known_shift() -> None:
    a = texture()
    zero = np.zeros((*a.shape[:2], 2), np.float32)
    assert warp_error(a, a, zero, reliable(zero, zero)) == 0.0
    b = np.roll(a, 3, axis=1)  # b(x + 3) = a(x): the flow from a to b is (3, 0)
    flow = np.zeros_like(zero)
    flow[..., 0] = 3
    mask = reliable(flow, -flow)
    assert mask[:, :-3].all() and not mask[:, -3:].any()  # what leaves the frame is masked
    assert warp_error(a, b, flow, mask) == pytest.approx(0.0, abs=1e-10)
    assert warp_error(a, np.roll(a, 2, axis=1), flow, mask) > 1e-3  # wrong motion: an error
    ga, gb = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    found = optical_flow(ga, gb)  # the estimated flow finds the shift
    assert np.median(found[20:-20, 20:-20, 0]) == pytest.approx(3, abs=0.1)
    assert warp_error(a, b, found, reliable(found, optical_flow(gb, ga))) < 2e-3
    assert np.array_equal(warp(a, zero), a)


def test_a_one_frame_colour_flip_gives_a_large_cdc() -> None:
    red, blue = np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)
    red[..., 0], blue[..., 2] = 200, 200
    steady = js_divergence(histograms(red), histograms(red))
    flip = js_divergence(histograms(red), histograms(blue))
    # two of three channels move all their mass: (ln 2 + ln 2 + 0) / 3
    assert steady == 0.0 and flip == pytest.approx(2 * np.log(2) / 3)


def write(path: Path, frames: list[np.ndarray]) -> Path:
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = w, h, "yuv444p"
        s.options = {"crf": "0", "preset": "ultrafast"}
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            out.mux(s.encode(vf))
        out.mux(s.encode(None))
    return path


def test_eval_videos_flicker_is_seen(tmp_path: Path) -> None:
    frames = [np.roll(texture(), 2 * i, axis=1) for i in range(24)]  # a steady pan
    truth = write(tmp_path / "truth.mp4", frames)
    tint = np.array([40, -20, 0])
    flicker = [
        f if i % 2 else np.clip(f.astype(int) + tint, 0, 255).astype(np.uint8)
        for i, f in enumerate(frames)
    ]
    output = write(tmp_path / "flicker.mp4", flicker)
    runner = CliRunner()
    same = runner.invoke(main, ["eval", str(truth), str(truth), "--json"])
    assert same.exit_code == 0, same.output
    s = json.loads(same.output)
    assert s["frames"] == 24 and s["psnr"] == 100.0
    assert s["warp_error_ratio"] == pytest.approx(1.0) and s["cdc_output"] == s["cdc_original"]
    result = runner.invoke(
        main, ["eval", str(truth), str(output), "--json", "--plot", str(tmp_path / "curves.png")]
    )
    assert result.exit_code == 0, result.output
    r = json.loads(result.output)
    assert r["warp_error"] > 10 * r["warp_error_original"]  # every other frame changes colour
    assert r["cdc_output_by_gap"]["1"] > 5 * r["cdc_original_by_gap"]["1"]
    assert r["cdc_output_by_gap"]["2"] < r["cdc_output_by_gap"]["1"]  # gap 2: same phase
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_eval_refuses_videos_that_do_not_match(tmp_path: Path) -> None:
    a = write(tmp_path / "a.mp4", [texture()] * 12)
    short = write(tmp_path / "short.mp4", [texture()] * 10)
    small = write(tmp_path / "small.mp4", [texture(64, 96)] * 12)
    runner = CliRunner()
    for other, message in ((short, "10 frames, but"), (small, "96x64, but")):
        result = runner.invoke(main, ["eval", str(a), str(other)])
        assert result.exit_code == 1 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    result = runner.invoke(main, ["eval", str(a), str(tmp_path)])
    assert result.exit_code == 1 and "two videos or two image folders" in result.stderr


def test_eval_folders_and_a_dataset_split(tmp_path: Path) -> None:
    from vidcolor.data.dataset_build import build_dataset

    for side in ("truth", "out"):
        (tmp_path / side).mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "truth" / f"{i}.png"), texture(seed=i))
        cv2.imwrite(str(tmp_path / "out" / f"{i}.png"), texture(seed=i)[..., ::-1])
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "truth"), str(tmp_path / "out")])
    assert result.exit_code == 0 and "3 frames" in result.output, result.output
    video = cartoon(2, length=240, size=(160, 96)).write(tmp_path / "ep.mp4")
    manifest = build_dataset([video], tmp_path / "data")
    split = next(iter(manifest["shards"]))
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "data"), "--split", split, "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.output)
    assert r["frames"] == manifest["shards"][split]["count"] and "warp_error" not in r
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "data"), "--split", "nope"])
    assert result.exit_code == 1 and "no 'nope' split" in result.stderr


def test_eval_bad_inputs_get_one_line(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "0.png"), texture())
    cv2.imwrite(str(mixed / "1.png"), texture(48, 64))
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    cv2.imwrite(str(tiny / "0.png"), texture()[:8, :8])
    a = write(tmp_path / "a.mp4", [texture()] * 4)
    runner = CliRunner()
    cases = (
        ([str(mixed), str(mixed)], "but the frames before it are 128x96"),
        ([str(tiny), str(tiny)], "too small to score"),
        ([str(a), str(a), "--plot", str(tmp_path / "x.txt")], "a .png file"),
        ([str(a), str(a), "--model", str(a)], "--model: for a dataset, without OUTPUT"),
    )
    for args, message in cases:
        result = runner.invoke(main, ["eval", *args])
        assert result.exit_code in (1, 2) and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_eval_takes_render_output_of_an_odd_sized_video(tmp_path: Path) -> None:
    odd = write(tmp_path / "odd.mp4", [texture(97, 129)[:97, :129]] * 6)  # 444: odd sizes kept
    out = tmp_path / "out.mp4"
    runner = CliRunner()
    assert runner.invoke(main, ["render", str(odd), str(out), "--temporal"]).exit_code == 0
    result = runner.invoke(main, ["eval", str(odd), str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.output)["frames"] == 6
