"""A checked recipe as typed stages, and the keys that say whether a stage's work still holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidcolor.bundled import model_file
from vidcolor.pipeline.layout import WorkLayout
from vidcolor.pipeline.ledger import Ledger, file_state, stage_key

NOT_IN_KEY = {"device", "workers", "batch-size"}  # where it runs, not what it makes ...
RESULT_BATCH = {"train"}  # ... except that a training batch size changes the result


@dataclass(frozen=True)
class Plan:
    """What a recipe asks for, checked whole before any work: the work folder, the inputs,
    each stage's typed options (``stages``, in order, from vidcolor.options: ExtractStage,
    BuildOptions, TrainStage, RenderOptions), and the options as the recipe gave them
    (``given``: for records and keys)."""

    recipe: Path
    layout: WorkLayout
    inputs: list[Path]
    render_inputs: list[Path]
    stages: dict[str, Any]
    given: dict[str, dict[str, Any]] = field(default_factory=dict)

    def key_options(self, stage: str) -> dict[str, Any]:
        skip = NOT_IN_KEY - ({"batch-size"} if stage in RESULT_BATCH else set())
        return {k: v for k, v in self.given[stage].items() if k not in skip}

    @property
    def model(self) -> Path:
        """The model the render stage uses: the one trained here, [render] model, or the
        bundled one."""
        if "train" in self.stages:
            return self.layout.model
        return model_file(self.stages["render"].model)

    def train_data(self) -> Path:
        return self.layout.dataset if "dataset" in self.stages else self.layout.frames()


def stage_keys(plan: Plan, ledger: Ledger) -> dict[str, str | None]:
    """Each stage's key from what is on disk now; None where an earlier stage must run first.
    A key covers the stage's inputs (name, size, modification time), its options (not where
    it runs), and what it takes from the stage before."""
    keys: dict[str, str | None] = {}
    for name in ("extract", "dataset"):
        if name in plan.stages:
            keys[name] = stage_key(
                stage=name,
                inputs=[file_state(v) for v in plan.inputs],
                options=plan.key_options(name),
            )
    if "train" in plan.stages:
        source = "dataset" if "dataset" in plan.stages else "extract"
        if ledger.state(source, keys[source]).state != "done":
            keys["train"] = None
        else:
            marks = (
                [plan.layout.dataset / "manifest.json"]
                if source == "dataset"
                else [plan.layout.frames_manifest(v) for v in plan.inputs]
            )
            train = plan.stages["train"].config
            start = file_state(model_file(train.init)) if train.init else None  # a fine-tune's
            weights = {}  # an encoder's first weights; a key without them is as it was before
            if train.encoder_weights:
                weights["weights"] = file_state(Path(train.encoder_weights))
            keys["train"] = stage_key(
                stage="train",
                data=[file_state(m) for m in marks],
                options=plan.key_options("train"),
                init=start,
                **weights,
            )
    if "render" in plan.stages:
        base = render_base_key(plan, ledger, keys.get("train"))
        videos = [file_state(v) for v in plan.render_inputs]
        keys["render"] = (
            None if base is None else stage_key(stage="render", base=base, inputs=videos)
        )
    return keys


def render_base_key(plan: Plan, ledger: Ledger, train_key: str | None) -> str | None:
    """What every rendered episode depends on besides itself: the model and the options."""
    if "train" in plan.stages and (
        train_key is None or ledger.state("train", train_key).state != "done"
    ):
        return None
    return stage_key(model=file_state(Path(plan.model)), options=plan.key_options("render"))


def item_key(base: str, video: Path) -> str:
    """The key of one episode's piece of a stage: the stage's settings and the episode."""
    return stage_key(base=base, input=file_state(video))
