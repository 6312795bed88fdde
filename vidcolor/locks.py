"""One writer at a time: an advisory lock on a file vidcolor makes, so that two vidcolor
processes never write the same output (two trainings into one run folder, two renders to one
file) and the second says so in one line instead of interleaving or replacing the first's work.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from vidcolor.errors import UserError
from vidcolor.ownership import NotOursError

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks, one writer is the user's care
    fcntl = None  # type: ignore[assignment]


MARK = b"vidcolor lock\n"  # what a lock file of vidcolor's holds


class BusyError(UserError):
    """Another vidcolor process holds the output this one was asked to write."""


def beside(target: Path) -> Path:
    """The lock file of the output ``target`` (a file or a folder): hidden, in the folder that
    holds it, so that it guards a name that does not exist yet and never sits among a folder
    output's own files."""
    target = Path(os.path.abspath(target))
    return target.with_name(f".{target.name}.lock")


def _take(lock: Path, what: str) -> int:
    """An open descriptor of ``lock`` holding its exclusive lock, or BusyError naming ``what``.

    The lock file is deleted by its holder on release, so a descriptor can end up locking a
    file that is no longer at ``lock``; such a lock guards nothing and the open is retried."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BusyError(
                f"{what}: another vidcolor process is writing it; wait for it to end, "
                "or choose another output"
            ) from None
        try:
            here = os.stat(lock, follow_symlinks=False).st_ino
        except FileNotFoundError:
            here = None
        if here == os.fstat(fd).st_ino:
            _claim(fd, lock)
            return fd
        os.close(fd)


def _claim(fd: int, lock: Path) -> None:
    """Mark the locked file as vidcolor's, or refuse a file of someone else's at its name: the
    holder deletes its lock file at the end, and vidcolor deletes only what it made."""
    info = os.fstat(fd)
    content = os.pread(fd, len(MARK) + 1, 0) if stat.S_ISREG(info.st_mode) else None
    if content == b"":  # new (or a killed run's, stopped before its mark): ours now
        os.write(fd, MARK)
    elif content != MARK:
        os.close(fd)
        raise NotOursError(f"{lock}: exists and is not a vidcolor lock; move it away and run again")


@contextmanager
def exclusive(lock: Path, what: str) -> Iterator[None]:
    """Hold the lock file ``lock`` for the block, or raise BusyError naming ``what`` (the output
    it guards) at once. The file is vidcolor's own and is deleted as the block ends; one left
    by a killed process holds no lock and is taken over."""
    if fcntl is None:
        yield
        return
    try:
        fd = _take(lock, what)
    except OSError as e:  # a link planted at the lock's name (O_NOFOLLOW), a read-only folder
        raise UserError(f"{lock}: cannot lock ({e.strerror or e})") from None
    try:
        yield
    finally:
        with suppress(FileNotFoundError):
            os.unlink(lock)  # while still held: a waiting opener then sees a new inode
        os.close(fd)
