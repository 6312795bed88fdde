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

from vidcolor.optspec import Spec, build, specs

# Exit codes: 0 ok, 1 bad input or failed work, 2 wrong usage (click's), 128 + N stopped by
# signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
EXIT_FAILED = 1


class Finite(click.FloatRange):
    """Every float option's type: NaN and inf pass click's range checks (recipes are checked
    alike by vidcolor.optspec)."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if math.isfinite(number := super().convert(value, param, ctx)):
            return number
        self.fail(f"{value!r} is not a finite number", param, ctx)


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


def click_type(spec: Spec) -> Any:
    """The click type that checks an option as its metadata says (vidcolor.optspec)."""
    o = spec.option
    if o.choices:
        return click.Choice(list(o.choices))
    if spec.kind is int:
        return click.IntRange(o.lo, o.hi)
    if spec.kind is float:
        return Finite(o.lo, o.hi, min_open=o.lo_open)
    return click.Path(path_type=Path) if spec.kind is Path else click.STRING


def options(cls: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The settable fields of options class ``cls`` (and of the configs nested in it) as click
    options, in field order, each named as its field (so ``optspec.build`` reads them back)."""

    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for flag, spec in reversed(specs(cls).items()):
            o = spec.option
            if spec.kind is bool:
                names = f"--{flag}/--{o.off}" if o.off else f"--{flag}"
                made = click.option(
                    names,
                    spec.name,
                    is_flag=True,
                    default=spec.default,
                    show_default=bool(o.off) and spec.default is not None,
                    help=o.help,
                )
            else:
                shown = o.show_default and spec.default is not None
                made = click.option(
                    f"--{flag}",
                    spec.name,
                    type=click_type(spec),
                    default=spec.default,
                    show_default=shown,
                    help=o.help,
                    metavar=o.metavar,
                )
            fn = made(fn)
        return fn

    return apply


def built(cls: type, params: dict[str, Any]) -> Any:
    """Options class ``cls`` from a command's parameters; options that do not go together are
    a usage error, as click's own."""
    try:
        return build(cls, params)
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def recipe_option(section: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--recipe FILE``: defaults for this command's options from the recipe's ``[section]``
    (and ``output``, for ``-o``); options given on the command line win."""

    def load(ctx: click.Context, param: click.Parameter, value: Path | None) -> Any:
        if value is None:
            return None
        from vidcolor.errors import UserError
        from vidcolor.pipeline.check import STAGE_OPTIONS, stage_values
        from vidcolor.pipeline.recipe import load as load_recipe

        known = specs(STAGE_OPTIONS[section])
        try:
            recipe = load_recipe(value)
            values = stage_values(section, recipe, skip={"output"})
        except UserError as e:
            fail(str(e))
        defaults = {known[k].name: v for k, v in values.items()}
        if (output := recipe.section(section).get("output")) is not None:
            if not isinstance(output, str):
                fail(f"{recipe.where(section, 'output')}: expected text in quotes, got {output!r}")
            defaults["out"] = Path(output)
        ctx.default_map = {**(ctx.default_map or {}), **defaults}
        return recipe

    about = f"TOML recipe: its inputs, and its [{section}] options as defaults."
    return click.option(
        "--recipe", type=click.Path(path_type=Path), is_eager=True, callback=load, help=about
    )


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
