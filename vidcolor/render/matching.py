"""Colour by matching (``render --keyframes``): a frame takes colour from where it looks alike in
its shot's keys, not only from where the motion carried it. The flow carry (``keyframes``) loses
a key's colour when the camera moves fast or the background scrolls; what the keys show in
colour is still there to be matched, however far from the key.

Each key becomes a ``Bank``: the generator's first encoder levels (it already knows what things
are) pooled to ``CELL`` pixels, each level unit-normalised, with the cell's mean and spread of
luma, all as one unit vector per cell; beside each, the key's Cb/Cr over that cell. A frame's
cells are compared with the bank by cosine similarity; the ``TOP_K`` closest give the colour
(softmax-weighted) and the best one the confidence. The colour comes back to the working size
under the frame's own luma (a guided filter fitted on the cells), so edges stay where the luma
has them. Memory holds the banks (about 1 MB a key at 224 px), never frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidcolor.thinned import Thinned

CELL = 8  # working-size pixels per matched cell: the third encoder level's stride
LEVELS = 3  # encoder levels matched on
TOP_K = 8
TEMPERATURE = 0.02  # softmax over the top similarities: lower, nearer the single best
LUMA_WEIGHT = 1.0  # the cell's luma mean and spread, against each unit-length encoder level
# Best similarity at which a match counts not at all, and fully (for either encoder: on real
# footage MobileNetV2's levels do best with the U-Net's pair, docs/benchmarks.md).
SURE_FROM, SURE_AT = 0.80, 0.95
GUIDE_RADIUS = 1  # cells: the guided filter's window (wider smooths small details' colour away)
GUIDE_EPS = 1e-4  # its regularisation (luma in [0, 1]): larger, smoother colour
SIMILARITIES = 2**24  # similarities computed at a time (64 MB): frame cells go in chunks
MAX_KEYS = 8  # keys a shot's bank holds at most (spread over the shot), so memory is bounded


@dataclass(frozen=True)
class Bank:
    """A shot's keys, as matched: ``features`` (M, C) unit vectors, ``chroma`` (M, 2) Cb/Cr."""

    features: torch.Tensor
    chroma: torch.Tensor

    @staticmethod
    def join(banks: Iterable[Bank]) -> Bank:
        banks = list(banks)
        return Bank(torch.cat([b.features for b in banks]), torch.cat([b.chroma for b in banks]))


def _cells(h: int, w: int) -> tuple[int, int]:
    return -(-h // CELL), -(-w // CELL)


def _on_cells(x: np.ndarray) -> np.ndarray:
    """A working-size map (hxw[xC]) averaged over the matched cells: padded by reflection to
    whole cells (as ``features`` pads L), then each CELL x CELL block's mean."""
    h, w = x.shape[:2]
    ch, cw = _cells(h, w)
    pad = ((0, ch * CELL - h), (0, cw * CELL - w)) + ((0, 0),) * (x.ndim - 2)
    x = np.pad(x, pad, mode="reflect" if h > 1 and w > 1 else "edge")
    return cv2.resize(x, (cw, ch), interpolation=cv2.INTER_AREA)


def _off_cells(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Per-cell values back to the working size h x w, interpolated between cell centres."""
    ch, cw = x.shape[:2]
    return cv2.resize(x, (cw * CELL, ch * CELL), interpolation=cv2.INTER_LINEAR)[:h, :w]


@torch.inference_mode()
def features(G: torch.nn.Module, L: torch.Tensor) -> torch.Tensor:
    """(N, C, h/CELL, w/CELL) unit vectors for L at the working size (N, 1, h, w; the
    generator's scale, [-1, 1]): the cells' description that matching compares."""
    h, w = L.shape[-2:]
    ch, cw = _cells(h, w)
    ph, pw = ch * CELL - h, cw * CELL - w
    if ph or pw:
        L = F.pad(L, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
    parts = [
        F.normalize(F.adaptive_avg_pool2d(x.float(), (ch, cw)), dim=1)
        for x in islice(G.encoder_levels(L.float()), LEVELS)
    ]
    luma = (L.float() + 1) / 2  # [0, 1]
    mean = F.avg_pool2d(luma, CELL)
    spread = (F.avg_pool2d(luma * luma, CELL) - mean * mean).clamp(min=0).sqrt()
    parts += [LUMA_WEIGHT * (mean - 0.5), LUMA_WEIGHT * spread]
    return F.normalize(torch.cat(parts, dim=1), dim=1)


def bank(feats: torch.Tensor, chroma: np.ndarray) -> Bank:
    """A key's Bank from its ``features`` (C, h', w') and its Cb/Cr at the working size
    (``keys.key_chroma``: hxwx2 float32)."""
    c = feats.shape[0]
    cells = _on_cells(chroma).reshape(-1, 2)
    return Bank(feats.reshape(c, -1).T.contiguous(), torch.from_numpy(cells).to(feats.device))


def match(key: Bank, feats: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """For one frame's ``features`` (C, h', w'): the matched Cb/Cr per cell (h'xw'x2 float32)
    and its confidence (h'xw' float32 in [0, 1])."""
    c, ch, cw = feats.shape
    rows = feats.reshape(c, -1).T
    k = min(TOP_K, key.features.shape[0])
    colour, best = [], []
    for part in rows.split(max(1, SIMILARITIES // key.features.shape[0])):
        top, index = (part @ key.features.T).topk(k, dim=1)
        weight = torch.softmax(top / TEMPERATURE, dim=1)
        colour.append((weight[..., None] * key.chroma[index]).sum(1))
        best.append(top[:, 0])
    sure = ((torch.cat(best) - SURE_FROM) / (SURE_AT - SURE_FROM)).clamp(0, 1)
    return (
        torch.cat(colour).reshape(ch, cw, 2).float().cpu().numpy(),
        sure.reshape(ch, cw).float().cpu().numpy(),
    )


def upsample(cells: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """Per-cell values (h'xw'xC float32) to the working size under ``gray`` (hxw uint8): a
    guided filter fitted on the cells (each value a local linear function of the luma) and
    applied to the full-size luma, so colour edges follow luma edges."""
    h, w = gray.shape
    n = cells.shape[2]
    guide = gray.astype(np.float32) / 255
    small = _on_cells(guide)
    size = (2 * GUIDE_RADIUS + 1,) * 2

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, size, borderType=cv2.BORDER_REFLECT)

    mean_i = box(small)
    var_i = box(small * small) - mean_i * mean_i
    out = np.empty((h, w, n), np.float32)
    for j in range(n):
        p = np.ascontiguousarray(cells[..., j])
        mean_p = box(p)
        a = (box(small * p) - mean_i * mean_p) / (var_i + GUIDE_EPS)
        b = mean_p - a * mean_i
        a, b = (_off_cells(x, h, w) for x in (a, b))
        out[..., j] = a * guide + b
    return out


def matched(key: Bank, feats: torch.Tensor, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame's colour from its shot's keys at the working size: (Cb/Cr hxwx2 float32,
    confidence hxw float32 in [0, 1]), for ``keyframes.blend``."""
    colour, sure = match(key, feats)
    h, w = gray.shape
    return upsample(colour, gray), np.clip(_off_cells(sure, h, w), 0, 1)


class Featured(Protocol):
    """What matching needs of a model: its features of working-size grays (a Colorizer)."""

    def features(self, grays: list[np.ndarray]) -> torch.Tensor: ...


@torch.inference_mode()
def shot_banks(
    colorizer: Featured, key_frames: Iterable[tuple[int, np.ndarray, np.ndarray]]
) -> dict[int, Bank]:
    """Each shot's keys as one Bank, by the shot's first frame, from (shot, gray, chroma) per
    key in order (``Propagator.key_frames``) and the render's ``colorizer``
    (render.colorizer.Colorizer). A shot with more than ``MAX_KEYS`` keys (a key video in colour all
    through) keeps every 2nd of them, then every 4th, and so on."""
    shots: dict[int, Thinned[Bank]] = {}
    for shot, gray, chroma in key_frames:

        def made(gray: np.ndarray = gray, chroma: np.ndarray = chroma) -> Bank:
            return bank(colorizer.features([gray])[0], chroma)

        shots.setdefault(shot, Thinned(MAX_KEYS)).offer(made)
    return {shot: Bank.join(kept.items) for shot, kept in shots.items()}
