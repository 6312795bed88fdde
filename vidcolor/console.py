"""What the commands show a person: one-line messages on stderr, rich progress bars, and the
reports each stage ends with. The pipeline's runners report through the same ``ConsoleReport``,
so a stage says what its command says."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from vidcolor.faults import watched
from vidcolor.options import RenderOptions
from vidcolor.reporter import Extracted, Reporter, TaskBar, Trained, TrainingRun

if TYPE_CHECKING:
    from vidcolor.render.streaming import RenderResult
    from vidcolor.train.loop import Status

stderr = Console(stderr=True)


def quiet_ffmpeg() -> None:
    """Keep FFmpeg's own log off the terminal: errors reach the user inside vidcolor's one-line
    messages (VIDCOLOR_FFMPEG_LOG=1 shows the log). This sets FFmpeg's C-level threshold; PyAV's
    Python log callback is never turned on, since FFmpeg threads logging through it need the
    GIL and can deadlock against a thread that holds it while waiting on FFmpeg."""
    import av.logging

    if not os.environ.get("VIDCOLOR_FFMPEG_LOG"):
        av.logging.set_libav_level(av.logging.PANIC)


class RateColumn(ProgressColumn):
    """Frames per second, from rich's own moving estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f} fps" if speed else "     - fps", style="cyan")


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=stderr,
        disable=not stderr.is_terminal,  # logs and pipes get the summary line only
    )


class RichTask(TaskBar):
    """One task of a rich progress bar, as the library's pipeline runners drive it."""

    def __init__(self, bar: Progress, task: Any) -> None:
        self.bar, self.task = bar, task

    def update(
        self, completed: int | None = None, total: int | None = None, description: str | None = None
    ) -> None:
        given = {"completed": completed, "total": total, "description": description}
        self.bar.update(self.task, **{k: v for k, v in given.items() if v is not None})

    def advance(self, n: int = 1) -> None:
        self.bar.advance(self.task, n)


class ConsoleReport(Reporter):
    """What the stages say, as lines on stderr and progress bars."""

    def say(self, line: str) -> None:
        print(f"vidcolor: {line}", file=sys.stderr, flush=True)

    def done(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    @contextmanager
    def progress(
        self, description: str, total: int | None, completed: int = 0
    ) -> Iterator[TaskBar]:
        with progress_bar() as bar:
            task = RichTask(bar, bar.add_task(description, total=total, completed=completed))
            yield watched(description, task, total, completed)

    def extracted(self, result: Extracted) -> None:
        for note in result.notes:
            self.say(f"warning: {note}")
        out = result.out
        self.done(
            f"{result.frames} frames in {out} ({result.new} new), manifest: "
            f"{out / 'manifest.jsonl'}"
        )

    def built(self, out: Path, manifest: dict, avoid_hud: bool) -> None:
        for reason in manifest["skipped"]:
            self.say(f"warning: skipped {reason}")
        for warning in manifest["warnings"]:
            self.say(f"warning: {warning}")
        for source in manifest["sources"]:
            for x, y, w, h in source["hud"]:
                what = "kept out of the frames" if avoid_hud else "use --avoid-hud to leave it out"
                self.say(
                    f"{Path(source['source']).name}: static overlay at x={x} y={y} {w}x{h} ({what})"
                )
        counts = ", ".join(f"{k} {v['count']}" for k, v in manifest["shards"].items())
        dropped = ", ".join(f"{k} {v}" for k, v in manifest["dropped"].items() if v)
        self.done(f"{out}: {counts} frames (dropped: {dropped or 'none'})")

    @contextmanager
    def training(self, run: TrainingRun) -> Iterator[Callable[[Status], None]]:
        """The run's first lines, then a bar that each step moves on."""
        if run.resumed:
            self.done(f"resuming {run.run} at step {run.step} of {run.total_steps}")
        for note in run.notes:
            self.say(f"note: {note}")
        self.done(
            f"training on {run.train_images} images, validating on {run.val_images}, "
            f"{run.steps_per_epoch} steps/epoch on {run.device} x{run.world}"
        )
        with self.progress("train", run.total_steps, run.step) as bar:

            def show(s: Status) -> None:
                losses = " ".join(f"{k} {v:.3f}" for k, v in s.losses.items())
                bar.update(
                    s.step,
                    description=f"epoch {s.epoch + 1}/{s.epochs} {s.phase} "
                    f"{losses} {s.images_per_s:.1f} img/s",
                )

            yield show

    def trained(self, result: Trained) -> None:
        summary = ", ".join(f"{k} {v:.4f}" for k, v in result.scores.items())
        self.done(f"done: {result.steps} steps; {summary}; checkpoints in {result.run}")

    def rendered(self, dst: Path, result: RenderResult | None, options: RenderOptions) -> None:
        """``result``: a video's RenderResult, or None for an image."""
        if result is None:
            self.done(f"wrote {dst}")
            return
        for note in result.notes:
            self.say(f"note: {note}")
        if options.batch_size and result.batch_size < options.batch_size:
            self.say(f"note: out of GPU memory: batch size lowered to {result.batch_size}")
        extra = f" and {dst.stem}_preview.png" if options.preview_frames else ""
        self.done(f"{result.frames} frames in {dst}{extra}")


def format_scores(result: dict) -> str:
    """The scores as a terminal table, overall then per scene."""

    def num(v: float | None, spec: str) -> str:
        width = spec.split(".")[0]
        return format("-", f">{width}") if v is None else format(v, spec)

    r = result
    lines = [
        f"{r['frames']} frames",
        f"{'':24}{'output':>12}{'original':>12}{'ratio':>8}",
        f"{'PSNR dB':24}{num(r['psnr'], '12.2f')}",
        f"{'SSIM':24}{num(r['ssim'], '12.4f')}",
        f"{'colourfulness':24}{num(r['colourfulness'], '12.1f')}"
        f"{num(r['colourfulness_original'], '12.1f')}"
        f"{num(r['colourfulness_ratio'], '8.2f')}",
    ]
    if "warp_error" in r:
        lines.append(
            f"{'warping error':24}{num(r['warp_error'], '12.5f')}"
            f"{num(r['warp_error_original'], '12.5f')}"
            f"{num(r['warp_error_ratio'], '8.2f')}"
        )
        for g in r["cdc_output_by_gap"]:
            lines.append(
                f"{f'CDC, frames {g} apart':24}{num(r['cdc_output_by_gap'][g], '12.5f')}"
                f"{num(r['cdc_original_by_gap'][g], '12.5f')}"
            )
    if len(r["per_scene"]) > 1:
        lines.append(
            f"\n{'scene':>8}{'frames':>8}{'PSNR':>8}{'SSIM':>8}{'colour':>8}"
            f"{'warp err':>11}{'(orig)':>10}"
        )
        for s, v in r["per_scene"].items():
            lines.append(
                f"{s:>8}{v['frames']:8d}{num(v['psnr'], '8.2f')}"
                f"{num(v['ssim'], '8.3f')}"
                f"{num(v['colourfulness_ratio'], '8.2f')}"
                f"{num(v.get('warp_error'), '11.5f')}"
                f"{num(v.get('warp_error_original'), '10.5f')}"
            )
    return "\n".join(lines)
