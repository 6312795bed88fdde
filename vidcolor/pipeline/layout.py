"""The work folder of a pipeline: one place that names every path in it, and what may be one."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vidcolor.data.dataset import IMAGE_SUFFIXES
from vidcolor.errors import UserError
from vidcolor.ownership import is_empty, kind_of

# What the pipeline makes in its work folder: the ledger and each stage's output.
WORK_FOLDERS = ("pipeline", "frames", "dataset", ".dataset.partial", "train", "render")


@dataclass(frozen=True)
class WorkLayout:
    """Where each stage of a pipeline keeps its output, under ``root``."""

    root: Path

    @property
    def ledger(self) -> Path:
        return self.root / "pipeline"

    def frames(self, episode: str | None = None) -> Path:
        """All extracted frames, or one episode's (named by its file's stem)."""
        return self.root / "frames" if episode is None else self.root / "frames" / episode

    def frames_manifest(self, video: Path) -> Path:
        return self.frames(video.stem) / "manifest.jsonl"

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def model(self) -> Path:
        return self.train / "model.pt"

    def render(self, video: Path | None = None) -> Path:
        """The render folder, or one input's colour output in it (see ``render_name``)."""
        return self.root / "render" if video is None else self.root / "render" / render_name(video)


def render_name(video: Path) -> str:
    """The pipeline's output name for an input: the same container where it takes any codec
    the recipe may choose, Matroska otherwise (a .webm or .avi in, an .mkv out)."""
    keep = {".mp4", ".mov", ".m4v", ".mkv", *IMAGE_SUFFIXES}
    return video.name if video.suffix.lower() in keep else f"{video.stem}.mkv"


def work_folder_problem(work: Path) -> str | None:
    """Why ``work`` cannot be a pipeline's work folder, or None. The pipeline deletes and
    replaces its own outputs there, so it takes only a new or empty folder, or one it made;
    never the file system's root or a home folder, whatever they hold."""
    real, home = work.resolve(), Path.home().resolve()
    if real == Path(real.anchor) or real == home or real in home.parents:
        return "too wide for a work folder (the root or a home folder); name a folder of its own"
    if work.exists() and not work.is_dir():
        return "exists and is not a folder"
    if work.is_dir() and not is_empty(work) and kind_of(work) != "pipeline":
        return (
            "holds files and is not a vidcolor work folder; name a new or empty folder "
            "(the pipeline deletes and replaces its own outputs there)"
        )
    return None


def outside_work(work: Path, files: list[Path]) -> list[Path]:
    """The recipe's matches outside ``work``. A match inside one of the pipeline's own output
    folders is its output (a glob such as ``**/*.mp4`` finds the renders) and is left out; any
    other file inside the work folder is refused (UserError): footage and work stay apart."""
    kept = []
    for f in files:
        parents = Path(os.path.abspath(f)).parents
        if work not in parents:
            kept.append(f)
        elif not any(work / name in parents for name in WORK_FOLDERS):
            raise UserError(
                f"{f}: an input inside the work folder {work}; keep the footage "
                "apart from the work folder"
            )
    return kept
