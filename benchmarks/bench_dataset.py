"""Dataset build speed against plain decoding, and the built shards' loader against training.

Each timed case runs in a fresh subprocess (median of ``--repeat``) so its peak RSS is its own:

- plain-decode: PyAV decodes every frame with the same threading as VideoReader, converts
  nothing: the floor any pass over the file pays.
- scenes: shot detection alone (``vidcolor scenes``).
- build-<preset>: ``vidcolor dataset build`` on the clip, from scratch, written to a temp folder.

Then, in this process: images/s the training data loader delivers from the built shards (0 and
2 worker processes), against images/s of full GAN training steps at the preset's crop size.
Usage:

    python benchmarks/bench_dataset.py [--clip ../shared/media/bbb_360p_60s.mp4] [--json out]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_io import case_result, median_run

CLIP = Path(__file__).resolve().parents[2] / "shared" / "media" / "bbb_360p_60s.mp4"
CASES = ("plain-decode", "scenes", "build-spongebob", "build-sc2")


def run_case(name: str, clip: Path, seconds: float | None) -> dict:
    from vidcolor.data.dataset_build import BuildOptions, build_dataset
    from vidcolor.data.scenes import detect_scenes
    from vidcolor.video.probe import open_container

    t0 = time.perf_counter()
    frames = 0
    if name == "plain-decode":
        with open_container(clip) as c:
            for f in c.decode(c.streams.video[0]):
                if seconds is not None and f.time >= seconds:
                    break
                frames += 1
    elif name == "scenes":
        frames = sum(s.end_frame - s.start_frame + 1 for s in detect_scenes(clip))
    elif name.startswith("build-"):
        preset = name.split("-", 1)[1]
        with tempfile.TemporaryDirectory() as tmp:
            manifest = build_dataset([clip], Path(tmp) / "data", BuildOptions(preset))
            frames = sum(s["frames"] for s in manifest["sources"])
    else:
        raise SystemExit(f"unknown case {name}")
    return case_result(name, frames, t0)


def spawn(name: str, clip: Path, repeat: int) -> dict:
    return median_run([sys.executable, __file__, "--clip", str(clip), "--case", name], repeat)


def loader_rate(dataset: object, batch: int, workers: int, batches: int) -> float:
    """Images/s the loader delivers from the shards (memory map, resize, crop, flip, collate),
    epoch after epoch: a built set of one short clip holds only a few batches."""
    from torch.utils.data import DataLoader

    loader = DataLoader(
        dataset,
        batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    next(iter(loader))  # worker start-up is paid once a run; not part of the rate
    n, t0 = 0, time.perf_counter()
    while n < batches * batch:
        for images in loader:
            n += images.shape[0]
    return n / (time.perf_counter() - t0)


def loader_against_training(clip: Path, steps: int) -> list[dict]:
    """Loader images/s from built shards against training steps' images/s, per preset size."""
    from bench_train import step_rate

    from vidcolor.data.dataset_build import PRESETS, BuildOptions, build_dataset
    from vidcolor.models import ModelConfig
    from vidcolor.runtime import setup_distributed
    from vidcolor.train.loop import TrainConfig, Trainer

    dist_info = setup_distributed("auto")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("spongebob", "sc2"):
            data = Path(tmp) / preset
            build_dataset([clip], data, BuildOptions(preset))
            size = PRESETS[preset].size
            for name, model in (
                ("default", ModelConfig()),
                ("small", ModelConfig(base_width=32, depth=6)),
            ):
                cfg = TrainConfig(data=str(data), size=size, batch_size=8, model=model)
                trainer = Trainer(cfg, Path(tmp) / "run", dist_info, workers=2)
                train = step_rate(trainer, steps)
                load = {w: loader_rate(trainer.train_set, 8, w, batches=24) for w in (0, 2)}
                results.append(
                    {
                        "preset": preset,
                        "size": size,
                        "model": name,
                        "train_images_per_s": train,
                        "loader_images_per_s": load,
                    }
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median kept)")
    parser.add_argument("--steps", type=int, default=3, help="training steps timed")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.clip, None)))
        return
    if not args.clip.exists():
        raise SystemExit(f"clip not found: {args.clip}")
    results = [spawn(name, args.clip, args.repeat) for name in CASES]
    base = results[0]["fps"]
    print(f"clip: {args.clip.name}\n")
    print("| case | frames | seconds | frames/s | vs plain decode | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['case']} | {r['frames']} | {r['seconds']:.2f} | {r['fps']:.0f} | "
            f"{r['fps'] / base:.2f}x | {r['peak_rss_mb']:.0f} |"
        )
    feed = loader_against_training(args.clip, args.steps)
    print(
        "\n| preset (crop) | model | training images/s | loader images/s, 0 workers "
        "| 2 workers | loader / training |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for r in feed:
        load = r["loader_images_per_s"]
        train = r["train_images_per_s"]
        print(
            f"| {r['preset']} ({r['size']}) | {r['model']} | {train:.2f} | "
            f"{load[0]:.0f} | {load[2]:.0f} | {load[0] / train:.0f}x |"
        )
    if args.json:
        args.json.write_text(json.dumps({"build": results, "loader": feed}, indent=2))


if __name__ == "__main__":
    main()
