"""What render's chroma limit (``color.chroma_in_gamut``) costs real colour: each video's own
luma and its own chroma, limited, decoded as a player would (PyAV's rgb24), against the same
frame decoded unlimited. A limit that only stops colour no luma can show costs real colour
nothing; the 4x4 rule (each sample against the darkest and brightest pixel a bilinear upsampler
blends it into, not kept) is measured beside render's rule (its 2x2 block's mean luma).

    python benchmarks/bench_gamut.py [VIDEO ...] [--every 10] [--frames 1200] [--json F]

Default: the shared clip and, when recorded, episode 6 of each game in bench-out/footage.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from common import ROOT, SHARED_CLIP, report_json

from vidcolor.color import block_luma, chroma_in_gamut
from vidcolor.metrics import psnr_np
from vidcolor.video import probe
from vidcolor.video.reader import yuv420_planes

FOOTAGE = [ROOT / "bench-out" / "footage" / f"{g}_6.mp4" for g in ("supertux", "wesnoth")]
WINDOW = np.ones((4, 4), np.uint8)


def limited_4x4(cbcr: torch.Tensor, y: np.ndarray, matrix: str, full_range: bool) -> torch.Tensor:
    """The rule not kept: the sample's chroma fits at the darkest and the brightest pixel of the
    4x4 around its block (two limits, each checked with ``chroma_in_gamut``'s one-luma rule)."""
    low = cv2.erode(y, WINDOW, anchor=(1, 1))[::2, ::2]
    high = cv2.dilate(y, WINDOW, anchor=(1, 1))[::2, ::2]
    for luma in (low, high):
        cbcr = chroma_in_gamut(cbcr, torch.from_numpy(luma)[None], matrix, full_range)
    return cbcr


def limited_mean(cbcr: torch.Tensor, y: np.ndarray, matrix: str, full_range: bool) -> torch.Tensor:
    return chroma_in_gamut(cbcr, torch.from_numpy(block_luma(y))[None], matrix, full_range)


RULES: dict[str, Callable] = {
    "block mean (render's)": limited_mean,
    "4x4 darkest/brightest": limited_4x4,
}


def decoded(frame: av.VideoFrame, planes: list[np.ndarray]) -> np.ndarray:
    """``planes`` (Y, Cb, Cr) as RGB, decoded as ``frame`` is (its matrix and range)."""
    out = av.VideoFrame(frame.width, frame.height, "yuv420p")
    out.colorspace, out.color_range = frame.colorspace, frame.color_range
    for p, a in zip(out.planes, planes, strict=True):
        np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] = a
    return out.to_ndarray(format="rgb24")


def measure(path: Path, every: int, frames: int) -> dict:
    info = probe(path)
    psnrs: dict[str, list[float]] = {r: [] for r in RULES}
    changed: dict[str, list[float]] = {r: [] for r in RULES}
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i >= frames:
                break
            if i % every:
                continue
            y, u, v = yuv420_planes(frame, info.matrix, info.full_range)
            truth = frame.to_ndarray(format="rgb24")
            cbcr = torch.from_numpy(np.stack([u, v])).float()[None]
            for rule, limit in RULES.items():
                out = limit(cbcr, y, info.matrix, info.full_range)
                uu, vv = out[0].round().clamp(0, 255).to(torch.uint8).numpy()
                psnrs[rule].append(psnr_np(decoded(frame, [y, uu, vv]), truth))
                changed[rule].append(float((out - cbcr).abs().gt(1).float().mean()))
    return {
        rule: {
            "psnr": float(np.mean(psnrs[rule])),
            "samples_changed": float(np.mean(changed[rule])),
        }
        for rule in RULES
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--every", type=int, default=10, help="one frame in this many")
    parser.add_argument("--frames", type=int, default=1200, help="of the first this many")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    videos = args.videos or [p for p in (SHARED_CLIP, *FOOTAGE) if p.exists()]
    results = {}
    print("| video | rule | dB against the unlimited | samples moved > 1 code value |")
    print("|---|---|---:|---:|")
    for path in videos:
        results[path.name] = measure(path, args.every, args.frames)
        for rule, r in results[path.name].items():
            print(f"| {path.name} | {rule} | {r['psnr']:.2f} | {r['samples_changed']:.1%} |")
    if args.json:
        report_json(results, args.json)


if __name__ == "__main__":
    main()
