"""The library's API per stage (vidcolor.stages): the same functions the commands and the
pipeline call, used here directly with their typed options and a reporter that records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from conftest import make_video, write_photos

from vidcolor import stages
from vidcolor.options import (
    ExtractOptions,
    ExtractStage,
    ModelConfig,
    RenderOptions,
    TrainConfig,
    TrainStage,
)
from vidcolor.render.streaming import RenderError
from vidcolor.reporter import Extracted, Reporter, TaskBar, Trained


class Recorder(Reporter):
    """Keeps what a stage reports: lines, and each progress task's last position."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.tasks: dict[str, list[int | None]] = {}
        self.calls: list[str] = []

    def say(self, line: str) -> None:
        self.lines.append(line)

    def done(self, line: str) -> None:
        self.lines.append(line)

    @contextmanager
    def progress(
        self, description: str, total: int | None, completed: int = 0
    ) -> Iterator[TaskBar]:
        state = self.tasks.setdefault(description, [completed, total])
        recorder = self

        class Task(TaskBar):
            def update(
                self,
                completed: int | None = None,
                total: int | None = None,
                description: str | None = None,
            ) -> None:
                state[0] = state[0] if completed is None else completed
                state[1] = state[1] if total is None else total

            def advance(self, n: int = 1) -> None:
                state[0] = (state[0] or 0) + n

        yield Task()
        recorder.calls.append(f"progress {description}")

    def extracted(self, result: Extracted) -> None:
        self.calls.append(f"extracted {result.frames} ({result.new} new)")

    def rendered(self, dst: Path, result: Any, options: RenderOptions) -> None:
        self.calls.append(f"rendered {result.frames if result else 'image'}")

    def trained(self, result: Trained) -> None:
        self.calls.append(f"trained {result.steps}")


def test_extract_reports_every_frame(tmp_path: Path) -> None:
    make_video(tmp_path / "in.mp4", frames=20)
    report = Recorder()
    stage = ExtractStage(ExtractOptions(every=2, size=32), workers=1)
    result = stages.extract(tmp_path / "in.mp4", tmp_path / "frames", stage, report)
    rows = [json.loads(line) for line in (tmp_path / "frames" / "manifest.jsonl").open()]
    assert result.frames == len(rows) == 10 and [r["frame"] for r in rows] == list(range(0, 20, 2))
    assert report.tasks["extract in.mp4"] == [10, 10]
    assert report.calls[-1] == "extracted 10 (10 new)" and result.notes == []


def test_render_defaults_to_temporal_and_reports_the_frames(
    tmp_path: Path, tiny_model: Path
) -> None:
    make_video(tmp_path / "in.mp4", frames=30, cut_at=15)
    report = Recorder()
    result = stages.render(
        tmp_path / "in.mp4", tmp_path / "out.mp4", RenderOptions(tiny_model), report
    )
    assert RenderOptions().temporal is None  # on for a video unless asked off ...
    assert result.cuts == 1  # ... and the stabiliser ran, reset at the cut
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert sum(1 for _ in out.decode(video=0)) == result.frames == 30
    assert report.tasks["render in.mp4"] == [30, 30] and report.calls[-1] == "rendered 30"


def test_render_checks_before_the_model_loads(tmp_path: Path) -> None:
    make_video(tmp_path / "in.mp4", frames=4)
    (tmp_path / "out.mp4").write_bytes(b"mine")
    missing_model = RenderOptions(tmp_path / "no_model.pt")  # loading it would fail otherwise
    with pytest.raises(RenderError, match="exists; use --overwrite"):
        stages.render(tmp_path / "in.mp4", tmp_path / "out.mp4", missing_model)
    with pytest.raises(RenderError, match="no such folder"):
        stages.render(tmp_path / "in.mp4", tmp_path / "nowhere" / "out.mp4", missing_model)
    assert (tmp_path / "out.mp4").read_bytes() == b"mine"


def test_render_folder_names_unreadable_images_and_renders_the_rest(
    tmp_path: Path, tiny_model: Path
) -> None:
    write_photos(tmp_path / "in", names=["astronaut", "coffee"], size=40)
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    report = Recorder()
    with pytest.raises(RenderError, match="1 of 3 images could not be read"):
        stages.render(tmp_path / "in", tmp_path / "out", RenderOptions(tiny_model), report)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["astronaut.png", "coffee.png"]
    assert any("broken.png" in line for line in report.lines)


def test_train_then_evaluate_through_the_api(tmp_path: Path) -> None:
    write_photos(tmp_path / "photos", names=["astronaut", "coffee", "chelsea"], size=40)
    config = TrainConfig(
        data=str(tmp_path / "photos"),
        size=32,
        epochs=1,
        batch_size=3,
        val_fraction=0.0,
        model=ModelConfig(base_width=4, depth=3),
    )
    report = Recorder()
    scores = stages.train(tmp_path / "run", TrainStage(config, "cpu", workers=0), report)
    assert report.calls[-1] == "trained 1" and np.isfinite(scores["val_L1"])
    again = stages.train(
        tmp_path / "run", TrainStage(device="cpu", workers=0), Recorder(), resume=True, epochs=2
    )
    assert set(again) == set(scores)
    assert (tmp_path / "run" / "model.pt").is_file()


def test_evaluate_scores_a_folder_against_itself_as_perfect(tmp_path: Path) -> None:
    make_video(tmp_path / "in.mp4", frames=6)
    stages.extract(tmp_path / "in.mp4", tmp_path / "frames")
    report = Recorder()
    result = stages.evaluate(tmp_path / "frames", tmp_path / "frames", report=report)
    assert result["frames"] == 6 and report.tasks["eval"] == [6, 6]
    assert result["colourfulness_ratio"] == pytest.approx(1.0) and result["ssim"] == 1.0
