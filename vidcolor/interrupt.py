"""Stop signals: SIGTERM and SIGHUP end a long command the way Ctrl-C does, through
KeyboardInterrupt, so the same clean-up runs (temporary files removed, a checkpoint at a whole
step) and the exit code tells which signal it was (128 + its number)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Stopped(KeyboardInterrupt):
    """A stop signal other than SIGINT (which Python already raises as KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class ForcedStop(KeyboardInterrupt):
    """A second stop signal during training: stop now, mid-step, without a checkpoint."""


def exit_code(e: KeyboardInterrupt) -> int:
    """128 + the signal's number, as shells report a process ended by it: 130 for Ctrl-C."""
    return 128 + getattr(e, "signum", signal.SIGINT)


def _heeded() -> list[int]:
    """The stop signals this process does not ignore: under ``nohup`` SIGHUP stays ignored."""
    return [s for s in STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]


def _raise(signum: int, frame: object) -> None:
    raise Stopped(signum)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """While active, SIGTERM and SIGHUP raise ``Stopped`` in the main thread, as Ctrl-C raises
    KeyboardInterrupt; the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _raise) for s in _heeded() if s != signal.SIGINT}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


class StopBetweenSteps:
    """While active, the first stop signal only asks the loop to stop after the step in
    progress (``requested``), so no checkpoint ever holds a half-applied step; a second one
    stops at once (``ForcedStop``)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def interrupt(self) -> KeyboardInterrupt:
        """The exception to end the loop with, naming the signal that asked."""
        if self.signum in (None, signal.SIGINT):
            return KeyboardInterrupt()
        return Stopped(self.signum)

    def __enter__(self) -> StopBetweenSteps:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in _heeded()}
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise ForcedStop
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)
