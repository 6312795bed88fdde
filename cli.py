"""The `vidcolor` command line: collects arguments, shows progress, turns errors into one line.

The work itself lives in the `vidcolor` library; nothing there knows about this file.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from cli_support import Commands, built, options, recipe_option, user_errors
from vidcolor import __version__
from vidcolor.options import (
    DEVICES,
    BuildOptions,
    ExtractStage,
    RenderOptions,
    TrainStage,
)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vidcolor")
def main() -> None:
    """Colorize black-and-white video with a conditional GAN.

    \b
    Examples:
      vidcolor render episode.mp4 episode_color.mp4
      vidcolor extract episode.mp4 -o frames/
    """
    from vidcolor.console import quiet_ffmpeg

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
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder for the frames and manifest.jsonl.",
)
@options(ExtractStage)
@click.option("--overwrite", is_flag=True, help="Replace an earlier extraction in the folder.")
@click.option("--resume", is_flag=True, help="Continue an interrupted extraction.")
@user_errors
def extract(video: Path, out_dir: Path, overwrite: bool, resume: bool, **_: object) -> None:
    """Write the frames of VIDEO to a folder as images, with a manifest.jsonl row per frame
    (file, source, frame index, pts, seconds).

    \b
    Examples:
      vidcolor extract episode.mp4 -o frames/
      vidcolor extract episode.mp4 -o frames/ --fps 2 --size 256 --format jpg
      vidcolor extract episode.mp4 -o frames/ --fps 2 --scenes
      vidcolor extract episode.mp4 -o frames/ --resume
    """
    from vidcolor import stages
    from vidcolor.console import ConsoleReport

    if overwrite and resume:
        raise click.UsageError("use --overwrite or --resume, not both")
    stage = built(ExtractStage, click.get_current_context().params)
    stages.extract(video, out_dir, stage, ConsoleReport(), overwrite, resume)


@main.command()
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--min-scene-len",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Fewest frames between two cuts.",
)
@user_errors
def scenes(video: Path, as_json: bool, min_scene_len: int) -> None:
    """List the shots of VIDEO: cuts and fades, with frame numbers and timecodes.

    \b
    Example:
      vidcolor scenes episode.mp4 --json
    """
    from dataclasses import asdict

    from vidcolor.data.scenes import detect_scenes

    found = detect_scenes(video, min_scene_len)
    if as_json:
        click.echo(json.dumps([asdict(s) for s in found], indent=2))
        return

    def tc(seconds: float) -> str:
        m, s = divmod(seconds, 60)
        return f"{int(m // 60):02d}:{int(m % 60):02d}:{s:06.3f}"

    click.echo(f"{'scene':>5}  {'start':>12}  {'end':>12}  {'frames':>13}")
    for s in found:
        click.echo(
            f"{s.index:>5}  {tc(s.start_time)}  {tc(s.end_time)}  "
            f"{s.start_frame:>6}-{s.end_frame:<6}"
        )


@main.command()
@click.argument("video", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "folder",
    required=True,
    type=click.Path(path_type=Path),
    help="A new or empty folder for the frames to paint.",
)
@user_errors
def keys(video: Path, folder: Path) -> None:
    """Write the frames of VIDEO worth painting into a folder, for render --keyframes.

    One frame per shot, the one most like the rest of it, and more where the shot moves far
    from it. Paint them in any image editor, keep their names, then render with them.

    \b
    Example:
      vidcolor keys episode.mp4 -o keys/
      vidcolor render episode.mp4 episode_color.mp4 --keyframes keys/
    """
    from vidcolor import stages
    from vidcolor.console import ConsoleReport

    stages.pick_keys(video, folder, ConsoleReport())


@main.command()
@click.argument("data", required=False, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "run",
    type=click.Path(path_type=Path),
    help="Run folder for checkpoints, samples and metrics.",
)
@click.option(
    "--resume",
    "resume",
    type=click.Path(path_type=Path),
    help="Continue the run in this folder from its last.pt.",
)
@options(TrainStage)
@click.pass_context
@user_errors
def train(
    ctx: click.Context,
    data: Path | None,
    run: Path | None,
    resume: Path | None,
    epochs: int,
    **_: object,
) -> None:
    """Train a colorizer on DATA (a folder of colour images, searched recursively) into RUN.

    \b
    Examples:
      vidcolor train frames/ -o runs/cartoon --pretrain-epochs 2 --epochs 20
      vidcolor train --resume runs/cartoon
      vidcolor train frames/ -o runs/tuned --init default --epochs 5
      torchrun --nproc_per_node 4 -m cli train frames/ -o runs/cartoon
    """
    from click.core import ParameterSource

    from vidcolor import stages
    from vidcolor.console import ConsoleReport

    if (resume is None) == (data is None):
        raise click.UsageError("give DATA -o RUN for a new run, or --resume RUN")
    if data is not None and run is None:
        raise click.UsageError("-o RUN is required with DATA")
    given = {k for k in ctx.params if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    if resume is not None and given - {"resume", "epochs", "device", "workers"}:
        names = ", ".join(f"--{k.replace('_', '-')}" for k in sorted(given - {"resume"}))
        raise click.UsageError(
            f"--resume continues with the run's own settings; only --epochs, "
            f"--device and --workers may change (got {names})"
        )
    stage = built(TrainStage, {**ctx.params, "data": str(data.resolve()) if data else ""})
    stages.train(
        resume or run,
        stage,
        ConsoleReport(),
        resume=resume is not None,
        epochs=epochs if "epochs" in given else None,
    )


@main.command()
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.argument("dst", metavar="OUT", type=click.Path(path_type=Path))
@options(RenderOptions)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@user_errors
def render(src: Path, dst: Path, overwrite: bool, **_: object) -> None:
    """Colorize IN (a video, an image, or a folder of images) into OUT.

    The output keeps the input's luma, frame count, timestamps, rotation and audio.

    \b
    Examples:
      vidcolor render episode.mp4 episode_color.mp4
      vidcolor render episode.mp4 check.mp4 --preview sbs --preview-frames 8
      vidcolor render photo.jpg photo_color.png
      vidcolor render frames/ colour_frames/ --model runs/cartoon/model.pt
    """
    from vidcolor import stages
    from vidcolor.console import ConsoleReport

    if src.exists() and dst.exists() and src.resolve() == dst.resolve():
        raise click.UsageError("IN and OUT are the same file")
    options = built(RenderOptions, click.get_current_context().params)
    stages.render(src, dst, options, ConsoleReport(), overwrite)


@main.command("eval")
@click.argument("truth", type=click.Path(path_type=Path))
@click.argument("output", required=False, type=click.Path(path_type=Path))
@click.option(
    "--model",
    type=click.Path(path_type=Path),
    help="With a dataset: the model that colorizes its split.",
)
@click.option("--split", default="test", show_default=True, help="With a dataset: which split.")
@click.option("--device", default="auto", show_default=True, help=DEVICES)
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@click.option(
    "--plot", type=click.Path(path_type=Path), help="Write the per-frame curves to this PNG."
)
@click.option("--overwrite", is_flag=True, help="Replace the --plot file if it exists.")
@user_errors
def evaluate(
    truth: Path,
    output: Path | None,
    model: Path | None,
    split: str,
    device: str,
    as_json: bool,
    plot: Path | None,
    overwrite: bool,
) -> None:
    """Score OUTPUT (a colorized video or image folder) against TRUTH, its colour original:
    PSNR, SSIM, colourfulness, warping error and colour distribution consistency, overall and
    per scene. With TRUTH a built dataset and no OUTPUT, score --model on its --split.

    \b
    Examples:
      vidcolor eval episode.mp4 episode_color.mp4 --plot curves.png
      vidcolor eval colour_frames/ colorized_frames/ --json
      vidcolor eval data/ --model runs/cartoon/model.pt --split test
    """
    from vidcolor import stages
    from vidcolor.console import ConsoleReport, format_scores

    if output is None and not (truth / "manifest.json").is_file():
        raise click.UsageError("give TRUTH OUTPUT, or a built dataset with --model")
    ctx = click.get_current_context()
    given = [
        f"--{k}"
        for k in ("model", "split")
        if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT
    ]
    if output is not None and given:
        raise click.UsageError(
            f"{' and '.join(given)}: for a dataset, without OUTPUT (OUTPUT is already colorized)"
        )
    result = stages.evaluate(truth, output, model, split, device, plot, ConsoleReport(), overwrite)
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    click.echo(format_scores(result))
    if plot is not None:
        click.echo(f"per-frame curves: {plot}")


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
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Dataset folder (shards + manifest.json).",
)
@options(BuildOptions)
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset folder.")
@recipe_option("dataset")
@user_errors
def dataset_build(
    videos: tuple[Path, ...], out: Path, overwrite: bool, recipe: Any, **_: object
) -> None:
    """Build a training set from VIDEOS, scene by scene (train 80% / val 10% / test 10%).

    An interrupted build resumes from the next video when run again with the same videos and
    options. With --recipe, VIDEOS default to the recipe's inputs.

    \b
    Example:
      vidcolor dataset build ep01.mp4 ep02.mp4 -o data/ --preset spongebob --split-by episode
      vidcolor dataset build --recipe pipelines/sc2replay.toml -o data/
    """
    from vidcolor import stages
    from vidcolor.console import ConsoleReport

    if not videos and recipe is None:
        raise click.UsageError("give VIDEOS, or a --recipe with inputs")
    options = built(BuildOptions, click.get_current_context().params)
    stages.build(list(videos) or recipe.inputs(), out, options, ConsoleReport(), overwrite)


@dataset.command("info")
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--sheet",
    type=click.Path(path_type=Path),
    help="Contact sheet PNG, one frame per scene (default DATA/scenes.png).",
)
@user_errors
def dataset_info(data: Path, sheet: Path | None) -> None:
    """Counts per split, scene and source, and a contact sheet with one frame per scene.

    \b
    Example:
      vidcolor dataset info data/
    """
    from vidcolor.data.dataset_build import dataset_summary

    summary = dataset_summary(data, sheet or data / "scenes.png")
    for line in summary:
        click.echo(line)


# --- pipelines: the stages above, chained by a recipe ----------------------------------------


def plan_pipeline(path: Path, assignments: tuple[str, ...]) -> Any:
    """The recipe at ``path`` checked whole, each stage as its command checks its options."""
    from vidcolor.pipeline.check import plan_pipeline as plan

    return plan(path, assignments)


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
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value, e.g. train.epochs=50 (repeatable).",
)
@user_errors
def pipeline_status(recipe_path: Path, assignments: tuple[str, ...]) -> None:
    """Show which stages of RECIPE are done, stale, interrupted, failed or pending."""
    from vidcolor.pipeline import Ledger, stage_keys

    plan = plan_pipeline(recipe_path, assignments)
    ledger = Ledger(plan.layout.ledger)
    keys = stage_keys(plan, ledger)
    click.echo(f"{recipe_path}: work folder {plan.layout.root}, {len(plan.inputs)} input(s)")
    for name in plan.stages:
        state = ledger.state(name, keys[name])
        click.echo(f"  {name:8} {state.state:12} {state.why}")


@pipeline.command("run")
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value, e.g. train.epochs=50 (repeatable).",
)
@user_errors
def pipeline_run(recipe_path: Path, assignments: tuple[str, ...]) -> None:
    """Run the stages of RECIPE in order; a stage whose inputs, options and outputs are
    unchanged is skipped, an interrupted one is resumed or redone.

    Paths in the recipe are relative to its folder; paths given with --set to the current
    folder. Under torchrun, training is data-parallel and the episodes to render are shared out
    across the processes.
    """
    from datetime import timedelta

    from vidcolor.console import ConsoleReport
    from vidcolor.pipeline import run_pipeline
    from vidcolor.reporter import advise
    from vidcolor.runtime import setup_distributed

    plan = plan_pipeline(recipe_path, assignments)
    device = plan.stages["train"].device if "train" in plan.stages else "auto"
    # A long timeout: the other ranks wait while rank 0 alone builds the dataset.
    with setup_distributed(device, timeout=timedelta(hours=72)) as dist_info:
        try:
            run_pipeline(plan, dist_info, ConsoleReport())
        except KeyboardInterrupt as e:  # rank 0 speaks for the run
            advise(e, "interrupted; run the pipeline again to resume" if dist_info.main else "")
            raise


if __name__ == "__main__":
    main()
