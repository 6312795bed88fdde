"""The ``Colorizer``: a generator on a device at a working size, grays in, chroma out, hedged as
its bundle says. It keeps nothing of one call for the next: a video's own state (its batch, its
stabiliser, its keys) is render.streaming.VideoColour's. Eval and the benchmarks score with it
too."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidcolor.bundled import model_file
from vidcolor.color import (
    L_OF_GRAY,
    Hedge,
    ab_from_model,
    block_luma,
    chroma_in_gamut,
    l_to_model,
    lab_to_rgb,
    lab_to_rgb_fitted,
    rgb_to_cbcr,
    rgb_to_lab,
    yuv_to_rgb,
)
from vidcolor.errors import UserError
from vidcolor.memory import GB, available_bytes, model_bytes, render_bytes
from vidcolor.options import RenderOptions
from vidcolor.render.matching import features
from vidcolor.runtime import amp_dtype, pick_device
from vidcolor.train.checkpoint import load_model
from vidcolor.video import scaled_size
from vidcolor.video.reader import TV_TO_FULL


class RenderError(UserError):
    """Render cannot go ahead as asked."""


@dataclass
class Prediction:
    """A batch's colour at the working size: Y'CbCr chroma (N,2,hs,ws), the model's features
    when asked for (to match keys by), and the largest part of the batch that ran at once
    (smaller than the batch when memory ran out)."""

    cbcr: torch.Tensor
    feats: torch.Tensor | None
    ran: int


class Colorizer:
    """A generator on a device at a working size: luma planes in, chroma planes out."""

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        render_size: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        path = model_file(model)
        self.G, self.info = load_model(path)
        self.model_path = path
        self.device = pick_device(device)
        # channels_last: faster convolutions on GPUs and on CPUs (oneDNN; docs/benchmarks.md)
        self.G = self.G.to(self.device, memory_format=torch.channels_last)
        self.amp = amp_dtype(self.device)
        self.size = render_size or int(self.info["size"])
        self.hedge = Hedge(self.info["chroma_gain"], self.info["chroma_shrink"])  # the bundle's
        # Measured on a 2-core CPU: batches of 2-4 run fastest (cache); GPUs want more.
        self.batch_size = batch_size or (16 if self.device.type == "cuda" else 4)
        self._l_of_gray = L_OF_GRAY.to(self.device)

    @classmethod
    def from_options(cls, options: RenderOptions) -> Colorizer:
        """The model ``options`` name, on their device, at their working size."""
        return cls(options.model, options.device, options.render_size, options.batch_size)

    def batch_for(self, width: int, height: int, temporal: bool, src: Path) -> int:
        """The batch a ``width`` x ``height`` input starts from: the one asked for, on a CPU
        halved until the render fits in the memory left (memory.py), as CUDA's out-of-memory
        halves it (``predict``). A render whose one frame does not fit is refused in one line
        naming ``src`` and what it would need."""
        batch = self.batch_size
        free = available_bytes() if self.device.type == "cpu" else None  # CUDA: _generate
        if free is None:
            return batch
        ws, hs = scaled_size(width, height, self.size)
        per_pixel = model_bytes(self.info["model"])
        while batch > 1 and render_bytes(ws, hs, batch, per_pixel, temporal) > free:
            batch //= 2
        if (need := render_bytes(ws, hs, 1, per_pixel, temporal)) > free:
            raise RenderError(
                f"{src}: colorizing at {ws}x{hs} (working size {self.size}) needs about "
                f"{need / GB:.1f} GB of memory, and {free / GB:.1f} GB is free; use a smaller "
                "--render-size"
            )
        return batch

    def _generate(self, L: torch.Tensor) -> tuple[torch.Tensor, int]:
        """ab (model scale) for a batch of L (model scale), and the largest part of it that ran
        at once: when memory runs out (CUDA's, or an allocation on the CPU) the batch is halved,
        slower, but no frame is lost. Out of memory for one frame: a one-line RenderError."""
        L = L.contiguous(memory_format=torch.channels_last)
        try:
            if self.amp is None:
                return self.G(L), L.shape[0]
            with torch.autocast("cuda", dtype=self.amp):
                return self.G(L).float(), L.shape[0]
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
        (first, ran), (second, ran_too) = self._generate(L[:half]), self._generate(L[half:])
        return torch.cat([first, second]), min(ran, ran_too)

    def _ab(self, L: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Lab ab for a batch of L (model scale), hedged as the model's bundle says, and the
        largest part of the batch that ran at once."""
        ab, ran = self._generate(L)
        return self.hedge(ab_from_model(ab.float())), ran

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
    def predict(
        self, grays: list[np.ndarray], matrix: str, full_range: bool, features_too: bool = False
    ) -> Prediction:
        """The colour of working-size grays (``gray``'s), as Y'CbCr chroma at the working size;
        with ``features_too`` the model's features as well, to match keys by. Pure: it keeps
        nothing of one call for the next."""
        L = self.model_l(grays)  # (N,1,hs,ws) in [0, 100]
        ab, ran = self._ab(l_to_model(L))  # (N,2,hs,ws)
        rgb = lab_to_rgb(torch.cat([L, ab], dim=1), dim=1)  # (N,3,hs,ws) in [0, 1]
        feats = self._features(L) if features_too else None
        return Prediction(rgb_to_cbcr(rgb, matrix, full_range), feats, ran)

    @torch.inference_mode()
    def features(self, grays: list[np.ndarray]) -> torch.Tensor:
        """The model's features of working-size grays, to match keys by (render.matching)."""
        return self._features(self.model_l(grays))

    def _features(self, L: torch.Tensor) -> torch.Tensor:
        return features(self.G, l_to_model(L))

    def tuned(
        self, keys: list[np.ndarray], seconds: float, on_time: Callable[[float], None] | None = None
    ) -> tuple[Colorizer, list[float]]:
        """A new colorizer whose generator is this one's tuned on ``keys`` for ``seconds``
        (render.adapt), at full chroma (the bundle's hedge is for footage it never saw; now
        it has seen the keys); this one keeps its weights. Also each step's L1 loss."""
        from vidcolor.render.adapt import adapt

        new = copy.copy(self)
        new.G, new.hedge = copy.deepcopy(self.G), Hedge()
        return new, adapt(new.G, keys, seconds, on_time, amp=self.amp)

    @torch.inference_mode()
    def planes(
        self, cbcr: torch.Tensor, ys: list[np.ndarray], matrix: str, full_range: bool
    ) -> list[tuple[np.ndarray, ...]]:
        """Working-size chroma (N,2,hs,ws) as Cb, Cr planes on the 4:2:0 grid of same-sized
        luma planes ``ys`` (H, W): (ceil(H/2), ceil(W/2)) uint8 each, kept where that luma can
        show them (color.chroma_in_gamut)."""
        h, w = ys[0].shape
        planes = []
        for c, y in zip(cbcr, ys, strict=True):  # one frame's float planes at a time, not a batch's
            c = F.interpolate(
                c[None],
                size=((h + 1) // 2, (w + 1) // 2),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            luma = torch.from_numpy(block_luma(y))[None].to(c.device)
            c = chroma_in_gamut(c, luma, matrix, full_range)
            u, v = c[0].round().clamp(0, 255).to(torch.uint8).cpu().numpy()
            planes.append((u, v))
        return planes

    def chroma(
        self, ys: list[np.ndarray], full_range: bool, matrix: str
    ) -> list[tuple[np.ndarray, ...]]:
        """Cb, Cr planes (ceil(H/2), ceil(W/2)) uint8 for same-sized luma planes (H, W): the
        model's colour alone, each frame on its own (a video's own steadying and keys:
        render.streaming.VideoColour)."""
        prediction = self.predict([self.gray(y, full_range) for y in ys], matrix, full_range)
        return self.planes(prediction.cbcr, ys, matrix, full_range)

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
        lightness kept exactly, its colour shortened where that lightness cannot show it (a
        video frame keeps its luma instead: ``colorize_frame``)."""
        h, w = rgb.shape[:2]
        lab = rgb_to_lab(torch.from_numpy(rgb).float().to(self.device) / 255)  # (H,W,3)
        L = lab[..., 0][None, None]  # (1,1,H,W)
        ws, hs = scaled_size(w, h, self.size)
        small = F.interpolate(L, size=(hs, ws), mode="bilinear", antialias=True)
        ab, _ = self._ab(l_to_model(small))
        ab = F.interpolate(ab, size=(h, w), mode="bilinear", align_corners=False)
        out = lab_to_rgb_fitted(L, ab)[0].permute(1, 2, 0)  # black stays black
        return (out * 255).round().byte().cpu().numpy()
