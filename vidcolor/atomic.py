"""Write-then-rename, so a crash or Ctrl-C never leaves a half-written file under a real name,
and a killed run's temporary files are cleared by the next one."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from vidcolor.errors import UserError

_TEMP = re.compile(r"^\.(?P<stem>.*)\.part-(?P<pid>\d+)(?P<suffix>(\.[^.]*)?)$")


def temp_beside(target: Path) -> Path:
    """A hidden temporary name in ``target``'s folder (same file system, so rename is atomic)
    that keeps the suffix, which tools use to pick the file format."""
    return target.with_name(f".{target.stem}.part-{os.getpid()}{target.suffix}")


def alive(pid: int) -> bool:
    """Whether process ``pid`` may still run: a temporary file it names is then left alone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or not a pid at all: leave its file alone
    return True


def clear_stale(folder: Path, target: Path | None = None) -> int:
    """Delete the temporary files in ``folder`` left by vidcolor processes that no longer run
    (a SIGKILL, a power cut), only those of ``target`` when given; returns how many. Commands
    call it once for each folder they write in, as they start."""

    def stale(m: re.Match[str]) -> bool:
        pid = int(m["pid"])
        if pid == os.getpid() or alive(pid):
            return False
        return target is None or (m["stem"], m["suffix"]) == (target.stem, target.suffix)

    return _clear(folder, stale)


def clear_own(folder: Path, stem: str) -> int:
    """Delete this process's temporary files in ``folder`` whose target's stem fully matches
    the regular expression ``stem``: work a stop cut off between starting a file and keeping
    track of it. Call it only once no thread of the process writes there."""
    return _clear(
        folder, lambda m: int(m["pid"]) == os.getpid() and re.fullmatch(stem, m["stem"]) is not None
    )


def _clear(folder: Path, chosen: Callable[[re.Match[str]], bool]) -> int:
    removed = 0
    try:
        entries = list(folder.iterdir())
    except OSError:
        return 0
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m is None or not chosen(m):
            continue
        if entry.is_file() and not entry.is_symlink():
            with suppress(OSError):
                entry.unlink()
                removed += 1
    return removed


class AppearedError(UserError):
    """A file appeared at the target while vidcolor wrote it without leave to replace."""


def publish(tmp: Path, target: Path, replace: bool = True) -> None:
    """Move the finished ``tmp`` to ``target``. Without ``replace`` a file that appeared at
    ``target`` since the command checked it (another program, a second vidcolor) is kept: the
    move is a hard link, which never replaces, then the temporary name is dropped."""
    if replace:
        os.replace(tmp, target)
        return
    appeared = AppearedError(
        f"{target}: appeared while vidcolor was writing it; left as it is "
        "(use --overwrite to replace it)"
    )
    try:
        os.link(tmp, target, follow_symlinks=False)
    except FileExistsError:
        raise appeared from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # A file system without hard links (FAT, some network shares): a last look, then move.
        if os.path.lexists(target):
            raise appeared from None
        os.replace(tmp, target)
        return
    tmp.unlink()


@contextmanager
def atomic_path(target: str | Path, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; it becomes ``target`` only if the block succeeds (see
    ``publish`` for ``replace``)."""
    target = Path(target)
    tmp = temp_beside(target)
    try:
        yield tmp
        publish(tmp, target, replace)
    finally:
        tmp.unlink(missing_ok=True)
