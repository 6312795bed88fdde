"""Checking what a file declares before anything is built from it: each value of its type
and within the bounds its name allows, configs field by field. A problem is one ``Bad`` saying
where in the file it sits; the caller adds the file's name."""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields, is_dataclass
from types import NoneType, UnionType
from typing import Any

import torch

from vidcolor.options import TrainConfig
from vidcolor.optspec import limits


class Bad(Exception):
    """One problem with a file's contents, said without the file's name (the caller adds it)."""


Check = Callable[[Any, str], Any]  # (value, where it sits in the file) -> the value; or Bad

# What a file may declare, by field name: a run's settable options within their own bounds
# (vidcolor.options; base_width 256 is 4x pix2pix's 64, size 4096 a 4K frame), and the fields no
# option sets. ``epochs`` may be 0 here: a library run may train on L1 alone, though the command
# line refuses it.
_AT_LEAST_0 = [
    "epochs",
    "decay_epochs",
    "step",
    "epoch",
    "d_warmup",
    "last_epoch",
    "_growth_tracker",
]
_AT_LEAST_1 = ["val_max", "samples", "log_every", "world", "growth_interval"]
LIMITS: dict[str, tuple[Callable[[Any], bool], str]] = {
    **limits(TrainConfig),
    "dropout": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
    "beta1": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
    **dict.fromkeys(_AT_LEAST_0, (lambda v: v >= 0, "at least 0")),
    **dict.fromkeys(_AT_LEAST_1, (lambda v: v >= 1, "at least 1")),
}


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # True is no width


_TYPES: dict[type, tuple[Callable[[Any], bool], str]] = {
    bool: (lambda v: isinstance(v, bool), "true or false"),
    int: (is_int, "an int"),
    float: (lambda v: (is_int(v) or isinstance(v, float)) and math.isfinite(v), "a finite number"),
    str: (lambda v: isinstance(v, str), "a string"),
    dict: (lambda v: isinstance(v, dict), "a dict"),
}


def dims(t: torch.Tensor | torch.Size) -> str:
    """'8x1x4x4 float16' for a tensor, '8x1x4x4' for a shape."""
    if isinstance(t, torch.Size):
        return "x".join(map(str, t)) or "scalar"
    return f"{dims(t.shape)} {str(t.dtype).removeprefix('torch.')}"


def shown(v: Any) -> str:
    """A value as a message shows it: a short literal as itself, a tensor by shape, else by type."""
    short = (is_int(v) and abs(v) < 10**30) or (isinstance(v, str) and len(v) <= 40)
    if short or v is None or isinstance(v, bool | float):
        return repr(v)
    if isinstance(v, torch.Tensor):
        return f"a {dims(v)} tensor"
    name = type(v).__name__
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


# -- values and configs ---------------------------------------------------------------------


def checked_value(v: Any, hint: Any, where: str) -> Any:
    """``v`` checked as type ``hint`` (bool, int, float, str, dict, ``X | None`` or a config
    dataclass) and against LIMITS for its name; returned as the program uses it."""
    optional = isinstance(hint, UnionType) and NoneType in hint.__args__
    if optional:
        if v is None:
            return None
        (hint,) = [a for a in hint.__args__ if a is not NoneType]
    if is_dataclass(hint):
        return _config(hint, v, where)
    test, kind = _TYPES[hint]
    if not test(v):
        raise Bad(f"{where} is {shown(v)}; it must be {kind}{' or None' if optional else ''}")
    test, bounds = LIMITS.get(where.rpartition(".")[2], (None, ""))
    if test is not None and not test(v):
        raise Bad(f"{where} is {shown(v)}; it must be {bounds}")
    return float(v) if hint is float else v


def _config(cls: type, d: Any, where: str) -> Any:
    """A config dataclass from a dict: known fields only, each of its declared type; a missing
    field takes its default where the dataclass has one."""
    if not isinstance(d, dict):
        raise Bad(f"{where} is {shown(d)}; it must be a dict")
    known = {f.name: f for f in fields(cls)}
    unknown = [k for k in d if k not in known]
    if unknown:
        raise Bad(f"{where} has an unknown field {shown(unknown[0])}")
    for name, f in known.items():
        if name not in d and f.default is MISSING and f.default_factory is MISSING:
            raise Bad(f"{where}.{name} is missing")
    hints = typing.get_type_hints(cls)
    return cls(**{k: checked_value(v, hints[k], f"{where}.{k}") for k, v in d.items()})


def is_a(hint: Any) -> Check:
    return lambda v, where: checked_value(v, hint, where)


def has(schema: dict[str, Check]) -> Check:
    return lambda v, where: checked_fields(v, schema, where)


def checked_fields(d: Any, schema: dict[str, Check], where: str = "") -> dict[str, Any]:
    """Each key of ``schema`` in dict ``d``, checked; returns the checked values."""
    if not isinstance(d, dict):
        raise Bad(f"{where} is {shown(d)}; it must be a dict")
    out = {}
    for key, check in schema.items():
        at = f"{where}.{key}" if where else key
        if key not in d:
            raise Bad(f"{at} is missing")
        out[key] = check(d[key], at)
    return out
