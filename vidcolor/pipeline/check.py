"""A recipe checked whole before any work, as the command line would check each stage's options
(through the commands' own click parameters, so a bad value gets click's own message, naming the
recipe's line), into the library's ``Plan``."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import click

from vidcolor.options import from_params


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


def checked_stage(recipe: Any, name: str, present: list[str], command: click.Command
                  ) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """One stage of a recipe: its typed options, and its values as given (JSON-able), checked
    as the command line checks them and for what its command would find out only once run."""
    import av

    from vidcolor.errors import UserError
    from vidcolor.pipeline.recipe import RecipeError
    from vidcolor.runtime import pick_device

    reserved = set(PIPELINE_SETS[name]) | ({"model"} if name == "render" and "train" in
                                            present else set())  # fmt: skip
    for key in recipe.section(name):
        if name == "render" and key in ("keyframes", "adapt", "match"):
            raise RecipeError(f"{recipe.where(name, key)}: keyframes belong to one video: use "
                              "vidcolor render IN OUT --keyframes KEYS")  # fmt: skip
        if key in reserved:
            raise RecipeError(f"{recipe.where(name, key)}: set by the pipeline itself")
    values = stage_values(command, recipe, name, STAGE_EXTRA.get(name, ()))
    path_key = {"render": "model", "train": "init"}.get(name)  # relative to the recipe
    given_path = recipe.section(name).get(path_key)
    if given_path == "":  # train.init "": from scratch, as if not given
        values = [v for v in values if v[0] != path_key]
    elif given_path not in (None, "default"):
        values = [(k, p, recipe.base(name, k) / v if k == path_key else v) for k, p, v in values]
    try:
        ctx = command.make_context(name, PLACEHOLDERS[name] + stage_argv(values))
        p = ctx.params
        pick_device(p["device"]) if "device" in p else None
        if name == "extract":
            check_sampling(p["every"], p["fps"], p["start"], p["end"])
        options = from_params(name, p)
        if name == "render":
            options.encode  # noqa: B018 - checks the preset
            try:  # what the command would find out only once it runs
                av.codec.Codec(options.encode.encoder, "w")
            except (ValueError, av.error.FFmpegError):
                raise UserError(f"unknown video encoder '{options.encode.codec}'") from None
    except (UserError, click.ClickException) as e:
        message = e.format_message() if isinstance(e, click.ClickException) else str(e)
        raise RecipeError(f"{recipe.where(None, name)}: {message}") from None
    given = {k: (str(v) if isinstance(v, Path) else v) for k, _, v in values}
    return options, given


def plan_pipeline(path: Path, assignments: tuple[str, ...], commands: dict[str, click.Command]
                  ) -> Any:  # fmt: skip
    """Read and check a recipe whole, before any work: keys, types, globs, stage order; the
    library's pipeline Plan. ``commands``: each stage's click command."""
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
        stages[name], given[name] = checked_stage(recipe, name, present, commands[name])
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
    init = stages["train"].config.init if "train" in present else ""
    if init not in ("", "default") and not Path(init).is_file():
        raise RecipeError(f"{recipe.where('train', 'init')}: {init}: no such file")
    for stage, names in (("extract", [f.stem for f in inputs]),
                         ("render", [render_name(f) for f in render_inputs])):  # fmt: skip
        twice = sorted({n for n in names if names.count(n) > 1})
        if stage in present and twice:
            raise RecipeError(f"{path}: two inputs would both make {stage} output "
                              f"'{twice[0]}' (same name in two folders)")  # fmt: skip
    return Plan(path, WorkLayout(work), inputs, render_inputs, stages, given)
