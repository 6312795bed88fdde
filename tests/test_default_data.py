"""The default model's stamp data: which of Tux Paint's stamps are kept, the pictures
``pipelines/default_data.py`` lays them into (real PNG files with alpha, real JPEGs out),
GCompris's pictures read out of real Qt resource files, and OpenCV's sample photographs and
live-action video."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_video

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks/photos"), str(ROOT / "pipelines")]

import default_data  # noqa: E402
import make_photos  # noqa: E402

from vidcolor.images import read_rgb  # noqa: E402

RED_BGR, BLUE_RGB = (0, 0, 255), (40, 60, 200)


def stamp(path: Path, side: int = 160, bgr=RED_BGR, cut: bool = True) -> None:
    """A PNG of a disc of colour ``bgr`` on a transparent ground whose colour is white, as
    real stamps' often is (opaque when not ``cut``)."""
    bgra = np.zeros((side, side, 4), np.uint8)
    bgra[..., :3] = 255
    cv2.circle(bgra, (side // 2, side // 2), side // 2 - 2, (*bgr, 255), -1)
    if not cut:
        bgra[..., 3] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), bgra)


def test_only_cut_out_colour_stamps_of_a_useful_size_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "usr/share/tuxpaint/stamps"
    stamp(root / "animals/mammals/fox.png")
    stamp(root / "animals/birds/fox.png")  # the same name in another category
    stamp(root / "symbols/alphabets/a.png")  # letters and signs teach no colour
    stamp(root / "food/small.png", side=64)
    stamp(root / "food/gray.png", bgr=(128, 128, 128))
    stamp(root / "town/square.png", cut=False)  # nothing cut out: a photograph's own ground
    cv2.imwrite(str(root / "town/plain.png"), np.full((160, 160, 3), 90, np.uint8))
    assert make_photos.stamps(tmp_path, "tuxpaint-stamps-default") == {
        "tuxpaint-stamps-default__animals__birds__fox": root / "animals/birds/fox.png",
        "tuxpaint-stamps-default__animals__mammals__fox": root / "animals/mammals/fox.png",
    }
    costumes = tmp_path / "usr/share/scratch/Media/Costumes"
    stamp(costumes / "People/jay walking.png")
    stamp(costumes / "Letters/stone/a.png")
    assert make_photos.stamps(tmp_path, "scratch") == {
        "scratch__People__jay_walking": costumes / "People/jay walking.png"
    }


def test_a_package_gives_only_the_pictures_of_its_own_folder(tmp_path: Path) -> None:
    share = tmp_path / "usr/share/scratch"
    for name in ("Media/Backgrounds/Nature/lake.jpg", "Help/en/menu.png", "Media/Costumes/x.png"):
        (share / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(share / name), np.full((90, 120, 3), (200, 120, 40), np.uint8))
    assert make_photos.pictures("scratch", tmp_path) == {
        "scratch__lake": share / "Media/Backgrounds/Nature/lake.jpg"
    }


def test_a_picture_is_named_by_its_own_file_not_by_a_link_to_it(tmp_path: Path) -> None:
    images = tmp_path / "usr/share/wallpapers/Autumn/contents/images"
    images.mkdir(parents=True)
    cv2.imwrite(str(images / "2560x1600.jpg"), np.full((90, 120, 3), (200, 120, 40), np.uint8))
    (images / "1280x1024.jpg").symlink_to("2560x1600.jpg")  # Plasma's other sizes are links
    assert make_photos.pictures("plasma-workspace-wallpapers", tmp_path) == {
        "plasma-workspace-wallpapers__Autumn": images / "2560x1600.jpg"
    }


def test_stamps_are_laid_over_the_backgrounds_the_same_way_every_run(tmp_path: Path) -> None:
    stamp(tmp_path / "stamps/red.png")
    ground = np.zeros((256, 340, 3), np.uint8)
    ground[:] = BLUE_RGB
    (tmp_path / "walls").mkdir()
    cv2.imwrite(str(tmp_path / "walls/blue.jpg"), cv2.cvtColor(ground, cv2.COLOR_RGB2BGR))
    for run in ("a", "b"):
        default_data.composites(tmp_path / "stamps", tmp_path / "walls", tmp_path / run, 5)
    pictures = sorted((tmp_path / "a").iterdir())
    assert [p.name for p in pictures] == [f"stamps_{i:04d}.jpg" for i in range(5)]
    assert not list(tmp_path.glob("*.part"))
    for path in pictures:
        rgb = read_rgb(path).astype(int)
        assert rgb.shape == ground.shape
        red = (rgb[..., 0] > 200) & (rgb[..., 2] < 60)
        blue = np.abs(rgb - BLUE_RGB).max(axis=2) < 12
        assert 0.05 < red.mean() < 0.95 and blue.mean() > 0.05  # a stamp laid, ground left
        # every pixel a blend of red over blue, edges too: the see-through white never shows
        over = 1 - rgb[..., 2] / BLUE_RGB[2]
        expected = 255 * over + BLUE_RGB[0] * (1 - over)
        assert np.percentile(np.abs(rgb[..., 0] - expected), 99.5) < 25
        again = read_rgb(tmp_path / "b" / path.name).astype(int)
        assert np.abs(again - rgb).max() == 0


def test_a_stamp_hanging_over_the_edge_is_cut_at_it(tmp_path: Path) -> None:
    stamp(tmp_path / "red.png", side=400)  # enlarged or shrunk to fit any picture
    rng = np.random.default_rng(3)
    covered = []
    for _ in range(50):  # placed anywhere, up to a quarter of the stamp outside
        picture = np.zeros((90, 150, 3), np.float32)
        default_data.lay(picture, tmp_path / "red.png", rng)
        assert picture.shape == (90, 150, 3) and picture.max() < 255.01
        covered.append((picture[..., 0] > 128).mean())
    assert min(covered) > 0 and max(covered) < 0.9


def test_a_leftover_part_folder_is_emptied_only_of_pictures(tmp_path: Path) -> None:
    stamp(tmp_path / "stamps/red.png")
    (tmp_path / "walls").mkdir()
    cv2.imwrite(str(tmp_path / "walls/blue.jpg"), np.full((64, 96, 3), 128, np.uint8))
    part = tmp_path / "out.part"  # what an interrupted run left: a picture past the new count
    part.mkdir()
    (part / "stamps_0009.jpg").write_bytes(b"jpeg")
    default_data.composites(tmp_path / "stamps", tmp_path / "walls", tmp_path / "out", 2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "stamps_0000.jpg",
        "stamps_0001.jpg",
    ]
    part = tmp_path / "other.part"  # a folder at that name holding something else
    part.mkdir()
    (part / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match=r"notes\.txt: not made by vidcolor"):
        default_data.composites(tmp_path / "stamps", tmp_path / "walls", tmp_path / "other", 2)
    assert (part / "notes.txt").read_text() == "mine"


def qt_resources(tmp_path: Path, activity: str, files: dict[str, np.ndarray | bytes]) -> Path:
    """An unpacked GCompris package's ``rcc/ACTIVITY.rcc`` holding ``files`` (name: BGR or BGRA
    picture, or the file's bytes) and a text file, made by Qt's own resource compiler."""
    pytest.importorskip("PySide6", reason="GCompris's .rcc files are read by PySide6-Essentials")
    rcc_tool = shutil.which("pyside6-rcc")
    if rcc_tool is None:
        pytest.skip("PySide6-Essentials' pyside6-rcc is not on PATH")
    src = tmp_path / "src" / activity
    (src / "resource").mkdir(parents=True)
    (src / "resource/notes.txt").write_text("not a picture")
    for name, image in files.items():
        if isinstance(image, bytes):
            (src / "resource" / name).write_bytes(image)
        else:
            cv2.imwrite(str(src / "resource" / name), image)
    entries = "".join(f"<file>{p.relative_to(src)}</file>" for p in sorted(src.rglob("*.*")))
    prefix = f"/gcompris/src/activities/{activity}"
    (src / "x.qrc").write_text(f'<RCC><qresource prefix="{prefix}">{entries}</qresource></RCC>')
    out = tmp_path / "pkg/usr/share/gcompris-qt/rcc" / f"{activity}.rcc"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([rcc_tool, "--binary", "x.qrc", "-o", str(out)], cwd=src, check=True)
    return tmp_path / "pkg"


def test_gcompris_photographs_come_out_of_its_resource_files_split_and_scaled(
    tmp_path: Path,
) -> None:
    red = np.zeros((300, 400, 3), np.uint8)
    red[:] = RED_BGR
    grey = np.full((300, 400, 3), 90, np.uint8)
    files = {"fox.webp": red, "grey.webp": grey, "torn.webp": b"RIFF\x00\x00not a picture"}
    activities = sorted(make_photos.gcompris.PHOTOS)
    for activity in activities:
        package = qt_resources(tmp_path, activity, files)
    out = tmp_path / "out"
    rows = list(make_photos.gcompris_photos("3.1-2", package, out, short=256))
    # the grey one and the unreadable one left out
    assert [Path(r["file"]).stem for r in rows] == [f"gcompris__{a}__fox" for a in activities]
    for row, activity in zip(rows, activities, strict=True):
        assert row["split"] == make_photos.split_of(Path(row["file"]).stem, trained=False)
        assert row["file"] == f"{row['split']}/gcompris/{Path(row['file']).name}"
        assert row["licence"] == "GPL-3+" and row["version"] == "3.1-2"
        inner = f"gcompris/src/activities/{activity}/resource/fox.webp"
        assert row["source"] == f"usr/share/gcompris-qt/rcc/{activity}.rcc:{inner}"
        rgb = read_rgb(out / row["file"]).astype(int)
        assert rgb.shape == (256, 341, 3)
        assert np.abs(rgb - (255, 0, 0)).max() < 12


def test_opencv_samples_give_its_listed_photographs_and_its_video_whole(tmp_path: Path) -> None:
    data = tmp_path / "pkg/usr/share" / make_photos.OPENCV[2]
    data.mkdir(parents=True)
    for name in make_photos.OPENCV_PHOTOS:
        cv2.imwrite(str(data / name), np.full((300, 400, 3), RED_BGR, np.uint8))
    gray = make_photos.OPENCV_PHOTOS[0]
    cv2.imwrite(str(data / gray), np.full((300, 400, 3), 90, np.uint8))
    cv2.imwrite(str(data / "logo.jpg"), np.full((300, 400, 3), RED_BGR, np.uint8))  # unlisted
    make_video(data / make_photos.LIVE_ACTION[0], frames=6)
    out = tmp_path / "out"
    *photos, video = make_photos.opencv_samples("4.6.0", tmp_path / "pkg", out, short=256)
    stems = [f"opencv-doc__{Path(n).stem}" for n in make_photos.OPENCV_PHOTOS[1:]]
    assert [Path(r["file"]).stem for r in photos] == stems  # not the gray one, not the logo
    for row in photos:
        assert row["split"] == make_photos.split_of(Path(row["file"]).stem, trained=False)
        assert row["file"] == f"{row['split']}/photographs/{Path(row['file']).name}"
        assert row["licence"] == "Apache-2.0 AND BSD-3-Clause" and row["version"] == "4.6.0"
        assert read_rgb(out / row["file"]).shape == (256, 341, 3)
    assert video["file"] == "videos/live_action.avi" and video["kind"] == "live_action"
    assert video["split"] == "heldout"
    source = data / make_photos.LIVE_ACTION[0]
    assert (out / video["file"]).read_bytes() == source.read_bytes()
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["live_action.avi"]
