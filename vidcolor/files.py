"""Reading a file a user names, when it must be a regular file: a FIFO blocks its reader until
a writer comes (for ever, and deaf to SIGTERM while the open waits), and a device such as
/dev/zero never ends. Every stage that reads a named file whole comes through here."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from vidcolor.errors import UserError


class NotRegularError(UserError):
    """A path names a pipe, a device, a socket or a folder where a file was expected."""


def not_regular(path: Path, what: str) -> str:
    """The one-line reason a special file is refused, in every stage's words alike."""
    return (
        f"{path}: not a regular file (a pipe, device or folder); vidcolor reads {what} only "
        "from regular files"
    )


def read_regular(path: Path, what: str = "input", limit: int | None = None) -> bytes:
    """The bytes of ``path``, or a UserError naming it: not a regular file (NotRegularError),
    unreadable, or longer than ``limit`` bytes. The file is opened without blocking and checked
    on its descriptor, so a FIFO that takes a regular file's name is refused at once."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # POSIX only
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularError(not_regular(path, what))
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read() if limit is None else f.read(limit + 1)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    finally:
        os.close(fd)
    if limit is not None and len(data) > limit:
        raise UserError(f"{path}: larger than {limit} bytes; not {what}")
    return data
