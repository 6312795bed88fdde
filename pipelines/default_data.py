"""The default model's data: many kinds of open footage and pictures, each kind held out too.

From the shared Big Buck Bunny clip (``../shared/media``), the recorded games
(``benchmarks/footage/make_footage.py``: SuperTux levels and Wesnoth episodes), and Debian's
wallpapers, Scratch's and Tux Paint's backdrops, and Ubuntu's and GCompris's photographs
(``benchmarks/photos/make_photos.py``), this writes, under WORK:

- ``train/``: the clip's first 45 s and its closing shot (8 frames a second), game episodes
  1-4 (2 a second), the wallpapers' and backdrops' train side, each whole and as 4 crops at
  twice the detail, and ``stamps/``: Tux Paint's and Scratch's cut-out animals, people, food
  and things laid over those pictures, 2 to 4 a picture;
- ``calibrate/KIND/``: what the chroma gain is chosen on: game episode 5, and the calibrate
  sides of the wallpapers, Ubuntu's photographs and GCompris's (kind ``gcompris``: animals
  and monuments);
- ``heldout/KIND/``: what the model is scored on, never trained or calibrated on: the
  README's sample shot (``pipelines/sample_clip.py``, 4 frames a second), game episode 6,
  the heldout sides of the same three, scikit-image's photographs, and live action: OpenCV's
  sample video of people walking past a building (a frame every 2 s).

Usage: python pipelines/default_data.py WORK [--footage bench-out/footage]
           [--photos bench-out/photos]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sample_clip import END, START  # noqa: E402  (this script's own folder)

from vidcolor import stages  # noqa: E402
from vidcolor.images import read_rgb  # noqa: E402
from vidcolor.options import ExtractOptions, ExtractStage  # noqa: E402
from vidcolor.ownership import NotOursError, remove_folder_of  # noqa: E402
from vidcolor.pictures import save_jpeg  # noqa: E402

CLIP = ROOT.parent / "shared/media/bbb_360p_60s.mp4"
SHORT = 256  # short side of every training picture, as the bundled model's frames
COMPOSITES = 400  # pictures of 3 stamps on average: each of the 564 stamps used about 2.1 times
CROPS = 4  # crops of each training wallpaper at twice the detail, beside the whole
# The README's sample shot (sample_clip.py's START to END) is held out; the shot after it, the
# clip's last (the big bunny lit against the sky), is trained on: the film's main character in
# daylight, which its first 45 s show only in a dark burrow.
GAMES = ("supertux", "wesnoth")
# scikit-image's own colour photographs (public domain or CC0: each one's docstring)
PHOTOGRAPHS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")


def frames(video: Path, out: Path, fps: float, start: float = 0, end: float | None = None):
    """Frames of ``video`` (``fps`` a second, short side SHORT, JPEG) into ``out``; a second
    run resumes (and checks) what a first one wrote."""
    options = ExtractOptions(image_format="jpg", fps=fps, start=start or None, end=end, size=SHORT)
    stages.extract(video, out, ExtractStage(options), resume=out.exists())


def write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_jpeg(path, rgb)


def fresh_part(out: Path) -> Path:
    """``OUT.part``, emptied of the pictures an interrupted run of this script left there;
    a folder holding anything else is refused, and left as it is."""
    part = out.with_name(f"{out.name}.part")
    try:
        remove_folder_of(part, out.parent, ("*.jpg",))
    except NotOursError as e:
        raise SystemExit(str(e)) from None
    return part


def scaled(rgb: np.ndarray, short: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = short / min(h, w)
    return cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def pictures(src: Path, out: Path, crops: int, seed: int = 0) -> None:
    """Each picture of ``src`` at short side SHORT, and ``crops`` SHORT-square crops of it at
    short side 2 x SHORT (details the whole picture is too small to show). They are written
    into ``OUT.part`` and moved to ``out`` when all are there, so ``out`` is whole or absent."""
    if out.exists():
        return
    rng, part = np.random.default_rng(seed), fresh_part(out)
    for path in sorted(src.iterdir()):
        rgb = read_rgb(path)
        write(part / f"{path.stem}.jpg", scaled(rgb, SHORT))
        big = scaled(rgb, 2 * SHORT)
        for i in range(crops):
            y = rng.integers(0, big.shape[0] - SHORT + 1)
            x = rng.integers(0, big.shape[1] - SHORT + 1)
            write(part / f"{path.stem}_crop{i}.jpg", big[y : y + SHORT, x : x + SHORT])
    part.rename(out)


def lay(picture: np.ndarray, stamp: Path, rng: np.random.Generator) -> None:
    """Lays ``stamp`` (a PNG with alpha) over ``picture`` (float RGB, in place): its long side
    0.35 to 0.8 of the picture's short side (enlarged at most twice), mirrored half the time,
    at most a quarter of its width and of its height outside. Resized with its colour
    premultiplied by alpha, so the colour its see-through pixels happen to hold never bleeds
    into its edge."""
    bgra = cv2.imread(str(stamp), cv2.IMREAD_UNCHANGED)
    rgba = cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)[:, :: rng.choice([1, -1])].astype(np.float32)
    rgba[..., :3] *= rgba[..., 3:] / 255
    h, w = picture.shape[:2]
    sh, sw = rgba.shape[:2]
    s = min(rng.uniform(0.35, 0.8) * min(h, w) / max(sh, sw), 2.0)
    size = (max(8, round(sw * s)), max(8, round(sh * s)))
    rgba = cv2.resize(
        np.ascontiguousarray(rgba), size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    )
    nw, nh = size
    y = rng.integers(-nh // 4, max(-nh // 4, h - 3 * nh // 4) + 1)
    x = rng.integers(-nw // 4, max(-nw // 4, w - 3 * nw // 4) + 1)
    y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + nh, h), min(x + nw, w)
    if y1 > y0 and x1 > x0:
        cut = rgba[y0 - y : y1 - y, x0 - x : x1 - x]
        alpha = cut[..., 3:].clip(0, 255) / 255
        picture[y0:y1, x0:x1] = cut[..., :3] + picture[y0:y1, x0:x1] * (1 - alpha)


def composites(stamps: Path, backgrounds: Path, out: Path, count: int, seed: int = 0) -> None:
    """``count`` pictures of 2 to 4 ``stamps`` laid over pictures drawn from ``backgrounds``,
    whole (through ``OUT.part``) or absent, like ``pictures``."""
    if out.exists():
        return
    rng, part = np.random.default_rng(seed), fresh_part(out)
    cutouts, grounds = sorted(stamps.glob("*.png")), sorted(backgrounds.glob("*.jpg"))
    if not cutouts or not grounds:
        raise SystemExit(f"{stamps} or {backgrounds}: empty (run make_photos.py first)")
    for i in range(count):
        picture = read_rgb(grounds[rng.integers(len(grounds))]).astype(np.float32)
        for _ in range(rng.integers(2, 5)):
            lay(picture, cutouts[rng.integers(len(cutouts))], rng)
        write(part / f"stamps_{i:04d}.jpg", picture.clip(0, 255).round().astype(np.uint8))
    part.rename(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--footage", type=Path, default=ROOT / "bench-out/footage")
    parser.add_argument("--photos", type=Path, default=ROOT / "bench-out/photos")
    args = parser.parse_args()
    w = args.work
    frames(CLIP, w / "train/bbb", 8, end=45)
    frames(CLIP, w / "train/bbb_last_shot", 8, start=float(END))
    frames(CLIP, w / "heldout/shared_unseen", 4, start=float(START), end=float(END))
    for game in GAMES:
        for episode in range(1, 5):
            frames(args.footage / f"{game}_{episode}.mp4", w / f"train/{game}_{episode}", 2)
        frames(args.footage / f"{game}_5.mp4", w / f"calibrate/{game}", 0.5)
        frames(args.footage / f"{game}_6.mp4", w / f"heldout/{game}", 0.5)
    frames(args.photos / "videos/live_action.avi", w / "heldout/live_action", 0.5)
    for split in ("train", "calibrate", "heldout"):  # make_photos.py's SPLIT/KIND folders
        for kind in sorted(d for d in (args.photos / split).iterdir() if d.is_dir()):
            pictures(kind, w / split / kind.name, CROPS if split == "train" else 0)
    composites(args.photos / "stamps", w / "train/wallpapers", w / "train/stamps", COMPOSITES)
    import skimage

    data = Path(skimage.__file__).parent / "data"
    for name in PHOTOGRAPHS:
        out = w / "heldout/photographs" / f"{Path(name).stem}.jpg"
        write(out, scaled(read_rgb(data / name), SHORT))
    for split in ("train", "calibrate", "heldout"):
        kinds = sorted(p.name for p in (w / split).iterdir())
        count = sum(1 for _ in (w / split).rglob("*.jpg"))
        print(f"{split}: {count} pictures ({', '.join(kinds)})")


if __name__ == "__main__":
    main()
