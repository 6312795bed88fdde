"""The colorizer's networks: a U-Net generator (L -> ab) and two conditional discriminators.

Shapes are NCHW. The generator takes L scaled to [-1, 1], (N,1,H,W), and returns ab scaled to
[-1, 1], (N,2,H,W), for any H and W. Discriminators take L and ab together, (N,3,H,W).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from vidcolor.mobilenet import ENCODER_LR, MobileNetUNet
from vidcolor.options import ModelConfig


def _down(c_in: int, c_out: int, norm: bool) -> nn.Sequential:
    """Conv 4x4 stride 2 -> BatchNorm -> LeakyReLU(0.2): halves H and W."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def _up(c_in: int, c_out: int, dropout: float) -> nn.Sequential:
    """Transposed conv 4x4 stride 2 -> BatchNorm -> (Dropout) -> ReLU: doubles H and W."""
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNetGenerator(nn.Module):
    """pix2pix U-Net: ``depth`` down blocks, mirrored up blocks, skips between equal sizes.

    Encoder widths: w, 2w, 4w, 8w, 8w, ... The innermost block has no norm (its map can be 1x1,
    where batch statistics are degenerate); the outermost up block maps to 2 channels + tanh.
    """

    def __init__(self, base_width: int = 64, depth: int = 8, dropout: float = 0.5) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError("depth must be at least 2")
        widths = [base_width * min(2**i, 8) for i in range(depth)]
        self.depth = depth
        self.downs = nn.ModuleList(
            _down(1 if i == 0 else widths[i - 1], widths[i], norm=0 < i < depth - 1)
            for i in range(depth)
        )
        # Up block j takes the innermost features (j = 0) or [previous up, skip] concatenated.
        ups = []
        for j in range(depth - 1):
            i = depth - 1 - j  # encoder level this block climbs out of
            c_in = widths[i] if j == 0 else widths[i] * 2
            ups.append(_up(c_in, widths[i - 1], dropout if j < 3 and i > 3 else 0.0))
        self.ups = nn.ModuleList(ups)
        self.out = nn.ConvTranspose2d(widths[0] * 2, 2, 4, 2, 1)

    def encoder_levels(self, L: torch.Tensor) -> Iterator[torch.Tensor]:
        """The encoder's outputs for L (strides 2, 4, 8, ...), each computed when it is asked
        for: the skips, and what colour matching compares (render.matching)."""
        x = L
        for down in self.downs:
            x = down(x)
            yield x

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        h, w = L.shape[-2:]
        m = 2**self.depth
        ph, pw = -h % m, -w % m
        # Reflect where the image is large enough; replicate beyond (tiny inputs)
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(L, (0, pw, 0, ph), mode=mode) if ph or pw else L  # (N,1,H',W')
        skips = list(self.encoder_levels(x))
        x = skips.pop()  # the innermost level
        for up in self.ups:
            x = torch.cat([up(x), skips.pop()], dim=1)
        ab = torch.tanh(self.out(x))  # (N,2,H',W')
        return ab[..., :h, :w]


class PatchDiscriminator(nn.Module):
    """pix2pix 70x70 PatchGAN: a logit for each overlapping 70x70 patch of (L, ab)."""

    def __init__(self, base_width: int = 64) -> None:
        super().__init__()
        w = base_width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(4 * w),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * w, 8 * w, 4, 1, 1, bias=False),
            nn.BatchNorm2d(8 * w),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(8 * w, 1, 4, 1, 1),
        )

    def forward(self, L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([L, ab], dim=1))  # (N,1,H/8-2,W/8-2)


class GlobalDiscriminator(nn.Module):
    """A conv encoder and a fully connected head: one real/fake logit per image, any size."""

    def __init__(self, base_width: int = 64, blocks: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for i in range(blocks):
            out = base_width * min(2**i, 8)
            layers.append(_down(c, out, norm=i > 0))
            c = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4))
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c * 16, 256), nn.LeakyReLU(0.2, inplace=True), nn.Linear(256, 1)
        )

    def forward(self, L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(torch.cat([L, ab], dim=1)))  # (N,1)


def init_weights(module: nn.Module) -> None:
    """pix2pix initialisation: conv weights N(0, 0.02), norm weights N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build_generator(cfg: ModelConfig, init: bool = True) -> UNetGenerator | MobileNetUNet:
    """The U-Net ``cfg`` describes; ``init=False`` skips init_weights (shape checks on the
    ``meta`` device, where initialising sets nothing and its first call costs a second); a
    None in ``cfg`` is its default (ModelConfig.resolved)."""
    cfg = cfg.resolved()
    if cfg.encoder == "mobilenet_v2":
        if cfg.depth != MobileNetUNet.depth:
            raise ValueError(
                f"encoder mobilenet_v2 has depth {MobileNetUNet.depth}, not {cfg.depth}"
            )
        g: UNetGenerator | MobileNetUNet = MobileNetUNet(cfg.base_width)
    else:
        g = UNetGenerator(cfg.base_width, cfg.depth, cfg.dropout)
    if init:
        init_weights(g)
    return g


def generator_groups(g: nn.Module, lr: float) -> list[dict]:
    """The generator's parameters as the optimizer's groups: one at ``lr``, or for MobileNetV2's
    a pretrained encoder at ENCODER_LR of it (it already knows pictures; the decoder learns
    from nothing)."""
    if not isinstance(g, MobileNetUNet):
        return [{"params": list(g.parameters()), "lr": lr}]
    encoder = {id(p) for p in g.encoder_parameters()}
    decoder = [p for p in g.parameters() if id(p) not in encoder]
    return [
        {"params": g.encoder_parameters(), "lr": lr * ENCODER_LR},
        {"params": decoder, "lr": lr},
    ]


def build_discriminator(cfg: ModelConfig, init: bool = True) -> nn.Module:
    """The discriminator ``cfg`` describes; ``init`` and None as for build_generator."""
    cfg = cfg.resolved()
    if cfg.disc == "patch":
        d: nn.Module = PatchDiscriminator(cfg.base_width)
    elif cfg.disc == "global":
        d = GlobalDiscriminator(cfg.base_width)
    else:
        raise ValueError(f"unknown discriminator '{cfg.disc}' (patch or global)")
    if init:
        init_weights(d)
    return d
