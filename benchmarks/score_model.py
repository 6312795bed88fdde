"""Score a model on colour pictures it never saw, kind by kind, beside the gray input itself (the
floor any colorizer must beat) and, when given, a previous model, in one run.

FRAMES is a folder of images (one kind), or a folder of such folders (one kind each: what
``pipelines/default_data.py`` writes as ``heldout/``). Each picture is colorized as ``render``
colorizes a frame; the table gives PSNR (and the gain over gray), SSIM and the colourfulness
against the original's, per kind and averaged over the kinds. ``--gain`` and ``--shrink``
score the model with another hedge than its own (``benchmarks/calibrate_gain.py`` sweeps them);
``--render-size`` scores both models at another working size than their training size.
``--hues`` adds a table of the share of pixels each model makes greenish and reddish (Lab a
below -5 or above 5) beside the originals': a model leaning to one hue shows there; and the
mean chroma each model gives the originals' whites and light grays (Lab L above 60, chroma
below 6): a white figure or an overcast sky painted one hue shows there. ``--gate`` exits 1,
with one line on stderr, when the model misses the bar a default must clear (``FLOOR``,
``LIFT``): the default model's recipe checks a new model with it before it ships.

Usage: python benchmarks/score_model.py FRAMES [--model PATH] [--previous PATH] [--gain G]
           [--shrink S] [--render-size N] [--hues] [--json out.json] [--gate]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from vidcolor.color import gray_rgb, rgb_to_lab_np
from vidcolor.data.dataset import is_greyscale
from vidcolor.images import read_rgb
from vidcolor.metrics import colourfulness, psnr_np, ssim
from vidcolor.render.streaming import Colorizer, image_files


def kinds(folder: Path) -> dict[str, list[np.ndarray]]:
    """The colour pictures of ``folder`` by kind: its own (a folder of images), or each
    subfolder's (a folder of kinds)."""
    own = image_files(folder)
    found = {folder.name: own} if own else {}
    if not found:
        found = {d.name: image_files(d) for d in sorted(folder.iterdir()) if d.is_dir()}
    out = {}
    for kind, paths in found.items():
        pictures = [read_rgb(p) for p in paths]
        if pictures := [p for p in pictures if not is_greyscale(p)]:
            out[kind] = pictures
    if not out:
        raise SystemExit(f"{folder}: no colour pictures to score on")
    return out


HUE_A = 5.0  # Lab a beyond which a pixel counts as greenish or reddish
WHITE = (60.0, 6.0)  # Lab L above, chroma below: a white or light gray pixel in the original
UNDER_GRAY = 1.0  # dB under the gray input's PSNR: a picture visibly worse than no colour
FLOOR = 0.2  # dB: no kind may fall further under the gray input than this
LIFT = 0.5  # dB: the mean over the kinds must beat the gray input by this


def score(colorizer: Colorizer | None, pictures: list[np.ndarray]) -> dict:
    """Mean PSNR and SSIM of ``colorizer``'s pictures (None: the gray input) against the
    originals, and their colourfulness over the originals'."""
    rows, colour, colour_orig, hues, tints, under = [], [], [], [], [], []
    for truth in pictures:
        out = colorizer.colorize_frame(truth) if colorizer else gray_rgb(truth)
        rows.append((psnr_np(out, truth), ssim(out / 255, truth / 255)))
        under.append(db_under_gray(rows[-1][0], truth) > UNDER_GRAY)
        colour.append(colourfulness(out))
        colour_orig.append(colourfulness(truth))
        lab_out, lab_truth = rgb_to_lab_np(out), rgb_to_lab_np(truth)  # each once
        hues.append([share for lab in (lab_out, lab_truth) for share in hue_shares(lab)])
        tints.append(white_tint(lab_out, lab_truth))
    green, red, green_orig, red_orig = np.mean(hues, axis=0)
    whites = sum(n for _, n in tints)
    return {
        "psnr": float(np.mean([r[0] for r in rows])),
        "ssim": float(np.mean([r[1] for r in rows])),
        "colourfulness_ratio": float(np.mean(colour) / np.mean(colour_orig)),
        "greenish": float(green),
        "reddish": float(red),
        "greenish_original": float(green_orig),
        "reddish_original": float(red_orig),
        "white_tint": sum(t * n for t, n in tints) / whites if whites else float("nan"),
        "under_gray": float(np.mean(under)),
    }


def db_under_gray(psnr: float, truth: np.ndarray) -> float:
    """How far a colorized picture's PSNR against ``truth`` (``psnr``) falls under the gray
    input's, in dB. Over UNDER_GRAY: a picture one wrong hue over most of it spoils, which a
    kind's mean can hide."""
    return psnr_np(gray_rgb(truth), truth) - psnr


def hue_shares(lab: np.ndarray) -> tuple[float, float]:
    """The shares of a picture's pixels (HxWx3 Lab) that are greenish and reddish (Lab a < -5,
    > 5)."""
    a = lab[..., 1]
    return float((a < -HUE_A).mean()), float((a > HUE_A).mean())


def white_tint(out: np.ndarray, truth: np.ndarray) -> tuple[float, int]:
    """The mean Lab chroma ``out`` gives the pixels that are white or light gray in ``truth``
    (both HxWx3 Lab), and how many there are: a colorizer that paints a white figure or an
    overcast sky one hue shows here (a faithful one: near 0)."""
    whites = (truth[..., 0] > WHITE[0]) & (np.hypot(truth[..., 1], truth[..., 2]) < WHITE[1])
    if not whites.any():
        return 0.0, 0
    ab = out[..., 1:][whites]
    return float(np.hypot(ab[:, 0], ab[:, 1]).mean()), int(whites.sum())


def score_kinds(models: dict[str, Colorizer | None], by_kind: dict[str, list]) -> dict:
    """{kind: {model name: score}} for each kind, and "average" over the kinds."""
    table = {kind: {name: score(c, p) for name, c in models.items()} for kind, p in by_kind.items()}
    first = next(iter(by_kind))
    table["average"] = {
        name: {
            k: float(np.nanmean([table[kind][name][k] for kind in by_kind]))
            for k in table[first][name]
        }
        for name in models
    }
    return table


def print_table(table: dict, counts: dict[str, int]) -> None:
    """The scores as a Markdown table: a row per kind, the average last."""
    names = list(next(iter(table.values())))[1:]  # the gray input is the first column
    head = ["kind", "pictures", "gray input: PSNR dB"]
    head += [f"{n}: PSNR dB (vs gray)" for n in names] + [f"{n}: colourfulness" for n in names]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for kind, row in table.items():
        gray = row["gray input"]["psnr"]
        cells = [f"**{kind}**" if kind == "average" else kind]
        cells.append(str(counts.get(kind, sum(counts.values()))))
        cells.append(f"{gray:.2f}")
        cells += [f"{row[n]['psnr']:.2f} ({row[n]['psnr'] - gray:+.2f})" for n in names]
        cells += [f"{row[n]['colourfulness_ratio']:.2f}" for n in names]
        print("| " + " | ".join(cells) + " |")


def print_hues(table: dict) -> None:
    """The shares of greenish and reddish pixels, each model's and the originals', per kind;
    the chroma each model gives the originals' whites; and the share of pictures it makes
    visibly worse than gray."""
    names = [n for n in next(iter(table.values())) if n != "gray input"]
    head = [f"{n}: greenish / reddish" for n in names] + ["original: greenish / reddish"]
    head += [f"{n}: chroma on whites" for n in names]
    head += [f"{n}: pictures {UNDER_GRAY:g} dB under gray" for n in names]
    print("\n| kind | " + " | ".join(head) + " |")
    print("|---|" + "---:|" * len(head))
    for kind, row in table.items():
        cells = [f"{row[n]['greenish']:.0%} / {row[n]['reddish']:.0%}" for n in names]
        truth = row[names[0]]
        cells.append(f"{truth['greenish_original']:.0%} / {truth['reddish_original']:.0%}")
        cells += [f"{row[n]['white_tint']:.1f}" for n in names]
        cells += [f"{row[n]['under_gray']:.0%}" for n in names]
        print(f"| {kind} | " + " | ".join(cells) + " |")


def misses(table: dict) -> list[str]:
    """How the table's "model" misses the bar (every kind within FLOOR of the gray input, the
    average LIFT over it), one phrase a miss; empty if it clears it."""
    found = []
    for kind, row in table.items():
        margin = row["model"]["psnr"] - row["gray input"]["psnr"]
        bound = LIFT if kind == "average" else -FLOOR
        if margin < bound:
            found.append(f"{kind} {margin:+.2f} dB against the gray input (at least {bound:+.1f})")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frames", type=Path)
    parser.add_argument("--model", type=Path, help="default: the bundled model")
    parser.add_argument("--previous", type=Path, help="a model to score beside it")
    parser.add_argument("--gain", type=float, help="chroma gain (default: the model's own)")
    parser.add_argument("--shrink", type=float, help="chroma shrink (default: the model's own)")
    parser.add_argument("--render-size", type=int, help="short side (default: each model's own)")
    parser.add_argument("--hues", action="store_true", help="also hue shares and whites' tint")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--gate", action="store_true", help="exit 1 if the model misses the bar")
    args = parser.parse_args()
    by_kind = kinds(args.frames)
    model = Colorizer(args.model, "auto", args.render_size)
    asked = {"gain": args.gain, "shrink": args.shrink}
    model.hedge = replace(model.hedge, **{k: v for k, v in asked.items() if v is not None})
    models: dict[str, Colorizer | None] = {"gray input": None, "model": model}
    if args.previous:
        models["previous"] = Colorizer(args.previous, "auto", args.render_size)
    table = score_kinds(models, by_kind)
    counts = {k: len(v) for k, v in by_kind.items()}
    print(
        f"{sum(counts.values())} held-out colour pictures from {args.frames} "
        f"(model chroma gain {model.hedge.gain:g}, shrink {model.hedge.shrink:g}, working size "
        f"{model.size})\n"
    )
    print_table(table, counts)
    if args.hues:
        print_hues(table)
    if args.json:
        args.json.write_text(json.dumps({"pictures": counts, "scores": table}, indent=2) + "\n")
    if args.gate and (missed := misses(table)):
        sys.exit(f"score_model: {args.model or 'the bundled model'} misses: {'; '.join(missed)}")


if __name__ == "__main__":
    main()
