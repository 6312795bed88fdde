"""sRGB <-> CIE Lab (D65, 2 degree observer) and the scaling the model sees.

One implementation in torch, so batches convert on whatever device they are on; numpy arrays go
through the same code on the CPU. Matches ``skimage.color.rgb2lab``/``lab2rgb`` (same constants).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

# sRGB (linear) -> XYZ, and the D65 white point: the values scikit-image uses.
_RGB_TO_XYZ = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=torch.float64,
)
_XYZ_TO_RGB = torch.linalg.inv(_RGB_TO_XYZ)
_WHITE = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)
_EPS, _KAPPA = 0.008856, 7.787  # CIE's linear segment of f(t) near black

L_SCALE, L_SHIFT, AB_SCALE = 50.0, 1.0, 110.0  # L in [0, 100] -> [-1, 1]; ab / 110
# Y'CbCr: (Kr, Kb) per matrix.
KRB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def _matmul(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return x @ m.to(device=x.device, dtype=x.dtype).T


def rgb_to_lab(rgb: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """sRGB in [0, 1] -> Lab (L in [0, 100], a and b roughly [-110, 110]). Channels on ``dim``
    (-1 for HxWx3 images, 1 for NCHW batches). Float tensors of any shape and device."""
    x = rgb.movedim(dim, -1)
    # clamp: the branch torch.where discards still gets differentiated, and a negative base
    # under ** 2.4 would make its gradient NaN
    lin = torch.where(x > 0.04045, ((x.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4, x / 12.92)
    xyz = _matmul(lin, _RGB_TO_XYZ) / _WHITE.to(x.device, x.dtype)
    f = torch.where(xyz > _EPS, xyz.clamp(min=_EPS) ** (1 / 3), _KAPPA * xyz + 16 / 116)
    fx, fy, fz = f.unbind(-1)
    lab = torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-1)
    return lab.movedim(-1, dim)


def _lab_to_linear(lab: torch.Tensor) -> torch.Tensor:
    """Lab (channels last) -> linear RGB, unclipped: outside [0, 1] where out of gamut."""
    L, a, b = lab.unbind(-1)
    fy = (L + 16) / 116
    f = torch.stack([fy + a / 500, fy, (fy - b / 200).clamp(min=0)], dim=-1)
    xyz = torch.where(f > 0.2068966, f**3, (f - 16 / 116) / _KAPPA)
    return _matmul(xyz * _WHITE.to(lab.device, lab.dtype), _XYZ_TO_RGB)


def _encode(lin: torch.Tensor) -> torch.Tensor:
    """Linear RGB -> sRGB in [0, 1], clipped."""
    lin = lin.clamp(min=0)
    rgb = torch.where(
        lin > 0.0031308, 1.055 * lin.clamp(min=1e-12) ** (1 / 2.4) - 0.055, lin * 12.92
    )
    return rgb.clamp(0, 1)


def lab_to_rgb(lab: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Lab -> sRGB in [0, 1]. Colours outside the sRGB gamut are clipped, never NaN."""
    return _encode(_lab_to_linear(lab.movedim(dim, -1))).movedim(-1, dim)


def lab_to_rgb_fitted(L: torch.Tensor, ab: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """L (N,1,H,W) and ab (N,2,H,W) -> sRGB (N,3,H,W) in [0, 1], each pixel's ab shortened
    towards gray just enough to fit in sRGB at its L: lightness and hue kept where clipping
    would change both (black painted blue would come out bright blue). Bisection, to
    1/2**steps of the colour, on the pixels that do not fit."""
    lab = torch.cat([L, ab], dim=1).movedim(1, -1)  # (N,H,W,3)
    lin = _lab_to_linear(lab)
    out = ((lin < -1e-4) | (lin > 1 + 1e-4)).any(-1)  # (N,H,W)
    if out.any():
        L_out, ab_out = lab[out].split([1, 2], dim=-1)  # (M,1), (M,2)
        lo, hi = torch.zeros_like(L_out), torch.ones_like(L_out)
        for _ in range(steps):
            mid = (lo + hi) / 2
            fitted = _lab_to_linear(torch.cat([L_out, ab_out * mid], dim=1))
            fits = ((fitted >= -1e-4) & (fitted <= 1 + 1e-4)).all(-1, keepdim=True)
            lo, hi = torch.where(fits, mid, lo), torch.where(fits, hi, mid)
        lin[out] = _lab_to_linear(torch.cat([L_out, ab_out * lo], dim=1))
    return _encode(lin).movedim(-1, 1)


# Lab L of a gray pixel, by its full-range gray level: the generator's input for that pixel.
_GRAY = torch.arange(256, dtype=torch.float64).repeat_interleave(3).reshape(256, 3) / 255
L_OF_GRAY = rgb_to_lab(_GRAY)[:, 0].float()


def rgb_to_lab_np(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 (or Nx3) RGB, uint8 or float in [0, 1] -> float32 Lab, same shape."""
    x = rgb.astype(np.float32) / 255 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
    return rgb_to_lab(torch.from_numpy(x)).numpy()


def lab_to_rgb_np(lab: np.ndarray) -> np.ndarray:
    """HxWx3 Lab -> float32 RGB in [0, 1]."""
    return lab_to_rgb(torch.from_numpy(np.asarray(lab, dtype=np.float32))).numpy()


def l_to_model(L: torch.Tensor) -> torch.Tensor:
    """L in [0, 100] -> the generator's input range [-1, 1]."""
    return L / L_SCALE - L_SHIFT


def l_from_model(x: torch.Tensor) -> torch.Tensor:
    return (x + L_SHIFT) * L_SCALE


def ab_to_model(ab: torch.Tensor) -> torch.Tensor:
    """ab (about [-110, 110]) -> the generator's output range [-1, 1]."""
    return ab / AB_SCALE


def ab_from_model(x: torch.Tensor) -> torch.Tensor:
    return x * AB_SCALE


@dataclass(frozen=True)
class Hedge:
    """How a model's colour is hedged towards gray where it may be wrong (a model bundle's
    ``chroma_gain`` and ``chroma_shrink``): each pixel's chroma (the length of its Lab ab) is
    lowered by ``shrink``, to 0 at most, then scaled by ``gain``. Trained on L1, a model unsure
    between hues predicts the faint tint between them: the shrink takes such tints away and
    leaves confident colours nearly whole, where a gain alone pales everything alike."""

    gain: float = 1.0
    shrink: float = 0.0

    def __call__(self, ab: torch.Tensor) -> torch.Tensor:
        """``ab``: (N, 2, H, W) in Lab units."""
        if self.shrink > 0:
            chroma = ab.norm(dim=1, keepdim=True)
            ab = ab * (chroma - self.shrink).clamp(min=0) / chroma.clamp(min=1e-6)
        return ab * self.gain


def unit_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """A uint8 or [0, 1] RGB tensor as float32 in [0, 1]."""
    return rgb.float() / 255 if rgb.dtype == torch.uint8 else rgb.float()


def rgb_to_model(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A uint8 or [0, 1] NCHW RGB batch -> (L, ab) as the model sees them: (N,1,H,W), (N,2,H,W)."""
    lab = rgb_to_lab(unit_rgb(rgb), dim=1)
    return l_to_model(lab[:, :1]), ab_to_model(lab[:, 1:])


def model_to_rgb(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """(L, ab) in model scaling, NCHW -> RGB in [0, 1], (N,3,H,W)."""
    return lab_to_rgb(torch.cat([l_from_model(L), ab_from_model(ab)], dim=1), dim=1)


def gray_rgb(rgb: np.ndarray) -> np.ndarray:
    """An HxWx3 uint8 image with its colour taken out (a and b set to 0, L kept): the gray
    input a colorizer starts from, as RGB, for scoring beside its output."""
    lab = rgb_to_lab(torch.from_numpy(rgb).float() / 255)
    lab[..., 1:] = 0
    return (lab_to_rgb(lab).numpy() * 255).round().astype(np.uint8)


def rgb_to_cbcr(rgb: torch.Tensor, matrix: str, full_range: bool) -> torch.Tensor:
    """(N,3,H,W) RGB in [0, 1] -> (N,2,H,W) Cb, Cr in 0-255 code values (not rounded)."""
    kr, kb = KRB[matrix]
    r, g, b = rgb.unbind(1)
    y = kr * r + (1 - kr - kb) * g + kb * b
    scale = 255.0 if full_range else 224.0
    cb = 128 + scale * (b - y) / (2 * (1 - kb))
    cr = 128 + scale * (r - y) / (2 * (1 - kr))
    return torch.stack([cb, cr], dim=1)


def even_plane(plane: np.ndarray) -> np.ndarray:
    """Pad an odd height/width by one copied edge row/column (4:2:0 encoders need even)."""
    h, w = plane.shape
    return np.pad(plane, ((0, h % 2), (0, w % 2)), mode="edge") if h % 2 or w % 2 else plane


def block_luma(y: np.ndarray) -> np.ndarray:
    """Each 4:2:0 chroma sample's luma: the mean of its 2x2 block of ``y`` (uint8, H x W), on
    the chroma grid (ceil(H/2), ceil(W/2)); an odd edge's samples cover its last row or column
    alone."""
    h, w = y.shape
    return cv2.resize(even_plane(y), ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)


def chroma_in_gamut(
    cbcr: torch.Tensor, luma: torch.Tensor, matrix: str, full_range: bool
) -> torch.Tensor:
    """Chroma (N,2,h,w), code values, shortened towards gray, hue kept, just enough to fit
    inside R'G'B' at its block's luma (``block_luma``: (N,h,w) uint8). Without it, colour at a
    luma no colour fits (black, white) is clipped by the player: black painted blue comes out
    bright blue. Real colour always fits (each pixel's does at its luma, so their average does
    at the average luma), so this shortens only colour no pixel of the block could show."""
    kr, kb = KRB[matrix]
    scale = 255.0 if full_range else 224.0
    y = luma.float()
    fall = y.div_(255) if full_range else y.sub_(16).div_(219).clamp_(0, 1)  # R'G'B' to 0
    rise = 1 - fall  # and to 1
    c = cbcr - 128
    cb, cr = c.unbind(1)
    dr, db = cr * (2 * (1 - kr) / scale), cb * (2 * (1 - kb) / scale)  # R' - Y', B' - Y'
    dg = dr * (-kr / (1 - kr - kb)) + db * (-kb / (1 - kr - kb))
    # Nonzero chroma raises one of R', G', B' and lowers another: both limits always apply.
    up = torch.maximum(torch.maximum(dr, dg), db).clamp_(min=1e-6)
    down = torch.minimum(torch.minimum(dr, dg), db).neg_().clamp_(min=1e-6)
    room = torch.minimum(rise.div_(up), fall.div_(down)).clamp_(max=1)  # the share that fits
    return c.mul_(room.unsqueeze(1)).add_(128)


def yuv_to_rgb(
    y: np.ndarray, u: np.ndarray, v: np.ndarray, matrix: str, full_range: bool
) -> np.ndarray:
    """4:2:0 planes -> HxWx3 uint8 RGB (for previews and contact sheets)."""
    h, w = y.shape
    kr, kb = KRB[matrix]
    cb = cv2.resize(u, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) - 128
    cr = cv2.resize(v, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) - 128
    yy = (y.astype(np.float32) if full_range else (y.astype(np.float32) - 16) * 255 / 219) / 255
    scale = 255.0 if full_range else 224.0
    pb, pr = cb / scale, cr / scale
    r = yy + 2 * (1 - kr) * pr
    b = yy + 2 * (1 - kb) * pb
    g = (yy - kr * r - kb * b) / (1 - kr - kb)
    return (np.stack([r, g, b], -1).clip(0, 1) * 255).round().astype(np.uint8)
