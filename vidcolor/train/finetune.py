"""Fine-tuning (``train --init MODEL``): a new run that starts from a model's weights.

The architecture comes from MODEL. The generator starts from MODEL's, the discriminator too when
MODEL is a training checkpoint of the same kind of discriminator; otherwise the discriminator is
new, and for its first ``D_WARMUP`` adversarial steps it learns while the generator trains on
L1 alone, so an untrained critic does not undo what the generator knows. The learning rate
defaults to ``FINE_TUNE_LR`` (a quarter of a run from scratch): the weights are already close.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from vidcolor.bundled import BUNDLED, model_file
from vidcolor.options import TrainConfig
from vidcolor.runtime import RunError
from vidcolor.train.checkpoint import load_start

FINE_TUNE_LR = 5e-5
D_WARMUP = 200  # adversarial steps


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def starting_point(cfg: TrainConfig) -> tuple[TrainConfig, dict, dict | None, list[str]]:
    """``cfg`` (with ``init`` set) resolved for fine-tuning: MODEL's architecture where ``cfg``
    leaves it None, the fine-tuning lr unless one was set, and the file's hash; then the
    generator's and (None: a new one) the discriminator's weights, and a line for each choice
    made. A base width, depth or encoder set to differ from MODEL's is refused."""
    path = model_file(cfg.init)
    if not path.is_file():
        raise RunError(f"--init {cfg.init}: no such file")
    model, g, d = load_start(path)
    for key in ("base_width", "depth", "encoder"):
        mine, theirs = getattr(cfg.model, key), getattr(model.resolved(), key)
        if mine is not None and mine != theirs:
            flag = key.replace("_", "-")
            raise RunError(
                f"--{flag} {mine}: --init {path.name} is a model of --{flag} {theirs}; leave "
                f"--{flag} out (the model brings it)"
            )
    resolved = cfg.resolved(model, FINE_TUNE_LR)
    if resolved.model.disc != model.disc:
        d = None  # another kind of discriminator: it starts afresh
    sha = file_sha256(path)
    said = [f"fine-tuning {path} (sha256 {sha[:12]}...)"]
    if cfg.lr is None:
        said.append(f"learning rate {FINE_TUNE_LR:g} for fine-tuning (--lr to change it)")
    warmup = 0 if d is not None else D_WARMUP
    said.append(
        "discriminator from the checkpoint"
        if d is not None
        else f"a new discriminator: it learns alone for the first {warmup} adversarial steps"
    )
    init = cfg.init if cfg.init in BUNDLED else str(path.resolve())
    return replace(resolved, d_warmup=warmup, init=init, init_sha256=sha), g, d, said
