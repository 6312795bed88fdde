"""What a training batch goes through before the model sees it: ``--shade`` and ``--windows``."""

from __future__ import annotations

import torch

from vidcolor.data.augment import SHADE, WINDOW_STEP, shaded, windowed
from vidcolor.options import MIN_SIZE, ModelConfig, TrainConfig


def test_shade_darkens_about_its_share_of_the_crops_and_no_more() -> None:
    torch.manual_seed(0)
    rgb = torch.rand(400, 3, 4, 4) * 0.5 + 0.5
    factor = (shaded(rgb, 0.5) / rgb).flatten(1)
    assert torch.allclose(factor, factor[:, :1].expand_as(factor))  # one factor a crop
    factor = factor[:, 0]
    dark = factor < 1
    assert 0.4 < dark.float().mean().item() < 0.6
    assert factor[dark].min() >= SHADE[0] - 1e-6 and factor.max() <= 1
    assert torch.equal(shaded(rgb, 0.0), rgb) and bool((shaded(rgb, 1.0) < rgb).all())


def test_windows_cut_the_same_place_out_of_every_crop_and_vary_the_padding() -> None:
    """224 crops for a depth-6 U-Net (which pads to a multiple of 64): each side loses 0 to
    56 pixels in steps of 8, so every padding from 0 to 56 is seen, on the pixels cut out."""
    torch.manual_seed(0)
    s = 224
    rows = torch.arange(s).view(1, 1, s, 1).expand(2, 3, s, s)
    cols = torch.arange(s).view(1, 1, 1, s).expand(2, 3, s, s)
    coded = (rows * 1000 + cols).float()  # each pixel says where it was
    heights, pads = set(), set()
    for _ in range(300):
        win = windowed(coded, 64)
        h, w = win.shape[-2:]
        y, x = divmod(int(win[0, 0, 0, 0]), 1000)
        assert torch.equal(win, coded[..., y : y + h, x : x + w])  # one window for all crops
        assert s - 56 <= min(h, w) and h % WINDOW_STEP == w % WINDOW_STEP == 0
        heights.add(h)
        pads |= {-h % 64, -w % 64}
    assert heights == set(range(168, 225, 8)) and pads == set(range(0, 57, 8))


def test_windows_never_go_below_half_a_crop_or_the_smallest_size() -> None:
    torch.manual_seed(1)
    small = torch.rand(1, 3, MIN_SIZE, MIN_SIZE)
    assert windowed(small, 16) is small  # nothing can be cut
    crops = torch.rand(1, 3, 80, 80)
    sides = {min(windowed(crops, 256).shape[-2:]) for _ in range(200)}
    assert min(sides) == 40 and max(sides) == 80  # a depth-8 U-Net: S/2 is the limit
    torch.manual_seed(5)
    first = windowed(crops, 256)
    torch.manual_seed(5)
    assert torch.equal(windowed(crops, 256), first)  # torch's state decides, as resume needs


def test_a_run_begun_before_windows_resumes_on_whole_crops() -> None:
    new = TrainConfig(model=ModelConfig(base_width=8, depth=3)).to_dict()
    assert new["windows"] is True and TrainConfig.from_dict(new).windows
    old = {k: v for k, v in new.items() if k != "windows"}  # a checkpoint from before
    assert TrainConfig.from_dict(old).windows is False
