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


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Scheduler(Generic[K]):
    """Calls `on_due(key)` once the time given to `schedule(key, when)` has come.

    Scheduling a key again replaces its earlier time; entries are removed lazily from the heap.
    """

    def __init__(self, on_due: Callable[[K], None], clock: Clock = utc_now) -> None:
        self._on_due = on_due
        self._clock = clock
        self._heap: list[tuple[datetime.datetime, int, K]] = []
        self._current: dict[K, int] = {}
        self._sequence = itertools.count()
        self._changed = asyncio.Event()

    def schedule(self, key: K, when: datetime.datetime) -> None:
        sequence = next(self._sequence)
        self._current[key] = sequence
        heapq.heappush(self._heap, (when, sequence, key))
        if self._heap[0][1] == sequence:
            self._changed.set()

    def cancel(self, key: K) -> None:
        self._current.pop(key, None)

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

    def _drop_stale(self) -> None:
        while self._heap and self._current.get(self._heap[0][2]) != self._heap[0][1]:
            heapq.heappop(self._heap)

    async def _wait(self, seconds: float | None) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)
