"""Options as data: the command line, recipes and checkpoint configs check each option against
the same metadata (vidcolor.optspec), and mode-dependent defaults are None until resolved."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli import main
from cli_support import click_type
from vidcolor.options import (
    DEFAULT_LR,
    BuildOptions,
    ExtractOptions,
    ExtractStage,
    ModelConfig,
    RenderOptions,
    TrainConfig,
    TrainStage,
)
from vidcolor.optspec import Spec, build, checked, specs
from vidcolor.schema import LIMITS

STAGES = {
    "extract": ExtractStage,
    "dataset build": BuildOptions,
    "train": TrainStage,
    "render": RenderOptions,
}
SPECS = [
    (command, flag, spec) for command, cls in STAGES.items() for flag, spec in specs(cls).items()
]


def outside(spec: Spec) -> object:
    """A value just outside the option's bounds or choices, or None when it has neither."""
    o = spec.option
    if o.choices:
        return "nope"
    if o.lo is not None:
        return o.lo if o.lo_open else o.lo - 1
    if o.hi is not None:
        return o.hi + 1
    return None


def test_every_option_of_every_command_comes_from_the_metadata() -> None:
    for command, cls in STAGES.items():
        group = main if " " not in command else main.commands["dataset"]
        cmd = group.commands[command.split()[-1]]
        flags = {o[2:] for p in cmd.params if isinstance(p, click.Option) for o in p.opts}
        assert set(specs(cls)) <= flags, command
        for flag, spec in specs(cls).items():
            (param,) = [p for p in cmd.params if f"--{flag}" in p.opts]
            assert param.name == spec.name and param.help == spec.option.help
            assert param.default == spec.default


BOUNDED = [s for s in SPECS if outside(s[2]) is not None]


@pytest.mark.parametrize(
    ("command", "flag", "spec"), BOUNDED, ids=[f"{c} --{f}" for c, f, _ in BOUNDED]
)
def test_one_bound_refused_alike_by_command_line_recipe_and_checkpoint(
    command: str, flag: str, spec: Spec
) -> None:
    bad, good = outside(spec), spec.default
    with pytest.raises(click.BadParameter):
        click_type(spec).convert(bad, None, None)
    with pytest.raises(ValueError, match="is not"):
        checked(spec, bad)
    if spec.path[0] == "config" and spec.name != "epochs":  # a library run may have 0 epochs
        test, _ = LIMITS[spec.name]  # a run's stored config: the same bounds
        assert not test(bad)
        assert good is None or test(good)


def test_recipe_values_are_typed_as_the_command_line_types_them() -> None:
    every, fps = specs(ExtractStage)["every"], specs(ExtractStage)["fps"]
    assert checked(every, "3") == 3 and checked(fps, 2) == 2.0
    for value, said in (
        (2.5, "whole number"),
        (True, "not true/false"),
        ("x", "not a valid"),
        (float("inf"), "whole number"),
    ):
        with pytest.raises(ValueError, match=said):
            checked(every, value)
    with pytest.raises(ValueError, match="not a finite number"):
        checked(fps, float("nan"))
    model = specs(RenderOptions)["model"]
    assert checked(model, "m.pt") == Path("m.pt")
    with pytest.raises(ValueError, match="text in quotes"):
        checked(model, 3)


def test_a_number_too_large_for_a_float_is_refused_in_words() -> None:
    huge = 10**400  # TOML reads it as an int; float() of it overflows
    with pytest.raises(ValueError, match="is too large"):
        checked(specs(TrainStage)["lr"], huge)
    with pytest.raises(ValueError, match=r"is not in the range 32<=x<=4096"):
        checked(specs(TrainStage)["size"], huge)
    with pytest.raises(ValueError, match="not a finite number"):
        checked(specs(TrainStage)["lr"], "1e999")  # text, as --set may give it


def test_options_that_do_not_go_together_are_refused_by_the_library_and_the_command() -> None:
    with pytest.raises(ValueError, match="not both"):
        build(ExtractStage, {"fps": 2.0, "every": 3})
    with pytest.raises(ValueError, match="after"):
        ExtractOptions(start=5.0, end=2.0)
    for args in (["--fps", "2", "--every", "3"], ["--start", "5", "--end", "2"]):
        result = CliRunner().invoke(main, ["extract", "in.mp4", "-o", "out", *args])
        assert result.exit_code == 2 and "Usage" in result.output, result.output


def test_mode_dependent_defaults_are_none_until_resolved() -> None:
    asked = build(TrainStage, {"size": 64}).config
    assert asked.lr is None and asked.model == ModelConfig()
    assert ModelConfig().base_width is None  # the library cannot tell a typed 64 from none
    scratch = asked.resolved()
    assert scratch.lr == DEFAULT_LR and scratch.model == ModelConfig(64, 8, "patch", 0.5, "unet")
    tuned = asked.resolved(ModelConfig(32, 6, "global", 0.0), lr=5e-5)
    assert tuned.lr == 5e-5 and tuned.model == ModelConfig(32, 6, "global", 0.0, "unet")
    mine = TrainConfig(lr=1e-3, model=ModelConfig(disc="patch")).resolved(
        ModelConfig(32, 6, "global", 0.5), lr=5e-5
    )
    assert mine.lr == 1e-3 and mine.model == ModelConfig(32, 6, "patch", 0.5, "unet")
