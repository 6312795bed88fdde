"""Render speed against its parts and against the naive way, in one run on the shared clip.

Cases, each in a fresh process (peak RSS is its own):
  io-floor   decode the planes and encode them again (same encoder settings): the floor
  model      the generator alone on decoded luma, same batch size and working size
  render     vidcolor render --no-temporal (decode, model and encode overlapping)
  render-temporal  vidcolor render (--temporal, the default: the stabiliser and shot detector)
  naive      what many tools do: every frame to a JPEG on disk, each colorized alone
             (full-resolution Lab via scikit-image, batch 1), then the JPEGs re-encoded
  render-10s vidcolor render (--temporal) of the clip's first 10.4 s: memory against the 60 s
             render-temporal
Usage: python benchmarks/bench_render.py [--model PATH] [--naive-seconds 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "media" / "bbb_360p_60s.mp4"


def run_case(name: str, clip: Path, model: str | None, batch: int, seconds: float) -> dict:
    import cv2
    import numpy as np
    import torch
    from skimage import color

    from vidcolor.color import l_to_model
    from vidcolor.render import Colorizer, render_video
    from vidcolor.video import EncodeOptions, VideoReader, VideoWriter, scaled_size

    encode = EncodeOptions()
    frames = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mp4"
        if name == "render-10s":  # the first 10.4 s, cut at a keyframe without re-encoding
            sys.path.insert(0, str(ROOT / "pipelines"))
            from sample_clip import cut

            short = Path(tmp) / "short.mp4"
            cut(clip, short, Fraction(0), Fraction(10_416, 1000))
            clip = short
        temporal = name in ("render-temporal", "render-10s")
        colorizer = None
        if name != "io-floor":
            colorizer = Colorizer(model, "auto", batch_size=batch)
        t0 = time.perf_counter()
        if name == "io-floor":
            with VideoReader(clip, planes=True) as r, VideoWriter.like(r.info, out, encode) as w:
                for f in r:
                    w.write_planes(f.image, *f.chroma, f.pts, f.duration)
                    frames += 1
        elif name == "model":
            with VideoReader(clip, planes=True, end=seconds) as r:
                ys = [f.image for f in r]
            t0 = time.perf_counter()
            for i in range(0, len(ys), batch):
                colorizer.chroma(ys[i : i + batch], False, "bt601")
            frames = len(ys)
        elif name.startswith("render"):
            frames = render_video(clip, out, colorizer, encode, temporal=temporal).frames
        elif name == "naive":
            jpgs, outs = Path(tmp) / "frames", Path(tmp) / "colour"
            jpgs.mkdir()
            outs.mkdir()
            with VideoReader(clip, end=seconds) as r:  # 1. every frame to a JPEG
                info = r.info
                for f in r:
                    cv2.imwrite(str(jpgs / f"{f.index:06d}.jpg"), f.image[..., ::-1])
            G = colorizer.G
            for path in sorted(jpgs.iterdir()):  # 2. one at a time, full-resolution Lab
                rgb = cv2.imread(str(path))[..., ::-1]
                lab = color.rgb2lab(rgb)
                h, w = lab.shape[:2]
                ws, hs = scaled_size(w, h, colorizer.size)
                small = cv2.resize(lab[..., 0].astype(np.float32), (ws, hs))
                with torch.inference_mode():
                    L = l_to_model(torch.from_numpy(small)[None, None].to(colorizer.device))
                    ab = G(L)[0].permute(1, 2, 0).float().cpu().numpy() * 110
                lab[..., 1:] = cv2.resize(ab, (w, h))
                out_rgb = (color.lab2rgb(lab) * 255).round().astype(np.uint8)
                cv2.imwrite(str(outs / path.name), out_rgb[..., ::-1])
            with VideoWriter(out, frame_rate=info.frame_rate, encode=encode) as w:  # 3. encode
                for path in sorted(outs.iterdir()):
                    w.write(np.ascontiguousarray(cv2.imread(str(path))[..., ::-1]))
                    frames += 1
        wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"case": name, "frames": frames, "seconds": wall, "fps": frames / wall,
            "peak_rss_mb": peak}  # fmt: skip


def spawn(name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--case", name, "--clip", str(args.clip), "--batch-size",
           str(args.batch_size), "--naive-seconds", str(args.naive_seconds)]  # fmt: skip
    if args.model:
        cmd += ["--model", str(args.model)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--model", type=Path, help="default: the bundled model")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument(
        "--naive-seconds",
        type=float,
        default=10.0,
        help="the naive way and the model alone run on this much of the clip",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        model = str(args.model) if args.model else None
        result = run_case(args.case, args.clip, model, args.batch_size, args.naive_seconds)
        print(json.dumps(result))
        return
    cases = ("io-floor", "model", "render", "render-temporal", "naive", "render-10s")
    r = {name: spawn(name, args) for name in cases}
    print(f"clip: {args.clip.name}, batch {args.batch_size}; naive and model-alone on the first "
          f"{args.naive_seconds:g} s\n")  # fmt: skip
    print("| case | frames | seconds | frames/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for x in r.values():
        print(f"| {x['case']} | {x['frames']} | {x['seconds']:.2f} | {x['fps']:.1f} | "
              f"{x['peak_rss_mb']:.0f} |")  # fmt: skip
    per_frame = 1 / r["io-floor"]["fps"] + 1 / r["model"]["fps"]
    rss_ratio = r["render-temporal"]["peak_rss_mb"] / r["render-10s"]["peak_rss_mb"]
    ratios = {
        "render vs naive (target >= 2)": r["render"]["fps"] / r["naive"]["fps"],
        "render --temporal vs without (target >= 0.8)": r["render-temporal"]["fps"]
        / r["render"]["fps"],
        "render time / (I/O floor + model alone) (target <= 1.2)": (1 / r["render"]["fps"])
        / per_frame,
        "peak RSS 60 s / 10 s render, --temporal (target <= 1.2)": rss_ratio,
    }
    print()
    for k, v in ratios.items():
        print(f"- {k}: {v:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"cases": r, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
