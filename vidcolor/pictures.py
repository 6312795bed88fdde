"""Pictures of a training run: sample grids and loss curves."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import torch

from vidcolor.atomic import atomic_path


def sample_grid(gray: torch.Tensor, truth: torch.Tensor, fake: torch.Tensor) -> np.ndarray:
    """Rows of gray | truth | generated from three (N,3,H,W) batches in [0, 1]; HxWx3 uint8."""
    rows = []
    for g, t, f in zip(gray, truth, fake, strict=True):
        rows.append(torch.cat([g, t, f], dim=2))  # (3,H,3W)
    grid = torch.cat(rows, dim=1).permute(1, 2, 0)  # (N*H,3W,3)
    return (grid.clamp(0, 1) * 255).round().byte().cpu().numpy()


def save_png(path: Path, rgb: np.ndarray, replace: bool = True) -> None:
    """HxWx3 uint8 RGB to a PNG file, whole or not at all (``replace``: atomic.publish's)."""
    _save(path, ".png", rgb, [], replace)


def save_jpeg(path: Path, rgb: np.ndarray, quality: int = 95, replace: bool = True) -> None:
    """HxWx3 uint8 RGB to a JPEG file, whole or not at all."""
    _save(path, ".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, quality], replace)


def _save(path: Path, kind: str, rgb: np.ndarray, params: list[int], replace: bool) -> None:
    ok, buf = cv2.imencode(kind, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OSError(f"cannot encode {path}")
    with atomic_path(path, replace) as tmp:
        tmp.write_bytes(buf.tobytes())


def plot_curves(metrics_csv: Path, out: Path) -> None:
    """curves.png: generator and discriminator losses, D accuracy and validation L1 by step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return

    def series(key: str) -> tuple[list[int], list[float]]:
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in ("", None)]
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for key in ("G_GAN", "D_real", "D_fake"):
        axes[0].plot(*series(key), label=key)
    axes[0].set_title("adversarial losses")
    axes[1].plot(*series("G_L1"), label="train L1")
    axes[1].plot(*series("val_L1"), "o-", label="val L1")
    axes[1].set_title("L1 on ab (model scale)")
    axes[2].plot(*series("D_acc"), label="D accuracy")
    axes[2].set_ylim(0, 1)
    axes[2].set_title("discriminator accuracy")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
