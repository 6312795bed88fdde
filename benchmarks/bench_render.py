"""Render speed against its parts and against the naive way, in one run on the shared clip.

Cases, each in a fresh process (peak RSS is its own):
  io-floor   decode the planes and encode them again (same encoder settings): the floor
  model      the generator alone on decoded luma, same batch size and working size; a few
             batches first (first call, allocations, autotuning) are not timed, then passes
             over the decoded frames are timed for at least --model-seconds
  render     vidcolor render --no-temporal (decode, model and encode overlapping)
  render-temporal  vidcolor render (--temporal, the default: the stabiliser and shot detector)
  naive      what many tools do: every frame to a JPEG on disk, each colorized alone
             (full-resolution Lab via scikit-image, batch 1), then the JPEGs re-encoded
  render-10s vidcolor render (--temporal) of the clip's first 10 s, cut at the next keyframe
             without re-encoding: memory against the whole clip's render-temporal
A case that fails reports its error in its row; the others still run and print.
--make-1080p PATH first writes the clip's first --make-seconds scaled to 1920x1080 (PyAV and
its x264, audio copied) to PATH, outside the repository, and benchmarks that.
Usage: python benchmarks/bench_render.py [--clip ...] [--model PATH] [--make-1080p PATH]
       [--naive-seconds 10] [--cases io-floor,model,...] [--case-timeout S] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from common import (
    ROOT,
    SHARED_CLIP,
    Result,
    any_failed,
    fmt,
    one_line,
    ratio,
    run_cases,
    stop_on_signals,
    value,
)

CASES = ("io-floor", "model", "render", "render-temporal", "naive", "render-10s")
WARMUP_BATCHES = 3  # untimed model calls before the clock starts
UPSCALE = (1920, 1080)


def make_upscaled(src: Path, dst: Path, seconds: float, size: tuple[int, int] = UPSCALE) -> int:
    """Write the first ``seconds`` of ``src`` to ``dst`` scaled to ``size`` (bicubic, BT.709
    like real HD video), x264 crf 18 veryfast, with the audio packets copied as they are. A
    large input for the GPU targets, made with PyAV alone. Returns the frame count."""
    import av

    end, (w, h), frames = Fraction(seconds), size, 0
    part = dst.with_name(f".{dst.stem}.part{dst.suffix}")
    with av.open(str(src)) as i, av.open(str(part), "w") as o:
        v_in = i.streams.video[0]
        v_in.thread_type = "AUTO"
        a_in = i.streams.audio[0] if i.streams.audio else None
        v_out = o.add_stream("libx264", rate=v_in.average_rate)
        v_out.width, v_out.height, v_out.pix_fmt = w, h, "yuv420p"
        v_out.codec_context.time_base = v_in.time_base
        cc = v_out.codec_context
        cc.colorspace = cc.color_primaries = cc.color_trc = 1  # BT.709
        cc.color_range = 1  # limited ("tv") range, as the source
        v_out.options = {"crf": "18", "preset": "veryfast"}
        a_out = o.add_stream_from_template(a_in) if a_in is not None else None
        video_done, audio_done = False, a_in is None
        for packet in i.demux(*[s for s in (v_in, a_in) if s is not None]):
            if video_done and audio_done:
                break
            if packet.stream is a_in:
                if packet.pts is None or packet.dts is None:
                    continue
                if packet.pts * packet.time_base >= end:
                    audio_done = True
                    continue
                packet.stream = a_out
                o.mux(packet)
                continue
            if video_done:
                continue
            for frame in packet.decode():
                if frame.pts * v_in.time_base >= end:
                    video_done = True
                    continue
                big = frame.reformat(
                    w,
                    h,
                    "yuv420p",
                    src_colorspace="ITU601",
                    dst_colorspace="ITU709",
                    interpolation="BICUBIC",
                )
                big.pts, big.time_base = frame.pts, v_in.time_base
                o.mux(v_out.encode(big))
                frames += 1
        o.mux(v_out.encode(None))
    os.replace(part, dst)
    return frames


def run_case(
    name: str,
    clip: Path,
    model: str | None,
    batch: int | None,
    seconds: float,
    model_seconds: float,
) -> Result:
    """One case in this process: frames, wall seconds, frames/s and this process's peak RSS."""
    import cv2
    import numpy as np
    import torch
    from skimage import color

    from vidcolor.color import l_to_model
    from vidcolor.render.streaming import Colorizer, render_video
    from vidcolor.video import EncodeOptions, VideoReader, VideoWriter, scaled_size

    encode = EncodeOptions()
    frames = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mp4"
        if name == "render-10s":  # the first 10 s, to the next keyframe, without re-encoding
            sys.path.insert(0, str(ROOT / "pipelines"))
            from sample_clip import cut

            short = Path(tmp) / f"short{clip.suffix}"
            cut(clip, short, Fraction(0), Fraction(10))
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
                info, ys = r.info, [f.image for f in r]
            n = colorizer.batch_size
            batches = [ys[i : i + n] for i in range(0, len(ys) - n + 1, n)]  # whole ones only
            if not batches:
                raise ValueError(
                    f"{len(ys)} frames in the first {seconds:g} s make no batch "
                    f"of {n}: raise --naive-seconds"
                )
            for b in (batches * WARMUP_BATCHES)[:WARMUP_BATCHES]:
                colorizer.chroma(b, info.full_range, info.matrix)
            t0 = time.perf_counter()  # chroma returns host arrays: the device is done
            while frames == 0 or time.perf_counter() - t0 < model_seconds:
                for b in batches:
                    colorizer.chroma(b, info.full_range, info.matrix)
                    frames += len(b)
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
        else:
            raise ValueError(f"no case {name!r} (cases: {', '.join(CASES)})")
        wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "case": name,
        "frames": frames,
        "seconds": wall,
        "fps": frames / wall,
        "peak_rss_mb": peak,
        "batch": colorizer.batch_size if colorizer else None,
    }


def spawn(name: str, args: argparse.Namespace) -> Result:
    """``name`` in a fresh process; its error, if any, raised here as one line."""
    cmd = [
        sys.executable,
        __file__,
        "--case",
        name,
        "--clip",
        str(args.clip),
        "--naive-seconds",
        str(args.naive_seconds),
        "--model-seconds",
        str(args.model_seconds),
    ]
    if args.model:
        cmd += ["--model", str(args.model)]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.case_timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {args.case_timeout:g} s") from None
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    if result is None or "error" in result:
        err = [line for line in done.stderr.strip().splitlines() if line.strip()]
        why = result["error"] if result else (err[-1] if err else "no output")
        raise RuntimeError(f"exit code {done.returncode}: {why}")
    return result


def report(r: dict[str, Result], args: argparse.Namespace, made: str) -> dict:
    """Print the table and the ratios (``n/a`` where a case they need failed); return both."""
    batch = args.batch_size or next((x["batch"] for x in r.values() if x.get("batch")), None)
    print(
        f"clip: {args.clip.name}{made}, batch {batch or 'default'}; naive and model-alone on "
        f"the first {args.naive_seconds:g} s\n"
    )
    print("| case | frames | seconds | frames/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for name, x in r.items():
        if "error" in x:
            print(f"| {name} | error: {x['error']} | | | |")
            continue
        print(
            f"| {name} | {x['frames']} | {x['seconds']:.2f} | {x['fps']:.1f} | "
            f"{x['peak_rss_mb']:.0f} |"
        )
    fps = {name: value(r, name, "fps") for name in CASES}
    floor, alone = fps["io-floor"], fps["model"]
    per_frame = 1 / floor + 1 / alone if floor and alone else None
    ratios = {
        "render vs naive (target >= 2; 1080p on a GPU: >= 5)": ratio(fps["render"], fps["naive"]),
        "render vs I/O floor (1080p on a GPU: target >= 0.8)": ratio(fps["render"], floor),
        "render --temporal vs without (target >= 0.8)": ratio(
            fps["render-temporal"], fps["render"]
        ),
        "render time / (I/O floor + model alone) (target <= 1.2)": ratio(
            1 / fps["render"] if fps["render"] else None, per_frame
        ),
        "peak RSS whole clip / 10 s render, --temporal (target <= 1.2)": ratio(
            value(r, "render-temporal", "peak_rss_mb"), value(r, "render-10s", "peak_rss_mb")
        ),
    }
    print()
    for k, v in ratios.items():
        print(f"- {k}: {fmt(v)}")
    return {"clip": str(args.clip), "cases": r, "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SHARED_CLIP)
    parser.add_argument("--model", type=Path, help="default: the bundled model")
    parser.add_argument("--batch-size", type=int, help="default: render's (4 CPU, 16 CUDA)")
    parser.add_argument(
        "--naive-seconds",
        type=float,
        default=10.0,
        help="the naive way and the model alone run on this much of the clip",
    )
    parser.add_argument(
        "--model-seconds",
        type=float,
        default=5.0,
        help="time the model alone for at least this long (whole passes)",
    )
    parser.add_argument(
        "--make-1080p",
        type=Path,
        metavar="PATH",
        help="write the clip's start at 1920x1080 here first and benchmark it",
    )
    parser.add_argument(
        "--make-seconds", type=float, default=20.0, help="how much of the clip --make-1080p takes"
    )
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, in order")
    parser.add_argument("--case-timeout", type=float, help="seconds before a case is stopped")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # a child process: one JSON line, figures or the error
        model = str(args.model) if args.model else None
        try:
            result = run_case(
                args.case, args.clip, model, args.batch_size, args.naive_seconds, args.model_seconds
            )
        except Exception as e:
            print(json.dumps({"case": args.case, "error": one_line(e)}))
            raise SystemExit(1) from None
        print(json.dumps(result))
        return
    stop_on_signals()
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    made, failed = "", None
    if args.make_1080p:
        target = args.make_1080p.resolve()
        if target.is_relative_to(ROOT):
            parser.error(
                f"--make-1080p {args.make_1080p}: write it outside the repository "
                "(a temporary or work folder)"
            )
        t0 = time.perf_counter()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            n = make_upscaled(args.clip, target, args.make_seconds)
        except Exception as e:  # no input: every case says why
            failed = {"error": f"--make-1080p failed: {one_line(e)}"}
        else:
            made = (
                f" ({n} frames of {args.clip.name} at {UPSCALE[0]}x{UPSCALE[1]}, made in "
                f"{time.perf_counter() - t0:.1f} s)"
            )
        args.clip = target
    if failed:
        r = {name: dict(failed) for name in names}
    else:
        r = run_cases({name: (lambda name=name: spawn(name, args)) for name in names})
    summary = report(r, args, made)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if any_failed(r):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
