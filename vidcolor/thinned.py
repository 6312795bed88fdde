"""A bounded, evenly spread sample of items offered in order, however many come: every item
at first, then every 2nd, every 4th, and so on, each time the sample would outgrow its limit.
``vidcolor keys`` keeps a shot's small grays this way, and matching a shot's key banks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Thinned(Generic[T]):
    """At most ``limit`` of the items offered (``items``), spread evenly over them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: list[T] = []
        self.stride, self.seen = 1, 0

    def offer(self, make: Callable[[], T]) -> None:
        """The next item, made by ``make`` only when it is kept."""
        if self.seen % self.stride == 0:
            self.items.append(make())
            if len(self.items) > self.limit:
                self.items, self.stride = self.items[::2], self.stride * 2
        self.seen += 1
