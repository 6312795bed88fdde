"""Colour keyframes on shots the model never saw: does one key per shot bring the colour back?

By default the clip is the shared one from 47.71 s: two shots, the README's sample shot, which
the bundled model never saw, and the clip's last, which it trains on since the fourth model
(``--seconds 8.372``: the unseen shot alone). ``--clip`` takes other footage (the recorded games of
``benchmarks/footage``: a side-scroller and a strategy game whose camera jumps), from
``--start`` for ``--seconds``. Keys are original colour frames: each shot's first frame, its
middle frame, and the frames ``vidcolor keys`` picks; each kind is rendered with the bundled
model with matching (the default) and with the flow carry alone (``--no-match``), and with
``--adapt`` unless ``--no-adapt``. Every side is scored against the original on the same
frames, every key left out: PSNR, colourfulness and warping error against the original's, and
the render time. Usage:

    python benchmarks/bench_keyframes.py [--clip F --start S --seconds D] [--width 320]
        [--no-adapt] [--only "first frame,vidcolor keys"] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from common import (
    SHARED_CLIP,
    Result,
    any_failed,
    fmt,
    ratio,
    report_json,
    run_cases,
    stop_on_signals,
)

from vidcolor import stages
from vidcolor.color import gray_rgb
from vidcolor.data.scenes import detect_scenes
from vidcolor.evaluate import Evaluation
from vidcolor.options import RenderOptions
from vidcolor.render.key_files import key_files
from vidcolor.render.key_picker import key_name
from vidcolor.video import VideoReader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
from sample_clip import START, cut, next_keyframe

UNSEEN_FROM = START  # the README's sample shot: the first shot the bundled model never saw
ADAPT = 30.0  # seconds of --adapt
MIN_SHOT = 24  # frames: shorter shots are neither keyed nor scored


def cut_unseen(
    clip: Path, out: Path, start: Fraction = UNSEEN_FROM, seconds: Fraction = Fraction(10**6)
) -> list[tuple[int, int]]:
    """``clip`` from the keyframe at or after ``start`` (default: the shared clip's unseen
    end), ``seconds`` long or up to the next keyframe after, into ``out`` (packets copied);
    the (first, last) frames of its shots of a second or more."""
    at = next_keyframe(clip, start)
    if at is None:
        raise SystemExit(f"{clip}: no keyframe after {float(start):.3f} s")
    cut(clip, out, at, at + seconds)
    return [
        (s.start_frame, s.end_frame)
        for s in detect_scenes(out, 8)
        if s.end_frame - s.start_frame >= MIN_SHOT
    ]


def write_keys(src: Path, folder: Path, frames: set[int]) -> None:
    """The original colour frames ``frames`` of ``src`` as keys named by frame number."""
    folder.mkdir()
    with VideoReader(src) as reader:
        for frame in reader:
            if frame.index in frames:
                path = folder / key_name(frame.index)
                cv2.imwrite(str(path), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))


def scores(
    original: Path,
    output: Path | None,
    shots: list[tuple[int, int]],
    keys: set[int],
    frame_rate: float | Fraction = 24,
    width: int | None = None,
) -> Result:
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
                image, out = (
                    cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (image, out)
                )
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
    return {
        "frames": len(frames),
        "psnr": float(np.mean([f["psnr"] for f in frames])),
        "colourfulness_ratio": colour / colour_orig,
        "warp_ratio": ratio(warp, warp_orig),
    }


CARRY = " (carry alone)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SHARED_CLIP)
    parser.add_argument(
        "--start", type=Fraction, help="seconds (default: 47.708 of the shared clip, else 0)"
    )
    parser.add_argument("--seconds", type=Fraction, default=Fraction(10**6))
    parser.add_argument("--width", type=int, help="score at this width (flow at 720p is slow)")
    parser.add_argument("--no-adapt", action="store_true", help="skip the --adapt cases")
    parser.add_argument("--only", help="comma-separated case names: run these alone")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    stop_on_signals()
    start = (
        args.start
        if args.start is not None
        else (UNSEEN_FROM if args.clip == SHARED_CLIP else Fraction(0))
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "unseen.mp4"
        shots = cut_unseen(args.clip, src, start, args.seconds)
        stages.pick_keys(src, tmp / "keys_picked")
        picked = set(key_files(tmp / "keys_picked"))
        keys = {
            "first": {a for a, _ in shots},
            "middle": {(a + b) // 2 for a, b in shots},
            "picked": picked,
        }
        every_key = set().union(*keys.values())  # scored on the same frames, side by side
        with VideoReader(src) as reader:
            rate = reader.info.frame_rate
        renders: dict[str, float] = {}

        def side(name: str, kind: str | None = None, **options: object) -> Result:
            out = None
            if name != "gray input":
                folder = None
                if kind is not None:
                    folder = tmp / f"keys_{kind}"
                    if not folder.exists():
                        write_keys(src, folder, keys[kind])
                out = tmp / f"{len(renders)}.mp4"
                t0 = time.perf_counter()
                stages.render(src, out, RenderOptions(keyframes=folder, **options))
                renders[name] = time.perf_counter() - t0
            result = scores(src, out, shots, every_key, rate, args.width)
            if name in renders:
                result["render_s"] = renders[name]
            return result

        cases = {
            "gray input": lambda: side("gray input"),
            "without keys": lambda: side("without keys"),
        }
        for kind, label in (
            ("first", "first frame"),
            ("middle", "middle frame"),
            ("picked", "vidcolor keys"),
        ):
            cases[label] = lambda k=kind, n=label: side(n, k)
            cases[label + CARRY] = lambda k=kind, n=label + CARRY: side(n, k, match=False)
            if not args.no_adapt and kind != "picked":
                name = f"{label}, --adapt {ADAPT:g}"
                cases[name] = lambda k=kind, n=name: side(n, k, adapt=ADAPT)
        if args.only:
            only = args.only.split(",")
            if unknown := [n for n in only if n not in cases]:
                raise SystemExit(f"--only: no case {unknown[0]!r}; the cases: {', '.join(cases)}")
            cases = {name: cases[name] for name in only}
        r = run_cases(cases)
    print(
        f"\n{args.clip.name} from the keyframe at or after {float(start):.3f} s: shots {shots}, "
        f"{len(picked)} keys picked; every key left out of the scores\n"
    )
    print(
        "| one key per shot | frames | PSNR dB | colourfulness / original | "
        "warping error / original | speed vs no keys |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    plain = r.get("without keys", {"error": "not run"})
    for name, x in r.items():
        if "error" in x:
            print(f"| {name} | error: {x['error']} | | | | |")
            continue
        gain = (
            ""
            if name in ("gray input", "without keys") or "error" in plain
            else (f" ({x['psnr'] - plain['psnr']:+.2f})")
        )
        speed = ratio(plain.get("render_s"), x.get("render_s"))
        speed_cell = f"{speed:.2f}x" if speed is not None else ""
        print(
            f"| {name} | {x['frames']} | {fmt(x['psnr'])}{gain} | "
            f"{fmt(x['colourfulness_ratio'])} | {fmt(x['warp_ratio'], '.3f')} | "
            f"{speed_cell} |"
        )
    report_json(
        {
            "clip": str(args.clip),
            "start": float(start),
            "shots": shots,
            "picked": sorted(picked),
            "cases": r,
        },
        args.json,
    )
    if any_failed(r):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
