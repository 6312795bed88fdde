"""Running a plan: each stage calls its library function directly, skips what is done, resumes
what was interrupted, and leaves a record of how it ended (done, or failed and why)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from vidcolor.errors import UserError
from vidcolor.ownership import NotOursError, claim, is_inside, remove_tree
from vidcolor.pipeline.ledger import Ledger, StageState, stage_key
from vidcolor.pipeline.plan import Plan, item_key, render_base_key, stage_keys
from vidcolor.reporter import Reporter
from vidcolor.runtime import Dist

Keys = dict[str, str | None] | None  # rank 0's stage keys, taken just before the stage


def run_pipeline(plan: Plan, dist: Dist, report: Reporter | None = None) -> None:
    """Every stage of ``plan`` in order, on every rank of ``dist`` (one process, or a torchrun
    launch: rank 0 runs the one-process stages and keeps the records, all ranks train, and the
    episodes to render are shared out). A stage whose work still holds is skipped."""
    report = report or Reporter()
    say = report.say if dist.main else (lambda line: None)
    ledger = Ledger(plan.layout.ledger)
    if dist.main:
        claim(plan.layout.root, "pipeline", "a pipeline work folder")
    for name in plan.stages:
        keys = stage_keys(plan, ledger) if dist.main else None
        key = dist.share(keys[name] if keys else None)
        state = dist.share(ledger.state(name, key) if dist.main else None)
        if state.state == "done":
            say(f"[{name}] done, skipped ({state.why})")
            continue
        say(f"[{name}] {'running' if state.state == 'pending' else state.why}")
        t0 = time.time()
        if dist.main:
            ledger.start(name, key, plan.given[name])
        try:
            outputs = RUNNERS[name](plan, ledger, keys, state, dist, report)
        except (UserError, OSError) as e:
            if dist.main:  # the ledger says why; a Ctrl-C leaves it 'running': interrupted
                ledger.fail(name, key, plan.given[name], str(e))
            raise
        dist.barrier()
        if dist.main:
            seconds = time.time() - t0
            ledger.finish(name, key, plan.given[name], outputs, seconds)
            say(f"[{name}] done in {seconds:.0f} s")
    if "render" in plan.stages:
        say(f"colour videos in {plan.layout.render()}")


def _extract(
    plan: Plan, ledger: Ledger, keys: Keys, state: StageState, dist: Dist, report: Reporter
) -> list[Path]:
    """Each episode's frames to frames/<episode>/. An episode done under its own key (its file,
    the options) is kept; one interrupted under it resumes; anything else starts over."""
    from vidcolor import stages

    stage, layout = plan.stages["extract"], plan.layout
    outputs = [layout.frames_manifest(v) for v in plan.inputs]
    if not dist.main:
        return outputs
    keep = {v.stem for v in plan.inputs}
    for folder in sorted(layout.frames().iterdir()) if layout.frames().is_dir() else []:
        if folder.name not in keep:  # no longer an input: not trained on; ours alone go
            made = ledger.item_state("extract", folder.name) is not None
            remove_tree(folder, layout.root, "extract", recorded=made)
    base = stage_key(stage="extract", options=plan.key_options("extract"))
    for video, manifest in zip(plan.inputs, outputs, strict=True):
        out, mine = manifest.parent, item_key(base, video)
        _inside_work(out, layout.root)
        item = ledger.item_state("extract", video.stem)
        if item == ("done", mine) and manifest.exists():
            continue
        resume = item == ("running", mine) and (out / "extract.json").exists()
        ledger.item("extract", video.stem, "running", mine)
        stages.extract(
            video, out, stage, report, overwrite=not resume and out.exists(), resume=resume
        )
        ledger.item("extract", video.stem, "done", mine)
    return outputs


def _inside_work(folder: Path, work: Path) -> None:
    """Refuse a stage's output folder that a link takes out of the work folder: the pipeline
    writes and replaces only inside its own folder."""
    if not is_inside(folder, work, follow=True):
        raise NotOursError(
            f"{folder}: links out of the work folder {work}; refused (the pipeline writes only "
            "inside it): remove the link and run again"
        )


def _dataset(
    plan: Plan, ledger: Ledger, keys: Keys, state: StageState, dist: Dist, report: Reporter
) -> list[Path]:
    """The dataset, rebuilt: a stale one goes first (the ledger vouches that it is ours). An
    interrupted build resumes by itself from its finished scans."""
    from vidcolor import stages

    out = plan.layout.dataset
    if dist.main:
        remove_tree(out, plan.layout.root, "dataset", recorded=state.state != "pending")
        stages.build(plan.inputs, out, plan.stages["dataset"], report)
    return [out / "manifest.json"]


def _train(
    plan: Plan, ledger: Ledger, keys: Keys, state: StageState, dist: Dist, report: Reporter
) -> list[Path]:
    """Training on the dataset (or the frames): resumed from its checkpoint when it was
    interrupted under the same key, else started afresh."""
    from vidcolor import stages

    stage, run = plan.stages["train"], plan.layout.train
    mode = None
    if dist.main:
        mode = "resume" if state.resume and (run / "last.pt").exists() else "fresh"
        if mode == "fresh":
            remove_tree(run, plan.layout.root, "train", recorded=state.state != "pending")
    mode = dist.share(mode)
    stage = replace(stage, config=replace(stage.config, data=str(plan.train_data().resolve())))
    stages.train(run, stage, report, resume=mode == "resume", dist=dist)
    return [plan.layout.model]


def _render(
    plan: Plan, ledger: Ledger, keys: Keys, state: StageState, dist: Dist, report: Reporter
) -> list[Path]:
    """Episode i goes to rank i mod world: none twice, none skipped. An episode done under its
    own key (its file, the model, the options) is not rendered again. The model is loaded
    once, for all of a rank's episodes."""
    import torch

    from vidcolor import stages
    from vidcolor.render.colorizer import Colorizer

    layout, options = plan.layout, plan.stages["render"]
    outputs = [layout.render(v) for v in plan.render_inputs]
    base = None
    if dist.main:
        layout.render().mkdir(parents=True, exist_ok=True)
        _inside_work(layout.render(), layout.root)
        base = render_base_key(plan, ledger, (keys or {}).get("train"))
    base = dist.share(base)
    device = options.device
    if dist.world > 1 and device != "cpu" and torch.cuda.is_available():
        device = f"cuda:{dist.local}"  # each rank on its own GPU
    options = replace(options, model=plan.model, device=device)
    colorizer = None
    for i, (video, dst) in enumerate(zip(plan.render_inputs, outputs, strict=True)):
        if i % dist.world != dist.rank:
            continue
        mine = item_key(base, video)
        record = ledger.item_state("render", dst.name)
        if record == ("done", mine) and dst.exists():
            continue
        if record is None and dst.exists():  # replaced only when this pipeline wrote it
            raise NotOursError(f"{dst}: not rendered by this pipeline; move it away and run again")
        colorizer = colorizer or Colorizer.from_options(options)
        ledger.item("render", dst.name, "running", mine)
        stages.render(video, dst, options, report, overwrite=True, colorizer=colorizer)
        ledger.item("render", dst.name, "done", mine)
    return outputs


RUNNERS = {"extract": _extract, "dataset": _dataset, "train": _train, "render": _render}
