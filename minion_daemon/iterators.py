"""Lazy listings of jobs and workers: Minion::Iterator in Python.

Pages are fetched ``fetch`` at a time and chained by ``before`` (the last id seen), so the walk
is stable while rows come and go: new rows have higher ids and are never seen, removed ones
simply do not come back. ``total`` is the latest page's total plus what earlier pages brought,
so it corrects itself at each page boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

Item = TypeVar("Item", bound=Mapping[str, Any])

#: ``(offset, limit, options) -> (items, total)``
Fetch = Callable[[int, int, dict[str, Any]], tuple[list[Item], int]]


class Listing(Generic[Item]):
    """Iterate over jobs or workers, newest first."""

    def __init__(self, fetch: Fetch[Item], options: Mapping[str, Any], *, size: int = 10) -> None:
        if size < 1:
            raise ValueError(f"fetch size must be at least 1, got {size}")
        self.options = dict(options)
        self.size = size
        self._fetch = fetch
        self._buffer: list[Item] = []
        self._fetched = 0
        self._total: int | None = None

    def __iter__(self) -> Iterator[Item]:
        return self

    def __next__(self) -> Item:
        if not self._buffer:
            self._fill()
        if not self._buffer:
            raise StopIteration
        return self._buffer.pop(0)

    @property
    def total(self) -> int:
        """How many items the whole listing holds, as of the latest page."""
        if self._total is None:
            self._fill()
        return self._total or 0

    def _fill(self) -> None:
        items, total = self._fetch(0, self.size, self.options)
        if not items:
            return
        # The page's total counts only ids below `before`; add what earlier pages brought.
        self._total = total + self._fetched
        self._fetched += len(items)
        self._buffer.extend(items)
        self.options["before"] = items[-1]["id"]
