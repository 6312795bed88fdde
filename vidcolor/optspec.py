"""Options as data. Each options dataclass field that a user may set carries an ``Option`` in
its metadata: its flag, help, bounds and choices. cli.py builds its click options from them;
recipes and checkpoint configs are checked against them here, in the library, without click,
so one bound lives in one place. Light: no torch, no FFmpeg (`vidcolor --help` stays quick)."""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Any


@dataclass(frozen=True)
class Option:
    """How a field is set from outside. ``flag``: the long option without its dashes, also the
    recipe's key (default: the field's name with dashes). ``off``: a boolean's negative flag
    (``no-temporal``); without it a boolean is a plain switch. ``lo_open``: the lower bound
    itself is refused."""

    help: str
    flag: str = ""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    off: str | None = None
    show_default: bool = True


def opt(default: Any, help: str, **option: Any) -> Any:
    """A dataclass field settable from the command line and recipes."""
    return field(default=default, metadata={"option": Option(help, **option)})


@dataclass(frozen=True)
class Spec:
    """One settable field of a stage's options: ``path`` from the stage's dataclass down to it
    (nested configs), its type (``kind``: bool, int, float, str or Path, without its
    ``| None``), its ``Option`` and its default."""

    path: tuple[str, ...]
    kind: type
    option: Option
    default: Any

    @property
    def name(self) -> str:
        return self.path[-1]


def _hint(hint: Any) -> tuple[Any, bool]:
    """A type hint without its ``| None``, and whether it had one."""
    if isinstance(hint, UnionType) and NoneType in hint.__args__:
        (inner,) = [a for a in hint.__args__ if a is not NoneType]
        return inner, True
    return hint, False


def _walk(cls: type, path: tuple[str, ...]) -> Iterator[Spec]:
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        kind, _ = _hint(hints[f.name])
        if is_dataclass(kind):
            yield from _walk(kind, (*path, f.name))
        elif "option" in f.metadata:
            yield Spec((*path, f.name), kind, f.metadata["option"], f.default)


def specs(cls: type) -> dict[str, Spec]:
    """The settable fields of ``cls`` and the configs nested in it, by flag, in field order."""
    out = {}
    for spec in _walk(cls, ()):
        out[spec.option.flag or spec.name.replace("_", "-")] = spec
    return out


def build(cls: type, values: dict[str, Any]) -> Any:
    """``cls`` with the fields named in ``values`` (field names, at any depth of nesting; the
    fields of nested configs are built alike), the others at their defaults."""
    hints = typing.get_type_hints(cls)
    given = {}
    for f in fields(cls):
        kind, _ = _hint(hints[f.name])
        if is_dataclass(kind):
            given[f.name] = build(kind, values)
        elif f.name in values:
            given[f.name] = values[f.name]
    return cls(**given)


# -- checking a value, as the command line would ---------------------------------------------


def _num(x: float) -> str:
    if isinstance(x, int):
        return str(x)
    return str(int(x)) if x.is_integer() else f"{x:g}"


def bounds(o: Option) -> str:
    """The bounds as click writes a range: 'x>=1', '1<=x<=100', 'x>0'."""
    low = "" if o.lo is None else f"{_num(o.lo)}{'<' if o.lo_open else '<='}"
    high = "" if o.hi is None else f"<={_num(o.hi)}"
    if low and not high:
        return f"x{'>' if o.lo_open else '>='}{_num(o.lo)}"
    return f"{low}x{high}"


def within(o: Option, value: Any) -> bool:
    """Whether ``value`` meets the option's bounds and choices."""
    if o.choices:
        return value in o.choices
    if o.lo is not None and (value <= o.lo if o.lo_open else value < o.lo):
        return False
    return o.hi is None or value <= o.hi


def _number(kind: type, value: Any) -> Any:
    """``value`` as an int or a float, from a number or its text; a ValueError with why not."""
    name = "integer" if kind is int else "float"
    if isinstance(value, str):
        try:
            value = kind(value.strip())
        except (ValueError, OverflowError):
            raise ValueError(f"{value!r} is not a valid {name}") from None
    if isinstance(value, bool):
        raise ValueError(f"expected {'an integer' if kind is int else 'a number'}, not true/false")
    if not isinstance(value, int | float):
        raise ValueError(f"not a valid {name}: {value!r}")
    if kind is int and isinstance(value, float):  # 2.9 is not 2
        raise ValueError("expected a whole number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    try:
        return kind(value)
    except OverflowError:  # an int too large for a float
        raise ValueError(f"{value} is too large") from None


def checked(spec: Spec, value: Any) -> Any:
    """A value from a file (TOML, or ``--set``) checked as the command line checks it, and
    converted as it converts it; a ValueError saying what is wrong, without where."""
    o, kind = spec.option, spec.kind
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value
    if kind in (int, float):
        value = _number(kind, value)
    elif not isinstance(value, str):  # text and paths: str() of anything would pass
        raise ValueError(f"expected text in quotes, got {value!r}")
    if not within(o, value):
        if o.choices:
            raise ValueError(f"{value!r} is not one of {', '.join(map(repr, o.choices))}.")
        raise ValueError(f"{_num(value)} is not in the range {bounds(o)}.")
    return Path(value) if kind is Path else value


def limits(*classes: type) -> dict[str, tuple[Callable[[Any], bool], str]]:
    """The bounds and choices of these classes' settable fields, by field name, as schema.py
    checks a config read from a file: (test, what it must be)."""
    out = {}
    for cls in classes:
        for spec in _walk(cls, ()):
            o = spec.option
            if o.choices:
                said = " or ".join(map(repr, o.choices))
            elif o.lo is not None or o.hi is not None:
                said = _said(o)
            else:
                continue
            out[spec.name] = (lambda v, o=o: within(o, v), said)
    return out


def _said(o: Option) -> str:
    """Bounds in words: 'from 4 to 256', 'at least 0', 'above 0'."""
    if o.lo is not None and o.hi is not None and not o.lo_open:
        return f"from {_num(o.lo)} to {_num(o.hi)}"
    low = "" if o.lo is None else f"{'above' if o.lo_open else 'at least'} {_num(o.lo)}"
    high = "" if o.hi is None else f"at most {_num(o.hi)}"
    return " and ".join(w for w in (low, high) if w)
