"""Colour quality and flicker on shots a model never saw, in one run on the shared clip.

A scene-aware dataset of the clip (spongebob preset, seed 4: four shots train, one is the
validation shot, one is held out as test). Two generators are trained on it with the same
budget and the project's own training: the GAN (adversarial + 100 x L1) and an L1-only one (no
adversarial loss). Each renders the whole clip without and with ``--temporal``; the held-out
shot of every render is scored against the original with ``vidcolor eval``'s metrics, beside
the gray input itself.
Usage:

    python benchmarks/bench_quality.py [--epochs 150] [--pretrain-epochs 20] [--json out.json]
                                       [--keep DIR]

``--keep DIR`` keeps the dataset, the models and the renders there (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from vidcolor.color import gray_rgb
from vidcolor.data.dataset_build import BuildOptions, build_dataset
from vidcolor.data.scenes import scene_of
from vidcolor.evaluate import Evaluation
from vidcolor.models import ModelConfig
from vidcolor.render.streaming import Colorizer, render_video
from vidcolor.runtime import setup_distributed
from vidcolor.train.loop import TrainConfig, start_run
from vidcolor.video import VideoReader

CLIP = Path(__file__).resolve().parents[2] / "shared" / "media" / "bbb_360p_60s.mp4"


def score(clip: Path, output: Path | None, unseen: set[int], cuts: list[int]) -> dict:
    """Scores over the held-out shots' frames (``output`` None: the gray input)."""
    with VideoReader(clip) as rt:
        ev = Evaluation(frame_rate=rt.info.frame_rate)
        ro = iter(VideoReader(output)) if output is not None else None
        for ft in rt:
            fo = next(ro) if ro is not None else None
            if scene_of(ft.index, cuts) in unseen:
                ev.push(ft.index, fo.image if fo is not None else gray_rgb(ft.image), ft.image)
    report = ev.report()
    report.pop("per_scene")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--epochs", type=int, default=150, help="total epochs of each model")
    parser.add_argument("--pretrain-epochs", type=int, default=20, help="the GAN's L1 warm-up")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="keep the data, models and renders here")
    args = parser.parse_args()
    dist_info = setup_distributed("cpu")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name) if args.keep is None else args.keep
        tmp.mkdir(parents=True, exist_ok=True)
        manifest = build_dataset([args.clip], tmp / "data", BuildOptions("spongebob", seed=4))
        cuts = manifest["sources"][0]["cuts"]
        seen = {f["scene"] for f in manifest["frames"] if f["split"] != "test"}
        unseen = {f["scene"] for f in manifest["frames"] if f["split"] == "test"} - seen
        small = ModelConfig(base_width=32, depth=6)
        models = {
            "GAN (adversarial + 100 x L1)": TrainConfig(
                data=str(tmp / "data"),
                size=224,
                batch_size=8,
                model=small,
                pretrain_epochs=args.pretrain_epochs,
                epochs=args.epochs - args.pretrain_epochs,
            ),
            "L1 only": TrainConfig(
                data=str(tmp / "data"),
                size=224,
                batch_size=8,
                model=small,
                pretrain_epochs=args.epochs,
                epochs=0,
            ),
        }
        rows: list[dict] = [{"name": "gray input", **score(args.clip, None, unseen, cuts)}]
        for name, cfg in models.items():
            run = tmp / name.split()[0]
            t0 = time.perf_counter()
            start_run(cfg, run, dist_info, workers=1).fit()
            trained = time.perf_counter() - t0
            for temporal in (False, True):
                out = tmp / f"{run.name}_{temporal}.mp4"
                t0 = time.perf_counter()
                render_video(args.clip, out, Colorizer(run / "model.pt", "cpu"), temporal=temporal)
                rows.append(
                    {
                        "name": name + (", --temporal" if temporal else ""),
                        "train_s": trained,
                        "render_s": time.perf_counter() - t0,
                        **score(args.clip, out, unseen, cuts),
                    }
                )
    frames = rows[0]["frames"]
    print(
        f"{args.clip.name}: {len(unseen)} held-out shots, {frames} frames; "
        f"{args.epochs} epochs per model\n"
    )
    print(
        "| | PSNR dB | SSIM | colourfulness / original | warping error / original "
        "| CDC | render s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        render = f"{r['render_s']:.0f}" if "render_s" in r else ""
        print(
            f"| {r['name']} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
            f"{r['colourfulness_ratio']:.2f} | {r['warp_error_ratio']:.3f} | "
            f"{r['cdc_output']:.5f} | {render} |"
        )
    print(f"\nthe original's own CDC: {rows[0]['cdc_original']:.5f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
