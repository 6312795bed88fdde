"""Files written whole or not at all: through a temporary file renamed into place, and a failed
write (a full disk, most often) said as one SaveError naming the file, never as torch's account
of it."""

from __future__ import annotations

import errno
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import torch

from vidcolor.atomic import atomic_path
from vidcolor.errors import UserError


class SaveError(UserError):
    """A file vidcolor writes could not be written (a full disk, most often)."""


def first_line(e: Exception) -> str:
    """An exception's message in one short line."""
    first = str(e).strip().split("\n")[0].split(". ")[0]
    return textwrap.shorten(first, 90, placeholder=" ...")


@contextmanager
def saving(target: Path) -> Iterator[None]:
    """A failed write of ``target`` as one SaveError naming it (not its temporary name); what
    was at ``target`` before is unchanged, as every write goes to a temporary file first."""
    try:
        yield
    except (OSError, RuntimeError) as e:  # RuntimeError: torch's writer, from a path
        why = e.strerror if isinstance(e, OSError) and e.strerror else first_line(e)
        full = isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)
        advice = "; free some space on its disk, then run again" if full else ""
        message = f"{target}: not written ({why}){advice}; a file there before is kept"
        raise SaveError(message) from None


class _Sink:
    """The file ``torch.save`` writes through, which keeps the OSError of a failed write: torch
    turns it into a RuntimeError ('unexpected pos') that says nothing of the disk."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.error = f, None

    def write(self, data: bytes) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def torch_save(obj: dict, target: Path) -> None:
    """``torch.save`` to ``target`` via temp + rename; a failed write is the OSError that
    says why (a full disk), not torch's account of it."""
    with saving(target), atomic_path(target) as tmp, open(tmp, "wb") as f:
        sink = _Sink(f)
        try:
            torch.save(obj, sink)
        except RuntimeError:
            if sink.error is None:
                raise
            raise sink.error from None
