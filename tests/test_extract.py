"""`vidcolor extract` and the FrameExtractor behind it, on generated videos and the shared clip."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result
from conftest import default_signals, make_audio_only, make_video

from cli import main
from vidcolor.data.extract import read_manifest
from vidcolor.video import VideoReader


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def load(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return img if img.ndim == 2 else img[..., ::-1]


def assert_one_error_line(result: Result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vidcolor: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "ep.mp4"
    make_video(path, frames=48, width=64, height=48, cut_at=24, audio=True)
    return path


def test_extract_writes_every_frame_losslessly_with_a_manifest(video: Path, tmp_path: Path):
    out = tmp_path / "frames"
    result = run("extract", video, "-o", out)
    assert result.exit_code == 0, result.output
    rows = read_manifest(out / "manifest.jsonl")
    assert [r["frame"] for r in rows] == list(range(48))
    with VideoReader(video) as r:
        decoded = list(r)
    for row, frame in zip(rows, decoded, strict=True):
        assert row["pts"] == frame.pts and row["time"] == pytest.approx(frame.time, abs=1e-6)
        assert row["source"] == str(video.resolve())
        assert np.array_equal(load(out / row["file"]), frame.image)  # PNG is lossless
    assert len(list(out.glob("*.png"))) == 48
    assert not list(out.glob(".*"))  # no temporary files left


def test_extract_sampling_size_gray_and_jpeg(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "a"
    assert run("extract", video, "-o", out, "--every", "10").exit_code == 0
    assert [r["frame"] for r in read_manifest(out / "manifest.jsonl")] == [0, 10, 20, 30, 40]

    out = tmp_path / "b"
    args = ("--fps", "4", "--start", "0.5", "--end", "1.5", "--size", "24", "--gray")
    assert run("extract", video, "-o", out, *args).exit_code == 0
    rows = read_manifest(out / "manifest.jsonl")
    assert [r["frame"] for r in rows] == [12, 18, 24, 30]
    assert [r["time"] for r in rows] == pytest.approx([0.5, 0.75, 1.0, 1.25])
    assert load(out / rows[0]["file"]).shape == (24, 32)

    out = tmp_path / "c"
    assert run("extract", video, "-o", out, "--format", "jpg", "--quality", "90").exit_code == 0
    jpgs = sorted(out.glob("*.jpg"))
    assert len(jpgs) == 48 and load(jpgs[0]).shape == (48, 64, 3)


def test_extract_turns_rotated_video_upright(tmp_path: Path) -> None:
    video, out = tmp_path / "rot.mp4", tmp_path / "f"
    make_video(video, frames=2, width=64, height=48, rotation=90)
    assert run("extract", video, "-o", out).exit_code == 0
    assert load(out / "rot_000000.png").shape == (64, 48, 3)


def test_refuses_a_non_empty_folder_unless_told(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert_one_error_line(run("extract", video, "-o", out), "not empty", "--overwrite")
    assert run("extract", video, "-o", out, "--every", "2", "--overwrite").exit_code == 0
    assert len(read_manifest(out / "manifest.jsonl")) == 24
    assert_one_error_line(run("extract", video, "-o", out), "not empty")
    # --overwrite replaces the earlier extraction, and leaves other files alone
    assert run("extract", video, "-o", out, "--every", "12", "--overwrite").exit_code == 0
    assert len(read_manifest(out / "manifest.jsonl")) == 4
    assert len(list(out.glob("*.png"))) == 4
    assert (out / "mine.txt").read_text() == "keep me"


def test_resume_finishes_an_interrupted_run(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    assert run("extract", video, "-o", out).exit_code == 0
    # Make it look killed at frame 30: files and rows after it gone, the last row cut short.
    rows = read_manifest(out / "manifest.jsonl")
    for row in rows[30:]:
        (out / row["file"]).unlink()
    (out / rows[29]["file"]).unlink()  # a row whose file is missing is redone too
    lines = (out / "manifest.jsonl").read_text().splitlines()[:30]
    (out / "manifest.jsonl").write_text("\n".join(lines) + '\n{"file": "ep_0')
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}

    result = run("extract", video, "-o", out, "--resume")
    assert result.exit_code == 0, result.output
    assert "(19 new)" in result.stderr
    rows = read_manifest(out / "manifest.jsonl")
    assert sorted(r["frame"] for r in rows) == list(range(48))
    assert all(p.stat().st_mtime_ns == kept[p.name] for p in out.glob("*.png") if p.name in kept)

    result = run("extract", video, "-o", out, "--resume", "--every", "2")
    assert_one_error_line(result, "cannot resume", "options differ: every")
    (out / "extract.json").write_text("{not json")
    assert_one_error_line(run("extract", video, "-o", out, "--resume"), "unreadable")


def test_ctrl_c_keeps_whole_frames_and_resume_completes(tmp_path: Path) -> None:
    video, out = tmp_path / "long.mp4", tmp_path / "frames"
    make_video(video, frames=600, width=320, height=240)
    cmd = [sys.executable, "-c", "from cli import main; main()", "extract", str(video)]
    proc = subprocess.Popen(
        [*cmd, "-o", str(out)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
        preexec_fn=default_signals,
    )
    deadline = time.time() + 60
    while len(read_manifest(out / "manifest.jsonl")) < 20 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    rows = read_manifest(out / "manifest.jsonl")
    assert 20 <= len(rows) < 600
    assert all(cv2.imread(str(out / r["file"])) is not None for r in rows)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

    result = run("extract", video, "-o", out, "--resume")
    assert result.exit_code == 0, result.output
    assert sorted(r["frame"] for r in read_manifest(out / "manifest.jsonl")) == list(range(600))


def test_bad_inputs_get_one_line_and_exit_1(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert_one_error_line(run("extract", tmp_path / "none.mp4", "-o", out), "no such file")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(4000))
    assert_one_error_line(run("extract", junk, "-o", out), "not a readable video")
    tone = tmp_path / "tone.m4a"
    make_audio_only(tone)
    assert_one_error_line(run("extract", tone, "-o", out), "no video stream")
    assert not out.exists() or not any(out.iterdir())


def test_truncated_video_reports_progress_and_keeps_frames(tmp_path: Path) -> None:
    video, out = tmp_path / "cut.mp4", tmp_path / "out"
    make_video(video, frames=96, width=128, height=96, faststart=True)
    data = video.read_bytes()
    video.write_bytes(data[: len(data) * 2 // 3])
    result = run("extract", video, "-o", out)
    assert_one_error_line(result, "truncated", "stopped after", "frames kept")
    rows = read_manifest(out / "manifest.jsonl")
    assert 0 < len(rows) < 96
    assert f"; {len(rows)} frames kept" in result.stderr
    assert all((out / r["file"]).exists() for r in rows)


def test_unwritable_output_and_zero_frames(video: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert_one_error_line(run("extract", video, "-o", blocker), "not a folder")
    assert_one_error_line(run("extract", video, "-o", blocker / "sub"), "cannot create")
    out = tmp_path / "none"
    assert_one_error_line(run("extract", video, "-o", out, "--start", "30"), "past its end")
    assert not out.exists()  # nothing made, nothing left (issue 20, finding 14)


def test_usage_errors_exit_2(video: Path, tmp_path: Path) -> None:
    result = run("extract", video, "-o", tmp_path / "x", "--every", "2", "--fps", "3")
    assert result.exit_code == 2 and "--every or --fps" in result.output
    result = run("extract", video, "-o", tmp_path / "x", "--start", "2", "--end", "1")
    assert result.exit_code == 2
    for huge in ("1e30", "inf", "nan"):
        assert run("extract", video, "-o", tmp_path / "x", "--start", huge).exit_code == 2


def test_help_version_and_probe(video: Path) -> None:
    assert run("--version").output.strip().endswith("0.1.0")
    for command in ("extract", "probe"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "Example" in result.output
    result = run("probe", video, "--json")
    info = json.loads(result.output)
    assert info["frame_count"] == 48 and info["frame_rate"] == "24" and info["audio"]


def test_installed_command_runs(video: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("vidcolor")
    if not exe.exists():
        pytest.skip("the vidcolor command is not installed in this environment")
    done = subprocess.run(
        [exe, "extract", video, "-o", tmp_path / "f", "--every", "24"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "f").glob("*.png"))) == 2


def test_extract_shared_clip(shared_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "bbb"
    result = run("extract", shared_clip, "-o", out, "--fps", "1", "--size", "90")
    assert result.exit_code == 0, result.output
    rows = read_manifest(out / "manifest.jsonl")
    assert [r["frame"] for r in rows] == list(range(0, 1440, 24))
    assert [r["time"] for r in rows] == pytest.approx(list(range(60)))
    assert load(out / rows[0]["file"]).shape == (90, 160, 3)
