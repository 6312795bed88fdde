"""A new run's generator started from ImageNet (``train --encoder mobilenet_v2 --encoder-weights
PTH``): MobileNetV2's encoder as torchvision trained it, the decoder as any new run's. Made
before the run starts, so a bad file is refused before its folder is claimed, and a resumed
run never reads the file again (its checkpoint holds the weights)."""

from __future__ import annotations

from pathlib import Path

import torch

from vidcolor.mobilenet import load_imagenet
from vidcolor.models import build_generator
from vidcolor.options import MOBILENET_DEPTH, TrainConfig
from vidcolor.runtime import RunError


def check_encoder(cfg: TrainConfig) -> None:
    """A RunError in one line for an encoder ``cfg`` cannot build (``cfg`` resolved)."""
    model = cfg.model
    if model.encoder == "mobilenet_v2" and model.depth != MOBILENET_DEPTH:
        raise RunError(
            f"--depth {model.depth}: --encoder mobilenet_v2 has depth {MOBILENET_DEPTH} "
            "(its stages reach stride 32); leave --depth out"
        )
    if cfg.encoder_weights and model.encoder != "mobilenet_v2":
        raise RunError("--encoder-weights needs --encoder mobilenet_v2")


def imagenet_start(cfg: TrainConfig) -> tuple[dict, None] | None:
    """The first weights of ``cfg``'s new run (``cfg`` resolved) when it names encoder weights:
    the generator, its decoder initialised from the run's seed (the same weights each time),
    and a new discriminator (None); else None. A file that is not the weights: a RunError in
    one line."""
    check_encoder(cfg)
    if not cfg.encoder_weights:
        return None
    path = Path(cfg.encoder_weights)
    if not path.is_file():
        raise RunError(f"--encoder-weights {path}: no such file")
    with torch.random.fork_rng(devices=[]):  # the run's own random state is left as it was
        torch.manual_seed(cfg.seed)
        g = build_generator(cfg.model)
    try:
        load_imagenet(g, path)
    except ValueError as e:
        raise RunError(f"--encoder-weights {e}") from None
    return g.state_dict(), None
