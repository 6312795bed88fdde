"""One-file checkpoints and model bundles: written atomically, loaded without unpickling
arbitrary objects (``weights_only=True``: a file carrying code is refused, never run)."""

from __future__ import annotations

from pathlib import Path

import torch

from vidcolor import __version__
from vidcolor.atomic import atomic_path
from vidcolor.errors import UserError

TRAINING_FORMAT = "vidcolor-training-checkpoint"  # G, D, optimizers ...: to resume training
BUNDLE_FORMAT = "vidcolor-model"  # the generator, its config, provenance: to render


class CheckpointError(UserError):
    """A file that is not a usable vidcolor checkpoint or model."""


def _load(path: Path, what: str) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a foreign file can fail to parse in any of many ways
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a vidcolor {what} ({first[:120]})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a vidcolor {what}")
    return state


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write a training ``state`` (tensors, state dicts, numbers, strings) via temp + rename,
    tagged with the format and the vidcolor version."""
    state = {"format": TRAINING_FORMAT, "vidcolor": __version__, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict:
    """A training checkpoint written by ``save_checkpoint``."""
    state = _load(Path(path), "checkpoint")
    if state.get("format") != TRAINING_FORMAT:
        raise CheckpointError(f"{path}: not a vidcolor checkpoint (no '{TRAINING_FORMAT}' tag)")
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


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """A generator in eval mode (float32, CPU) from a model bundle or a training checkpoint,
    and a dict with its ``model`` config, working ``size`` and ``provenance``."""
    from vidcolor.models import ModelConfig, build_generator

    path = Path(path)
    state = _load(path, "model")
    if state.get("format") not in (BUNDLE_FORMAT, TRAINING_FORMAT):
        raise CheckpointError(f"{path}: not a vidcolor model (neither a bundle nor a checkpoint)")
    try:
        if state["format"] == BUNDLE_FORMAT:
            weights, info = state["generator"], state
        else:
            cfg = state["config"]
            weights = state["G"]
            info = {"model": cfg["model"], "size": cfg["size"],
                    "provenance": {"step": state["step"], "data": cfg["data"]}}  # fmt: skip
        int(info["size"])
        g = build_generator(ModelConfig(**info["model"]))
        g.load_state_dict({k: v.float() for k, v in weights.items()})
    except (TypeError, KeyError, RuntimeError, AttributeError, ValueError) as e:
        reason = str(e).strip().splitlines()[0][:120]
        raise CheckpointError(
            f"{path}: weights do not fit the model it describes ({reason})"
        ) from None
    return g.eval(), info
