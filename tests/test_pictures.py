"""The pictures people look at (sample grids, contact sheets, the model's sheets) are written
whole or not at all, in the format their name says."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vidcolor.atomic import AppearedError
from vidcolor.pictures import save_jpeg, save_png


def picture() -> np.ndarray:
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, :30] = (200, 40, 40)  # red left, blue right: a swapped channel would show
    rgb[:, 30:] = (40, 40, 200)
    return rgb


def test_png_and_jpeg_keep_the_picture_and_its_colours(tmp_path: Path) -> None:
    save_png(tmp_path / "a.png", picture())
    save_jpeg(tmp_path / "a.jpg", picture(), quality=90)
    png = cv2.cvtColor(cv2.imread(str(tmp_path / "a.png")), cv2.COLOR_BGR2RGB)
    jpg = cv2.cvtColor(cv2.imread(str(tmp_path / "a.jpg")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(png, picture())
    assert jpg.shape == (40, 60, 3) and np.abs(jpg.astype(int) - picture()).mean() < 4
    assert (tmp_path / "a.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG, whatever the name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "a.png"]  # no temporary left


def test_a_picture_that_appeared_is_kept_without_leave_to_replace(tmp_path: Path) -> None:
    (tmp_path / "b.jpg").write_bytes(b"the user's")
    with pytest.raises(AppearedError):
        save_jpeg(tmp_path / "b.jpg", picture(), replace=False)
    assert (tmp_path / "b.jpg").read_bytes() == b"the user's"
