"""Write-then-rename, so a crash or Ctrl-C never leaves a half-written file under a real name."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temp_beside(target: Path) -> Path:
    """A hidden temporary name in ``target``'s folder (same file system, so rename is atomic)
    that keeps the suffix, which tools use to pick the file format."""
    return target.with_name(f".{target.stem}.part-{os.getpid()}{target.suffix}")


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``target`` only if the block succeeds."""
    target = Path(target)
    tmp = temp_beside(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
