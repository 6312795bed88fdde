"""What a stage tells its user: lines and progress (``Reporter``, silent here; the command
line's ``console.ConsoleReport`` draws progress bars), and the one line of ``advice`` a stop
carries on how to go on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vidcolor.options import RenderOptions


class TaskBar:
    """One progress bar's task; the silent one does nothing."""

    def update(
        self, completed: int | None = None, total: int | None = None, description: str | None = None
    ) -> None:
        """Where the task stands (each argument: unchanged when None)."""

    def advance(self, n: int = 1) -> None:
        """``n`` more units done."""


class Reporter:
    """What a stage tells its user; this one tells nothing."""

    def say(self, line: str) -> None:
        """A note or warning on the way."""

    def done(self, line: str) -> None:
        """The line a stage ends with."""

    @contextmanager
    def progress(
        self, description: str, total: int | None, completed: int = 0
    ) -> Iterator[TaskBar]:
        yield TaskBar()

    def extracted(self, out: Path, job: Any, count: int) -> None:
        """An episode's frames are in ``out`` (``job``: its FrameExtractor)."""

    def built(self, out: Path, manifest: dict, avoid_hud: bool) -> None:
        """The dataset is in ``out``."""

    @contextmanager
    def training(
        self, run: Path, trainer: Any, resumed: bool
    ) -> Iterator[Callable[[Any], None] | None]:
        """While training runs (or resumes): what hears of each step (a Status), if any."""
        yield None

    def trained(self, run: Path, trainer: Any, scores: dict[str, float]) -> None:
        """Training ended with these validation scores."""

    def rendered(self, dst: Path, result: Any, options: RenderOptions) -> None:
        """One input is colorized into ``dst`` (``result``: a video's RenderResult, None for an
        image)."""


def advise(e: KeyboardInterrupt, advice: str) -> None:
    """Give the stop ``e`` one line on how to go on ("": say nothing, as a torchrun worker)."""
    e.advice = advice  # type: ignore[attr-defined]
