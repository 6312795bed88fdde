"""I/O floor: how fast frames come out of (and go back into) a video, and at what memory.

Every later stage (extract, dataset build, render) is compared against these figures. Each case
runs in a fresh subprocess so its peak RSS is its own. Usage:

    python benchmarks/bench_io.py [--clip ../shared/media/bbb_360p_60s.mp4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLIP = Path(__file__).resolve().parents[2] / "shared" / "media" / "bbb_360p_60s.mp4"

CASES = {
    "pyav-plain-rgb": "baseline: PyAV's defaults, decode + to_ndarray('rgb24')",
    "reader-rgb": "VideoReader, RGB frames (frame-threaded decode)",
    "reader-gray": "VideoReader, gray frames",
    "encode-h264-medium": "VideoReader -> VideoWriter, x264 crf 18 preset medium, audio copied",
    "encode-h264-veryfast": "VideoReader -> VideoWriter, x264 crf 18 preset veryfast, audio copied",
    "naive-png": "baseline for extract: decode, cv2.imwrite each frame (defaults), one thread",
    "extract-png": "vidcolor extract: every frame to PNG + manifest",
}


def run_case(name: str, clip: Path, seconds: float | None) -> dict:
    """Run one case in this process; return frames, wall seconds and peak RSS."""
    import av

    from vidcolor.data.extract import ExtractOptions, FrameExtractor
    from vidcolor.video import EncodeOptions, VideoReader, VideoWriter

    t0 = time.perf_counter()
    frames = 0
    if name == "pyav-plain-rgb":
        with av.open(str(clip)) as c:
            for f in c.decode(video=0):
                if seconds is not None and f.time >= seconds:
                    break
                f.to_ndarray(format="rgb24")
                frames += 1
    elif name.startswith("reader-"):
        with VideoReader(clip, gray=name.endswith("gray"), end=seconds) as r:
            frames = sum(1 for _ in r)
    elif name.startswith("encode-"):
        preset = name.rsplit("-", 1)[1]
        with tempfile.TemporaryDirectory() as tmp, VideoReader(clip, end=seconds) as r:
            out = Path(tmp) / "out.mp4"
            with VideoWriter.like(r.info, out, EncodeOptions(preset=preset)) as w:
                for f in r:
                    w.write(f.image, f.pts, f.duration)
                    frames += 1
    elif name == "naive-png":
        import cv2

        with tempfile.TemporaryDirectory() as tmp, av.open(str(clip)) as c:
            for f in c.decode(video=0):
                if seconds is not None and f.time >= seconds:
                    break
                cv2.imwrite(f"{tmp}/{frames:06d}.png", f.to_ndarray(format="bgr24"))
                frames += 1
    elif name == "extract-png":
        with tempfile.TemporaryDirectory() as tmp:
            opts = ExtractOptions(end=seconds)
            with FrameExtractor(clip, Path(tmp) / "f", opts) as job:
                frames = sum(1 for _ in job)
    else:
        raise SystemExit(f"unknown case {name}")
    return case_result(name, frames, t0)


def case_result(name: str, frames: int, t0: float) -> dict:
    """A timed case's record: frames, wall seconds since ``t0``, frames/s, this process's peak
    RSS."""
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "case": name,
        "frames": frames,
        "seconds": wall,
        "fps": frames / wall,
        "peak_rss_mb": peak_mb,
    }


def median_run(cmd: list[str], repeat: int) -> dict:
    """Median (by wall time) of ``repeat`` fresh processes of ``cmd``, each printing its
    record as the last line: 2-core timings jitter ~10%."""
    runs = []
    for _ in range(repeat):
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    runs.sort(key=lambda r: r["seconds"])
    return runs[(len(runs) - 1) // 2]


def spawn(name: str, clip: Path, seconds: float | None, repeat: int) -> dict:
    cmd = [sys.executable, __file__, "--clip", str(clip), "--case", name]
    if seconds is not None:
        cmd += ["--seconds", str(seconds)]
    return median_run(cmd, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median kept)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.clip, args.seconds)))
        return
    if not args.clip.exists():
        raise SystemExit(f"clip not found: {args.clip}")
    results = [spawn(name, args.clip, None, args.repeat) for name in CASES]
    # Memory must not grow with length: the same work on the first 6 s of the clip.
    short = {
        n: spawn(n, args.clip, 6.0, args.repeat) for n in ("reader-rgb", "encode-h264-veryfast")
    }
    base = {r["case"]: r["fps"] for r in results}
    baseline_of = {n: "naive-png" if "png" in n else "pyav-plain-rgb" for n in CASES}
    print(f"clip: {args.clip.name}\n")
    print("| case | frames | seconds | frames/s | vs its baseline | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        ratio = r["fps"] / base[baseline_of[r["case"]]]
        print(
            f"| {r['case']} | {r['frames']} | {r['seconds']:.2f} | {r['fps']:.0f} | "
            f"{ratio:.2f}x | {r['peak_rss_mb']:.0f} |"
        )
    print("\n| case | peak RSS 6 s | peak RSS 60 s | ratio |")
    print("|---|---:|---:|---:|")
    for name, s in short.items():
        full = next(r for r in results if r["case"] == name)
        ratio = full["peak_rss_mb"] / s["peak_rss_mb"]
        print(f"| {name} | {s['peak_rss_mb']:.0f} | {full['peak_rss_mb']:.0f} | {ratio:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "short": short}, indent=2))


if __name__ == "__main__":
    main()
