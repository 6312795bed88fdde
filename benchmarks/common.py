"""What the benchmarks share: cases that fail alone, and a table that is always printed.

A benchmark is a sequence of cases. A case that raises costs only its own row, which then holds
the exception's message on one line; the cases after it still run. Ctrl-C, SIGTERM, or the
SIGINT of ``timeout -s INT`` ends the sequence, but the cases done so far are still reported.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_CLIP = ROOT.parent / "shared" / "media" / "bbb_360p_60s.mp4"

Result = dict[str, Any]  # a case's figures, or {"error": "one line"}


def one_line(exc: BaseException) -> str:
    """The exception's message as one line (its first, which states the problem), prefixed
    with its type (a bare ``KeyError('x')`` says little on its own)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def stop_on_signals() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt here, even when this process started
    with SIGINT ignored (a background job of a script). Child processes then start with both
    signals at their default action, so a training run under test still hears its SIGINT."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)


def run_cases(
    cases: dict[str, Callable[[], Result]], log: Callable[[str], None] | None = None
) -> dict[str, Result]:
    """Run ``cases`` in order; each one's figures, or ``{"error": message}`` when it raised.

    An interrupt (KeyboardInterrupt) marks the case in progress and those not yet run, and
    returns: the caller still prints what was measured. ``log`` gets one line per case as it
    ends (default: stderr), so a long benchmark shows progress."""
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    results: dict[str, Result] = {}
    names = list(cases)
    for i, name in enumerate(names):
        t0 = time.perf_counter()
        try:
            results[name] = cases[name]()
        except KeyboardInterrupt:
            results[name] = {"error": "interrupted"}
            for rest in names[i + 1 :]:
                results[rest] = {"error": "not run (interrupted)"}
            say(f"{name}: interrupted; {len(names) - i - 1} case(s) not run")
            break
        except Exception as e:  # the case's own failure: reported in its row
            results[name] = {"error": one_line(e)}
        took = time.perf_counter() - t0
        error = results[name].get("error")
        say(f"{name}: " + (f"error: {error}" if error else f"done in {took:.1f} s"))
    return results


def value(results: dict[str, Result], name: str, key: str) -> float | None:
    """``results[name][key]``, or None when that case failed, did not run or lacks it."""
    got = results.get(name, {}).get(key)
    return None if got is None else float(got)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing (a failed case) or b is 0."""
    return None if a is None or not b else a / b


def fmt(x: float | None, spec: str = ".2f") -> str:
    """A figure for a table, or ``n/a`` where a case it needs failed."""
    return "n/a" if x is None else format(x, spec)


def report_json(result: object, path: Path | None) -> None:
    """Print ``result`` as JSON, and write it to ``path`` as well when given."""
    text = json.dumps(result, indent=1)
    print(text)
    if path:
        path.write_text(text + "\n")


def any_failed(results: dict[str, Result]) -> bool:
    return any("error" in r for r in results.values())
