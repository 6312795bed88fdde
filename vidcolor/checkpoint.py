"""One-file checkpoints: written atomically, loaded without unpickling arbitrary objects."""

from __future__ import annotations

from pathlib import Path

import torch

from vidcolor import __version__
from vidcolor.atomic import atomic_path
from vidcolor.errors import UserError

TRAINING_FORMAT = "vidcolor-training-checkpoint"


class CheckpointError(UserError):
    """A file that is not a usable vidcolor checkpoint."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write ``state`` (tensors, state dicts, numbers, strings) to ``path`` via temp + rename,
    tagged with the format and the vidcolor version."""
    state = {"format": TRAINING_FORMAT, "vidcolor": __version__, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, expect: str = TRAINING_FORMAT) -> dict:
    """Load a checkpoint with ``weights_only=True``: a file carrying code gets refused, not run."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a foreign file can fail to parse in any of many ways
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a vidcolor checkpoint ({first[:120]})") from None
    if not isinstance(state, dict) or state.get("format") != expect:
        raise CheckpointError(f"{path}: not a vidcolor checkpoint (no '{expect}' tag)")
    return state
