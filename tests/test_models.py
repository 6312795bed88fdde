"""Generator and discriminators: shapes, ranges, receptive field."""

from __future__ import annotations

import pytest
import torch

from vidcolor.models import (
    GlobalDiscriminator,
    ModelConfig,
    PatchDiscriminator,
    UNetGenerator,
    build_discriminator,
    build_generator,
)


@pytest.mark.parametrize(("h", "w"), [(32, 32), (37, 53), (61, 97), (1, 1)])
def test_generator_any_size_gives_ab_in_range(h: int, w: int) -> None:
    g = UNetGenerator(base_width=8, depth=5).eval()
    L = torch.rand(2, 1, h, w) * 2 - 1
    ab = g(L)
    assert ab.shape == (2, 2, h, w)
    assert ab.abs().max() <= 1


def test_generator_is_pix2pix_sized_and_skips_matter() -> None:
    g = build_generator(ModelConfig())  # defaults: width 64, depth 8
    assert sum(p.numel() for p in g.parameters()) == 54_410_434  # pix2pix's unet_256
    small = UNetGenerator(8, 4).eval()
    x = torch.zeros(1, 1, 16, 16, requires_grad=True)
    small(x)[0, 0, 3, 3].backward()
    # skip connections carry pixel-level detail: the output sees its own input pixel
    assert x.grad[0, 0, 3, 3] != 0


def test_patch_discriminator_sees_70x70_patches() -> None:
    d = PatchDiscriminator(64).eval()
    L = torch.zeros(1, 1, 256, 256, requires_grad=True)
    out = d(L, torch.zeros(1, 2, 256, 256))
    assert out.shape == (1, 1, 30, 30)
    out[0, 0, 15, 15].backward()
    rows, cols = L.grad[0, 0].abs().gt(0).nonzero().unbind(1)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (70, 70)


def test_global_discriminator_one_logit_any_size() -> None:
    d = GlobalDiscriminator(8).eval()
    assert d(torch.zeros(3, 1, 97, 61), torch.zeros(3, 2, 97, 61)).shape == (3, 1)
    assert isinstance(build_discriminator(ModelConfig(disc="global")), GlobalDiscriminator)
    with pytest.raises(ValueError, match="unknown discriminator"):
        build_discriminator(ModelConfig(disc="nope"))
