"""What a stage tells its user: lines and progress (``Reporter``, silent here; the command
line's ``console.ConsoleReport`` draws progress bars), and the one line of ``advice`` a stop
carries on how to go on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vidcolor.options import RenderOptions

if TYPE_CHECKING:  # heavy (torch, FFmpeg): for the signatures only
    from vidcolor.render.streaming import RenderResult
    from vidcolor.train.loop import Status, Trainer


@dataclass(frozen=True)
class Extracted:
    """An extraction's outcome: ``frames`` in ``out`` (``new`` of them written by this run) and
    what the decoder noted on the way."""

    out: Path
    frames: int
    new: int
    notes: list[str]


@dataclass(frozen=True)
class TrainingRun:
    """What a run trains on, and where, as it starts (or ``resumed``, at ``step``)."""

    run: Path
    resumed: bool
    step: int
    total_steps: int
    train_images: int
    val_images: int
    steps_per_epoch: int
    device: str
    world: int  # processes
    notes: list[str]

    @classmethod
    def of(cls, run: Path, trainer: Trainer, resumed: bool) -> TrainingRun:
        data = trainer.data
        return cls(
            run,
            resumed,
            trainer.step,
            trainer.total_steps,
            len(data.train),
            len(trainer.val_set),
            trainer.steps_per_epoch,
            str(trainer.dist.device),
            trainer.dist.world,
            list(data.notes),
        )


@dataclass(frozen=True)
class Trained:
    """A run's end: its steps and its final validation scores."""

    run: Path
    steps: int
    scores: dict[str, float]


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

    def extracted(self, result: Extracted) -> None:
        """An episode's frames are in their folder."""

    def built(self, out: Path, manifest: dict, avoid_hud: bool) -> None:
        """The dataset is in ``out``."""

    @contextmanager
    def training(self, run: TrainingRun) -> Iterator[Callable[[Status], None] | None]:
        """While training runs (or resumes): what hears of each step, if any."""
        yield None

    def trained(self, result: Trained) -> None:
        """Training ended."""

    def rendered(self, dst: Path, result: RenderResult | None, options: RenderOptions) -> None:
        """One input is colorized into ``dst`` (``result``: a video's, None for an image)."""


def advise(e: KeyboardInterrupt, advice: str) -> None:
    """Give the stop ``e`` one line on how to go on ("": say nothing, as a torchrun worker)."""
    e.advice = advice  # type: ignore[attr-defined]
