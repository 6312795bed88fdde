"""The models that ship with vidcolor, in ``vidcolor/weights/`` (their data, licences and scores:
its README). ``render --model NAME``, ``train --init NAME`` and a recipe's model or init may
name one; any other value is a path (a file named like one: give its folder too, as in
``$PWD/imagenet``)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# default: open data only; imagenet: its encoder started from ImageNet's weights
BUNDLED = ("default", "imagenet")


def bundled_model(name: str) -> Path:
    """The bundled model ``name`` (one of BUNDLED)."""
    return Path(str(files("vidcolor") / "weights" / f"{name}.pt"))


def default_model() -> Path:
    """The model ``render`` uses when none is named."""
    return bundled_model("default")


def model_file(value: str | Path | None) -> Path:
    """The file a ``--model`` or ``--init`` value names: a bundled model, or a path; None: the
    default model."""
    if value is None:
        return default_model()
    return bundled_model(str(value)) if str(value) in BUNDLED else Path(value)
