"""Pick a model's colour hedge on calibration pictures, kind by kind, and optionally store it.

A model that has seen many kinds of footage is unsure on pictures of a kind it never saw, and a
confident wrong hue scores below no colour at all. Its colour is hedged towards gray
(``vidcolor.color.Hedge``): each pixel's chroma lowered by a shrink (the faint tints it predicts
when unsure go), then scaled by a gain. This scores the model at each pair of ``--gains`` and
``--shrinks`` on every kind of CALIBRATE (a folder of kinds, ``pipelines/default_data.py``'s
``calibrate/``: never the held-out pictures the model is then scored on) and picks the pair with
the best mean PSNR over gray among those where no kind falls more than ``--floor`` dB below gray
(if none does: the pair whose worst kind is best). ``--write`` stores it in the model bundle.

Usage: python benchmarks/calibrate_gain.py CALIBRATE --model BUNDLE [--gains 0.6,...,1.0]
           [--shrinks 0,2,...] [--floor 0.2] [--write]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from score_model import kinds, score

from vidcolor.color import Hedge
from vidcolor.render.streaming import Colorizer
from vidcolor.saving import torch_save

GAINS = "0.6,0.7,0.8,0.9,1.0"
SHRINKS = "0,2,4,6,8,10"  # Lab units of chroma (a saturated colour has 50 to 100)


def pick(margins: dict, floor: float):
    """The setting with the best mean margin (PSNR over gray) whose every kind is above
    ``-floor``; with none such, the one whose worst kind is best."""
    safe = [g for g, m in margins.items() if min(m.values()) >= -floor]
    if safe:
        return max(safe, key=lambda g: sum(margins[g].values()) / len(margins[g]))
    return max(margins, key=lambda g: min(margins[g].values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calibrate", type=Path)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--gains", default=GAINS)
    parser.add_argument("--shrinks", default=SHRINKS)
    parser.add_argument("--floor", type=float, default=0.2, help="dB below gray, at most")
    parser.add_argument("--write", action="store_true", help="store the hedge in --model")
    args = parser.parse_args()
    by_kind = kinds(args.calibrate)
    colorizer = Colorizer(args.model, "auto")
    gray = {kind: score(None, p)["psnr"] for kind, p in by_kind.items()}
    margins: dict[Hedge, dict[str, float]] = {}
    print("| gain | shrink | " + " | ".join(f"{k}: dB over gray" for k in by_kind) + " | mean |")
    print("|---:|---:|" + "---:|" * (len(by_kind) + 1))
    for gain in (float(g) for g in args.gains.split(",")):
        for shrink in (float(s) for s in args.shrinks.split(",")):
            colorizer.hedge = hedge = Hedge(gain, shrink)
            margins[hedge] = {k: score(colorizer, p)["psnr"] - gray[k] for k, p in by_kind.items()}
            m = margins[hedge]
            cells = [f"{v:+.2f}" for v in m.values()] + [f"{sum(m.values()) / len(m):+.2f}"]
            print(f"| {gain:g} | {shrink:g} | " + " | ".join(cells) + " |", flush=True)
    best = pick(margins, args.floor)
    print(f"\npicked chroma gain {best.gain:g}, shrink {best.shrink:g}")
    if args.write:
        state = torch.load(args.model, weights_only=True)
        state["chroma_gain"], state["chroma_shrink"] = best.gain, best.shrink
        torch_save(state, args.model)
        print(f"stored in {args.model}")


if __name__ == "__main__":
    main()
