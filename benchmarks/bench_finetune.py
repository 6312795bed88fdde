"""Fine-tuning against training from scratch, with the same budget: `vidcolor train --init
default` and a new run of the same architecture, and `--init imagenet` (the second bundled
model), all on frames the bundled models never saw (the README's sample shot, 47.7 s to 56.1 s
of the shared clip), validated every few steps; one plot of the runs' validation L1 and PSNR.
Usage:

    python benchmarks/bench_finetune.py [--clip ...] [--epochs 10] [--plot docs/finetune.png]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

from bench_keyframes import cut_unseen
from common import ROOT, SHARED_CLIP, run_cases, stop_on_signals

sys.path.insert(0, str(ROOT / "pipelines"))
from sample_clip import END, START

from vidcolor import stages
from vidcolor.bundled import default_model
from vidcolor.options import ExtractOptions, ExtractStage, ModelConfig, TrainConfig, TrainStage
from vidcolor.schema import checked_value
from vidcolor.train.checkpoint import load_model

# The sample shot alone: the bundled model trains on the clip's last shot, right after it.
SAMPLE_SHOT = END - START


def curve(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return [
            {"step": int(r["step"]), "val_L1": float(r["val_L1"]), "val_PSNR": float(r["val_PSNR"])}
            for r in csv.DictReader(f)
            if r["val_L1"]
        ]


def plot(curves: dict[str, list[dict]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, rows in curves.items():
        steps = [r["step"] for r in rows]
        axes[0].plot(steps, [r["val_L1"] for r in rows], "o-", label=name)
        axes[1].plot(steps, [r["val_PSNR"] for r in rows], "o-", label=name)
    axes[0].set_title("validation L1 (ab, model scale): lower is better")
    axes[1].set_title("validation PSNR (dB): higher is better")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SHARED_CLIP)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--every", type=int, default=4, help="steps between validations")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "finetune.png")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    # The bundled model's architecture: the run from scratch is the same network.
    bundled = checked_value(load_model(default_model())[1]["model"], ModelConfig, "model")
    stop_on_signals()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cut_unseen(args.clip, tmp / "unseen.mp4", seconds=SAMPLE_SHOT)
        stages.extract(
            tmp / "unseen.mp4", tmp / "frames", ExtractStage(ExtractOptions(fps=4, size=256))
        )
        base = TrainConfig(
            data=str(tmp / "frames"),
            size=224,
            epochs=args.epochs,
            batch_size=8,
            val_fraction=0.25,
            checkpoint_every=args.every,
            model=bundled,
        )

        def run(name: str, init: str) -> dict:
            model = ModelConfig() if init else bundled  # a model to tune brings its own
            cfg = TrainConfig(**{**base.to_dict(), "model": model, "init": init})
            # The same budget and settings: fine-tuning's lr and D warm-up come with --init.
            stages.train(tmp / name, TrainStage(cfg, "auto", 2))
            rows = curve(tmp / name)
            return {"curve": rows, "final": rows[-1]}

        r = run_cases(
            {
                "from scratch": lambda: run("scratch", ""),
                "--init default": lambda: run("tuned", "default"),
                "--init imagenet": lambda: run("tuned_imagenet", "imagenet"),
            }
        )
    curves = {k: v["curve"] for k, v in r.items() if "curve" in v}
    if curves:
        plot(curves, args.plot)
    print("\n| same budget | validations | final val L1 | final val PSNR dB |")
    print("|---|---:|---:|---:|")
    for name, x in r.items():
        if "error" in x:
            print(f"| {name} | error: {x['error']} | | |")
            continue
        f = x["final"]
        print(f"| {name} | {len(x['curve'])} | {f['val_L1']:.4f} | {f['val_PSNR']:.2f} |")
    print(f"plot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
