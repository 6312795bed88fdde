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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidcolor import __version__
from vidcolor.color import Hedge
from vidcolor.errors import UserError
from vidcolor.files import not_regular
from vidcolor.models import build_discriminator, build_generator, generator_groups
from vidcolor.options import MOBILENET_DEPTH, ModelConfig, TrainConfig
from vidcolor.saving import first_line, torch_save
from vidcolor.schema import (
    Bad,
    Check,
    checked_fields,
    checked_value,
    dims,
    has,
    is_a,
    is_int,
    shown,
)

TRAINING_FORMAT = "vidcolor-training-checkpoint"  # G, D, optimizers ...: to resume training
BUNDLE_FORMAT = "vidcolor-model"  # the generator, its config, provenance: to render
MISFIT = "weights do not fit the model it describes"
# A bundle's hedge (color.Hedge): each field's value in bundles made before it, and its bounds.
HEDGE_FIELDS = {"chroma_gain": (1.0, 0.05, 2.0), "chroma_shrink": (0.0, 0.0, 64.0)}


class CheckpointError(UserError):
    """A file that is not a usable vidcolor checkpoint or model."""


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
        raise Bad(f"{where} is {shown(v)}; it must be a dict of tensors")
    for name, t in v.items():
        if not (isinstance(name, str) and _plain(t)):
            raise Bad(f"{where} holds {shown(name)}: {shown(t)}; it must hold named tensors")
    if not _held(list(v.values())):
        raise Bad(f"{where} declares more elements than the file stores")
    return v


def _rng(v: Any, where: str, sizes: range) -> torch.Tensor:
    """A random generator's state: a byte tensor of a size in ``sizes``."""
    if not (
        _plain(v) and v.dtype == torch.uint8 and v.dim() == 1 and v.numel() in sizes and _held([v])
    ):
        want = f"{sizes.start} to {sizes.stop - 1}" if len(sizes) > 1 else str(sizes.start)
        raise Bad(f"{where} is {shown(v)}; it must be a generator state ({want} bytes)")
    if v.numel() == torch.get_rng_state().numel():  # a CPU generator's: torch checks it
        try:
            torch.Generator().set_state(v)
        except RuntimeError as e:
            raise Bad(f"{where} is not a valid generator state ({first_line(e)})") from None
    return v


def _fits(weights: dict[str, torch.Tensor], model: nn.Module, where: str) -> None:
    """``weights`` has exactly the names, shapes and kinds (floating or integer) of ``model``'s
    state dict."""
    want = model.state_dict()
    missing, extra = [k for k in want if k not in weights], [k for k in weights if k not in want]
    if missing or extra:
        lacks, name = ("the file", missing[0]) if missing else ("the model", extra[0])
        raise Bad(f"{MISFIT} ({lacks} has no {where}.{name})")
    for name, ref in want.items():
        t = weights[name]
        if t.shape != ref.shape or t.is_floating_point() != ref.is_floating_point():
            raise Bad(f"{MISFIT} ({where}.{name} is {dims(t)}, the model's {dims(ref)})")
        _finite(t, f"{where}.{name}")


def _finite(t: torch.Tensor, where: str) -> None:
    """A floating tensor holds numbers only: NaN or inf weights would train to NaN, or render
    black frames, without a word."""
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise Bad(f"{where} holds NaN or infinite values (a run that diverged, or a damaged file)")


ADAM_STATE = ("step", "exp_avg", "exp_avg_sq")  # what Adam keeps for each parameter it stepped


def _fits_optimizer(state: dict, model: nn.Module, where: str) -> None:
    """Adam's state for ``model``: keyed by parameter index, each entry a step count and two
    moments of the parameter's shape, finite, the second not negative (a misfit or a missing
    moment would load without complaint and fail at the next step)."""
    shapes = [p.shape for p in model.parameters()]
    for i, moments in state.items():
        if not (is_int(i) and 0 <= i < len(shapes)):
            raise Bad(f"{where} has {shown(i)}, not one of the model's {len(shapes)} parameters")
        at = f"{where}[{i}]"
        moments = _weights(moments, at)
        missing = [k for k in ADAM_STATE if k not in moments]
        odd = missing or [k for k in moments if k not in ADAM_STATE]
        if odd:
            said = "has no" if odd[0] in ADAM_STATE else "has an unknown"
            raise Bad(f"{at} {said} {odd[0]!r}; Adam keeps {', '.join(ADAM_STATE)}")
        for name, t in moments.items():
            want = torch.Size() if name == "step" else shapes[i]
            if not t.is_floating_point() or t.shape != want:
                said = f"parameter {i} is {dims(want)}" if want else "it must be a float scalar"
                raise Bad(f"{at}.{name} is {dims(t)}; {said}")
            _finite(t, f"{at}.{name}")
            if name != "exp_avg" and bool((t < 0).any()):
                raise Bad(f"{at}.{name} is negative; it must be at least 0")


# -- the two kinds of file ------------------------------------------------------------------


def _train_config(v: Any, where: str) -> TrainConfig:
    """A run's config as a file holds it: whole (its data named) and resolved (no None where
    TrainConfig.resolved settles a default)."""
    if isinstance(v, dict) and "data" not in v:
        raise Bad(f"{where}.data is missing")
    cfg = checked_value(v, TrainConfig, where)
    if cfg.lr is None:
        raise Bad(f"{where}.lr is None; it must be a finite number")
    _resolved_model(cfg.model, f"{where}.model")
    return cfg


def _resolved_model(model: ModelConfig, where: str) -> ModelConfig:
    """A network a file describes: every field set (None is what a run settles, never stored)."""
    for key in ("base_width", "depth", "disc"):
        if getattr(model, key) is None:
            raise Bad(f"{where}.{key} is None; a stored model names its own")
    if model.encoder == "mobilenet_v2" and model.depth != MOBILENET_DEPTH:
        raise Bad(f"{where}.depth is {model.depth}; encoder mobilenet_v2's is {MOBILENET_DEPTH}")
    return model


def check_train_config(record: Any, path: Path) -> TrainConfig:
    """``record`` (read from ``path``) as a TrainConfig, checked as a checkpoint's config is:
    known fields, each of its type and within bounds; else a CheckpointError naming ``path``."""
    try:
        return _train_config(record, "config")
    except Bad as e:
        raise CheckpointError(f"{path}: {e}") from None


def _score(v: Any, where: str) -> float:
    if not (is_int(v) or isinstance(v, float)) or math.isnan(v):  # inf: nothing validated yet
        raise Bad(f"{where} is {shown(v)}; it must be a number")
    return float(v)


def _group_lrs(v: Any, where: str) -> list[float]:
    if not (isinstance(v, list) and len(v) in (1, 2)):  # models.generator_groups: 1 or 2
        raise Bad(f"{where} is {shown(v)}; it must be a list of one or two learning rates")
    return [checked_value(x, float, f"{where}[{i}]") for i, x in enumerate(v)]


def _no_lambda_state(v: Any, where: str) -> list[None]:
    if not (isinstance(v, list) and len(v) in (1, 2) and set(v) == {None}):  # plain functions'
        raise Bad(f"{where} is {shown(v)}; it must be [None] or [None, None]")
    return v


_SCALER: dict[str, Check] = {
    "scale": is_a(float),
    "growth_factor": is_a(float),
    "backoff_factor": is_a(float),
    "growth_interval": is_a(int),
    "_growth_tracker": is_a(int),
}


def _scaler(v: Any, where: str) -> dict:
    """GradScaler's state: empty unless the run trained in float16."""
    return v if isinstance(v, dict) and not v else checked_fields(v, _SCALER, where)


_SCHEDULER: dict[str, Check] = {
    "last_epoch": is_a(int),
    "base_lrs": _group_lrs,
    "lr_lambdas": _no_lambda_state,
}

# A training checkpoint: what Trainer.state() writes. Config first: its problems say the most.
CHECKPOINT_SCHEMA: dict[str, Check] = {
    "config": _train_config,
    "step": is_a(int),
    "epoch": is_a(int),
    "best_val_L1": _score,
    "G": _weights,
    "D": _weights,
    "opt_G": has({"state": is_a(dict)}),
    "opt_D": has({"state": is_a(dict)}),  # moments: below
    "sched_G": has(_SCHEDULER),
    "sched_D": has(_SCHEDULER),
    "scaler": _scaler,
    "rng": lambda v, where: _rng(v, where, range(n := torch.get_rng_state().numel(), n + 1)),
    "cuda_rng": lambda v, where: _rng(v, where, range(0, 4097)),  # CPU runs: empty
    "data": is_a(str),
    "world": is_a(int),
    "vidcolor": is_a(str),
}


def _described_model(v: Any, where: str) -> ModelConfig:
    try:
        return _resolved_model(checked_value(v, ModelConfig, where), where)
    except Bad as e:  # no network the weights could fit
        raise Bad(f"{MISFIT} ({e})") from None


# A model bundle: what save_bundle writes. The model first: the rest means nothing without it.
BUNDLE_SCHEMA: dict[str, Check] = {
    "model": _described_model,
    "generator": _weights,
    "size": is_a(int),
    "provenance": is_a(dict),
    "vidcolor": is_a(str),
}


def _on_meta(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """The generator and discriminator ``cfg`` describes, shapes only: nothing is allocated."""
    with torch.device("meta"):
        return build_generator(cfg, init=False), build_discriminator(cfg, init=False)


def _check_checkpoint(state: dict) -> TrainConfig:
    """The TrainConfig of a training checkpoint whose every part is checked; ``state["config"]``
    becomes its full dict (defaults filled in, numbers of their field's type)."""
    cfg = checked_fields(state, CHECKPOINT_SCHEMA)["config"]
    state["config"] = cfg.to_dict()
    G, D = _on_meta(cfg.model)
    for key, model in (("G", G), ("D", D)):
        _fits(state[key], model, key)
        _fits_optimizer(state[f"opt_{key}"]["state"], model, f"opt_{key}.state")
    for key, n in (("sched_G", len(generator_groups(G, 0.0))), ("sched_D", 1)):
        if len(lrs := state[key]["base_lrs"]) != n:  # one per parameter group
            raise Bad(f"{key}.base_lrs is {shown(lrs)}; its optimizer has {n} group(s)")
    if "G_train" in state:  # an --ema run's training weights, beside their average (G)
        _fits(_weights(state["G_train"], "G_train"), G, "G_train")
    return cfg


def _check_bundle(state: dict) -> ModelConfig:
    """The ModelConfig of a model bundle whose every part is checked; ``state["model"]`` becomes
    its full dict."""
    cfg = checked_fields(state, BUNDLE_SCHEMA)["model"]
    state["model"] = cfg.to_dict()
    _fits(state["generator"], _on_meta(cfg)[0], "generator")
    for key, (before, low, high) in HEDGE_FIELDS.items():
        value = state.setdefault(key, before)
        if not (isinstance(value, float) and low <= value <= high):
            raise Bad(f"{key} is {shown(value)}; it must be a number from {low:g} to {high:g}")
    return cfg


# -- reading and writing --------------------------------------------------------------------


def _unreadable(path: Path, e: Exception) -> str:
    """Why torch.load refused ``path``, in plain words (never torch's advice to load unsafely)."""
    said = str(e)
    if isinstance(e, pickle.UnpicklingError) and "Weights only load failed" in said:
        if "Unsupported operand" not in said:  # else not a valid pickle stream at all
            return (
                "it holds objects other than tensors and plain data and was refused for "
                "safety (loading them could run code inside it)"
            )
    elif path.stat().st_size == 0:
        return "the file is empty"
    elif isinstance(e, RuntimeError | OSError) and said.strip():  # these say what is wrong
        return f"it cannot be read ({first_line(e)})"
    return "it cannot be read (damaged, or not a file PyTorch wrote)"


def _load(path: Path, what: str) -> dict:
    if path.exists() and not path.is_file():  # a pipe would block torch.load for ever
        raise CheckpointError(not_regular(path, f"a {what}"))
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
    except Bad as e:
        raise CheckpointError(f"{path}: {e}") from None


def check_progress(path: Path, state: dict, steps_per_epoch: int, pretrain_steps: int) -> None:
    """A checked checkpoint's counters agree for a run of ``steps_per_epoch`` batches an epoch:
    its epoch is the one its step falls in, G's scheduler counted every step and D's those
    after ``pretrain_steps``. A step ahead of its epoch would leave the epoch no batches to
    train on, and the loop would spin for ever."""
    step, epoch = state["step"], state["epoch"]
    counted = {"sched_G": step, "sched_D": max(0, step - pretrain_steps)}
    damaged = "the file was edited or damaged"
    if epoch != step // steps_per_epoch:
        at = f"{steps_per_epoch} steps an epoch"
        raise CheckpointError(f"{path}: step {step} is not in epoch {epoch} at {at}; {damaged}")
    for key, want in counted.items():
        if (got := state[key]["last_epoch"]) != want:
            said = f"{key}.last_epoch is {got}, not {want} at step {step}"
            raise CheckpointError(f"{path}: {said}; {damaged}")


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write a training ``state`` (tensors, state dicts, numbers, strings) via temp + rename,
    tagged with the format and the vidcolor version."""
    state = {"format": TRAINING_FORMAT, "vidcolor": __version__, **state}
    torch_save(state, Path(path))


def load_checkpoint(path: str | Path) -> dict:
    """A training checkpoint written by ``save_checkpoint``, every part checked (keys, types,
    bounds, shapes) before anything is built from it; its ``config`` is the full config dict."""
    path = Path(path)
    state = _load(path, "checkpoint")
    if state.get("format") != TRAINING_FORMAT:
        raise CheckpointError(f"{path}: not a vidcolor checkpoint (no '{TRAINING_FORMAT}' tag)")
    _checked(path, _check_checkpoint, state)
    return state


def _half(t: torch.Tensor) -> torch.Tensor:
    """A float tensor in float16 unless that overflows it (the bundle's weights stay finite)."""
    if not t.is_floating_point():
        return t
    h = t.half()
    return h if bool(torch.isfinite(h).all()) else t


def save_bundle(
    path: str | Path, training_checkpoint: str | Path, about: str = "", hedge: Hedge | None = None
) -> dict:
    """A shareable model from a training checkpoint: the generator alone (fp16 weights halve
    the file; inference runs in float32 or autocast), its config, and where it came from
    (``about``: a sentence on the data, for people reading the provenance). ``hedge``: how its
    colour is hedged towards gray when it renders (a model for footage of every kind, where it
    is unsure: ``benchmarks/calibrate_gain.py`` picks it)."""
    s, hedge = load_checkpoint(training_checkpoint), hedge or Hedge()
    cfg = s["config"]
    bundle = {
        "format": BUNDLE_FORMAT,
        "vidcolor": __version__,
        "model": cfg["model"],
        "size": cfg["size"],  # the training crop size: render's default working size
        "generator": {k: _half(v) for k, v in s["G"].items()},
        "chroma_gain": float(hedge.gain),
        "chroma_shrink": float(hedge.shrink),
        "provenance": {
            "data": cfg["data"],
            "step": s["step"],
            "epoch": s["epoch"],
            "best_val_L1": s["best_val_L1"],
            "config": {k: v for k, v in cfg.items() if k != "model"},
            "about": about,
        },
    }
    torch_save(bundle, Path(path))
    return bundle


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """A generator in eval mode (float32, CPU) from a model bundle or a training checkpoint,
    and a dict with its ``model`` config, working ``size``, ``chroma_gain`` and
    ``chroma_shrink`` (color.Hedge), and ``provenance``.
    The file is checked whole first, so the network built is one its weights fit."""
    path = Path(path)
    state = _load(path, "model")
    if state.get("format") == BUNDLE_FORMAT:
        cfg = _checked(path, _check_bundle, state)
        weights, info = state["generator"], state
    elif state.get("format") == TRAINING_FORMAT:
        train_cfg = _checked(path, _check_checkpoint, state)
        cfg, weights = train_cfg.model, state["G"]
        info = {
            "model": cfg.to_dict(),
            "size": train_cfg.size,
            **{key: before for key, (before, _, _) in HEDGE_FIELDS.items()},  # no hedge
            "provenance": {"step": state["step"], "data": train_cfg.data},
        }
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
