"""One way to run work in a background thread: ``threaded(items, depth)`` iterates ``items`` in
a thread of its own, at most ``depth`` ahead of its consumer. PyAV, OpenCV and PyTorch let go of
the GIL in their heavy calls, so decoding, colorizing and encoding overlap."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()


class threaded(Generic[T]):
    """``with threaded(items, depth) as ahead: for item in ahead: ...``

    An error in the thread reaches the consumer where it happened in the stream, after the
    items before it; the end of the stream is passed on only after a clean finish, so a
    failure never looks like one. Leaving the ``with`` block (a break, an error, Ctrl-C) stops
    the thread, closes ``items`` when it is a generator, and waits for both."""

    def __init__(self, items: Iterable[T], depth: int) -> None:
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __iter__(self) -> Iterator[T]:
        """Start the thread (once) and take its items."""
        if self._thread.ident is None:
            self._thread.start()
        return self._consume()

    def __enter__(self) -> Iterator[T]:
        return iter(self)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _put(self, entry: tuple[object, BaseException | None]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put((item, None)):
                    return
            self._put((_END, None))
        except BaseException as e:  # handed to the consumer, raised there
            self._put((_END, e))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:  # a generator: its own clean-up runs in this thread
                close()

    def _consume(self) -> Iterator[T]:
        while True:
            try:
                item, error = self._queue.get(timeout=0.1)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    return  # stopped from outside
                continue
            if item is _END:
                self._thread.join()
                if error is not None:
                    raise error
                return
            yield item

    def close(self) -> None:
        """Stop the thread and wait for it (and for ``items``' own clean-up)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()
