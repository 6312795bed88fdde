"""The `vidcolor` command line: collects arguments, shows progress, turns errors into one line.

The work itself lives in the `vidcolor` library; nothing there knows about this file.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
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

if TYPE_CHECKING:
    from vidcolor.train import Status

from vidcolor import __version__
from vidcolor.options import (
    BuildOptions,
    ExtractOptions,
    ExtractStage,
    ModelConfig,
    RenderOptions,
    TrainConfig,
    TrainStage,
)

# Exit codes: 0 ok, 1 bad input or failed work, 2 wrong usage (click's), 128 + N stopped by
# signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
EXIT_FAILED = 1

stderr = Console(stderr=True)
SECONDS = click.FloatRange(min=0, max=1e7)  # finite: about 115 days of video
DEVICES = "auto, cpu, cuda or cuda:N."


def finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Reject NaN, which passes every range check."""
    if value is not None and math.isnan(value):
        raise click.BadParameter("must be a number of seconds")
    return value


def fail(message: str, code: int = EXIT_FAILED) -> None:
    """One line on stderr and a non-zero exit: how every user-caused error ends."""
    click.echo(f"vidcolor: error: {message}", err=True)
    sys.exit(code)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map the library's user-facing errors to `fail`, so no traceback reaches the terminal."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vidcolor.errors import UserError

        try:
            return fn(*args, **kwargs)
        except UserError as e:
            fail(str(e))
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            fail(f"{where}{e.strerror or e}")

    return wrapper


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


def check_sampling(every: int, fps: float | None, start: float | None, end: float | None
                   ) -> None:  # fmt: skip
    """Option pairs of `extract` (also checked for a recipe's [extract] before any work)."""
    if fps is not None and every != 1:
        raise click.UsageError("use --every or --fps, not both")
    if start is not None and end is not None and end <= start:
        raise click.UsageError("--end must be after --start")


def stage_values(command: click.Command, recipe: Any, section: str,
                 skip: Collection[str] = ()) -> list[tuple[str, click.Option, Any]]:  # fmt: skip
    """A recipe's ``[section]`` as (key, option, value) for ``command``, each value checked the
    way the command line checks it; an unknown key or a bad value names the recipe's line.
    Keys in ``skip`` belong to the pipeline, not the command."""
    from vidcolor.pipeline.recipe import RecipeError

    options = {name[2:]: p for p in command.params if isinstance(p, click.Option)
               for name in p.opts if name.startswith("--") and name != "--recipe"}  # fmt: skip
    values = []
    for key, value in recipe.section(section).items():
        if key in skip:
            continue
        param = options.get(key)
        where = recipe.where(section, key)
        if param is None:
            raise RecipeError(f"{where}: unknown option (known: {', '.join(sorted(options))})")
        if param.is_flag != isinstance(value, bool):
            want = "true or false" if param.is_flag else f"a {param.type.name}, not true/false"
            raise RecipeError(f"{where}: expected {want}")
        if isinstance(value, float) and param.type.name.startswith("integer"):  # 2.9 is not 2
            raise RecipeError(f"{where}: expected a whole number")
        text = param.type is click.STRING or isinstance(param.type, click.Path)
        if text and not isinstance(value, str):  # click would take str() of anything
            raise RecipeError(f"{where}: expected text in quotes, got {value!r}")
        try:
            values.append((key, param, param.type.convert(value, param, None)))
        except click.BadParameter as e:
            raise RecipeError(f"{where}: {e.message}") from None
        except (TypeError, ValueError, OverflowError):
            raise RecipeError(f"{where}: not a valid {param.type.name}: {value!r}") from None
    return values


def stage_options(command: click.Command, recipe: Any, section: str) -> dict[str, Any]:
    """A recipe's ``[section]`` as ``command``'s parameter values (see ``stage_values``)."""
    return {param.name: value for _, param, value in stage_values(command, recipe, section)}


def recipe_option(section: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--recipe FILE``: defaults for this command's options from the recipe's ``[section]``;
    options given on the command line win."""

    def load(ctx: click.Context, param: click.Parameter, value: Path | None) -> Any:
        if value is None:
            return None
        from vidcolor.errors import UserError
        from vidcolor.pipeline.recipe import load as load_recipe

        try:
            recipe = load_recipe(value)
            values = stage_options(ctx.command, recipe, section)
        except UserError as e:
            fail(str(e))
        ctx.default_map = {**(ctx.default_map or {}), **values}
        return recipe

    about = f"TOML recipe: its inputs, and its [{section}] options as defaults."
    return click.option("--recipe", type=click.Path(path_type=Path), is_eager=True,
                        callback=load, help=about)  # fmt: skip


class Bar(Progress):
    """rich's progress bar. ``VIDCOLOR_TEST_FAULT=SIGNAL@FRACTION[@TASK]`` (e.g. KILL@0.5@train)
    makes the process send itself SIGNAL once a task whose first description starts with TASK
    has done FRACTION of its total: the hook that tests/test_faults.py kills commands with."""

    fault: tuple[int, float, str] | None = None
    watched: Any = None

    def add_task(self, description: str, *args: Any, **kwargs: Any) -> Any:
        task_id = super().add_task(description, *args, **kwargs)
        if Bar.fault is not None and description.startswith(Bar.fault[2]):
            self.watched = task_id
        return task_id

    def update(self, task_id: Any, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._maybe_fault(task_id)

    def advance(self, task_id: Any, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_fault(task_id)

    def _maybe_fault(self, task_id: Any) -> None:
        if Bar.fault is None or task_id != self.watched:
            return
        task = self._tasks[task_id]
        signum, fraction, _ = Bar.fault
        if task.total and task.completed >= fraction * task.total:
            Bar.fault = None  # once per process
            os.kill(os.getpid(), signum)


def progress_bar() -> Progress:
    fault = os.environ.get("VIDCOLOR_TEST_FAULT")
    if fault and Bar.fault is None:
        import signal

        name, fraction, *task = fault.split("@")
        Bar.fault = (getattr(signal, f"SIG{name}"), float(fraction), task[0] if task else "")
        os.environ.pop("VIDCOLOR_TEST_FAULT")  # the pipeline's stages share this process
    return Bar(
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


class RichTask:
    """One task of a rich progress bar, as the library's pipeline runners drive it."""

    def __init__(self, bar: Progress, task: Any) -> None:
        self.bar, self.task = bar, task

    def update(self, completed: int | None = None, total: int | None = None,
               description: str | None = None) -> None:  # fmt: skip
        given = {"completed": completed, "total": total, "description": description}
        self.bar.update(self.task, **{k: v for k, v in given.items() if v is not None})

    def advance(self, n: int = 1) -> None:
        self.bar.advance(self.task, n)


class ConsoleReport:
    """What the commands say, as lines on stderr and progress bars; the pipeline's runners
    report through it too, so a stage says what its command says."""

    def say(self, line: str) -> None:
        click.echo(f"vidcolor: {line}", err=True)

    @contextmanager
    def progress(self, description: str, total: int | None, completed: int = 0
                 ) -> Iterator[RichTask]:  # fmt: skip
        with progress_bar() as bar:
            yield RichTask(bar, bar.add_task(description, total=total, completed=completed))

    def extracted(self, out: Path, job: Any, count: int) -> None:
        for note in job.reader.notes:
            self.say(f"warning: {note}")
        click.echo(f"{count} frames in {out} ({job.written} new), manifest: "
                   f"{out / 'manifest.jsonl'}", err=True)  # fmt: skip

    def built(self, out: Path, manifest: dict, avoid_hud: bool) -> None:
        for reason in manifest["skipped"]:
            self.say(f"warning: skipped {reason}")
        for warning in manifest["warnings"]:
            self.say(f"warning: {warning}")
        for source in manifest["sources"]:
            for x, y, w, h in source["hud"]:
                what = "kept out of the frames" if avoid_hud else "use --avoid-hud to leave it out"
                self.say(f"{Path(source['source']).name}: static overlay at x={x} y={y} {w}x{h} "
                         f"({what})")  # fmt: skip
        counts = ", ".join(f"{k} {v['count']}" for k, v in manifest["shards"].items())
        dropped = ", ".join(f"{k} {v}" for k, v in manifest["dropped"].items() if v)
        click.echo(f"{out}: {counts} frames (dropped: {dropped or 'none'})", err=True)

    @contextmanager
    def training(self, run: Path, trainer: Any, resumed: bool
                 ) -> Iterator[Callable[[Status], None]]:  # fmt: skip
        """The run's first lines, then a bar that each step moves on."""
        if resumed:
            click.echo(f"resuming {run} at step {trainer.step} of {trainer.total_steps}",
                       err=True)  # fmt: skip
        for note in trainer.data.notes:
            self.say(f"note: {note}")
        where = trainer.dist
        click.echo(f"training on {len(trainer.data.train)} images, validating on "
                   f"{len(trainer.val_set)}, {trainer.steps_per_epoch} steps/epoch on "
                   f"{where.device} x{where.world}", err=True)  # fmt: skip
        with self.progress("train", trainer.total_steps, trainer.step) as bar:

            def show(s: Status) -> None:
                losses = " ".join(f"{k} {v:.3f}" for k, v in s.losses.items())
                bar.update(s.step, description=f"epoch {s.epoch + 1}/{s.epochs} {s.phase} "
                           f"{losses} {s.images_per_s:.1f} img/s")  # fmt: skip

            yield show

    def trained(self, run: Path, trainer: Any, scores: dict[str, float]) -> None:
        summary = ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
        click.echo(f"done: {trainer.step} steps; {summary}; checkpoints in {run}", err=True)

    def rendered(self, dst: Path, result: Any, options: Any) -> None:
        """``result``: a video's RenderResult, or None for an image."""
        if result is None:
            click.echo(f"wrote {dst}", err=True)
            return
        for note in result.notes:
            self.say(f"note: {note}")
        if options.batch_size and result.batch_size < options.batch_size:
            self.say(f"note: out of GPU memory: batch size lowered to {result.batch_size}")
        extra = f" and {dst.stem}_preview.png" if options.preview_frames else ""
        click.echo(f"{result.frames} frames in {dst}{extra}", err=True)


class Commands(click.Group):
    """The command group: SIGTERM and SIGHUP stop a command as Ctrl-C does, and a stop that no
    command handles itself ends in one line and 128 + the signal's number, not click's
    'Aborted!' and 1."""

    def invoke(self, ctx: click.Context) -> Any:
        from vidcolor.interrupt import exit_code, signals_interrupt

        try:
            with signals_interrupt():
                return super().invoke(ctx)
        except KeyboardInterrupt as e:
            fail("interrupted; nothing was left half-written", exit_code(e))


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vidcolor")
def main() -> None:
    """Colorize black-and-white video with a conditional GAN.

    \b
    Examples:
      vidcolor render episode.mp4 episode_color.mp4
      vidcolor extract episode.mp4 -o frames/
    """
    quiet_ffmpeg()


@main.command()
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@user_errors
def probe(video: Path, as_json: bool) -> None:
    """Show what VIDEO holds: size, frame rate, frame count, codec, rotation, audio.

    \b
    Example:
      vidcolor probe episode.mp4 --json
    """
    from vidcolor.video import probe as probe_video

    info = probe_video(video)
    row = asdict(info)
    row["path"] = str(info.path)
    for key in ("frame_rate", "time_base", "start_time"):
        row[key] = str(row[key])
    if as_json:
        click.echo(json.dumps(row, indent=2))
        return
    for key, value in row.items():
        if key in ("audio", "subtitles"):
            value = ", ".join(f"#{s['index']} {s['codec']} ({s['language'] or '-'})" for s in value)
        if key == "frame_count" and not info.frame_count_exact:
            value = f"~{value} (estimate)"
        if key != "frame_count_exact":
            click.echo(f"{key:>12}  {value if value not in ('', None) else '-'}")


@main.command()
@click.argument("video", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for the frames and manifest.jsonl.")  # fmt: skip
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]),
              default=ExtractOptions.image_format, show_default=True,
              help="Image file format.")  # fmt: skip
@click.option("--quality", type=click.IntRange(1, 100), default=ExtractOptions.jpeg_quality,
              show_default=True, help="JPEG quality.")  # fmt: skip
@click.option("--every", type=click.IntRange(min=1), default=ExtractOptions.every,
              show_default=True, help="Keep every Nth frame.")  # fmt: skip
@click.option("--fps", type=click.FloatRange(min=0, min_open=True),
              help="Keep at most this many frames per second (instead of --every).")  # fmt: skip
@click.option("--start", type=SECONDS, callback=finite, help="Start time in seconds.")
@click.option("--end", type=SECONDS, callback=finite, help="End time in seconds (exclusive).")
@click.option("--size", type=click.IntRange(min=8),
              help="Scale frames so their short side has this many pixels.")  # fmt: skip
@click.option("--gray", is_flag=True, help="Store single-channel gray frames.")
@click.option("--scenes", "with_scenes", is_flag=True,
              help="Detect shots in the same pass; write each frame's scene id to "
              "the manifest.")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace an earlier extraction in the folder.")
@click.option("--resume", is_flag=True, help="Continue an interrupted extraction.")
@click.option("--workers", type=click.IntRange(min=1), default=ExtractStage.workers,
              show_default=True, help="Threads that encode image files.")  # fmt: skip
@user_errors
def extract(
    video: Path,
    out_dir: Path,
    image_format: str,
    quality: int,
    every: int,
    fps: float | None,
    start: float | None,
    end: float | None,
    size: int | None,
    gray: bool,
    with_scenes: bool,
    overwrite: bool,
    resume: bool,
    workers: int,
) -> None:
    """Write the frames of VIDEO to a folder as images, with a manifest.jsonl row per frame
    (file, source, frame index, pts, seconds).

    \b
    Examples:
      vidcolor extract episode.mp4 -o frames/
      vidcolor extract episode.mp4 -o frames/ --fps 2 --size 256 --format jpg
      vidcolor extract episode.mp4 -o frames/ --fps 2 --scenes
      vidcolor extract episode.mp4 -o frames/ --resume
    """
    from vidcolor.extract import FrameExtractor
    from vidcolor.interrupt import exit_code
    from vidcolor.video import VideoError

    check_sampling(every, fps, start, end)
    if overwrite and resume:
        raise click.UsageError("use --overwrite or --resume, not both")
    options = typed_stage("extract", click.get_current_context().params).options
    with (
        FrameExtractor(
            video, out_dir, options, overwrite=overwrite, resume=resume, workers=workers
        ) as job,
        progress_bar() as bar,
    ):
        task = bar.add_task(f"extract {video.name}", total=job.expected)
        count = 0
        try:
            for count, _row in enumerate(job, 1):
                bar.update(task, completed=count, total=max(count, job.expected))
            bar.update(task, total=count)
        except KeyboardInterrupt as e:
            bar.stop()
            kept = len(job.done) + job.written
            fail(f"interrupted: {kept} frames in {out_dir}; continue with --resume",
                 exit_code(e))  # fmt: skip
        except VideoError as e:
            bar.stop()
            fail(f"{e}; {len(job.done) + job.written} frames kept in {out_dir}")
    ConsoleReport().extracted(out_dir, job, count)


@main.command()
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--min-scene-len", type=click.IntRange(min=1), default=8, show_default=True,
              help="Fewest frames between two cuts.")  # fmt: skip
@user_errors
def scenes(video: Path, as_json: bool, min_scene_len: int) -> None:
    """List the shots of VIDEO: cuts and fades, with frame numbers and timecodes.

    \b
    Example:
      vidcolor scenes episode.mp4 --json
    """
    from dataclasses import asdict

    from vidcolor.scenes import detect_scenes

    found = detect_scenes(video, min_scene_len)
    if as_json:
        click.echo(json.dumps([asdict(s) for s in found], indent=2))
        return

    def tc(seconds: float) -> str:
        m, s = divmod(seconds, 60)
        return f"{int(m // 60):02d}:{int(m % 60):02d}:{s:06.3f}"

    click.echo(f"{'scene':>5}  {'start':>12}  {'end':>12}  {'frames':>13}")
    for s in found:
        click.echo(f"{s.index:>5}  {tc(s.start_time)}  {tc(s.end_time)}  "
                   f"{s.start_frame:>6}-{s.end_frame:<6}")  # fmt: skip


@main.command()
@click.argument("data", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--output", "run", type=click.Path(path_type=Path),
              help="Run folder for checkpoints, samples and metrics.")  # fmt: skip
@click.option("--resume", "resume", type=click.Path(path_type=Path),
              help="Continue the run in this folder from its last.pt.")  # fmt: skip
@click.option("--size", type=click.IntRange(32, 4096), default=TrainConfig.size, show_default=True,
              help="Training crop size (224 cartoons, 480 game replays).")  # fmt: skip
@click.option("--epochs", type=click.IntRange(min=1), default=TrainConfig.epochs, show_default=True,
              help="Adversarial epochs (after --pretrain-epochs).")  # fmt: skip
@click.option("--pretrain-epochs", type=click.IntRange(min=0), default=TrainConfig.pretrain_epochs,
              show_default=True,
              help="L1-only generator epochs before the GAN starts.")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(1, 4096), default=TrainConfig.batch_size,
              show_default=True, help="Images per step (per process under torchrun).")  # fmt: skip
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=TrainConfig.lr,
              show_default=True, help="Adam learning rate (beta1 0.5).")  # fmt: skip
@click.option("--lambda-l1", type=click.FloatRange(min=0), default=TrainConfig.lambda_l1,
              show_default=True,
              help="Weight of the L1 loss against the adversarial loss.")  # fmt: skip
@click.option("--disc", type=click.Choice(["patch", "global"]), default=ModelConfig.disc,
              show_default=True,
              help="70x70 PatchGAN or a global conv+FC discriminator.")  # fmt: skip
@click.option("--base-width", type=click.IntRange(4, 256), default=ModelConfig.base_width,
              show_default=True, help="Generator/discriminator width.")  # fmt: skip
@click.option("--depth", type=click.IntRange(2, 10), default=ModelConfig.depth, show_default=True,
              help="U-Net down-sampling steps.")  # fmt: skip
@click.option("--val-fraction", type=click.FloatRange(0, 0.9), default=TrainConfig.val_fraction,
              show_default=True, help="Share of scenes held out for validation (0: validate on "
              "training data).")  # fmt: skip
@click.option("--checkpoint-every", type=click.IntRange(min=1),
              default=TrainConfig.checkpoint_every, show_default=True,
              help="Steps between last.pt saves (also at every epoch end).")  # fmt: skip
@click.option("--device", default=TrainStage.device, show_default=True, help=DEVICES)
@click.option("--workers", type=click.IntRange(min=0), default=TrainStage.workers,
              show_default=True, help="Data-loading processes.")  # fmt: skip
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=TrainConfig.seed,
              show_default=True, help="Random seed.")  # fmt: skip
@click.pass_context
@user_errors
def train(ctx: click.Context, data: Path | None, run: Path | None, resume: Path | None,
          size: int, epochs: int, pretrain_epochs: int, batch_size: int, lr: float,
          lambda_l1: float, disc: str, base_width: int, depth: int, val_fraction: float,
          checkpoint_every: int, device: str, workers: int, seed: int) -> None:  # fmt: skip
    """Train a colorizer on DATA (a folder of colour images, searched recursively) into RUN.

    \b
    Examples:
      vidcolor train frames/ -o runs/cartoon --pretrain-epochs 2 --epochs 20
      vidcolor train --resume runs/cartoon
      torchrun --nproc_per_node 4 -m cli train frames/ -o runs/cartoon
    """
    from click.core import ParameterSource

    from vidcolor.interrupt import ForcedStop, exit_code
    from vidcolor.pipeline import Reporter
    from vidcolor.runtime import setup_distributed
    from vidcolor.train import resume_run, start_run

    if (resume is None) == (data is None):
        raise click.UsageError("give DATA -o RUN for a new run, or --resume RUN")
    if data is not None and run is None:
        raise click.UsageError("-o RUN is required with DATA")
    given = {k for k in ctx.params if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    if resume is not None and given - {"resume", "epochs", "device", "workers"}:
        names = ", ".join(f"--{k.replace('_', '-')}" for k in sorted(given - {"resume"}))
        raise click.UsageError(f"--resume continues with the run's own settings; only --epochs, "
                               f"--device and --workers may change (got {names})")  # fmt: skip
    dist_info = setup_distributed(device)
    if resume is not None:
        trainer = resume_run(resume, dist_info, workers, epochs if "epochs" in given else None)
        run = resume
    else:
        trainer = start_run(typed_stage("train", ctx.params).config, run, dist_info, workers)
    report = ConsoleReport() if dist_info.main else Reporter()  # rank 0 speaks for the run
    try:
        with report.training(run, trainer, resume is not None) as on_step:
            scores = trainer.fit(on_step)
    except KeyboardInterrupt as e:
        if not dist_info.main:
            sys.exit(exit_code(e))
        if isinstance(e, ForcedStop):
            fail(f"stopped at once; {run / 'last.pt'} holds the last whole checkpoint",
                 exit_code(e))  # fmt: skip
        fail(f"interrupted at step {trainer.step}; saved {run / 'last.pt'}; "
             f"continue with: vidcolor train --resume {run}", exit_code(e))  # fmt: skip
    if dist_info.main:
        report.trained(run, trainer, scores)


@main.command()
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.argument("dst", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--model", type=click.Path(path_type=Path),
              help="A model bundle or training checkpoint (default: the bundled "
              "model).")  # fmt: skip
@click.option("--render-size", type=click.IntRange(min=32),
              help="Short side the model works at (default: its training size).")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Frames per model call (default 4 on CPU, 16 on CUDA; halved on "
              "CUDA OOM).")  # fmt: skip
@click.option("--device", default=RenderOptions.device, show_default=True, help=DEVICES)
@click.option("--codec", default=RenderOptions.codec, show_default=True,
              help="h264, h265, av1, vp9 or an FFmpeg encoder name.")  # fmt: skip
@click.option("--crf", type=click.IntRange(0, 63), help="Quality (encoder's scale; lower: better).")
@click.option("--preset", help="Encoder speed preset (x264: ultrafast ... veryslow).")
@click.option("--preview", type=click.Choice(["sbs"]),
              help="sbs: OUT shows gray | colorized (| original colour) side by "
              "side.")  # fmt: skip
@click.option("--preview-frames", type=click.IntRange(min=0), default=RenderOptions.preview_frames,
              help="Also write OUT's name + _preview.png: a contact sheet of N "
              "frames.")  # fmt: skip
@click.option("--temporal/--no-temporal", default=RenderOptions.temporal, show_default=True,
              help="Carry colour along the motion from frame to frame (less "
              "flicker; about 0.85x the speed on a CPU); it starts afresh at each "
              "scene cut.")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@user_errors
def render(src: Path, dst: Path, model: Path | None, render_size: int | None,
           batch_size: int | None,
           device: str, codec: str, crf: int | None, preset: str | None, preview: str | None,
           preview_frames: int, temporal: bool, overwrite: bool) -> None:  # fmt: skip
    """Colorize IN (a video, an image, or a folder of images) into OUT.

    The output keeps the input's luma, frame count, timestamps, rotation and audio.

    \b
    Examples:
      vidcolor render episode.mp4 episode_color.mp4
      vidcolor render episode.mp4 check.mp4 --preview sbs --preview-frames 8
      vidcolor render photo.jpg photo_color.png
      vidcolor render frames/ colour_frames/ --model runs/cartoon/model.pt
    """
    from vidcolor.dataset import IMAGE_SUFFIXES, read_rgb
    from vidcolor.interrupt import exit_code
    from vidcolor.render import Colorizer, image_files, render_image, render_video
    from vidcolor.video import probe

    if src.exists() and dst.exists() and src.resolve() == dst.resolve():
        raise click.UsageError("IN and OUT are the same file")
    # 1. Everything about the inputs and outputs is checked before the model loads.
    is_image = src.suffix.lower() in IMAGE_SUFFIXES
    if src.is_dir():
        images = image_files(src)
        if not images:
            fail(f"{src}: no images to render")
        taken = [dst / p.name for p in images if (dst / p.name).exists()]
        if taken and not overwrite:
            fail(f"{taken[0]}: exists ({len(taken)} of the outputs do); use --overwrite")
    else:
        sheet = dst.with_name(f"{dst.stem}_preview.png")
        for path in [dst, sheet] if preview_frames else [dst]:
            if path.exists() and not overwrite:
                fail(f"{path}: exists; use --overwrite to replace it")
        if not dst.parent.is_dir():
            fail(f"{dst.parent}: {'not a folder' if dst.parent.exists() else 'no such folder'}")
        if is_image:
            read_rgb(src)  # missing or unreadable: one line now, not after the model loads
            if dst.suffix.lower() not in IMAGE_SUFFIXES:
                fail(f"{dst}: an image goes to an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
        else:
            probe(src)  # a bad video fails here
    given = click.get_current_context().get_parameter_source("temporal")
    if temporal and (is_image or src.is_dir()) and given != click.core.ParameterSource.DEFAULT:
        click.echo("vidcolor: note: --temporal applies to videos; images are colorized alone",
                   err=True)  # fmt: skip
    options = typed_stage("render", click.get_current_context().params)
    colorizer = Colorizer.from_options(options)
    # 2. The work.
    if src.is_dir():
        render_folder(images, dst, colorizer)
        return
    if is_image:
        render_image(src, dst, colorizer)
        click.echo(f"wrote {dst}", err=True)
        return
    total = probe(src).frame_count
    with progress_bar() as bar:
        task = bar.add_task(f"render {src.name}", total=total)
        try:
            result = render_video(
                src, dst, colorizer, options.encode, preview, preview_frames,
                on_frame=lambda n: bar.update(task, completed=n), temporal=temporal,
            )  # fmt: skip
        except KeyboardInterrupt as e:
            bar.stop()
            fail(f"interrupted; {dst} was not written; run the command again", exit_code(e))
        bar.update(task, total=result.frames, completed=result.frames)
    ConsoleReport().rendered(dst, result, options)


def render_folder(images: list[Path], dst: Path, colorizer: Any) -> None:
    """Each image to ``dst``: an unreadable one is named and skipped, the rest are rendered,
    and the command then fails (exit 1) so that scripts notice."""
    from vidcolor.dataset import TrainDataError
    from vidcolor.render import render_image

    dst.mkdir(parents=True, exist_ok=True)
    unreadable = []
    with progress_bar() as bar:
        task = bar.add_task(f"render {images[0].parent.name}", total=len(images))
        for image in images:
            try:
                render_image(image, dst / image.name, colorizer)
            except TrainDataError as e:  # this image's own fault: the others still go
                unreadable.append(str(e))
            bar.advance(task)
    for reason in unreadable:
        click.echo(f"vidcolor: warning: skipped {reason}", err=True)
    click.echo(f"{len(images) - len(unreadable)} images in {dst}", err=True)
    if unreadable:
        fail(f"{len(unreadable)} of {len(images)} images could not be read (named above); the "
             "rest are in place: render those alone once fixed")  # fmt: skip


@main.command("eval")
@click.argument("truth", type=click.Path(path_type=Path))
@click.argument("output", required=False, type=click.Path(path_type=Path))
@click.option("--model", type=click.Path(path_type=Path),
              help="With a dataset: the model that colorizes its split.")  # fmt: skip
@click.option("--split", default="test", show_default=True, help="With a dataset: which split.")
@click.option("--device", default="auto", show_default=True, help=DEVICES)
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@click.option("--plot", type=click.Path(path_type=Path),
              help="Write the per-frame curves to this PNG.")  # fmt: skip
@user_errors
def evaluate(truth: Path, output: Path | None, model: Path | None, split: str, device: str,
             as_json: bool, plot: Path | None) -> None:  # fmt: skip
    """Score OUTPUT (a colorized video or image folder) against TRUTH, its colour original:
    PSNR, SSIM, colourfulness, warping error and colour distribution consistency, overall and
    per scene. With TRUTH a built dataset and no OUTPUT, score --model on its --split.

    \b
    Examples:
      vidcolor eval episode.mp4 episode_color.mp4 --plot curves.png
      vidcolor eval colour_frames/ colorized_frames/ --json
      vidcolor eval data/ --model runs/cartoon/model.pt --split test
    """
    from vidcolor import evaluate as ev_lib
    from vidcolor.evaluate import EvalError, Evaluation

    if plot is not None and plot.suffix.lower() != ".png":
        raise click.UsageError(f"--plot {plot}: a .png file")
    if plot is not None and not plot.absolute().parent.is_dir():
        raise EvalError(f"--plot {plot}: no folder {plot.absolute().parent}")

    if output is None:
        if not (truth / "manifest.json").is_file():
            raise click.UsageError("give TRUTH OUTPUT, or a built dataset with --model")
        ev = Evaluation(temporal=False)
        total, pairs = ev_lib.dataset_pairs(truth, model, split, device)
    else:
        ctx = click.get_current_context()
        given = [f"--{k}" for k in ("model", "split")
                 if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT]  # fmt: skip
        if given:
            raise click.UsageError(f"{' and '.join(given)}: for a dataset, without OUTPUT "
                                   "(OUTPUT is already colorized)")  # fmt: skip
        for p in (truth, output):
            if not p.exists():
                raise EvalError(f"{p}: no such file or folder")
        if truth.is_dir() != output.is_dir():
            raise EvalError(f"{truth} and {output}: compare two videos or two image folders")
        if truth.is_dir():
            ev = Evaluation()
            total, frames = ev_lib.folder_pairs(truth, output)
        else:
            rate, total, frames = ev_lib.video_pairs(truth, output)
            ev = Evaluation(frame_rate=rate)
        pairs = ((index, out, orig, None) for index, out, orig in frames)
    with progress_bar() as bar:
        task = bar.add_task("eval", total=total)
        for index, out, orig, scene in pairs:
            ev.push(index, out, orig, scene)
            bar.advance(task)
    result = ev.report()
    if plot is not None:
        ev_lib.plot(ev, plot)
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    click.echo(format_scores(result))
    if plot is not None:
        click.echo(f"per-frame curves: {plot}")


def format_scores(result: dict) -> str:
    """The scores as a terminal table, overall then per scene."""

    def num(v: float | None, spec: str) -> str:
        width = spec.split(".")[0]
        return format("-", f">{width}") if v is None else format(v, spec)

    r = result
    lines = [f"{r['frames']} frames", f"{'':24}{'output':>12}{'original':>12}{'ratio':>8}",
             f"{'PSNR dB':24}{num(r['psnr'], '12.2f')}",
             f"{'SSIM':24}{num(r['ssim'], '12.4f')}",
             f"{'colourfulness':24}{num(r['colourfulness'], '12.1f')}"
             f"{num(r['colourfulness_original'], '12.1f')}"
             f"{num(r['colourfulness_ratio'], '8.2f')}"]  # fmt: skip
    if "warp_error" in r:
        lines.append(f"{'warping error':24}{num(r['warp_error'], '12.5f')}"
                     f"{num(r['warp_error_original'], '12.5f')}"
                     f"{num(r['warp_error_ratio'], '8.2f')}")  # fmt: skip
        for g in r["cdc_output_by_gap"]:
            lines.append(f"{f'CDC, frames {g} apart':24}{num(r['cdc_output_by_gap'][g], '12.5f')}"
                         f"{num(r['cdc_original_by_gap'][g], '12.5f')}")  # fmt: skip
    if len(r["per_scene"]) > 1:
        lines.append(f"\n{'scene':>8}{'frames':>8}{'PSNR':>8}{'SSIM':>8}{'colour':>8}"
                     f"{'warp err':>11}{'(orig)':>10}")  # fmt: skip
        for s, v in r["per_scene"].items():
            lines.append(f"{s:>8}{v['frames']:8d}{num(v['psnr'], '8.2f')}"
                         f"{num(v['ssim'], '8.3f')}"
                         f"{num(v['colourfulness_ratio'], '8.2f')}"
                         f"{num(v.get('warp_error'), '11.5f')}"
                         f"{num(v.get('warp_error_original'), '10.5f')}")  # fmt: skip
    return "\n".join(lines)


@main.group()
def dataset() -> None:
    """Build scene-aware training sets from episodes, and look at them.

    \b
    Example:
      vidcolor dataset build ep*.mp4 -o data/ --preset spongebob
      vidcolor dataset info data/
    """


@dataset.command("build")
@click.argument("videos", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path),
              help="Dataset folder (shards + manifest.json).")  # fmt: skip
@click.option("--preset", type=click.Choice(["spongebob", "sc2", "generic"]),
              default=BuildOptions.preset, show_default=True,
              help="Footage kind: crop size, sampling and shot detection.")  # fmt: skip
@click.option("--split-by", type=click.Choice(["scene", "episode"]), default=BuildOptions.split_by,
              show_default=True,
              help="Keep whole scenes, or whole episodes, in one split.")  # fmt: skip
@click.option("--seed", type=click.IntRange(min=0), default=BuildOptions.seed, show_default=True,
              help="Seed of the split.")  # fmt: skip
@click.option("--avoid-hud/--keep-hud", default=BuildOptions.avoid_hud, show_default=True,
              help="Store only the largest part of the picture clear of static "
              "overlays (HUD, logos).")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset folder.")
@recipe_option("dataset")
@user_errors
def dataset_build(videos: tuple[Path, ...], out: Path, preset: str, split_by: str, seed: int,
                  avoid_hud: bool, overwrite: bool, recipe: Any) -> None:  # fmt: skip
    """Build a training set from VIDEOS, scene by scene (train 80% / val 10% / test 10%).

    An interrupted build resumes from the next video when run again with the same videos and
    options. With --recipe, VIDEOS default to the recipe's inputs.

    \b
    Example:
      vidcolor dataset build ep01.mp4 ep02.mp4 -o data/ --preset spongebob --split-by episode
      vidcolor dataset build --recipe pipelines/sc2replay.toml -o data/
    """
    from vidcolor.dataset_build import build_dataset, frame_total
    from vidcolor.interrupt import exit_code

    if not videos and recipe is None:
        raise click.UsageError("give VIDEOS, or a --recipe with inputs")
    paths = list(videos) or recipe.inputs()
    options = typed_stage("dataset", click.get_current_context().params)

    def note(line: str) -> None:
        click.echo(f"vidcolor: {line}", err=True)

    with progress_bar() as bar:
        task = bar.add_task("dataset build", total=frame_total(paths) or None)
        try:
            manifest = build_dataset(paths, out, options, overwrite, on_note=note,
                                     on_frames=lambda n: bar.advance(task, n))  # fmt: skip
        except KeyboardInterrupt as e:
            bar.stop()
            note("interrupted; run the same command again to resume")
            sys.exit(exit_code(e))
    ConsoleReport().built(out, manifest, avoid_hud)


@dataset.command("info")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--sheet", type=click.Path(path_type=Path),
              help="Contact sheet PNG, one frame per scene (default "
              "DATA/scenes.png).")  # fmt: skip
@user_errors
def dataset_info(data: Path, sheet: Path | None) -> None:
    """Counts per split, scene and source, and a contact sheet with one frame per scene.

    \b
    Example:
      vidcolor dataset info data/
    """
    from vidcolor.dataset_build import dataset_summary

    summary = dataset_summary(data, sheet or data / "scenes.png")
    for line in summary:
        click.echo(line)


# --- pipelines: the stages above, chained by a recipe ----------------------------------------

# Options each stage's command takes that the pipeline sets itself (a recipe may not), and keys
# a stage's section may hold besides its command's options.
PIPELINE_SETS = {
    "extract": {"output", "overwrite", "resume"},
    "dataset": {"output", "overwrite", "recipe"},
    "train": {"output", "resume"},
    "render": {"overwrite"},
}
STAGE_EXTRA = {"render": {"inputs"}}  # [render] inputs: what to colorize (default: the inputs)
PLACEHOLDERS = {"extract": ["in.mp4", "-o", "out"], "dataset": ["in.mp4", "-o", "out"],
                "train": ["data", "-o", "run"], "render": ["in.mp4", "out.mp4"]}  # fmt: skip


def stage_commands() -> dict[str, click.Command]:
    return {"extract": extract, "dataset": dataset_build, "train": train, "render": render}


def typed_stage(name: str, p: dict[str, Any]) -> Any:
    """A stage's typed options from its command's parsed parameters ``p``: the one mapping from
    option names to the library's options, for the commands and the pipeline alike."""
    if name == "extract":
        return ExtractStage(ExtractOptions(p["image_format"], p["quality"], p["every"], p["fps"],
                                           p["start"], p["end"], p["size"], p["gray"],
                                           p["with_scenes"]), p["workers"])  # fmt: skip
    if name == "dataset":
        return BuildOptions(p["preset"], p["split_by"], p["seed"], p["avoid_hud"])
    if name == "train":
        config = TrainConfig(
            data=str(p["data"].resolve()) if p.get("data") else "", size=p["size"],
            epochs=p["epochs"], pretrain_epochs=p["pretrain_epochs"], batch_size=p["batch_size"],
            lr=p["lr"], lambda_l1=p["lambda_l1"], val_fraction=p["val_fraction"],
            checkpoint_every=p["checkpoint_every"], seed=p["seed"],
            model=ModelConfig(base_width=p["base_width"], depth=p["depth"], disc=p["disc"]),
        )  # fmt: skip
        return TrainStage(config, p["device"], p["workers"])
    options = RenderOptions(p["model"], p["device"], p["render_size"], p["batch_size"],
                            p["codec"], p["crf"], p["preset"], p["preview"], p["preview_frames"],
                            p["temporal"])  # fmt: skip
    options.encode  # noqa: B018 - a bad --preset is refused now, not after the model loads
    return options


def stage_argv(values: list[tuple[str, click.Option, Any]]) -> list[str]:
    """(key, option, value) as command-line arguments for the stage's command."""
    args: list[str] = []
    for key, param, value in values:
        if param.is_flag:
            if value:
                args.append(f"--{key}")
            elif param.secondary_opts:
                args.append(param.secondary_opts[0])
        elif value is not None:
            args += [f"--{key}", str(value)]
    return args


def checked_stage(recipe: Any, name: str, present: list[str]) -> tuple[Any, dict[str, Any]]:
    """One stage of a recipe: its typed options, and its values as given (JSON-able), checked
    as the command line checks them and for what its command would find out only once run."""
    import av

    from vidcolor.errors import UserError
    from vidcolor.pipeline.recipe import RecipeError
    from vidcolor.runtime import pick_device

    reserved = set(PIPELINE_SETS[name]) | ({"model"} if name == "render" and "train" in
                                            present else set())  # fmt: skip
    for key in recipe.section(name):
        if key in reserved:
            raise RecipeError(f"{recipe.where(name, key)}: set by the pipeline itself")
    command = stage_commands()[name]
    values = stage_values(command, recipe, name, STAGE_EXTRA.get(name, ()))
    if name == "render" and recipe.section(name).get("model") is not None:
        values = [(k, p, recipe.base(name, k) / v if k == "model" else v) for k, p, v in values]
    try:
        ctx = command.make_context(name, PLACEHOLDERS[name] + stage_argv(values))
        p = ctx.params
        pick_device(p["device"]) if "device" in p else None
        if name == "extract":
            check_sampling(p["every"], p["fps"], p["start"], p["end"])
        options = typed_stage(name, p)
        if name == "render":
            try:  # what the command would find out only once it runs
                av.codec.Codec(options.encode.encoder, "w")
            except (ValueError, av.error.FFmpegError):
                raise UserError(f"unknown video encoder '{options.encode.codec}'") from None
    except (UserError, click.ClickException) as e:
        message = e.format_message() if isinstance(e, click.ClickException) else str(e)
        raise RecipeError(f"{recipe.where(None, name)}: {message}") from None
    given = {k: (str(v) if isinstance(v, Path) else v) for k, _, v in values}
    return options, given


def plan_pipeline(path: Path, assignments: tuple[str, ...]) -> Any:
    """Read and check a recipe whole, before any work: keys, types, globs, stage order; the
    library's pipeline Plan."""
    from vidcolor.pipeline import STAGES, Plan, WorkLayout, outside_work, render_name
    from vidcolor.pipeline import work_folder_problem as problem_of
    from vidcolor.pipeline.recipe import TOP_LEVEL, RecipeError, load

    recipe = load(path)
    for assignment in assignments:
        recipe.set(assignment)
    for key in recipe.data:  # a --set may name one
        if key not in TOP_LEVEL:
            raise RecipeError(f"{recipe.where(None, key)}: unknown key "
                              f"(known: {', '.join(TOP_LEVEL)})")  # fmt: skip
    if not isinstance(recipe.data.get("work"), str):
        raise RecipeError(f'{recipe.where(None, "work")}: a work folder is needed '
                          '(e.g. work = "work/cartoon")')  # fmt: skip
    work = Path(os.path.abspath(recipe.base(None, "work") / recipe.data["work"]))
    if problem := problem_of(work):
        raise RecipeError(f"{recipe.where(None, 'work')}: {work}: {problem}")
    present = [s for s in STAGES if s in recipe.data]
    if not present:
        raise RecipeError(f"{path}: no stage to run ([extract], [dataset], [train], [render])")
    stages, given = {}, {}
    for name in present:
        stages[name], given[name] = checked_stage(recipe, name, present)
    if "train" in present and not {"dataset", "extract"} & set(present):
        raise RecipeError(f"{recipe.where(None, 'train')}: the train stage needs a [dataset] or "
                          "[extract] stage before it to train on")  # fmt: skip
    own_render_inputs = "render" in present and "inputs" in recipe.section("render")
    needs_inputs = {"extract", "dataset"} & set(present) or not own_render_inputs
    inputs = outside_work(work, recipe.inputs()) if needs_inputs else []
    if needs_inputs and not inputs:
        raise RecipeError(f"{recipe.where(None, 'inputs')}: it matches only files in the work "
                          "folder")  # fmt: skip
    render_inputs = inputs
    if own_render_inputs:
        render_inputs = outside_work(work, recipe.globs("render", "inputs"))
    model = stages["render"].model if "render" in present else None
    if model is not None and not model.is_file():
        raise RecipeError(f"{recipe.where('render', 'model')}: {model}: no such file")
    for stage, names in (("extract", [f.stem for f in inputs]),
                         ("render", [render_name(f) for f in render_inputs])):  # fmt: skip
        twice = sorted({n for n in names if names.count(n) > 1})
        if stage in present and twice:
            raise RecipeError(f"{path}: two inputs would both make {stage} output "
                              f"'{twice[0]}' (same name in two folders)")  # fmt: skip
    return Plan(path, WorkLayout(work), inputs, render_inputs, stages, given)


@main.group()
def pipeline() -> None:
    """Run a TOML recipe: extract -> dataset -> train -> render, skipping finished work.

    \\b
    Example:
      vidcolor pipeline run pipelines/demo.toml
      vidcolor pipeline run my.toml --set train.epochs=50 --set render.crf=20
      vidcolor pipeline status my.toml
      torchrun --nproc_per_node 4 -m cli pipeline run my.toml
    """


@pipeline.command("status")
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe value, e.g. train.epochs=50 (repeatable).")  # fmt: skip
@user_errors
def pipeline_status(recipe_path: Path, assignments: tuple[str, ...]) -> None:
    """Show which stages of RECIPE are done, stale, interrupted, failed or pending."""
    from vidcolor.pipeline import Ledger, stage_keys

    plan = plan_pipeline(recipe_path, assignments)
    ledger = Ledger(plan.layout.root)
    keys = stage_keys(plan, ledger)
    click.echo(f"{recipe_path}: work folder {plan.layout.root}, {len(plan.inputs)} input(s)")
    for name in plan.stages:
        state = ledger.state(name, keys[name])
        click.echo(f"  {name:8} {state.state:12} {state.why}")


@pipeline.command("run")
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe value, e.g. train.epochs=50 (repeatable).")  # fmt: skip
@user_errors
def pipeline_run(recipe_path: Path, assignments: tuple[str, ...]) -> None:
    """Run the stages of RECIPE in order; a stage whose inputs, options and outputs are
    unchanged is skipped, an interrupted one is resumed or redone.

    Paths in the recipe are relative to its folder; paths given with --set to the current
    folder. Under torchrun, training is data-parallel and the episodes to render are shared out
    across the processes.
    """
    from datetime import timedelta

    from vidcolor.interrupt import exit_code
    from vidcolor.pipeline import run_pipeline
    from vidcolor.runtime import setup_distributed

    plan = plan_pipeline(recipe_path, assignments)
    device = plan.stages["train"].device if "train" in plan.stages else "auto"
    # A long timeout: the other ranks wait while rank 0 alone builds the dataset.
    dist_info = setup_distributed(device, timeout=timedelta(hours=72))
    try:
        run_pipeline(plan, dist_info, ConsoleReport())
    except KeyboardInterrupt as e:
        if not dist_info.main:
            sys.exit(exit_code(e))  # rank 0 speaks for the run
        fail("interrupted; run the pipeline again to resume", exit_code(e))
    finally:
        dist_info.close()


if __name__ == "__main__":
    main()
