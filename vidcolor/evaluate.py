"""`vidcolor eval`: colour quality and temporal consistency of a colorized video against its
colour original, the way the field measures them.

Per frame: PSNR and SSIM against the original, and the colourfulness (Hasler and Suesstrunk)
of both. Temporal: the warping error of Lai et al. (2018), for the output and for the original
itself (the floor that real motion and the flow's mistakes set), and the colour distribution
consistency (CDC: Jensen-Shannon divergence of per-channel histograms of frames 1, 2 and 4
apart). Frame pairs that straddle a cut (found on the original by the shot detector) are left
out of the temporal scores. Frames stream through: memory holds two frames and a few
histograms, however long the video.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from vidcolor.data.scenes import ShotDetector, scene_of
from vidcolor.errors import UserError
from vidcolor.metrics import (
    colourfulness,
    histograms,
    js_divergence,
    optical_flow,
    psnr_np,
    reliable,
    ssim,
    warp_error,
)

GAPS = (1, 2, 4)


class EvalError(UserError):
    """The two sides cannot be compared."""


@dataclass
class Evaluation:
    """Push (output, original) frame pairs in order; ``report()`` when done."""

    frame_rate: Fraction | float = 24
    temporal: bool = True  # False for frames that are not consecutive (a dataset split)
    frames: list[dict] = field(default_factory=list)
    pairs: list[dict] = field(default_factory=list)  # warping errors of (t, t+1)
    cdc: list[dict] = field(default_factory=list)  # divergences of (t, t+gap)

    def __post_init__(self) -> None:
        self._detector = ShotDetector(self.frame_rate) if self.temporal else None
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._hists: deque[tuple[int, np.ndarray, np.ndarray]] = deque(maxlen=max(GAPS))
        self._shape: tuple[int, ...] = ()

    def push(
        self, index: int, out: np.ndarray, truth: np.ndarray, scene: str | None = None
    ) -> None:
        """Frame ``index`` of both sides: HxWx3 uint8 RGB of the same size. ``scene``: where
        its scene is known beforehand (a dataset's frames); None: from the shot detector."""
        if min(truth.shape[:2]) < 12:
            raise EvalError(
                f"frame {index}: {truth.shape[1]}x{truth.shape[0]} is too small to "
                "score (12 pixels a side at least)"
            )
        if self.frames and truth.shape != self._shape:
            raise EvalError(
                f"frame {index}: {truth.shape[1]}x{truth.shape[0]}, but the frames "
                f"before it are {self._shape[1]}x{self._shape[0]}"
            )
        self._shape = truth.shape
        if out.shape != truth.shape:
            raise EvalError(
                f"frame {index}: sizes differ ({out.shape[1]}x{out.shape[0]} "
                f"against {truth.shape[1]}x{truth.shape[0]})"
            )
        self.frames.append(
            {
                "frame": index,
                "scene": scene,
                "psnr": psnr_np(out, truth),
                "ssim": ssim(out.astype(np.float32) / 255, truth.astype(np.float32) / 255),
                "colourfulness": colourfulness(out),
                "colourfulness_original": colourfulness(truth),
            }
        )
        if not self.temporal:
            return
        small = cv2.resize(truth, (128, max(2, 128 * truth.shape[0] // truth.shape[1])))
        self._detector.push(index, np.ascontiguousarray(small[..., ::-1]))
        gray = cv2.cvtColor(truth, cv2.COLOR_RGB2GRAY)
        if self._prev is not None:
            prev_out, prev_truth, prev_gray = self._prev
            forward, backward = optical_flow(prev_gray, gray), optical_flow(gray, prev_gray)
            mask = reliable(forward, backward)
            self.pairs.append(
                {
                    "frame": index - 1,
                    "trusted": float(mask.mean()),
                    "output": warp_error(prev_out, out, forward, mask),
                    "original": warp_error(prev_truth, truth, forward, mask),
                }
            )
        self._prev = (out, truth, gray)
        h_out, h_truth = histograms(out), histograms(truth)
        for k, ho, ht in self._hists:
            if index - k in GAPS:
                self.cdc.append(
                    {
                        "frame": k,
                        "gap": index - k,
                        "output": js_divergence(ho, h_out),
                        "original": js_divergence(ht, h_truth),
                    }
                )
        self._hists.append((index, h_out, h_truth))

    def _scene_ids(self) -> None:
        if self._detector is not None:
            cuts = self._detector.cuts()
            for f in self.frames:
                f["scene"] = scene_of(f["frame"], cuts)

    def report(self) -> dict:
        """Averages overall and per scene. Temporal pairs across a cut are left out."""
        if not self.frames:
            raise EvalError("no frames to compare")
        self._scene_ids()
        scene = {f["frame"]: f["scene"] for f in self.frames}
        pairs = [p for p in self.pairs if scene.get(p["frame"]) == scene.get(p["frame"] + 1)]
        cdc = [c for c in self.cdc if scene.get(c["frame"]) == scene.get(c["frame"] + c["gap"])]
        result = _summary(self.frames, pairs, cdc)
        result["per_scene"] = {}
        for s in sorted({f["scene"] for f in self.frames}, key=lambda v: (v is None, v)):
            ids = {f["frame"] for f in self.frames if f["scene"] == s}
            result["per_scene"][str(s)] = _summary(
                [f for f in self.frames if f["frame"] in ids],
                [p for p in pairs if p["frame"] in ids],
                [c for c in cdc if c["frame"] in ids],
            )
        return result


def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else None


def _summary(frames: list[dict], pairs: list[dict], cdc: list[dict]) -> dict:
    out = {
        "frames": len(frames),
        "psnr": _mean([f["psnr"] for f in frames]),
        "ssim": _mean([f["ssim"] for f in frames]),
        "colourfulness": _mean([f["colourfulness"] for f in frames]),
        "colourfulness_original": _mean([f["colourfulness_original"] for f in frames]),
    }
    c, co = out["colourfulness"], out["colourfulness_original"]
    out["colourfulness_ratio"] = c / co if c is not None and co else None
    if pairs or cdc:
        out["warp_error"] = _mean([p["output"] for p in pairs])
        out["warp_error_original"] = _mean([p["original"] for p in pairs])
        w, wo = out["warp_error"], out["warp_error_original"]
        out["warp_error_ratio"] = w / wo if w is not None and wo else None
        for side in ("output", "original"):
            gaps = {g: _mean([x[side] for x in cdc if x["gap"] == g]) for g in GAPS}
            out[f"cdc_{side}"] = _mean([v for v in gaps.values() if v is not None])
            out[f"cdc_{side}_by_gap"] = gaps
    return out


# --- the two sides, as frame pairs ----------------------------------------------------------


def video_pairs(truth: Path, output: Path) -> tuple[Fraction, int | None, Iterator]:
    """(frame rate, frame count (None: not known exactly), iterator of (index, output RGB,
    original RGB)) over two videos of the same length and size, read in step."""
    from vidcolor.video import VideoReader, probe

    a, b = probe(truth), probe(output)
    (w, h), (ow, oh) = a.display_size, b.display_size
    padded = (ow, oh) == (w + w % 2, h + h % 2)  # render pads odd sizes for H.264: crop back
    if a.display_size != b.display_size and not padded:
        raise EvalError(
            f"{output}: {b.display_size[0]}x{b.display_size[1]}, but {truth} is "
            f"{a.display_size[0]}x{a.display_size[1]}"
        )
    if a.frame_count_exact and b.frame_count_exact and a.frame_count != b.frame_count:
        raise EvalError(f"{output}: {b.frame_count} frames, but {truth} has {a.frame_count}")

    def pairs() -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        with VideoReader(truth, autorotate=True) as rt, VideoReader(output, autorotate=True) as ro:
            it_t, it_o = iter(rt), iter(ro)
            for ft in it_t:
                fo = next(it_o, None)
                if fo is None:
                    raise EvalError(f"{output} ends at frame {ft.index}, before {truth} does")
                yield ft.index, fo.image[:h, :w], ft.image
            if next(it_o, None) is not None:
                raise EvalError(f"{output} goes on after {truth} ends")

    return a.frame_rate, a.frame_count if a.frame_count_exact else None, pairs()


def folder_pairs(truth: Path, output: Path) -> tuple[int, Iterator]:
    """(count, iterator of (index, output RGB, original RGB)): images matched by file name, in
    name order."""
    from vidcolor.images import read_rgb
    from vidcolor.render.streaming import image_files

    names = [p.name for p in image_files(truth)]
    missing = [n for n in names if not (output / n).is_file()]
    if not names:
        raise EvalError(f"{truth}: no images")
    if missing:
        raise EvalError(f"{output}: no {missing[0]} ({len(missing)} of {len(names)} missing)")
    pairs = ((k, read_rgb(output / n), read_rgb(truth / n)) for k, n in enumerate(names))
    return len(names), pairs


def dataset_pairs(
    data: Path, model: Path | None, split: str, device: str = "auto"
) -> tuple[int, Iterator[tuple[int, np.ndarray, np.ndarray, str]]]:
    """(count, iterator of (offset, output, original, scene)): a built dataset's ``split``
    colorized by ``model``."""
    from vidcolor.data.dataset import DatasetManifest
    from vidcolor.render.colorizer import Colorizer

    manifest = DatasetManifest.load(data)
    if split not in manifest.shards:
        have = ", ".join(manifest.shards) or "none"
        raise EvalError(f"{data}: no '{split}' split (it has: {have})")
    frames, rows = manifest.open(split), manifest.rows(split)
    colorizer = Colorizer(model, device)

    def pairs() -> Iterator[tuple[int, np.ndarray, np.ndarray, str]]:
        for row in rows:
            truth = np.array(frames[row["offset"]])  # a copy: torch wants writable memory
            scene = f"{Path(row['source']).name}#{row['episode']}.{row['scene']}"
            yield row["offset"], colorizer.colorize_frame(truth), truth, scene

    return len(rows), pairs()


def plot(evaluation: Evaluation, path: Path, replace: bool = True) -> None:
    """Per-frame curves: PSNR, SSIM, colourfulness of both sides, warping error of both. The
    file lands whole; without ``replace`` one that appeared at ``path`` meanwhile is kept
    (atomic.AppearedError)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vidcolor.atomic import atomic_path

    evaluation._scene_ids()  # pairs across a cut are not motion: left out, as in the scores
    scene = {r["frame"]: r["scene"] for r in evaluation.frames}
    pairs = [p for p in evaluation.pairs if scene.get(p["frame"]) == scene.get(p["frame"] + 1)]
    f = evaluation.frames
    x = [r["frame"] for r in f]
    colour = [
        ("output", [r["colourfulness"] for r in f]),
        ("original", [r["colourfulness_original"] for r in f]),
    ]
    panels = [
        ("PSNR (dB)", [("output", [r["psnr"] for r in f])]),
        ("SSIM", [("output", [r["ssim"] for r in f])]),
        ("colourfulness", colour),
    ]
    if pairs:
        panels.append(
            ("warping error", [(side, [p[side] for p in pairs]) for side in ("output", "original")])
        )
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.2 * len(panels)), sharex=True)
    for ax, (title, lines) in zip(np.atleast_1d(axes), panels, strict=True):
        for label, ys in lines:
            xs = x if len(ys) == len(x) else [p["frame"] for p in pairs]
            ax.plot(xs, ys, label=label, linewidth=1)
        ax.set_ylabel(title)
        if len(lines) > 1:
            ax.legend(loc="upper right", fontsize=8)
    np.atleast_1d(axes)[-1].set_xlabel("frame")
    fig.tight_layout()
    try:
        with atomic_path(path, replace) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)
