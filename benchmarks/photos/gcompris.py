"""GCompris's photographs, out of Debian's ``gcompris-qt-data``.

The educational suite keeps its pictures inside Qt resource files (``rcc/ACTIVITY.rcc``), read
here through Qt's own ``QResource`` (``pip install PySide6-Essentials``: a tool for the default
model's recipe only, as ``apt-get`` is; vidcolor never needs it). Four activities show
photographs: animals of farms and of the world (white sheep, a polar bear in snow, swans),
and monuments under the sky. The package's copyright file gives every one of them GPL-3+.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = "gcompris-qt-data"
LICENCE = "GPL-3+"  # the package's copyright file, "Files: *"
PHOTOS = ("erase", "explore_farm_animals", "explore_world_animals", "explore_monuments")
RASTERS = (".webp", ".jpg", ".jpeg", ".png")


def resources(rcc: Path) -> dict[str, bytes]:
    """{path inside the resource file: bytes} of every raster picture a ``.rcc`` holds."""
    try:
        from PySide6.QtCore import QDirIterator, QFile, QIODevice, QResource
    except ImportError:
        raise SystemExit(
            "GCompris's pictures are in Qt resource files: pip install PySide6-Essentials"
        ) from None
    root = f"/{rcc.stem}"
    if not rcc.is_file():
        raise SystemExit(f"{rcc}: missing (has the package moved its pictures?)")
    if not QResource.registerResource(str(rcc), root):
        raise SystemExit(f"{rcc}: not a Qt resource file Qt can read")
    found: dict[str, bytes] = {}
    try:
        walk = QDirIterator(f":{root}", QDirIterator.IteratorFlag.Subdirectories)
        while walk.hasNext():
            path = walk.next()
            if not path.lower().endswith(RASTERS):
                continue
            file = QFile(path)
            if file.open(QIODevice.OpenModeFlag.ReadOnly):
                found[path.removeprefix(f":{root}/")] = bytes(file.readAll().data())
                file.close()
    finally:
        QResource.unregisterResource(str(rcc), root)
    return found


def pictures(folder: Path, activities: tuple[str, ...]) -> dict[str, tuple[str, bytes]]:
    """{ACTIVITY__NAME: (source path, encoded picture)} of the given activities in an unpacked
    package, each picture under a name that says where it came from."""
    rcc_folder = folder / "usr/share/gcompris-qt/rcc"
    found: dict[str, tuple[str, bytes]] = {}
    for activity in activities:
        rcc = rcc_folder / f"{activity}.rcc"
        for inner, data in sorted(resources(rcc).items()):
            key = f"{activity}__{Path(inner).stem}"
            if key in found:  # one name in two folders of the activity
                key = f"{activity}__{Path(inner).parent.name}__{Path(inner).stem}"
            found[key] = (f"{rcc.relative_to(folder)}:{inner}", data)
    return dict(sorted(found.items()))
