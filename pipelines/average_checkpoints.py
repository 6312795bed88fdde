"""One model bundle from the mean of several training checkpoints' generators.

A run's weights wander from one checkpoint to the next: the default model's validation L1 rose
and fell by up to 15% between epochs at lr 1e-4. The mean of a run's best and last scored above
the best alone, on the calibration pictures and on average over the held-out ones
(docs/benchmarks.md, "Third model"). The checkpoints must hold one model trained from one
start: the mean of two unrelated networks is noise. Provenance, size and the rest come from the
first checkpoint.

Usage: python pipelines/average_checkpoints.py OUT.pt CHECKPOINT CHECKPOINT... [--about TEXT]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidcolor.train.checkpoint import load_checkpoint, save_bundle, save_checkpoint  # noqa: E402


def averaged(paths: list[Path]) -> tuple[dict, list[int]]:
    """The first checkpoint's state with its generator replaced by the mean of all of theirs
    (counters such as BatchNorm's ``num_batches_tracked`` are the first one's), and the step
    of each."""
    states = [load_checkpoint(p) for p in paths]
    first = states[0]
    for path, state in zip(paths[1:], states[1:], strict=True):
        if state["config"]["model"] != first["config"]["model"]:
            raise SystemExit(f"{path}: holds a model other than {paths[0]}'s: cannot average")
    first["G"] = {
        key: torch.stack([s["G"][key].float() for s in states]).mean(0).to(value.dtype)
        if value.is_floating_point()
        else value
        for key, value in first["G"].items()
    }
    return first, [s["step"] for s in states]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--about", default="", help="a sentence on the data, for the provenance")
    args = parser.parse_args()
    state, each = averaged(args.checkpoints)
    state.pop("format"), state.pop("vidcolor")  # save_checkpoint writes this version's
    steps = ", ".join(map(str, each))
    which = f"the mean of steps {steps}" if len(each) > 1 else f"step {steps}"
    about = f"{args.about} (generator: {which})".strip()
    with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
        mean = Path(tmp) / "mean.pt"
        save_checkpoint(mean, state)
        save_bundle(args.out, mean, about=about)
    print(f"{args.out}: {which}")


if __name__ == "__main__":
    main()
