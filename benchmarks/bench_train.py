"""Training throughput: images/s of a training step against the data loader on its own.

The loader must never be what training waits for. Frames come from the shared clip (extracted
once into a temporary folder). Usage:

    python benchmarks/bench_train.py [--clip ...] [--steps 6] [--device auto] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from vidcolor.extract import ExtractOptions, FrameExtractor
from vidcolor.models import ModelConfig
from vidcolor.runtime import setup_distributed
from vidcolor.train import TrainConfig, Trainer

CLIP = Path(__file__).resolve().parents[2] / "shared" / "media" / "bbb_360p_60s.mp4"
CONFIGS = {
    "default (width 64, depth 8, PatchGAN)": ModelConfig(),
    "small (width 32, depth 6, PatchGAN)": ModelConfig(base_width=32, depth=6),
}


def loader_rate(trainer: Trainer, workers: int, batches: int) -> float:
    """Images/s the loader alone delivers (decode PNG, resize, crop, flip, collate)."""
    loader = DataLoader(trainer.train_set, trainer.cfg.batch_size, shuffle=True,
                        num_workers=workers, drop_last=True)  # fmt: skip
    it = iter(loader)
    next(it)  # worker start-up is paid once an epoch; not part of the rate
    t0, n = time.perf_counter(), 0
    for _ in range(batches):
        n += next(it).shape[0]
    return n / (time.perf_counter() - t0)


def step_rate(trainer: Trainer, steps: int) -> float:
    """Images/s of full GAN steps (D and G) on one fixed batch: model time only."""
    batch = next(iter(DataLoader(trainer.train_set, trainer.cfg.batch_size)))
    trainer.train_step(batch, adversarial=True)  # warm-up (allocations, cuDNN autotune)
    if trainer.dist.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch, adversarial=True)
    if trainer.dist.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch.shape[0] / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    dist_info = setup_distributed(args.device)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        frames = Path(tmp) / "frames"
        with FrameExtractor(args.clip, frames, ExtractOptions(fps=4)) as job:
            count = sum(1 for _ in job)
        print(f"{count} frames of {args.clip.name}; device {dist_info.device}; "
              f"size {args.size}; batch {args.batch_size}\n")  # fmt: skip
        for name, model in CONFIGS.items():
            cfg = TrainConfig(data=str(frames), size=args.size, batch_size=args.batch_size,
                              model=model)  # fmt: skip
            trainer = Trainer(cfg, Path(tmp) / "run", dist_info, workers=args.workers)
            params = sum(p.numel() for p in trainer.G.parameters()) / 1e6
            results.append({"config": name, "G_params_M": round(params, 1),
                            "train_images_per_s": step_rate(trainer, args.steps)})  # fmt: skip
        load = {w: loader_rate(trainer, w, batches=8) for w in (0, args.workers)}
    print("| configuration | G params | training images/s |")
    print("|---|---:|---:|")
    for r in results:
        print(f"| {r['config']} | {r['G_params_M']}M | {r['train_images_per_s']:.2f} |")
    print("\n| data loader | images/s | x the default's training rate |")
    print("|---|---:|---:|")
    base = results[0]["train_images_per_s"]
    for w, rate in load.items():
        print(f"| {w} worker process(es) | {rate:.0f} | {rate / base:.0f}x |")
    if args.json:
        args.json.write_text(json.dumps({"train": results, "loader": load}, indent=2))


if __name__ == "__main__":
    main()
