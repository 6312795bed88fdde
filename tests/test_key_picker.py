"""``vidcolor keys``: the frames worth painting, written so that ``render --keyframes`` reads
them back (vidcolor.render.key_picker)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from vidcolor.render.key_picker import THUMB, choose


def textured(seed: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.uniform(0, 255, (THUMB[1], width)), (0, 0), 2).astype(np.uint8)


def test_a_still_shot_gets_one_key_and_never_a_fade_frame() -> None:
    still = textured(0, THUMB[0])
    grays = [(i, np.uint8(np.clip(still.astype(int) * i // 10, 0, 255))) for i in range(10)]
    grays += [(i, still) for i in range(10, 60)]  # a fade in, then the shot
    picked = choose(grays)
    assert len(picked) == 1 and picked[0] >= 10


def test_a_pan_gets_more_keys_spread_along_it() -> None:
    world = textured(1, 8 * THUMB[0])
    grays = [(i, world[:, i // 2 : i // 2 + THUMB[0]].copy()) for i in range(160)]  # a pan
    picked = choose(grays, gap=24)
    assert 2 <= len(picked) <= 4 and min(np.diff(picked)) >= 24
    assert picked[0] < 50 and picked[-1] > 110  # both ends of the pan have a key near them
    x = np.stack([g.astype(float).ravel() - g.mean() for _, g in grays])
    x /= np.linalg.norm(x, axis=1, keepdims=True)

    def cover(keys: list[int]) -> float:
        return float((x @ x[keys].T).max(axis=1).mean())

    assert cover(picked) > cover([picked[0]]) + 0.2  # each added key covers its own stretch


def test_keys_round_trip_through_render(tmp_path: Path) -> None:
    from conftest import make_video

    from vidcolor.video import VideoReader

    src = tmp_path / "in.mp4"
    make_video(src, frames=40, width=96, height=64, cut_at=20)
    done = CliRunner().invoke(main, ["keys", str(src), "-o", str(tmp_path / "keys")])
    assert done.exit_code == 0, done.output
    names = sorted(p.name for p in (tmp_path / "keys").iterdir())
    assert len(names) == 2 and all(n.startswith("frame_") and n.endswith(".png") for n in names)
    picked = [int(n[6:12]) for n in names]
    assert picked[0] < 20 <= picked[1]  # one in each shot
    with VideoReader(src) as reader:
        frames = {f.index: f.image for f in reader if f.index in picked}
    for name, index in zip(names, picked, strict=True):  # each key is its frame, whole
        key = cv2.cvtColor(cv2.imread(str(tmp_path / "keys" / name)), cv2.COLOR_BGR2RGB)
        assert np.array_equal(key, frames[index])
    out = tmp_path / "out.mp4"
    rendered = CliRunner().invoke(
        main, ["render", str(src), str(out), "--keyframes", str(tmp_path / "keys")]
    )
    assert rendered.exit_code == 0, rendered.output
    with VideoReader(out) as reader:
        back = {f.index: f.image for f in reader if f.index in picked}
    for index in picked:  # the key's own frame takes the key's colour
        assert np.abs(back[index].astype(int) - frames[index]).mean() < 6


def test_a_folder_with_files_is_refused_in_one_line(tmp_path: Path) -> None:
    from conftest import make_video

    src = tmp_path / "in.mp4"
    make_video(src, frames=12)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "mine.png").write_bytes(b"a user's file")
    done = CliRunner().invoke(main, ["keys", str(src), "-o", str(keys)])
    assert done.exit_code != 0 and len(done.stderr.strip().splitlines()) == 1
    assert "not empty" in done.stderr
    assert [p.name for p in keys.iterdir()] == ["mine.png"]
    bad = tmp_path / "notes.txt"
    bad.write_text("not a video")
    done = CliRunner().invoke(main, ["keys", str(bad), "-o", str(tmp_path / "k2")])
    assert done.exit_code != 0 and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "k2").exists()


def test_a_stopped_write_leaves_no_key_and_no_folder_it_made(tmp_path: Path) -> None:
    from conftest import make_video

    from vidcolor.render.key_picker import write_keys

    src = tmp_path / "in.mp4"
    make_video(src, frames=20)
    keys = tmp_path / "keys"

    def stop(done: int) -> None:
        if done > 5:  # after the key of frame 2 is whole on the disk
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_keys(src, keys, [2, 15], on_frame=stop)
    assert not keys.exists()
    keys.mkdir()
    (keys / "notes.txt").write_text("a user's")  # a folder it did not make: kept, with theirs
    with pytest.raises(KeyboardInterrupt):
        write_keys(src, keys, [2, 15], on_frame=stop)
    assert [p.name for p in keys.iterdir()] == ["notes.txt"]
