"""vidcolor deletes or replaces only what it made: which folders it made, paths read from its
records kept inside their folder, and the one guarded delete.

Every output folder vidcolor makes carries its own record from the start, and that record is
its marker: ``extract.json`` (an extraction), ``manifest.json`` (a dataset), ``plan.json`` (a
dataset build under way), ``config.json`` (a training run), ``pipeline/STAGE.json`` (a
pipeline's work folder). A folder is deleted only through ``remove_tree``, which checks the
marker, that the folder lies inside the place the caller works in, and that every entry in it
is one that kind of folder holds; anything else is refused in one line naming the path.
"""

from __future__ import annotations

import json
import os
import shutil
from fnmatch import fnmatchcase
from pathlib import Path

from vidcolor.errors import UserError
from vidcolor.files import read_regular

RUN_FORMAT = "vidcolor-run"  # a training run's config.json carries it; no other tool writes it
TEMP = ".*.part-*"  # atomic.temp_beside's names: a file being written

# What each kind of folder holds once vidcolor wrote it (patterns relative to the folder;
# a pattern matches at its own depth only). A subfolder that is itself one of vidcolor's
# folders is judged by its own kind.
# fmt: off
OWNED: dict[str, tuple[str, ...]] = {
    "extract": ("manifest.jsonl", "extract.json", "*_[0-9]*.png", "*_[0-9]*.jpg"),
    "dataset": ("manifest.json", "train.npy", "val.npy", "test.npy", "scenes.png", "lock"),
    "dataset-partial": ("lock", "plan.json", "scan_*", "*.npy", "manifest.json"),
    "train": ("config.json", "last.pt", "best.pt", "model.pt", "metrics.csv", "curves.png",
              "samples", "samples/epoch_*.png", "samples/step_*.png", "cache",
              "cache/frames.u8", "cache/index.npy", "cache/cache.json", "lock"),
    "pipeline": ("pipeline", "pipeline/*.json", "pipeline/*.items", "pipeline/*.items/*.json",
                 "frames", "render", "render/*"),
}
# fmt: on


class NotOursError(UserError):
    """vidcolor was asked to delete, replace or read something it did not make."""


def kind_of(folder: Path) -> str | None:
    """Which kind of vidcolor folder ``folder`` is, from its record; None when vidcolor did not
    make it."""
    if folder.is_symlink() or not folder.is_dir():
        return None

    def record(name: str) -> dict:
        try:  # a pipe or device at a record's name is no record, and must not block the read
            value = json.loads(read_regular(folder / name, "a record"))
        except (UserError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    if record("manifest.json").get("format") == "vidcolor-dataset":
        return "dataset"
    if {"source", "options"} <= record("extract.json").keys():
        return "extract"
    if record("config.json").get("format") == RUN_FORMAT:
        return "train"
    if folder.name.endswith(".partial") and (
        "videos" in record("plan.json") or {p.name for p in folder.iterdir()} == {"lock"}
    ):
        return "dataset-partial"  # (a lock alone: stopped between its plan and the next)
    ledger = folder / "pipeline"
    if ledger.is_dir() and any(
        record(f"pipeline/{p.name}").get("stage") for p in ledger.glob("*.json")
    ):
        return "pipeline"
    return None


def is_empty(folder: Path) -> bool:
    return folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir())


def check_claim(folder: Path, kind: str, what: str) -> None:
    """Refuse unless ``folder`` can be vidcolor's ``kind`` folder: new, empty, or already one
    (``what`` says what the folder is for, in the message)."""
    if folder.exists() and not folder.is_dir():
        raise NotOursError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and not is_empty(folder) and kind_of(folder) != kind:
        raise NotOursError(
            f"{folder}: holds files and is not {what} vidcolor made; choose a new or empty folder"
        )


def claim(folder: Path, kind: str, what: str) -> None:
    """``check_claim``, then create the folder; its caller writes its record next."""
    check_claim(folder, kind, what)
    folder.mkdir(parents=True, exist_ok=True)


def is_inside(path: Path, root: Path, follow: bool = False) -> bool:
    """Whether ``path`` lies strictly inside ``root``, as written and with the links above it
    followed; ``follow`` also follows ``path`` itself when it is a link (for reading through
    it; deleting a link never touches what it points to)."""
    path, root = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    if root not in path.parents:
        return False
    real = path.resolve() if follow else path.parent.resolve() / path.name
    return root.resolve() in real.parents


def plain_name(name: object, where: str) -> str:
    """A file name read from one of vidcolor's own records: a plain name in the record's folder.
    Absolute paths, separators and ``..`` are refused (``where`` names the record)."""
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
    ):
        raise NotOursError(
            f"{where}: {name!r} is not a file name in its folder; the record was edited or damaged"
        )
    return name


def file_in(folder: Path, name: object, where: str) -> Path:
    """``folder / name`` for a name read from a record, refused unless it stays inside, links
    followed."""
    path = folder / plain_name(name, where)
    if path.is_symlink() and not is_inside(path, folder, follow=True):
        raise NotOursError(f"{where}: {path} links out of {folder}; refused")
    return path


def _foreign(folder: Path, patterns: tuple[str, ...]) -> Path | None:
    """The first entry under ``folder`` that ``patterns`` (a kind's ``OWNED`` entry) do not
    name, or None. A subfolder vidcolor marked is judged by its own kind."""

    def walk(here: Path) -> Path | None:
        for entry in sorted(here.iterdir()):
            real_dir = entry.is_dir() and not entry.is_symlink()
            inner_kind = kind_of(entry) if real_dir else None
            if inner_kind is not None:
                found = _foreign(entry, OWNED[inner_kind])
            else:
                rel = entry.relative_to(folder).as_posix()
                depth = rel.count("/")
                temp = fnmatchcase(entry.name, TEMP) and not real_dir
                if not temp and not any(
                    fnmatchcase(rel, p) and p.count("/") == depth for p in patterns
                ):
                    return entry
                found = walk(entry) if real_dir else None
            if found is not None:
                return found
        return None

    return walk(folder)


def check_removable(folder: Path, within: Path, kind: str, recorded: bool = False) -> None:
    """Refuse, naming the path, unless ``folder`` is one vidcolor made as ``kind`` inside
    ``within`` and holds only what such a folder holds. ``recorded``: the caller's own records
    (a pipeline's ledger) say it made the folder, whose own record may be damaged."""
    if not is_inside(folder, within):
        raise NotOursError(
            f"{folder}: outside {within}; vidcolor deletes only inside its own folders"
        )
    found = kind if recorded and folder.is_dir() and not folder.is_symlink() else kind_of(folder)
    if found != kind:
        raise NotOursError(f"{folder}: not made by vidcolor; move it away and run again")
    stray = _foreign(folder, OWNED[found])
    if stray is not None:
        raise NotOursError(f"{stray}: not made by vidcolor; move it out of {folder} and run again")


def remove_tree(folder: Path, within: Path, kind: str, recorded: bool = False) -> None:
    """Delete ``folder`` and everything in it, after ``check_removable``: nothing is deleted
    unless all of it may be."""
    if not folder.exists() and not folder.is_symlink():
        return
    if is_empty(folder) and is_inside(folder, within):
        folder.rmdir()  # made, then stopped before its record was written: nothing to lose
        return
    check_removable(folder, within, kind, recorded)
    shutil.rmtree(folder)


def remove_file(path: Path, within: Path) -> None:
    """Delete one file vidcolor wrote inside ``within`` (a link is removed, never followed);
    anything else is refused, naming the path."""
    if not path.exists() and not path.is_symlink():
        return
    if not is_inside(path, within) or (path.is_dir() and not path.is_symlink()):
        raise NotOursError(f"{path}: not a file vidcolor made in {within}; left alone")
    path.unlink()


def remove_folder_of(folder: Path, within: Path, patterns: tuple[str, ...]) -> None:
    """Delete ``folder``, a folder of files a recipe script writes without a record of its own
    (its pictures, its half-written ``.part``), when it lies inside ``within`` and holds only
    files ``patterns`` name; anything else is refused, naming it, and nothing is deleted."""
    if not folder.exists() and not folder.is_symlink():
        return
    if not is_inside(folder, within) or folder.is_symlink() or not folder.is_dir():
        raise NotOursError(f"{folder}: not a folder vidcolor made in {within}; left alone")
    stray = _foreign(folder, patterns)
    if stray is not None:
        raise NotOursError(f"{stray}: not made by vidcolor; move it out of {folder} and run again")
    shutil.rmtree(folder)
