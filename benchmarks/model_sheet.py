"""A contact sheet of a model on held-out pictures, to check by eye what scores cannot say (a
whole sky or character in a hue the original does not have): per row, one picture of a kind
as gray input, the previous model, the model, and the original. ``--worst N``: instead, the N
pictures of all kinds where the model falls furthest under the gray input's PSNR.

Usage: python benchmarks/model_sheet.py HELDOUT --model M [--previous P] [--per-kind 2]
           [--worst N] [-o docs/default_model_heldout.jpg]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from score_model import db_under_gray, kinds

from vidcolor.color import gray_rgb
from vidcolor.metrics import psnr_np
from vidcolor.pictures import save_jpeg
from vidcolor.render.streaming import Colorizer

HEIGHT = 120  # pixels a row


def row(pictures: list[np.ndarray]) -> np.ndarray:
    h, w = pictures[0].shape[:2]
    size = (round(w * HEIGHT / h), HEIGHT)
    return np.hstack([cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in pictures])


def sheet(rows: list[np.ndarray]) -> np.ndarray:
    """``row``s stacked, each padded with black on the right to the widest."""
    width = max(r.shape[1] for r in rows)
    return np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])


def spread(by_kind: dict[str, list[np.ndarray]], per_kind: int) -> list[np.ndarray]:
    """``per_kind`` pictures of each kind, evenly spaced through it."""
    shown = []
    for pictures in by_kind.values():
        picks = np.linspace(0, len(pictures) - 1, per_kind).round().astype(int)
        shown += [pictures[i] for i in sorted(set(picks))]
    return shown


def worst(by_kind: dict[str, list[np.ndarray]], model: Colorizer, count: int) -> list:
    """The ``count`` pictures where ``model`` is furthest under the gray input's PSNR, worst
    first."""
    pictures = [p for kind in by_kind.values() for p in kind]
    lost = [db_under_gray(psnr_np(model.colorize_frame(p), p), p) for p in pictures]
    return [pictures[i] for i in np.argsort(lost)[::-1][:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("heldout", type=Path)
    parser.add_argument("--model", type=Path, help="default: the bundled model")
    parser.add_argument("--previous", type=Path)
    parser.add_argument("--per-kind", type=int, default=2)
    parser.add_argument("--worst", type=int, help="the N pictures furthest under gray instead")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/default_model_heldout.jpg"))
    args = parser.parse_args()
    models = [Colorizer(args.previous, "auto")] if args.previous else []
    models.append(Colorizer(args.model, "auto"))
    by_kind = kinds(args.heldout)
    if args.worst:
        picked = worst(by_kind, models[-1], args.worst)
    else:
        picked = spread(by_kind, args.per_kind)
    rows = [row([gray_rgb(t), *(m.colorize_frame(t) for m in models), t]) for t in picked]
    save_jpeg(args.output, sheet(rows), quality=80)
    print(
        f"{len(rows)} rows: gray | {'previous | ' if args.previous else ''}model | original "
        f"-> {args.output}"
    )


if __name__ == "__main__":
    main()
