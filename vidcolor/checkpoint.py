"""One-file checkpoints and model bundles: written atomically, read in two guarded steps.

1. ``torch.load(weights_only=True)``: a file carrying code or other objects is refused, never run.
2. A schema check before anything is built from the file: every key there and of its type, the
   config within bounds, every tensor stored in full and of the shape the described networks
   need (built on the ``meta`` device to compare: no memory). A damaged or hostile file is one
   CheckpointError naming it and the problem, never a traceback or a network of tens of GB.
"""

from __future__ import annotations

import math
import pickle
import textwrap
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

import torch
from torch import nn

from vidcolor import __version__
from vidcolor.atomic import atomic_path
from vidcolor.errors import UserError
from vidcolor.models import build_discriminator, build_generator
from vidcolor.options import ModelConfig, TrainConfig

TRAINING_FORMAT = "vidcolor-training-checkpoint"  # G, D, optimizers ...: to resume training
BUNDLE_FORMAT = "vidcolor-model"  # the generator, its config, provenance: to render
MISFIT = "weights do not fit the model it describes"


class CheckpointError(UserError):
    """A file that is not a usable vidcolor checkpoint or model."""


class _Bad(Exception):
    """One problem with a file's contents, said without the file's name (the caller adds it)."""


Check = Callable[[Any, str], Any]  # (value, where it sits in the file) -> the value; or _Bad

# What a file may declare, by field name. The upper bounds sit far above any useful run yet keep
# a file from asking for a huge network: base_width 256 is 4x pix2pix's 64 (at depth 10 a
# 1.3e9-parameter U-Net, 5 GB), size 4096 a 4K frame, batch_size 4096 more than any GPU holds.
_AT_LEAST_0 = ["epochs", "pretrain_epochs", "decay_epochs", "lambda_l1", "step", "epoch",
               "d_warmup", "last_epoch", "_growth_tracker"]  # fmt: skip
_AT_LEAST_1 = ["val_max", "samples", "checkpoint_every", "log_every", "world", "growth_interval"]
LIMITS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "base_width": (lambda v: 4 <= v <= 256, "from 4 to 256"),
    "depth": (lambda v: 2 <= v <= 10, "from 2 to 10"),
    "disc": (lambda v: v in ("patch", "global"), "'patch' or 'global'"),
    "dropout": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
    "size": (lambda v: 32 <= v <= 4096, "from 32 to 4096"),  # 32: what the discriminators need
    "batch_size": (lambda v: 1 <= v <= 4096, "from 1 to 4096"),
    "lr": (lambda v: v > 0, "above 0"),
    "checkpoint_minutes": (lambda v: v > 0, "above 0"),
    "beta1": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
    "val_fraction": (lambda v: 0 <= v <= 0.9, "from 0 to 0.9"),
    "seed": (lambda v: 0 <= v < 2**32, "from 0 to 2**32 - 1"),  # numpy takes no negative seed
    **dict.fromkeys(_AT_LEAST_0, (lambda v: v >= 0, "at least 0")),
    **dict.fromkeys(_AT_LEAST_1, (lambda v: v >= 1, "at least 1")),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # True is no width


_TYPES: dict[type, tuple[Callable[[Any], bool], str]] = {
    bool: (lambda v: isinstance(v, bool), "true or false"),
    int: (_is_int, "an int"),
    float: (lambda v: (_is_int(v) or isinstance(v, float)) and math.isfinite(v), "a finite number"),
    str: (lambda v: isinstance(v, str), "a string"),
    dict: (lambda v: isinstance(v, dict), "a dict"),
}


def _dims(t: torch.Tensor | torch.Size) -> str:
    """'8x1x4x4 float16' for a tensor, '8x1x4x4' for a shape."""
    if isinstance(t, torch.Size):
        return "x".join(map(str, t)) or "scalar"
    return f"{_dims(t.shape)} {str(t.dtype).removeprefix('torch.')}"


def _shown(v: Any) -> str:
    """A value as a message shows it: a short literal as itself, a tensor by shape, else by type."""
    short = (_is_int(v) and abs(v) < 10**30) or (isinstance(v, str) and len(v) <= 40)
    if short or v is None or isinstance(v, bool | float):
        return repr(v)
    if isinstance(v, torch.Tensor):
        return f"a {_dims(v)} tensor"
    name = type(v).__name__
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


# -- values and configs ---------------------------------------------------------------------


def _value(v: Any, hint: Any, where: str) -> Any:
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
        raise _Bad(f"{where} is {_shown(v)}; it must be {kind}{' or None' if optional else ''}")
    test, bounds = LIMITS.get(where.rpartition(".")[2], (None, ""))
    if test is not None and not test(v):
        raise _Bad(f"{where} is {_shown(v)}; it must be {bounds}")
    return float(v) if hint is float else v


def _config(cls: type, d: Any, where: str) -> Any:
    """A config dataclass from a dict: known fields only, each of its declared type; a missing
    field takes its default where the dataclass has one."""
    if not isinstance(d, dict):
        raise _Bad(f"{where} is {_shown(d)}; it must be a dict")
    known = {f.name: f for f in fields(cls)}
    unknown = [k for k in d if k not in known]
    if unknown:
        raise _Bad(f"{where} has an unknown field {_shown(unknown[0])}")
    for name, f in known.items():
        if name not in d and f.default is MISSING and f.default_factory is MISSING:
            raise _Bad(f"{where}.{name} is missing")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _value(v, hints[k], f"{where}.{k}") for k, v in d.items()})


def _is(hint: Any) -> Check:
    return lambda v, where: _value(v, hint, where)


def _has(schema: dict[str, Check]) -> Check:
    return lambda v, where: _fields(v, schema, where)


def _fields(d: Any, schema: dict[str, Check], where: str = "") -> dict[str, Any]:
    """Each key of ``schema`` in dict ``d``, checked; returns the checked values."""
    if not isinstance(d, dict):
        raise _Bad(f"{where} is {_shown(d)}; it must be a dict")
    out = {}
    for key, check in schema.items():
        at = f"{where}.{key}" if where else key
        if key not in d:
            raise _Bad(f"{at} is missing")
        out[key] = check(d[key], at)
    return out


# -- tensors --------------------------------------------------------------------------------


def _plain(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.layout == torch.strided


def _held(tensors: list[torch.Tensor]) -> bool:
    """Whether the file stores every element: a stride-0 or shared view would let a tiny file
    stand in for a huge tensor (and make a huge network pass the shape check)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values()) >= sum(t.numel() * t.element_size() for t in tensors)


def _weights(v: Any, where: str) -> dict[str, torch.Tensor]:
    """A state dict: names to plain CPU tensors, every element stored in the file."""
    if not isinstance(v, dict):
        raise _Bad(f"{where} is {_shown(v)}; it must be a dict of tensors")
    for name, t in v.items():
        if not (isinstance(name, str) and _plain(t)):
            raise _Bad(f"{where} holds {_shown(name)}: {_shown(t)}; it must hold named tensors")
    if not _held(list(v.values())):
        raise _Bad(f"{where} declares more elements than the file stores")
    return v


def _rng(v: Any, where: str, sizes: range) -> torch.Tensor:
    """A random generator's state: a byte tensor of a size in ``sizes``."""
    if not (_plain(v) and v.dtype == torch.uint8 and v.dim() == 1 and v.numel() in sizes
            and _held([v])):  # fmt: skip
        want = f"{sizes.start} to {sizes.stop - 1}" if len(sizes) > 1 else str(sizes.start)
        raise _Bad(f"{where} is {_shown(v)}; it must be a generator state ({want} bytes)")
    return v


def _fits(weights: dict[str, torch.Tensor], model: nn.Module, where: str) -> None:
    """``weights`` has exactly the names, shapes and kinds (floating or integer) of ``model``'s
    state dict."""
    want = model.state_dict()
    missing, extra = [k for k in want if k not in weights], [k for k in weights if k not in want]
    if missing or extra:
        lacks, name = ("the file", missing[0]) if missing else ("the model", extra[0])
        raise _Bad(f"{MISFIT} ({lacks} has no {where}.{name})")
    for name, ref in want.items():
        t = weights[name]
        if t.shape != ref.shape or t.is_floating_point() != ref.is_floating_point():
            raise _Bad(f"{MISFIT} ({where}.{name} is {_dims(t)}, the model's {_dims(ref)})")


def _fits_optimizer(state: dict, model: nn.Module, where: str) -> None:
    """Adam's moments for ``model``: keyed by parameter index, each the parameter's shape (a
    misfit would load without complaint and fail at the next step)."""
    shapes = [p.shape for p in model.parameters()]
    for i, moments in state.items():
        if not (_is_int(i) and 0 <= i < len(shapes)):
            raise _Bad(f"{where} has {_shown(i)}, not one of the model's {len(shapes)} parameters")
        for name, t in _weights(moments, f"{where}[{i}]").items():
            if not t.is_floating_point() or (t.dim() and t.shape != shapes[i]):  # step: a scalar
                want = _dims(shapes[i])
                raise _Bad(f"{where}[{i}].{name} is {_dims(t)}; parameter {i} is {want}")


# -- the two kinds of file ------------------------------------------------------------------


def _train_config(v: Any, where: str) -> TrainConfig:
    return _value(v, TrainConfig, where)


def check_train_config(record: Any, path: Path) -> TrainConfig:
    """``record`` (read from ``path``) as a TrainConfig, checked as a checkpoint's config is:
    known fields, each of its type and within bounds; else a CheckpointError naming ``path``."""
    try:
        return _train_config(record, "config")
    except _Bad as e:
        raise CheckpointError(f"{path}: {e}") from None


def _score(v: Any, where: str) -> float:
    if not (_is_int(v) or isinstance(v, float)) or math.isnan(v):  # inf: nothing validated yet
        raise _Bad(f"{where} is {_shown(v)}; it must be a number")
    return float(v)


def _one_lr(v: Any, where: str) -> list[float]:
    if not (isinstance(v, list) and len(v) == 1):  # one parameter group per optimizer
        raise _Bad(f"{where} is {_shown(v)}; it must be a list of one learning rate")
    return [_value(v[0], float, f"{where}[0]")]


def _no_lambda_state(v: Any, where: str) -> list[None]:
    if not (isinstance(v, list) and len(v) == 1 and v[0] is None):  # a plain function's state
        raise _Bad(f"{where} is {_shown(v)}; it must be [None]")
    return v


_SCALER: dict[str, Check] = {"scale": _is(float), "growth_factor": _is(float),
                             "backoff_factor": _is(float), "growth_interval": _is(int),
                             "_growth_tracker": _is(int)}  # fmt: skip


def _scaler(v: Any, where: str) -> dict:
    """GradScaler's state: empty unless the run trained in float16."""
    return v if isinstance(v, dict) and not v else _fields(v, _SCALER, where)


_SCHEDULER: dict[str, Check] = {"last_epoch": _is(int), "base_lrs": _one_lr,
                                "lr_lambdas": _no_lambda_state}  # fmt: skip

# A training checkpoint: what Trainer.state() writes. Config first: its problems say the most.
CHECKPOINT_SCHEMA: dict[str, Check] = {
    "config": _train_config, "step": _is(int), "epoch": _is(int), "best_val_L1": _score,
    "G": _weights, "D": _weights,
    "opt_G": _has({"state": _is(dict)}), "opt_D": _has({"state": _is(dict)}),  # moments: below
    "sched_G": _has(_SCHEDULER), "sched_D": _has(_SCHEDULER), "scaler": _scaler,
    "rng": lambda v, where: _rng(v, where, range(n := torch.get_rng_state().numel(), n + 1)),
    "cuda_rng": lambda v, where: _rng(v, where, range(0, 4097)),  # CPU runs: empty
    "data": _is(str), "world": _is(int), "vidcolor": _is(str),
}  # fmt: skip


def _described_model(v: Any, where: str) -> ModelConfig:
    try:
        return _value(v, ModelConfig, where)
    except _Bad as e:  # no network the weights could fit
        raise _Bad(f"{MISFIT} ({e})") from None


# A model bundle: what save_bundle writes. The model first: the rest means nothing without it.
BUNDLE_SCHEMA: dict[str, Check] = {
    "model": _described_model, "generator": _weights, "size": _is(int),
    "provenance": _is(dict), "vidcolor": _is(str),
}  # fmt: skip


def _on_meta(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """The generator and discriminator ``cfg`` describes, shapes only: nothing is allocated."""
    with torch.device("meta"):
        return build_generator(cfg, init=False), build_discriminator(cfg, init=False)


def _check_checkpoint(state: dict) -> TrainConfig:
    """The TrainConfig of a training checkpoint whose every part is checked; ``state["config"]``
    becomes its full dict (defaults filled in, numbers of their field's type)."""
    cfg = _fields(state, CHECKPOINT_SCHEMA)["config"]
    state["config"] = cfg.to_dict()
    G, D = _on_meta(cfg.model)
    for key, model in (("G", G), ("D", D)):
        _fits(state[key], model, key)
        _fits_optimizer(state[f"opt_{key}"]["state"], model, f"opt_{key}.state")
    return cfg


def _check_bundle(state: dict) -> ModelConfig:
    """The ModelConfig of a model bundle whose every part is checked; ``state["model"]`` becomes
    its full dict."""
    cfg = _fields(state, BUNDLE_SCHEMA)["model"]
    state["model"] = cfg.to_dict()
    _fits(state["generator"], _on_meta(cfg)[0], "generator")
    return cfg


# -- reading and writing --------------------------------------------------------------------


def _unreadable(path: Path, e: Exception) -> str:
    """Why torch.load refused ``path``, in plain words (never torch's advice to load unsafely)."""
    said = str(e)
    if isinstance(e, pickle.UnpicklingError) and "Weights only load failed" in said:
        if "Unsupported operand" not in said:  # else not a valid pickle stream at all
            return ("it holds objects other than tensors and plain data and was refused for "
                    "safety (loading them could run code inside it)")  # fmt: skip
    elif path.stat().st_size == 0:
        return "the file is empty"
    elif isinstance(e, RuntimeError | OSError) and said.strip():  # these say what is wrong
        first = said.strip().split("\n")[0].split(". ")[0]
        return f"it cannot be read ({textwrap.shorten(first, 90, placeholder=' ...')})"
    return "it cannot be read (damaged, or not a file PyTorch wrote)"


def _load(path: Path, what: str) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a foreign file can fail to parse in any of many ways
        raise CheckpointError(f"{path}: not a vidcolor {what}: {_unreadable(path, e)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a vidcolor {what}")
    return state


def _checked(path: Path, check: Callable[[dict], Any], state: dict) -> Any:
    try:
        return check(state)
    except _Bad as e:
        raise CheckpointError(f"{path}: {e}") from None


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write a training ``state`` (tensors, state dicts, numbers, strings) via temp + rename,
    tagged with the format and the vidcolor version."""
    state = {"format": TRAINING_FORMAT, "vidcolor": __version__, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict:
    """A training checkpoint written by ``save_checkpoint``, every part checked (keys, types,
    bounds, shapes) before anything is built from it; its ``config`` is the full config dict."""
    path = Path(path)
    state = _load(path, "checkpoint")
    if state.get("format") != TRAINING_FORMAT:
        raise CheckpointError(f"{path}: not a vidcolor checkpoint (no '{TRAINING_FORMAT}' tag)")
    _checked(path, _check_checkpoint, state)
    return state


def save_bundle(path: str | Path, training_checkpoint: str | Path, about: str = "") -> dict:
    """A shareable model from a training checkpoint: the generator alone (fp16 weights halve
    the file; inference runs in float32 or autocast), its config, and where it came from
    (``about``: a sentence on the data, for people reading the provenance)."""
    s = load_checkpoint(training_checkpoint)
    cfg = s["config"]
    bundle = {
        "format": BUNDLE_FORMAT,
        "vidcolor": __version__,
        "model": cfg["model"],
        "size": cfg["size"],  # the training crop size: render's default working size
        "generator": {k: v.half() if v.is_floating_point() else v for k, v in s["G"].items()},
        "provenance": {
            "data": cfg["data"],
            "step": s["step"],
            "epoch": s["epoch"],
            "best_val_L1": s["best_val_L1"],
            "config": {k: v for k, v in cfg.items() if k != "model"},
            "about": about,
        },
    }
    with atomic_path(path) as tmp:
        torch.save(bundle, tmp)
    return bundle


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """A generator in eval mode (float32, CPU) from a model bundle or a training checkpoint,
    and a dict with its ``model`` config, working ``size`` and ``provenance``. The file is
    checked whole first, so the network built is one its weights fit."""
    path = Path(path)
    state = _load(path, "model")
    if state.get("format") == BUNDLE_FORMAT:
        cfg = _checked(path, _check_bundle, state)
        weights, info = state["generator"], state
    elif state.get("format") == TRAINING_FORMAT:
        train_cfg = _checked(path, _check_checkpoint, state)
        cfg, weights = train_cfg.model, state["G"]
        info = {"model": cfg.to_dict(), "size": train_cfg.size,
                "provenance": {"step": state["step"], "data": train_cfg.data}}  # fmt: skip
    else:
        raise CheckpointError(f"{path}: not a vidcolor model (neither a bundle nor a checkpoint)")
    g = build_generator(cfg)
    g.load_state_dict({k: v.float() for k, v in weights.items()})
    return g.eval(), info


def load_start(path: str | Path) -> tuple[ModelConfig, dict, dict | None]:
    """What a fine-tune starts from (``train --init``), checked whole: the model's config, its
    generator's weights (float32), and its discriminator's when ``path`` is a training
    checkpoint (a bundle has none)."""
    path = Path(path)
    state = _load(path, "model")
    if state.get("format") == BUNDLE_FORMAT:
        cfg = _checked(path, _check_bundle, state)
        return cfg, {k: v.float() for k, v in state["generator"].items()}, None
    if state.get("format") == TRAINING_FORMAT:
        train_cfg = _checked(path, _check_checkpoint, state)
        return train_cfg.model, state["G"], state["D"]
    raise CheckpointError(f"{path}: not a vidcolor model (neither a bundle nor a checkpoint)")
