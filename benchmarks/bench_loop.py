"""The mission's loop on recorded footage: a recipe builds a dataset from episodes 1..N-1, trains,
and renders episode N, which the model never saw; then episode N is rendered again with
``--keyframes``, one original colour frame at the middle of each shot.

Scored against the original over the frames of episode N's shots, the keys left out (the same
frames for every side): the gray input, the recipe's render, the keyed render. PSNR,
colourfulness as a share of the original's, and warping error as a multiple of the original's.
One picture: a frame from each of three shots, gray | colour | colour with keys | original.

    python benchmarks/bench_loop.py pipelines/cartoon_game.toml [--init default | --init '']
        [--work bench-out/loop/cartoon_scratch] [--picture docs/loop_cartoon.jpg] [--json F]

Recorded footage first: ``python benchmarks/footage/make_footage.py``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import cv2
import numpy as np
from bench_keyframes import scores, write_keys
from common import ROOT, report_json, stop_on_signals

from vidcolor import stages
from vidcolor.color import gray_rgb
from vidcolor.data.scenes import detect_scenes
from vidcolor.options import RenderOptions
from vidcolor.video import VideoReader

MIN_SHOT = 24  # frames: shorter shots (a flash, a fade's tail) get no key and no score
TILE = 320  # px: the picture's tile width
SCORE_WIDTH = 320  # px: every side is scored at this width (optical flow's cost)


def run_recipe(recipe: Path, work: Path, sets: list[str]) -> float:
    """``vidcolor pipeline run`` as a user runs it; returns its wall time in seconds."""
    cmd = [sys.executable, "-m", "cli", "pipeline", "run", str(recipe), "--set", f"work={work}"]
    for item in sets:
        cmd += ["--set", item]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    return time.perf_counter() - t0


def picture(videos: list[Path], frames: list[int], path: Path) -> None:
    """One row per frame in ``frames``: gray | each of ``videos[1:]`` | ``videos[0]``."""
    wanted: dict[int, list[np.ndarray]] = {i: [] for i in frames}
    for video in videos:
        with VideoReader(video) as reader:
            for frame in reader:
                if frame.index in wanted:
                    wanted[frame.index].append(frame.image)
    rows = []
    for i in frames:
        original, *renders = wanted[i]
        tiles = [gray_rgb(original), *renders, original]
        h = round(TILE * original.shape[0] / original.shape[1])
        rows.append(
            np.hstack([cv2.resize(t, (TILE, h), interpolation=cv2.INTER_AREA) for t in tiles])
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(
        str(path), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--init", help="train.init for the recipe: default, or '' for scratch")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="more recipe overrides, as for vidcolor pipeline run",
    )
    parser.add_argument("--work", type=Path, help="the recipe's work folder (default: its own)")
    parser.add_argument("--picture", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    stop_on_signals()
    recipe = tomllib.loads(args.recipe.read_text())
    work = (args.work or args.recipe.parent / recipe["work"]).resolve()
    episode = (args.recipe.parent / recipe["render"]["inputs"][0]).resolve()
    sets = [f"train.init={args.init}"] * (args.init is not None) + args.set
    init = recipe["train"].get("init", "") if args.init is None else args.init
    pipeline_s = run_recipe(args.recipe.resolve(), work, sets)

    model, plain = work / "train" / "model.pt", work / "render" / episode.name
    shots = [
        (s.start_frame, s.end_frame)
        for s in detect_scenes(episode)
        if s.end_frame - s.start_frame >= MIN_SHOT
    ]
    keys = {(a + b) // 2 for a, b in shots}
    keyed, keyed_s = work / "render_keyed.mp4", None
    if not keyed.exists() or keyed.stat().st_mtime < model.stat().st_mtime:  # else: kept
        with tempfile.TemporaryDirectory(prefix="vidcolor-bench-loop-") as tmp:
            write_keys(episode, Path(tmp) / "keys", keys)
            t0 = time.perf_counter()
            options = RenderOptions(model=model, keyframes=Path(tmp) / "keys")
            stages.render(episode, keyed, options, overwrite=True)
            keyed_s = round(time.perf_counter() - t0)

    with VideoReader(episode) as reader:
        rate = reader.info.frame_rate
    result = {
        "recipe": str(args.recipe),
        "init": init or "scratch",
        "set": args.set,
        "episode": episode.name,
        "pipeline_s": round(pipeline_s),
        "keyed_render_s": keyed_s,
        "shots": len(shots),
        "scored_width": SCORE_WIDTH,
        "gray": scores(episode, None, shots, keys, rate, SCORE_WIDTH),
        "colour": scores(episode, plain, shots, keys, rate, SCORE_WIDTH),
        "colour_keyed": scores(episode, keyed, shots, keys, rate, SCORE_WIDTH),
    }
    if args.picture:
        longest = sorted(shots, key=lambda s: s[0] - s[1])[:3]
        frames = sorted((a + 3 * b) // 4 for a, b in longest)  # not a key: a quarter from the end
        picture([episode, plain, keyed], frames, args.picture)
    report_json(result, args.json)


if __name__ == "__main__":
    main()
