"""Colour keyframes on shots the model never saw: does one key per shot bring the colour back?

The bundled default model trained on the shared clip's first 45 s; its last shots (from
47.71 s) are unseen. For each of them one key is given, the shot's first frame and then its
middle frame (the original colour frame), and the rest of the shot is scored against the
original (the keys themselves left out): the gray input, the render without keys,
``--keyframes``, and ``--keyframes --adapt ADAPT`` (the model first tuned on the keys). Also
the render time with keys against without. Usage:

    python benchmarks/bench_keyframes.py [--clip ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from common import SHARED_CLIP, Result, any_failed, fmt, ratio, run_cases, stop_on_signals

from vidcolor import stages
from vidcolor.color import gray_rgb
from vidcolor.evaluate import Evaluation
from vidcolor.options import RenderOptions
from vidcolor.scenes import detect_scenes
from vidcolor.video import VideoReader

UNSEEN_FROM = Fraction(47_708, 1000)  # a keyframe of the source, the first unseen shot's start
ADAPT = 30.0  # seconds of --adapt
SIDES = ("gray input", "without keys", "--keyframes (first frame)", "--keyframes (middle)",
         f"--adapt {ADAPT:g} (first frame)", f"--adapt {ADAPT:g} (middle)",
         f"--adapt {ADAPT:g}, key in shot 1 only: shot 2")


def cut_unseen(clip: Path, out: Path) -> list[tuple[int, int]]:
    """``clip`` from UNSEEN_FROM to its end into ``out`` (packets copied); the (first, last)
    frames of its shots of a second or more."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
    from sample_clip import cut

    cut(clip, out, UNSEEN_FROM, Fraction(10**6))  # to the end of the stream
    return [(s.start_frame, s.end_frame) for s in detect_scenes(out, 8)
            if s.end_frame - s.start_frame >= 24]  # fmt: skip


def write_keys(src: Path, folder: Path, frames: set[int]) -> None:
    """The original colour frames ``frames`` of ``src`` as keys named by frame number."""
    folder.mkdir()
    with VideoReader(src) as reader:
        for frame in reader:
            if frame.index in frames:
                path = folder / f"frame_{frame.index:06d}.png"
                cv2.imwrite(str(path), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))


def scores(original: Path, output: Path | None, shots: list[tuple[int, int]], keys: set[int],
           frame_rate: float | Fraction = 24, width: int | None = None) -> Result:  # fmt: skip
    """PSNR, colourfulness and warping error (each against the original's) over the shots'
    frames, keys left out; each run of consecutive frames is its own sequence. ``width``:
    both sides scaled to it first (optical flow at 720p costs seconds a frame on a CPU)."""
    runs: list[Evaluation] = []
    current: Evaluation | None = None
    last = -2
    readers = [VideoReader(original)] + ([VideoReader(output)] if output else [])
    try:
        streams = [iter(r) for r in readers]
        for truth in streams[0]:
            out = next(streams[1]).image if output else gray_rgb(truth.image)
            i = truth.index
            if i in keys or not any(a <= i <= b for a, b in shots):
                continue
            if i != last + 1 or any(a == i for a, _ in shots):
                current = Evaluation(frame_rate=frame_rate)
                runs.append(current)
            image = truth.image
            if width:
                size = (width, round(width * image.shape[0] / image.shape[1]))
                image, out = (cv2.resize(x, size, interpolation=cv2.INTER_AREA)
                              for x in (image, out))  # fmt: skip
            current.push(i, out, image)
            last = i
    finally:
        for r in readers:
            r.close()
    frames = [f for r in runs for f in r.frames]
    pairs = [p for r in runs for p in r.pairs if not np.isnan(p["output"])]  # NaN: none trusted
    colour = sum(f["colourfulness"] for f in frames) / len(frames)
    colour_orig = sum(f["colourfulness_original"] for f in frames) / len(frames)
    warp = float(np.mean([p["output"] for p in pairs])) if pairs else None
    warp_orig = float(np.mean([p["original"] for p in pairs])) if pairs else None
    return {"frames": len(frames), "psnr": float(np.mean([f["psnr"] for f in frames])),
            "colourfulness_ratio": colour / colour_orig,
            "warp_ratio": ratio(warp, warp_orig)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SHARED_CLIP)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    stop_on_signals()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "unseen.mp4"
        shots = cut_unseen(args.clip, src)
        keys = {"first": {a for a, _ in shots}, "middle": {(a + b) // 2 for a, b in shots}}
        renders: dict[str, float] = {}

        def render(name: str, key_frames: set[int] | None, adapt: float = 0) -> Path:
            folder = None
            if key_frames is not None:
                folder = tmp / f"keys_{name}"
                write_keys(src, folder, key_frames)
            out = tmp / f"{name}.mp4"
            t0 = time.perf_counter()
            stages.render(src, out, RenderOptions(keyframes=folder, adapt=adapt))
            renders[name] = time.perf_counter() - t0
            return out

        def side(name: str, key_frames: set[int] | None, left_out: set[int], adapt: float = 0,
                 scored: list[tuple[int, int]] | None = None) -> Result:  # fmt: skip
            out = None if name == "gray" else render(name, key_frames, adapt)
            result = scores(src, out, scored or shots, left_out)
            if name in renders:
                result["render_s"] = renders[name]
            return result

        def unkeyed_shot() -> Result:
            """One key in the first shot's middle, then the second shot alone scored: what
            --adapt gives a shot without a key (against no keys on the same frames)."""
            result = side("adapt_other", {sum(shots[0]) // 2}, every_key, ADAPT, shots[1:])
            result["without_keys"] = scores(src, tmp / "plain.mp4", shots[1:], every_key)
            return result

        every_key = keys["first"] | keys["middle"]  # scored on the same frames, side by side
        cases = {
            SIDES[0]: lambda: side("gray", None, every_key),
            SIDES[1]: lambda: side("plain", None, every_key),
            SIDES[2]: lambda: side("first", keys["first"], every_key),
            SIDES[3]: lambda: side("middle", keys["middle"], every_key),
            SIDES[4]: lambda: side("adapt_first", keys["first"], every_key, ADAPT),
            SIDES[5]: lambda: side("adapt_middle", keys["middle"], every_key, ADAPT),
            SIDES[6]: unkeyed_shot,
        }
        r = run_cases(cases)
    print(f"\nshots {shots} of {src.name} (from {float(UNSEEN_FROM):.3f} s of {args.clip.name}); "
          "keys left out of the scores\n")  # fmt: skip
    print("| | frames | PSNR dB | colourfulness / original | warping error / original | "
          "render s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for name in SIDES:
        x = r[name]
        if "error" in x:
            print(f"| {name} | error: {x['error']} | | | | |")
            continue
        print(f"| {name} | {x['frames']} | {fmt(x['psnr'])} | {fmt(x['colourfulness_ratio'])} | "
              f"{fmt(x['warp_ratio'], '.3f')} | {fmt(x.get('render_s'), '.1f')} |")  # fmt: skip
    plain = r[SIDES[1]]
    if "error" not in r[SIDES[6]]:
        x, y = r[SIDES[6]], r[SIDES[6]]["without_keys"]
        print(f"{SIDES[6]}: PSNR {x['psnr']:.2f} dB, colourfulness {x['colourfulness_ratio']:.2f}"
              f", warping error {x['warp_ratio']:.3f}; without keys on the same frames "
              f"{y['psnr']:.2f} dB, {y['colourfulness_ratio']:.2f}, "
              f"{y['warp_ratio']:.3f}")  # fmt: skip
    for name in SIDES[2:6]:
        x = r[name]
        if "error" not in x and "error" not in plain:
            gain, speed = x["psnr"] - plain["psnr"], ratio(plain["render_s"], x["render_s"])
            print(f"{name}: PSNR {gain:+.2f} dB against no keys (target +4), speed "
                  f"{fmt(speed)}x of no keys (target 0.7 without --adapt)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"shots": shots, "cases": r}, indent=2))
    if any_failed(r):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
