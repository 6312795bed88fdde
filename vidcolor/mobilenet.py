"""A U-Net generator on MobileNetV2's encoder (``train --encoder mobilenet_v2``), which can start
from torchvision's ImageNet weights (``train --encoder-weights``): a model that knows what a
scene shows, where the pix2pix encoder learns that from the training pictures alone
(docs/benchmarks.md, "An encoder pretrained on ImageNet").

The encoder is MobileNetV2's feature stages up to stride 32 (its last 1x1 conv to 1280
channels left out), with torchvision's module names so that its state dict loads as it is; the
decoder climbs back by bilinear upsampling and two 3x3 convs a level, taking the stage of equal
size (and L itself at full size) as its skip. Shapes as vidcolor.models's UNetGenerator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vidcolor.options import MOBILENET_DEPTH

# MobileNetV2's inverted residual settings (expansion, channels, repeats, stride), torchvision's
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)]
SETTINGS += [(6, 160, 3, 2), (6, 320, 1, 1)]
CUTS = [(0, 2), (2, 4), (4, 7), (7, 14), (14, 18)]  # torchvision's features at strides 2 to 32
SKIPS = [1, 16, 24, 32, 96]  # channels of L and of each stage but the last (320)
ENCODER_LR = 0.2  # the pretrained encoder's learning rate, a share of the decoder's
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _conv_bn(cin: int, cout: int, k: int, stride: int, groups: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion, 3x3 depthwise, 1x1 projection (+ input when shapes
    allow)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [_conv_bn(cin, hidden, 1, 1)]
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden)]
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


def _features() -> nn.Sequential:
    """torchvision's ``mobilenet_v2().features[:18]``."""
    layers, cin = [_conv_bn(3, 32, 3, 2)], 32
    for expand, cout, repeats, stride in SETTINGS:
        for i in range(repeats):
            layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
            cin = cout
    return nn.Sequential(*layers)


def _decoder_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class MobileNetUNet(nn.Module):
    """L (N,1,H,W) in [-1, 1] -> ab (N,2,H,W) in [-1, 1], any H and W (padded to a multiple of
    32 inside). Decoder widths 4w, 2w, 3w/2, w, w from the innermost out (``base_width`` w);
    2.67M parameters at w = 32. No dropout (ModelConfig.dropout is the pix2pix U-Net's)."""

    depth = MOBILENET_DEPTH  # inputs are padded to a multiple of 2**depth, as the U-Net's

    def __init__(self, base_width: int = 32) -> None:
        super().__init__()
        features = _features()
        self.stages = nn.ModuleList(features[a:b] for a, b in CUTS)
        w = base_width
        widths, cin = [4 * w, 2 * w, 3 * w // 2, w, w], 320
        self.decoder = nn.ModuleList()
        for skip, cout in zip(SKIPS[::-1], widths, strict=True):
            self.decoder.append(_decoder_block(cin + skip, cout))
            cin = cout
        self.head = nn.Conv2d(cin, 2, 1)
        # ImageNet's RGB normalisation, which its weights expect (not stored: constants)
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.stages.parameters())

    def encoder_levels(self, L: torch.Tensor) -> Iterator[torch.Tensor]:
        """MobileNetV2's stages' outputs for L (strides 2 to 32), each computed when it is
        asked for: the skips, and what colour matching compares (render.matching)."""
        x = (((L + 1) / 2).expand(-1, 3, -1, -1) - self.mean) / self.std  # as ImageNet's RGB
        for stage in self.stages:
            x = stage(x)
            yield x

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        h, w = L.shape[-2:]
        m = 2**self.depth
        ph, pw = -h % m, -w % m
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(L, (0, pw, 0, ph), mode=mode) if ph or pw else L
        skips = [x, *self.encoder_levels(x)]
        y = skips.pop()
        for block in self.decoder:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        return torch.tanh(self.head(y))[..., :h, :w]


def load_imagenet(g: MobileNetUNet, path: Path) -> None:
    """``g``'s encoder from torchvision's ImageNet MobileNetV2 state dict at ``path`` (such as
    ``mobilenet_v2-b0353104.pth``); a ValueError in one line when the file is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unreadable, not a torch file, or pickled code: all the same here
        raise ValueError(f"{path}: not a PyTorch state dict ({type(e).__name__})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a PyTorch state dict")
    mine = {}
    for i, (a, b) in enumerate(CUTS):
        for j in range(a, b):
            for name in g.stages[i][j - a].state_dict():
                mine[f"stages.{i}.{j}.{name}"] = f"features.{j}.{name}"  # slices keep their indices
    missing = [theirs for theirs in mine.values() if theirs not in state]
    if missing:
        raise ValueError(
            f"{path}: not torchvision's MobileNetV2 weights ({len(missing)} of its "
            f"{len(mine)} encoder tensors missing, such as '{missing[0]}')"
        )
    ours = g.state_dict()
    for key, theirs in mine.items():
        t = state[theirs]
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != tuple(ours[key].shape):
            said = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{path}: '{theirs}' is {said}, not MobileNetV2's")
    g.load_state_dict({**ours, **{k: state[t].to(ours[k].dtype) for k, t in mine.items()}})
