"""Stop signals: SIGTERM and SIGHUP raise as Ctrl-C does, and a signal the process was told to
ignore (SIGHUP under nohup) stays ignored."""

from __future__ import annotations

import os
import signal

import pytest

from vidcolor.interrupt import StopBetweenSteps, Stopped, exit_code, signals_interrupt


def test_sigterm_raises_stopped_with_its_exit_code() -> None:
    with signals_interrupt(), pytest.raises(Stopped) as caught:
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0.5)  # let the handler run
    assert exit_code(caught.value) == 143


def test_an_ignored_sighup_stays_ignored() -> None:
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup leaves it
    try:
        with signals_interrupt():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)  # ignored: nothing raised
        with StopBetweenSteps() as stop:
            os.kill(os.getpid(), signal.SIGHUP)
            assert not stop.requested
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, old)


def test_the_first_stop_asks_the_second_forces() -> None:
    with StopBetweenSteps() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and isinstance(stop.interrupt(), Stopped)
        with pytest.raises(KeyboardInterrupt):  # ForcedStop
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0.5)
