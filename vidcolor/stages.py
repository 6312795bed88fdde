"""The library's API: one function per stage, taking that stage's typed options.

Each runs the checks that need no work first, then the work, telling a ``Reporter`` how it goes
(vidcolor.reporter: the silent one; the command line's draws progress bars). The commands and
the pipeline's runners call these same functions. A stop (Ctrl-C, SIGTERM) leaves a stage as
KeyboardInterrupt carrying ``advice``: one line on how to go on, which the command line prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vidcolor.options import BuildOptions, ExtractStage, RenderOptions, TrainStage
from vidcolor.reporter import Extracted, Reporter, Trained, TrainingRun, advise

if TYPE_CHECKING:  # heavy (torch, FFmpeg): for the signatures; the stages import them when run
    from vidcolor.render.adapt import KeySample
    from vidcolor.render.colorizer import Colorizer
    from vidcolor.render.keyframes import Propagator
    from vidcolor.render.streaming import RenderResult
    from vidcolor.runtime import Dist
    from vidcolor.video import VideoInfo


def extract(
    video: Path,
    out: Path,
    stage: ExtractStage | None = None,
    report: Reporter | None = None,
    overwrite: bool = False,
    resume: bool = False,
) -> Extracted:
    """The frames of ``video`` into ``out`` as image files with a manifest."""
    from vidcolor.data.extract import FrameExtractor
    from vidcolor.video import VideoError

    stage, report = stage or ExtractStage(), report or Reporter()
    with FrameExtractor(
        video, out, stage.options, overwrite=overwrite, resume=resume, workers=stage.workers
    ) as job:
        count = 0
        try:
            with report.progress(f"extract {video.name}", job.expected) as bar:
                for count, _row in enumerate(job, 1):
                    bar.update(count, total=max(count, job.expected))
                bar.update(total=count)
        except KeyboardInterrupt as e:
            kept = len(job.done) + job.written
            advise(e, f"interrupted: {kept} frames in {out}; continue with --resume")
            raise
        except VideoError as e:
            kept = len(job.done) + job.written
            if not kept:  # the extraction took back what it made
                raise
            raise VideoError(f"{e}; {kept} frames kept in {out}") from e
    result = Extracted(out, count, job.written, list(job.reader.notes))
    report.extracted(result)
    return result


def build(
    videos: list[Path],
    out: Path,
    options: BuildOptions | None = None,
    report: Reporter | None = None,
    overwrite: bool = False,
) -> dict:
    """A scene-aware training set from ``videos`` in ``out``; its manifest."""
    from vidcolor.data.dataset_build import build_dataset, frame_total

    options, report = options or BuildOptions(), report or Reporter()
    try:
        with report.progress("dataset build", frame_total(videos) or None) as bar:
            manifest = build_dataset(
                videos, out, options, overwrite, on_note=report.say, on_frames=bar.advance
            )
    except KeyboardInterrupt as e:
        advise(e, "interrupted; run the same command again to resume")
        raise
    report.built(out, manifest, options.avoid_hud)
    return manifest


def train(
    run: Path,
    stage: TrainStage | None = None,
    report: Reporter | None = None,
    *,
    resume: bool = False,
    epochs: int | None = None,
    dist: Dist | None = None,
) -> dict[str, float]:
    """A new run into ``run`` from ``stage.config``, or (``resume``) the run there continued
    with its own settings (``epochs`` may change); ``dist``: a runtime.Dist, else one process
    or this torchrun launch on ``stage.device``. With ``config.init`` the run starts from that
    model (finetune.py), which settles what the config leaves None. The final validation
    scores. A process group it sets up, it also takes down (not left to the process's exit)."""
    from vidcolor.interrupt import ForcedStop
    from vidcolor.runtime import RunError, setup_distributed
    from vidcolor.train.finetune import starting_point
    from vidcolor.train.imagenet import imagenet_start
    from vidcolor.train.runfolder import resume_run, start_run

    stage = stage or TrainStage()
    if dist is None:
        with setup_distributed(stage.device) as dist:
            return train(run, stage, report, resume=resume, epochs=epochs, dist=dist)
    report = report if report and dist.main else Reporter()  # rank 0 speaks for the run
    config, start = stage.config, None
    if config.init and config.encoder_weights and not resume:
        raise RunError("--encoder-weights starts a new model; --init brings its model's weights")
    if config.init and not resume:
        config, *start, said = starting_point(config)
        for line in said:
            report.say(f"note: {line}")
    if not resume:
        config = config.resolved()
        start = imagenet_start(config) or start
    with report.progress("decode DATA", None) as bar:  # once; reused while the files hold

        def decoded(done: int, total: int) -> None:
            bar.update(done, total=total)

        if resume:
            trainer = resume_run(run, dist, stage.workers, epochs, decoded)
        else:
            trainer = start_run(config, run, dist, stage.workers, decoded, start)
    try:  # the run's lock goes with the training, also when the report fails to start
        with trainer.hold, report.training(TrainingRun.of(run, trainer, resume)) as on_step:
            scores = trainer.fit(on_step)
    except KeyboardInterrupt as e:
        if not dist.main:
            advise(e, "")
        elif isinstance(e, ForcedStop):
            advise(e, f"stopped at once; {run / 'last.pt'} holds the last whole checkpoint")
        else:
            advise(
                e,
                f"interrupted at step {trainer.step}; saved {run / 'last.pt'}; "
                f"continue with: vidcolor train --resume {run}",
            )
        raise
    report.trained(Trained(run, trainer.step, scores))
    return scores


@dataclass(frozen=True)
class RenderInput:
    """What ``check_render`` found: a folder's images, or a video's probe (an image: neither)."""

    images: list[Path] | None = None
    video: VideoInfo | None = None


def check_render(
    src: Path, dst: Path, options: RenderOptions, overwrite: bool = False
) -> RenderInput:
    """Everything about IN and OUT that can be known before the model loads, each a one-line
    RenderError."""
    from vidcolor.images import IMAGE_SUFFIXES, read_rgb
    from vidcolor.render.colorizer import RenderError
    from vidcolor.render.streaming import image_files
    from vidcolor.video import probe

    options.encode  # noqa: B018 - a bad preset is refused now, not after the model loads
    if options.keyframes and (src.is_dir() or src.suffix.lower() in IMAGE_SUFFIXES):
        raise RenderError(f"--keyframes {options.keyframes}: for a video, not for images")
    if options.adapt and not options.keyframes:
        raise RenderError("--adapt tunes the model on the keys: give --keyframes too")
    if src.is_dir():
        images = image_files(src)
        if not images:
            raise RenderError(f"{src}: no images to render")
        _check_outputs(dst, images, options, overwrite)
        return RenderInput(images=images)
    _check_outputs(dst, None, options, overwrite)
    if not dst.parent.is_dir():
        state = "not a folder" if dst.parent.exists() else "no such folder"
        raise RenderError(f"{dst.parent}: {state}")
    if src.suffix.lower() in IMAGE_SUFFIXES:
        read_rgb(src)  # missing or unreadable: one line now, not after the model loads
        if dst.suffix.lower() not in IMAGE_SUFFIXES:
            raise RenderError(
                f"{dst}: an image goes to an image file ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        return RenderInput()
    return RenderInput(video=probe(src))  # a bad video fails here


def _check_outputs(
    dst: Path, images: list[Path] | None, options: RenderOptions, overwrite: bool
) -> None:
    """Without ``overwrite``, a RenderError for an output of ``dst`` that exists already (for a
    folder of ``images``: each image's name in ``dst``; else ``dst`` and its contact sheet)."""
    from vidcolor.render.colorizer import RenderError

    if overwrite:
        return
    if images is not None:
        taken = [dst / p.name for p in images if (dst / p.name).exists()]
        if taken:
            raise RenderError(
                f"{taken[0]}: exists ({len(taken)} of the outputs do); use --overwrite"
            )
        return
    sheet = dst.with_name(f"{dst.stem}_preview.png")
    for path in [dst, sheet] if options.preview_frames else [dst]:
        if path.exists():
            raise RenderError(f"{path}: exists; use --overwrite to replace it")


def render(
    src: Path,
    dst: Path,
    options: RenderOptions | None = None,
    report: Reporter | None = None,
    overwrite: bool = False,
    colorizer: Colorizer | None = None,
) -> RenderResult | None:
    """Colorize ``src`` (a video, an image or a folder of images) into ``dst``, with
    ``colorizer`` (a render.colorizer.Colorizer) or the model ``options`` name; a video's
    RenderResult. One render at a time per ``dst`` (locks.BusyError for a second), and without
    ``overwrite`` no file that appears at ``dst`` meanwhile is replaced."""
    from vidcolor.locks import beside, exclusive
    from vidcolor.render.colorizer import Colorizer
    from vidcolor.render.streaming import render_image

    options, report = options or RenderOptions(), report or Reporter()
    found = check_render(src, dst, options, overwrite)
    images, still = found.images, found.video is None
    if still and options.temporal:
        report.say("note: --temporal applies to videos; images are colorized alone")
    options = options.resolved(still)
    if images is not None:
        dst.absolute().parent.mkdir(parents=True, exist_ok=True)  # where its lock sits
    with exclusive(beside(dst), str(dst)):  # refused now, not after the model loads
        _check_outputs(dst, images, options, overwrite)  # as they are now that no render writes
        colorizer = colorizer or Colorizer.from_options(options)
        if images is not None:
            return _render_folder(images, dst, colorizer, report, overwrite)
        if found.video is not None:
            return _render_video(src, dst, found.video, options, report, overwrite, colorizer)
        render_image(src, dst, colorizer, overwrite)
        report.rendered(dst, None, options)
        return None


def _render_video(
    src: Path,
    dst: Path,
    info: VideoInfo,
    options: RenderOptions,
    report: Reporter,
    overwrite: bool,
    colorizer: Colorizer,
) -> RenderResult:
    """``render`` of a video (``info``: its probe), with its keys' first pass when asked; its
    RenderResult."""
    from vidcolor.render.streaming import render_video

    keys = None
    try:
        if options.keyframes:
            keys, colorizer = _keys(src, info, options, colorizer, report)
        with report.progress(f"render {src.name}", info.frame_count) as bar:
            result = render_video(
                src,
                dst,
                colorizer,
                options.encode,
                options.preview,
                options.preview_frames,
                on_frame=bar.update,
                temporal=options.temporal,
                keys=keys,
                replace=overwrite,
            )
            bar.update(result.frames, total=result.frames)
    except KeyboardInterrupt as e:
        advise(e, f"interrupted; {dst} was not written; run the command again")
        raise
    finally:
        if keys is not None:
            keys.close()
    report.rendered(dst, result, options)
    return result


def _keys(
    src: Path, info: VideoInfo, options: RenderOptions, colorizer: Colorizer, report: Reporter
) -> tuple[Propagator, Colorizer]:
    """``render --keyframes``'s first pass (keyframes.carry_keys), then with ``--adapt`` the
    generator tuned on the keys, and the keys' banks to match (vidcolor.render.matching): (the
    carried keys, the colorizer to render with)."""
    from vidcolor.render.adapt import KeySample
    from vidcolor.render.keyframes import carry_keys
    from vidcolor.render.matching import shot_banks
    from vidcolor.video import scaled_size

    colorizer.batch_for(info.width, info.height, options.temporal, src)  # before the keys' pass
    size = scaled_size(info.width, info.height, colorizer.size)
    sample = KeySample(size) if options.adapt else None
    with report.progress(f"keys {src.name}", info.frame_count) as bar:
        keys = carry_keys(
            src,
            options.keyframes,
            info,
            size,
            lambda y: colorizer.gray(y, info.full_range),
            on_frame=bar.update,
            keep=sample.offer if sample else None,
        )
    try:
        if sample is not None:
            colorizer = _adapted(colorizer, sample, options.adapt, report)
        if options.match:  # with the generator the render runs: its features are matched
            keys.banks = shot_banks(colorizer, keys.key_frames())
    except BaseException:
        keys.close()
        raise
    return keys, colorizer


def _adapted(
    colorizer: Colorizer, sample: KeySample, seconds: float, report: Reporter
) -> Colorizer:
    """``colorizer`` tuned on ``sample``'s keys (Colorizer.tuned): a new one, so that a
    colorizer the caller handed in keeps its weights."""
    with report.progress(f"adapt to {len(sample.keys)} keys", round(seconds)) as bar:
        tuned, losses = colorizer.tuned(
            sample.keys, seconds, on_time=lambda t: bar.update(min(round(t), round(seconds)))
        )
    report.say(
        f"adapted to {len(sample.keys)} keys in {len(losses)} steps: L1 "
        f"{losses[0]:.4f} -> {losses[-1]:.4f}"
    )
    return tuned


def _render_folder(
    images: list[Path], dst: Path, colorizer: Colorizer, report: Reporter, overwrite: bool
) -> None:
    """Each image to ``dst``: an unreadable one is named and skipped, the rest are rendered,
    and then a RenderError says how many failed, so that scripts notice. Without
    ``overwrite`` a file that appears at an output's name meanwhile ends the render."""
    from vidcolor.images import ImageError
    from vidcolor.render.colorizer import RenderError
    from vidcolor.render.streaming import render_image

    dst.mkdir(parents=True, exist_ok=True)
    unreadable = []
    with report.progress(f"render {images[0].parent.name}", len(images)) as bar:
        for image in images:
            try:
                render_image(image, dst / image.name, colorizer, overwrite)
            except ImageError as e:  # this image's own fault: the others still go
                unreadable.append(str(e))
            bar.advance()
    for reason in unreadable:
        report.say(f"warning: skipped {reason}")
    report.done(f"{len(images) - len(unreadable)} images in {dst}")
    if unreadable:
        raise RenderError(
            f"{len(unreadable)} of {len(images)} images could not be read (named "
            "above); the rest are in place: render those alone once fixed"
        )


def evaluate(
    truth: Path,
    output: Path | None = None,
    model: Path | None = None,
    split: str = "test",
    device: str = "auto",
    plot: Path | None = None,
    report: Reporter | None = None,
    overwrite: bool = False,
) -> dict:
    """Scores of ``output`` (a colorized video or image folder) against ``truth``, its colour
    original; or, with no ``output``, of ``model`` on a built dataset's ``split``. ``plot``:
    a PNG of the per-frame curves, which replaces a file only with ``overwrite``."""
    from vidcolor import evaluate as ev

    report = report or Reporter()
    if plot is not None and plot.suffix.lower() != ".png":
        raise ev.EvalError(f"--plot {plot}: a .png file")
    if plot is not None and not plot.absolute().parent.is_dir():
        raise ev.EvalError(f"--plot {plot}: no folder {plot.absolute().parent}")
    if plot is not None and os.path.lexists(plot) and not overwrite:
        raise ev.EvalError(f"{plot}: exists; use --overwrite to replace it")
    if output is None:
        scores = ev.Evaluation(temporal=False)
        total, pairs = ev.dataset_pairs(truth, model, split, device)
    else:
        for p in (truth, output):
            if not p.exists():
                raise ev.EvalError(f"{p}: no such file or folder")
        if truth.is_dir() != output.is_dir():
            raise ev.EvalError(f"{truth} and {output}: compare two videos or two image folders")
        if truth.is_dir():
            scores = ev.Evaluation()
            total, frames = ev.folder_pairs(truth, output)
        else:
            rate, total, frames = ev.video_pairs(truth, output)
            scores = ev.Evaluation(frame_rate=rate)
        pairs = ((index, out, orig, None) for index, out, orig in frames)
    with report.progress("eval", total) as bar:
        for index, out, orig, scene in pairs:
            scores.push(index, out, orig, scene)
            bar.advance()
    result = scores.report()
    if plot is not None:
        ev.plot(scores, plot, replace=overwrite)
    return result


def pick_keys(video: Path, folder: Path, report: Reporter | None = None) -> list[Path]:
    """``vidcolor keys``: the frames of ``video`` worth painting (render.key_picker), written into
    ``folder`` (new or empty) as PNGs that ``render --keyframes`` reads back."""
    from vidcolor.render.key_picker import check_folder, pick, write_keys
    from vidcolor.video import probe

    report = report or Reporter()
    total = probe(video).frame_count  # a bad input is one line, before any work
    check_folder(folder)
    try:
        with report.progress(f"shots {video.name}", total) as bar:
            shots = pick(video, on_frame=bar.update)
        frames = [f for shot in shots for f in shot]
        with report.progress(f"keys {video.name}", max(frames) + 1) as bar:
            written = write_keys(video, folder, frames, on_frame=bar.update)
    except KeyboardInterrupt as e:
        advise(e, "interrupted; no key was kept; run the command again")
        raise
    report.done(
        f"{len(written)} frames to paint ({len(shots)} shots) in {folder}; paint them, then: "
        f"vidcolor render {video} OUT --keyframes {folder}"
    )
    return written
