"""The fault hook tests/test_faults.py stops commands with, kept out of the progress bars:
``VIDCOLOR_TEST_FAULT=SIGNAL@FRACTION[@TASK]`` (e.g. KILL@0.5@train) makes the process send
itself SIGNAL once a progress task whose description starts with TASK has done FRACTION of its
total. Read once per process (a pipeline's stages share it), it fires once; without it, the
console's tasks are handed back untouched."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from vidcolor.reporter import TaskBar


@dataclass
class Fault:
    signum: int
    fraction: float
    task: str  # the prefix of the task's description


_armed: list[Fault] = []  # at most one, once the variable is read


def _fault() -> Fault | None:
    if spec := os.environ.pop("VIDCOLOR_TEST_FAULT", None):
        name, fraction, *task = spec.split("@")
        _armed.append(
            Fault(getattr(signal, f"SIG{name}"), float(fraction), task[0] if task else "")
        )
    return _armed[0] if _armed else None


class _Watched(TaskBar):
    """A task that counts what it is told, and fires the fault at its fraction."""

    def __init__(self, task: TaskBar, total: int | None, completed: int, fault: Fault) -> None:
        self.task, self.total, self.completed, self.fault = task, total, completed, fault

    def update(
        self, completed: int | None = None, total: int | None = None, description: str | None = None
    ) -> None:
        self.task.update(completed, total, description)
        self.completed = self.completed if completed is None else completed
        self.total = self.total if total is None else total
        self._check()

    def advance(self, n: int = 1) -> None:
        self.task.advance(n)
        self.completed += n
        self._check()

    def _check(self) -> None:
        if _armed and self.total and self.completed >= self.fault.fraction * self.total:
            _armed.clear()  # once per process
            os.kill(os.getpid(), self.fault.signum)


def watched(description: str, task: TaskBar, total: int | None, completed: int = 0) -> TaskBar:
    """``task``, watched for the fault when one is set for a task of this description."""
    fault = _fault()
    if fault is None or not description.startswith(fault.task):
        return task
    return _Watched(task, total, completed, fault)
