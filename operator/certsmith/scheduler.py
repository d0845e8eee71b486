"""One timer for every certificate: a heap of due times, not a timer, daemon or poll per object."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import heapq
import itertools
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

Clock = Callable[[], datetime.datetime]
_LONGEST_SLEEP = datetime.timedelta(minutes=10)
"""Wake at least this often, so that a wall-clock jump (suspend, NTP step) delays nothing for long."""


_SLACK = 64
"""Stale entries a small heap may keep before it is compacted."""

_Entry = tuple[datetime.datetime, int, K]
"""When, the order of scheduling (a tie-break that never compares keys), the key."""


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Scheduler(Generic[K]):
    """Calls `on_due(key)` once the time given to `schedule(key, when)` has come.

    Scheduling a key again replaces its earlier time (the same time again changes nothing). Replaced
    and cancelled entries leave the heap lazily, and all at once when they outnumber the live ones, so
    the heap stays within about twice the number of keys however often they are scheduled.
    """

    def __init__(self, on_due: Callable[[K], None], clock: Clock = utc_now) -> None:
        self._on_due = on_due
        self._clock = clock
        self._heap: list[_Entry[K]] = []
        self._current: dict[K, _Entry[K]] = {}
        """Each key's live entry (the very tuple in the heap)."""
        self._sequence = itertools.count()
        self._changed = asyncio.Event()

    def schedule(self, key: K, when: datetime.datetime) -> None:
        current = self._current.get(key)
        if current is not None and current[0] == when:
            return
        entry = (when, next(self._sequence), key)
        self._current[key] = entry
        heapq.heappush(self._heap, entry)
        self._compact_if_sparse()
        if self._heap[0] is entry:
            self._changed.set()

    def cancel(self, key: K) -> None:
        if self._current.pop(key, None) is not None:
            self._compact_if_sparse()

    def __len__(self) -> int:
        return len(self._current)

    async def run(self) -> None:
        while True:
            self._drop_stale()
            if not self._heap:
                await self._wait(None)
                continue
            when, _, key = self._heap[0]
            delay = when - self._clock()
            if delay > datetime.timedelta(0):
                await self._wait(min(delay, _LONGEST_SLEEP).total_seconds())
                continue
            heapq.heappop(self._heap)
            del self._current[key]
            self._on_due(key)

    def _live(self, entry: _Entry[K]) -> bool:
        return self._current.get(entry[2]) is entry

    def _drop_stale(self) -> None:
        while self._heap and not self._live(self._heap[0]):
            heapq.heappop(self._heap)

    def _compact_if_sparse(self) -> None:
        if len(self._heap) > 2 * len(self._current) + _SLACK:
            self._heap = [entry for entry in self._heap if self._live(entry)]
            heapq.heapify(self._heap)

    async def _wait(self, seconds: float | None) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)
