"""Score a model on colour frames it never saw: PSNR and SSIM of its colorization against the
originals, beside the gray input itself (the floor any colorizer must beat), in one run.

Usage: python benchmarks/score_model.py FRAMES_DIR [--model PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vidcolor.color import gray_rgb
from vidcolor.dataset import is_greyscale
from vidcolor.images import read_rgb
from vidcolor.metrics import colourfulness, psnr, ssim
from vidcolor.render import Colorizer, image_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frames", type=Path)
    parser.add_argument("--model", type=Path, help="default: the bundled model")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    colorizer = Colorizer(args.model, "auto")
    rows = {"gray input": [], "model": []}
    colour = {"original": [], "model": []}
    for path in image_files(args.frames):
        truth = read_rgb(path)
        if is_greyscale(truth):
            continue  # nothing to score against
        gray = gray_rgb(truth)
        for name, out in (("gray input", gray), ("model", colorizer.colorize_frame(truth))):
            a = torch.from_numpy(out).permute(2, 0, 1)[None].float() / 255
            b = torch.from_numpy(truth).permute(2, 0, 1)[None].float() / 255
            rows[name].append((psnr(a, b).item(), ssim(out / 255, truth / 255)))
        colour["original"].append(colourfulness(truth))
        colour["model"].append(colourfulness(out))
    n = len(rows["model"])
    print(f"{n} held-out colour frames from {args.frames}\n")
    print("| | PSNR dB | SSIM |")
    print("|---|---:|---:|")
    result = {}
    for name, vals in rows.items():
        p, s = np.mean([v[0] for v in vals]), np.mean([v[1] for v in vals])
        result[name] = {"psnr": p, "ssim": s}
        print(f"| {name} | {p:.2f} | {s:.4f} |")
    ratio = np.mean(colour["model"]) / np.mean(colour["original"])
    result["colourfulness_ratio"] = ratio
    print(f"\ncolourfulness, model / original: {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"frames": n, **result}, indent=2))


if __name__ == "__main__":
    main()
