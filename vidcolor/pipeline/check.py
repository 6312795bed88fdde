"""A recipe checked whole before any work, each stage's options against the same metadata the
command line's options are built from (vidcolor.options), so a bad value gets the message the
command line would give, naming the recipe's line, into the library's ``Plan``."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from vidcolor.bundled import BUNDLED, model_file
from vidcolor.options import BuildOptions, ExtractStage, RenderOptions, TrainStage
from vidcolor.optspec import build, checked, specs

STAGE_OPTIONS: dict[str, type] = {
    "extract": ExtractStage,
    "dataset": BuildOptions,
    "train": TrainStage,
    "render": RenderOptions,
}
# Recipe values that are files, relative to the recipe; of them, the models that may also
# name a bundled model (default, imagenet).
RECIPE_PATHS = {"render": ("model",), "train": ("init", "encoder-weights")}
MODEL_KEYS = ("model", "init")


def stage_values(name: str, recipe: Any, skip: Collection[str] = ()) -> dict[str, Any]:
    """A recipe's ``[name]`` section as stage ``name``'s option values by recipe key, each
    checked as the command line checks it; an unknown key or a bad value names the recipe's
    line. Keys in ``skip`` belong to the pipeline, not the stage."""
    from vidcolor.pipeline.recipe import RecipeError

    known = specs(STAGE_OPTIONS[name])
    values = {}
    for key, value in recipe.section(name).items():
        if key in skip:
            continue
        where = recipe.where(name, key)
        if key not in known:
            raise RecipeError(f"{where}: unknown option (known: {', '.join(sorted(known))})")
        try:
            values[key] = checked(known[key], value)
        except ValueError as e:
            raise RecipeError(f"{where}: {e}") from None
    return values


def stage_options(name: str, values: dict[str, Any]) -> Any:
    """Stage ``name``'s typed options from values by recipe key; a ValueError when they do
    not go together (``--every`` with ``--fps``)."""
    known = specs(STAGE_OPTIONS[name])
    return build(STAGE_OPTIONS[name], {known[k].name: v for k, v in values.items()})


# Options each stage's command takes that the pipeline sets itself (a recipe may not), and keys
# a stage's section may hold besides its command's options.
PIPELINE_SETS = {
    "extract": {"output", "overwrite", "resume"},
    "dataset": {"output", "overwrite"},
    "train": {"output", "resume"},
    "render": {"overwrite"},
}
STAGE_EXTRA = {"render": {"inputs"}}  # [render] inputs: what to colorize (default: the inputs)


def checked_stage(recipe: Any, name: str, present: list[str]) -> tuple[Any, dict[str, Any]]:
    """One stage of a recipe: its typed options, and its values as given (JSON-able), checked
    as the command line checks them and for what its command would find out only once run."""
    import av

    from vidcolor.errors import UserError
    from vidcolor.pipeline.recipe import RecipeError
    from vidcolor.runtime import pick_device

    reserved = set(PIPELINE_SETS[name]) | (
        {"model"} if name == "render" and "train" in present else set()
    )
    for key in recipe.section(name):
        if name == "render" and key in ("keyframes", "adapt", "match"):
            raise RecipeError(
                f"{recipe.where(name, key)}: keyframes belong to one video: use "
                "vidcolor render IN OUT --keyframes KEYS"
            )
        if key in reserved:
            raise RecipeError(f"{recipe.where(name, key)}: set by the pipeline itself")
    values = stage_values(name, recipe, STAGE_EXTRA.get(name, ()))
    for path_key in RECIPE_PATHS.get(name, ()):  # relative to the recipe
        given_path = recipe.section(name).get(path_key)
        if given_path == "":  # train.init "": from scratch, as if not given
            del values[path_key]
        elif given_path is not None and not (path_key in MODEL_KEYS and given_path in BUNDLED):
            path = recipe.base(name, path_key) / given_path
            values[path_key] = path if name == "render" else str(path)
    try:
        options = stage_options(name, values)
        if name in ("train", "render"):
            pick_device(values.get("device", "auto"))
        if name == "render":
            options.encode  # noqa: B018 - checks the preset
            try:  # what the command would find out only once it runs
                av.codec.Codec(options.encode.encoder, "w")
            except (ValueError, av.error.FFmpegError):
                raise UserError(f"unknown video encoder '{options.encode.codec}'") from None
    except (UserError, ValueError) as e:
        raise RecipeError(f"{recipe.where(None, name)}: {e}") from None
    given = {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}
    return options, given


def plan_pipeline(path: Path, assignments: tuple[str, ...] = ()) -> Any:
    """Read and check a recipe whole, before any work: keys, types, globs, stage order; the
    library's pipeline Plan. ``assignments``: ``--set KEY=VALUE`` overrides."""
    from vidcolor.pipeline import STAGES, Plan, WorkLayout, outside_work, render_name
    from vidcolor.pipeline import work_folder_problem as problem_of
    from vidcolor.pipeline.recipe import TOP_LEVEL, RecipeError, load

    recipe = load(path)
    for assignment in assignments:
        recipe.set(assignment)
    for key in recipe.data:  # a --set may name one
        if key not in TOP_LEVEL:
            raise RecipeError(
                f"{recipe.where(None, key)}: unknown key (known: {', '.join(TOP_LEVEL)})"
            )
    if not isinstance(recipe.data.get("work"), str):
        raise RecipeError(
            f'{recipe.where(None, "work")}: a work folder is needed (e.g. work = "work/cartoon")'
        )
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
        raise RecipeError(
            f"{recipe.where(None, 'train')}: the train stage needs a [dataset] or "
            "[extract] stage before it to train on"
        )
    own_render_inputs = "render" in present and "inputs" in recipe.section("render")
    needs_inputs = {"extract", "dataset"} & set(present) or not own_render_inputs
    inputs = outside_work(work, recipe.inputs()) if needs_inputs else []
    if needs_inputs and not inputs:
        raise RecipeError(
            f"{recipe.where(None, 'inputs')}: it matches only files in the work folder"
        )
    render_inputs = inputs
    if own_render_inputs:
        render_inputs = outside_work(work, recipe.globs("render", "inputs"))
    model = stages["render"].model if "render" in present else None
    if model is not None and not model_file(model).is_file():
        raise RecipeError(f"{recipe.where('render', 'model')}: {model}: no such file")
    train = stages["train"].config if "train" in present else None
    if train and train.init and not model_file(train.init).is_file():
        raise RecipeError(f"{recipe.where('train', 'init')}: {train.init}: no such file")
    if train and train.encoder_weights and not Path(train.encoder_weights).is_file():
        where = recipe.where("train", "encoder-weights")
        raise RecipeError(f"{where}: {train.encoder_weights}: no such file")
    for stage, names in (
        ("extract", [f.stem for f in inputs]),
        ("render", [render_name(f) for f in render_inputs]),
    ):
        twice = sorted({n for n in names if names.count(n) > 1})
        if stage in present and twice:
            raise RecipeError(
                f"{path}: two inputs would both make {stage} output "
                f"'{twice[0]}' (same name in two folders)"
            )
    return Plan(path, WorkLayout(work), inputs, render_inputs, stages, given)
