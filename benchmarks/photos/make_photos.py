"""Open photographs and wallpapers from Debian's archive, to train and score the default model.

Debian's wallpaper packages carry landscapes, cities, nature close-ups and digital art under
open licences (each package's ``copyright`` file). This fetches them with ``apt-get download``
(no root needed), unpacks them with ``dpkg-deb``, keeps one picture per wallpaper (the largest
of its sizes; a dark variant counts as its own picture), scales each to short side ``--short``
and writes it to ``SPLIT/KIND/``, the split chosen by a stable hash of its name (a rerun or a
new package version keeps each picture on its side). Which package gives what, under which
licence: ``sources.py``.

- Debian's desktop wallpapers, Scratch's backdrops (``scratch``, CC-BY-SA-3.0: photographs
  of rooms, streets, sports grounds and nature) and Tux Paint's photographs to draw over
  (``tuxpaint-data``, GPL-2+): kind ``wallpapers``, split train, calibrate or heldout
  (8 : 1 : 1);
- Ubuntu's community photographs (``lomiri-wallpapers-*``): calibrate or heldout, half each,
  never trained on: the real photographs the default model is measured on. Kind
  ``photographs``, but for the few that are digital art (``NOT_PHOTOGRAPHS``): ``wallpapers``;
- GCompris's photographs (``gcompris-qt-data``, GPL-3+, read by ``gcompris.py``): animals of
  farms and of the world, and monuments; kind ``gcompris``, calibrate or heldout, half each,
  never trained on (trained on, they did not help: ``docs/benchmarks.md``). Light animals in
  snow and grass, stone under the sky: what a model that learnt from a meadow paints green;
- OpenCV's sample photographs (``opencv-doc``: fruit, a baboon, a squirrel, buildings, a
  football match): kind ``photographs``, calibrate or heldout, half each, never trained on; and
  its one live-action video (people walking past a building), copied whole to
  ``videos/live_action.avi`` for ``pipelines/default_data.py`` to take held-out frames from;
- Tux Paint's stamps (``tuxpaint-stamps-default``, GPL-2): photographs and drawings of animals,
  food, flowers, vehicles and houses cut out of their background, and Scratch's costumes
  (photographs of people, drawn animals and things), kept whole with their alpha in
  ``stamps/`` (a training aid, never scored: ``pipelines/default_data.py`` lays them over
  training wallpapers). They bring what footage of grass and game maps lacks: fur, skin,
  wood and red things.

``manifest.json`` records each picture's package, version, path in the package and licence.
Benchmarks and the default model's recipe use this; vidcolor itself never needs these tools.

    python benchmarks/photos/make_photos.py [--out bench-out/photos] [--debs DIR]
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cv2
import gcompris  # this script's own folder
import numpy as np
from sources import LIVE_ACTION, NOT_PHOTOGRAPHS, OPENCV, OPENCV_PHOTOS, PACKAGES, STAMPS

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from vidcolor.atomic import atomic_path  # noqa: E402
from vidcolor.data.dataset import is_greyscale  # noqa: E402
from vidcolor.images import read_rgb  # noqa: E402
from vidcolor.ownership import NotOursError, remove_folder_of  # noqa: E402
from vidcolor.pictures import save_jpeg  # noqa: E402

STAMP_MIN_SIDE = 96  # smaller stamps blur when laid over a picture at a useful size
RASTERS = gcompris.RASTERS  # one list of picture formats for the wallpapers and GCompris
SIZE_IN_NAME = re.compile(r"_?\d{3,5}x\d{3,5}$")
SPLITS = {  # hash % 10 below the bound
    True: ((1, "heldout"), (2, "calibrate"), (10, "train")),
    False: ((5, "heldout"), (10, "calibrate")),  # never trained on
}


def split_of(name: str, trained: bool) -> str:
    """heldout, calibrate or train, from a stable hash of the picture's name."""
    bucket = int(hashlib.sha1(name.encode()).hexdigest(), 16) % 10
    return next(split for bound, split in SPLITS[trained] if bucket < bound)


def kind_of(package: str, path: Path) -> str:
    """photographs: those of a package never trained on, but for its digital art; the rest are
    wallpapers."""
    trained = PACKAGES[package][0]
    return "wallpapers" if trained or path.stem in NOT_PHOTOGRAPHS else "photographs"


def picture_id(package: str, path: Path) -> str:
    """One name per wallpaper, whatever size a file is: Plasma keeps sizes as
    ``NAME/contents/images[_dark]/WxH.ext``, others as ``NAME[_WxH].ext``."""
    parts = path.parts
    if "contents" in parts:
        at = parts.index("contents")
        variant = parts[at + 1].removeprefix("images").strip("_")
        return f"{package}__{parts[at - 1]}" + (f"_{variant}" if variant else "")
    return f"{package}__{SIZE_IN_NAME.sub('', path.stem)}"


def unpacked(debs: Path, package: str, tmp: Path) -> tuple[str, Path]:
    """(version, folder) of the newest ``PACKAGE_*.deb`` in ``debs``, unpacked by dpkg-deb into
    ``tmp/PACKAGE`` once a run, however many of its readers ask (``scratch`` gives backdrops
    and stamps)."""
    deb, into = sorted(debs.glob(f"{package}_*.deb"))[-1], tmp / package
    version = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    if not into.exists():
        subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)
    return version, into


def file_licences(folder: Path, package: str) -> dict[str, str]:
    """{file name pattern: licence} from the package's machine-readable copyright file, for
    the stanzas that name files (``debian/*`` or ``*`` name a folder, not a picture)."""
    copyright_file = folder / "usr/share/doc" / package / "copyright"
    found: dict[str, str] = {}
    if not copyright_file.exists():
        return found
    for stanza in copyright_file.read_text(errors="replace").split("\n\n"):
        fields = dict(re.findall(r"^(Files|License):(.*(?:\n[ \t].*)*)", stanza, re.MULTILINE))
        if "Files" in fields and "License" in fields:
            licence = fields["License"].strip().splitlines()[0]  # the name; the text follows
            for pattern in fields["Files"].split():
                if Path(pattern).name != "*":
                    found[Path(pattern).name] = licence
    return found


def licence_of(path: Path, licences: dict[str, str], default: str) -> str:
    """The licence of the longest pattern that matches the picture's name, else ``default``."""
    matches = [pat for pat in licences if fnmatch.fnmatch(path.name, pat)]
    return licences[max(matches, key=len)] if matches else default


def pictures(package: str, folder: Path) -> dict[str, Path]:
    """The largest raster of each wallpaper in an unpacked package (screenshots and second
    names of a picture left out)."""
    best: dict[str, tuple[int, Path]] = {}
    share = folder / "usr/share"
    for path in sorted({p for pattern in PACKAGES[package][2] for p in share.glob(pattern)}):
        if path.suffix.lower() not in RASTERS or path.stem == "screenshot" or "doc" in path.parts:
            continue
        if path.is_symlink():  # another name for a picture of the package, if any
            continue
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            continue
        key, pixels = picture_id(package, path), image.shape[0] * image.shape[1]
        if key not in best or pixels > best[key][0]:
            best[key] = (pixels, path)
    return {key: path for key, (_, path) in best.items()}


def stamps(folder: Path, package: str) -> dict[str, Path]:
    """{PACKAGE__CATEGORY__..._NAME: path} of the cut-outs worth training on in a package of
    ``STAMPS``, unpacked: cut out (at least 5% transparent), in colour and not tiny."""
    where, _, left_out = STAMPS[package]
    root, found = folder / "usr/share" / where, {}
    for path in sorted(root.rglob("*.png")):
        parts = path.relative_to(root).with_suffix("").parts
        bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if parts[0] == left_out or bgra is None or bgra.ndim != 3 or bgra.shape[2] != 4:
            continue
        if max(bgra.shape[:2]) < STAMP_MIN_SIDE or (bgra[..., 3] < 128).mean() < 0.05:
            continue
        if not is_greyscale(cv2.cvtColor(bgra[..., :3], cv2.COLOR_BGR2RGB)):
            found["__".join((package, *parts)).replace(" ", "_")] = path
    return found


def write_stamps(debs: Path, tmp: Path, out: Path) -> list[dict]:
    """The cut-outs of the ``STAMPS`` packages as PNG with alpha into ``OUT/stamps`` (written
    into ``stamps.part``, then swapped for what an earlier run of this script left there, so
    the folder is one run's whole set); their manifest rows. Folders at those names that hold
    anything but stamps are refused and left as they are."""
    part, rows = out / "stamps.part", []
    clear(part, out)
    part.mkdir(parents=True)
    for package, (_, licence, _) in STAMPS.items():
        version, folder = unpacked(debs, package, tmp)
        for key, path in stamps(folder, package).items():
            shutil.copyfile(path, part / f"{key}.png")
            rows.append(
                {
                    "file": f"stamps/{key}.png",
                    "package": package,
                    "version": version,
                    "source": str(path.relative_to(folder)),
                    "licence": licence,
                    "split": "train",
                    "kind": "stamps",
                }
            )
    clear(out / "stamps", out)
    part.rename(out / "stamps")
    return rows


def clear(folder: Path, out: Path) -> None:
    """Delete ``folder`` if it holds stamps only (this script's); refuse it in one line if not."""
    try:
        remove_folder_of(folder, out, ("*.png",))
    except NotOursError as e:
        raise SystemExit(str(e)) from None


def write_picture(
    rgb: np.ndarray, key: str, kind: str, trained: bool, out: Path, short: int
) -> dict | None:
    """One picture at short side ``short`` (never enlarged) as ``OUT/SPLIT/KIND/KEY.jpg``, the
    split chosen by ``split_of``; the file, split and kind of its manifest row. Grey pictures
    teach no colour: None, and nothing written."""
    if is_greyscale(rgb):
        return None
    h, w = rgb.shape[:2]
    scale = short / min(h, w)
    if scale < 1:
        rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    split = split_of(key, trained)
    dest = out / split / kind / f"{key}.jpg"
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_jpeg(dest, rgb)
    return {"file": f"{split}/{kind}/{dest.name}", "split": split, "kind": kind}


def wallpapers(debs: Path, tmp: Path, out: Path, short: int) -> Iterator[dict]:
    """The manifest rows of the wallpaper packages' pictures, each written by ``write_picture``."""
    for package, (trained, licence, _) in PACKAGES.items():
        version, folder = unpacked(debs, package, tmp)
        licences = file_licences(folder, package)
        for key, path in pictures(package, folder).items():
            row = write_picture(read_rgb(path), key, kind_of(package, path), trained, out, short)
            if row:
                yield row | {
                    "package": package,
                    "version": version,
                    "source": str(path.relative_to(folder)),
                    "licence": licence_of(path, licences, licence),
                }


def gcompris_photos(version: str, folder: Path, out: Path, short: int) -> Iterator[dict]:
    """The manifest rows of the photographs in GCompris's unpacked package (kind ``gcompris``,
    never trained on: calibrate or heldout), each written by ``write_picture``."""
    for key, (source, data) in gcompris.pictures(folder, gcompris.PHOTOS).items():
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:  # unreadable, as pictures() skips a wallpaper OpenCV cannot read
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        row = write_picture(rgb, f"gcompris__{key}", "gcompris", False, out, short)
        if row:
            about = {"package": gcompris.PACKAGE, "version": version, "source": source}
            yield row | about | {"licence": gcompris.LICENCE}


def opencv_samples(version: str, folder: Path, out: Path, short: int) -> Iterator[dict]:
    """The manifest rows of OpenCV's sample photographs in its unpacked package (each written
    by ``write_picture``) and of its live-action video, copied whole to ``OUT/videos``."""
    package, default, where = OPENCV
    data, licences = folder / "usr/share" / where, file_licences(folder, package)

    def about(path: Path) -> dict:
        source, licence = str(path.relative_to(folder)), licence_of(path, licences, default)
        return {"package": package, "version": version, "source": source, "licence": licence}

    for name in OPENCV_PHOTOS:
        key = f"{package}__{Path(name).stem}"
        row = write_picture(read_rgb(data / name), key, "photographs", False, out, short)
        if row:
            yield row | about(data / name)
    name, dest = LIVE_ACTION
    (out / dest).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / dest) as part:
        shutil.copyfile(data / name, part)
    yield {"file": dest, "split": "heldout", "kind": "live_action"} | about(data / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out/photos")
    parser.add_argument("--debs", type=Path, help="folder of the .deb files (default: download)")
    parser.add_argument("--short", type=int, default=512, help="short side of the pictures")
    args = parser.parse_args()
    debs = args.debs or args.out / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    for package in dict.fromkeys([*PACKAGES, *STAMPS, gcompris.PACKAGE, OPENCV[0]]):
        if not list(debs.glob(f"{package}_*.deb")):
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = list(wallpapers(debs, Path(tmp), args.out, args.short))
        version, folder = unpacked(debs, gcompris.PACKAGE, Path(tmp))
        rows += gcompris_photos(version, folder, args.out, args.short)
        version, folder = unpacked(debs, OPENCV[0], Path(tmp))
        rows += opencv_samples(version, folder, args.out, args.short)
        rows += write_stamps(debs, Path(tmp), args.out)
    with atomic_path(args.out / "manifest.json") as part:
        part.write_text(json.dumps({"pictures": rows}, indent=1) + "\n")
    counts = Counter(f"{r['split']}/{r['kind']}" for r in rows)
    print(f"{len(rows)} pictures and videos in {args.out}: {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
