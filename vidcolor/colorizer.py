"""The ``Colorizer``: a generator on a device at a working size, luma planes in, chroma planes
out, hedged as its bundle says; with a video's stabiliser and keys when given. The render
(render.py) streams frames through it; eval and the benchmarks score with it."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidcolor.checkpoint import load_model
from vidcolor.color import (
    L_OF_GRAY,
    Hedge,
    ab_from_model,
    l_to_model,
    lab_to_rgb,
    rgb_to_cbcr,
    rgb_to_lab,
    yuv_to_rgb,
)
from vidcolor.errors import UserError
from vidcolor.keyframes import Keyed, blend
from vidcolor.matching import features, matched
from vidcolor.memory import GB, available_bytes, render_bytes
from vidcolor.options import RenderOptions
from vidcolor.runtime import amp_dtype, pick_device
from vidcolor.temporal import Motion, Stabilizer
from vidcolor.video import scaled_size
from vidcolor.video.reader import TV_TO_FULL


class RenderError(UserError):
    """Render cannot go ahead as asked."""


def default_model() -> Path:
    """The model bundled with vidcolor (see README: trained on Big Buck Bunny, CC-BY)."""
    return Path(str(files("vidcolor") / "weights" / "default.pt"))


class Colorizer:
    """A generator on a device at a working size: luma planes in, chroma planes out."""

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        render_size: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        path = Path(model) if model is not None else default_model()
        self.G, self.info = load_model(path)
        self.model_path = path
        self.device = pick_device(device)
        # channels_last: faster convolutions on GPUs and on CPUs (oneDNN; docs/benchmarks.md)
        self.G = self.G.to(self.device, memory_format=torch.channels_last)
        self.amp = amp_dtype(self.device)
        self.size = render_size or int(self.info["size"])
        self.hedge = Hedge(self.info["chroma_gain"], self.info["chroma_shrink"])  # the bundle's
        # Measured on a 2-core CPU: batches of 2-4 run fastest (cache); GPUs want more.
        self.asked_batch = batch_size or (16 if self.device.type == "cuda" else 4)
        self.batch_size = self.asked_batch
        self._l_of_gray = L_OF_GRAY.to(self.device)

    @classmethod
    def from_options(cls, options: RenderOptions) -> Colorizer:
        """The model ``options`` name, on their device, at their working size."""
        return cls(options.model, options.device, options.render_size, options.batch_size)

    def fit(self, width: int, height: int, temporal: bool, src: Path) -> None:
        """Before any work on a ``width`` x ``height`` input: the batch starts from the one asked
        for (not the last input's); on a CPU it is halved until the render fits in the memory
        left (memory.py), as CUDA's out-of-memory halves it; a render whose one frame does not
        fit is refused in one line naming ``src`` and what it would need."""
        self.batch_size = self.asked_batch
        free = available_bytes() if self.device.type == "cpu" else None  # CUDA: _generate
        if free is None:
            return
        ws, hs = scaled_size(width, height, self.size)
        wide = int(self.info["model"]["base_width"])
        while self.batch_size > 1 and render_bytes(ws, hs, self.batch_size, wide, temporal) > free:
            self.batch_size //= 2
        if (need := render_bytes(ws, hs, 1, wide, temporal)) > free:
            raise RenderError(
                f"{src}: colorizing at {ws}x{hs} (working size {self.size}) needs about "
                f"{need / GB:.1f} GB of memory, and {free / GB:.1f} GB is free; use a smaller "
                "--render-size"
            )

    def _generate(self, L: torch.Tensor) -> torch.Tensor:
        """ab (model scale) for a batch of L (model scale); when memory runs out (CUDA's, or an
        allocation on the CPU) the batch is halved, for this call and the rest of the run:
        slower, but no frame is lost. Out of memory for one frame: a one-line RenderError."""
        L = L.contiguous(memory_format=torch.channels_last)
        try:
            if self.amp is None:
                return self.G(L)
            with torch.autocast("cuda", dtype=self.amp):
                return self.G(L).float()
        except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
            cpu = "can't allocate memory" in str(e)  # the CPU allocator's RuntimeError
            if not (cpu or isinstance(e, torch.cuda.OutOfMemoryError)):
                raise
            if L.shape[0] == 1:
                raise RenderError(
                    f"out of {'memory' if cpu else 'GPU memory'} for one frame at "
                    f"{L.shape[-1]}x{L.shape[-2]} (working size {self.size}); use a smaller "
                    "--render-size"
                ) from None
        # Out of the except block: its traceback held the failed attempt's activations, which
        # empty_cache could not have freed while it lived.
        torch.cuda.empty_cache()
        half = L.shape[0] // 2
        self.batch_size = max(1, min(self.batch_size, half))
        return torch.cat([self._generate(L[:half]), self._generate(L[half:])])

    def _ab(self, L: torch.Tensor) -> torch.Tensor:
        """Lab ab for a batch of L (model scale), hedged as the model's bundle says."""
        return self.hedge(ab_from_model(self._generate(L).float()))

    def gray(self, y: np.ndarray, full_range: bool) -> np.ndarray:
        """A stored luma plane (H, W) uint8 -> full-range gray at the working size: what the
        model sees (as Lab L) and the stabiliser's flow runs on."""
        h, w = y.shape
        g = y if full_range else cv2.LUT(y, TV_TO_FULL)
        return cv2.resize(g, scaled_size(w, h, self.size), interpolation=cv2.INTER_AREA)

    def model_l(self, grays: list[np.ndarray]) -> torch.Tensor:
        """Working-size grays (hxw uint8 each) -> Lab L (N,1,h,w) in [0, 100] on the device."""
        idx = torch.from_numpy(np.stack(grays)).to(self.device).long()
        return self._l_of_gray[idx].unsqueeze(1)

    @torch.inference_mode()
    def chroma(
        self,
        ys: list[np.ndarray],
        full_range: bool,
        matrix: str,
        stabilizer: Stabilizer | None = None,
        cuts: list[bool] | None = None,
        grays: list[np.ndarray] | None = None,
        motions: list[Motion | None] | None = None,
        keyed: list[Keyed | None] | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Cb, Cr planes (ceil(H/2), ceil(W/2)) uint8 for same-sized luma planes (H, W). A
        ``stabilizer`` (the caller's: its state belongs to one video) carries colour along the
        motion; ``cuts`` says which frames start a new scene. ``grays`` (``gray`` of each
        plane) and ``motions`` (``motions_ahead``'s) may come precomputed. ``keyed``: per
        frame, what its keys give it (keyframes.Keyed): the colour matched in its shot's keys
        is blended in where confident, before the stabiliser; the colour carried from a key,
        last."""
        h, w = ys[0].shape
        if grays is None:  # 1. stored luma -> full-range gray at the working size
            grays = [self.gray(y, full_range) for y in ys]
        L = self.model_l(grays)  # (N,1,hs,ws) in [0, 100]
        ab = self._ab(l_to_model(L))  # 2. (N,2,hs,ws)
        rgb = lab_to_rgb(torch.cat([L, ab], dim=1), dim=1)  # 3. (N,3,hs,ws) in [0, 1]
        cbcr = rgb_to_cbcr(rgb, matrix, full_range)
        keyed = keyed or [None] * len(grays)
        if any(k is not None and k.bank is not None for k in keyed):
            feats = features(self.G, l_to_model(L))
        if stabilizer is not None or any(k is not None for k in keyed):  # at the working size
            steady = []
            for i, (g, c, key) in enumerate(zip(grays, cbcr, keyed, strict=True)):
                out = c.permute(1, 2, 0).cpu().numpy()
                if key is not None and key.bank is not None:
                    out = blend(out, *matched(key.bank, feats[i], g))
                if stabilizer is not None:
                    out = stabilizer.stabilize(
                        g, out, bool(cuts and cuts[i]), motions[i] if motions else None
                    )
                if key is not None and key.carried is not None:
                    out = blend(out, *key.carried)  # the key's own frame: the key's colour
                    if stabilizer is not None:
                        stabilizer.keep(out)
                steady.append(out)
            cbcr = torch.from_numpy(np.stack(steady)).permute(0, 3, 1, 2).to(cbcr.device)
        cbcr = F.interpolate(
            cbcr,
            size=((h + 1) // 2, (w + 1) // 2),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )  # 4. to the 4:2:0 grid
        planes = cbcr.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        return [(p[0], p[1]) for p in planes]

    def colorize_frame(self, rgb: np.ndarray) -> np.ndarray:
        """A video frame as ``render_video`` colorizes it: its luma plane in, chroma planes out
        (4:2:0), given and returned as HxWx3 uint8 RGB. What ``eval DATA --model`` and
        benchmarks/score_model.py measure, so their scores are the render's."""
        y = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 0]  # full-range BT.601 luma, as JPEG
        [(u, v)] = self.chroma([y], full_range=True, matrix="bt601")
        return yuv_to_rgb(y, u, v, "bt601", full_range=True)

    @torch.inference_mode()
    def colorize_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """A still image: HxWx3 uint8 (its colour, if any, is ignored) -> colorized, its Lab
        lightness kept exactly (a video frame keeps its luma instead: ``colorize_frame``)."""
        h, w = rgb.shape[:2]
        lab = rgb_to_lab(torch.from_numpy(rgb).float().to(self.device) / 255)  # (H,W,3)
        L = lab[..., 0][None, None]  # (1,1,H,W)
        ws, hs = scaled_size(w, h, self.size)
        small = F.interpolate(L, size=(hs, ws), mode="bilinear", antialias=True)
        ab = self._ab(l_to_model(small))
        ab = F.interpolate(ab, size=(h, w), mode="bilinear", align_corners=False)
        out = lab_to_rgb(torch.cat([L, ab], dim=1), dim=1)[0].permute(1, 2, 0)
        return (out * 255).round().byte().cpu().numpy()
