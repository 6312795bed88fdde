"""What every `vidcolor` command shares: one-line errors, exit codes, option types, recipe
defaults, and the group that turns a stop signal into one line (cli.py holds the commands)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

# Exit codes: 0 ok, 1 bad input or failed work, 2 wrong usage (click's), 128 + N stopped by
# signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
EXIT_FAILED = 1


class Finite(click.FloatRange):
    """Every float option's type (recipes too): NaN and inf pass click's range checks."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if math.isfinite(number := super().convert(value, param, ctx)):
            return number
        self.fail(f"{value!r} is not a finite number", param, ctx)


SECONDS = Finite(min=0, max=1e7)  # about 115 days of video
DEVICES = "auto, cpu, cuda or cuda:N."


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


def stage_options(command: click.Command, recipe: Any, section: str) -> dict[str, Any]:
    """A recipe's ``[section]`` as ``command``'s parameter values (see ``stage_values``)."""
    from vidcolor.pipeline.check import stage_values

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


class Commands(click.Group):
    """The command group: SIGTERM and SIGHUP stop a command as Ctrl-C does, and a stop that no
    command handles itself ends in one line and 128 + the signal's number, not click's
    'Aborted!' and 1."""

    def invoke(self, ctx: click.Context) -> Any:
        from vidcolor.interrupt import exit_code, signals_interrupt

        try:
            with signals_interrupt():
                return super().invoke(ctx)
        except KeyboardInterrupt as e:  # a stage's advice says how to go on
            advice = getattr(e, "advice", "interrupted; nothing was left half-written")
            if not advice:
                sys.exit(exit_code(e))
            fail(advice, exit_code(e))
