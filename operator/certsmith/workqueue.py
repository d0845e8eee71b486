"""A de-duplicating work queue: each key is queued at most once and handled by one worker at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """Event-loop-side only. A key added while a worker handles it is queued again when the worker is done,
    so the latest state is always looked at, but never by two workers at once."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()

    def add(self, key: K) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    async def get(self) -> K:
        key = await self._queue.get()
        self._queued.discard(key)
        self._active.add(key)
        return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)
        self._queue.task_done()  # after a dirty key is queued again: `empty` must not see a gap

    async def empty(self) -> None:
        """Returns once no key is queued or being handled (each `get` is matched by a `done`)."""
        await self._queue.join()

    def __len__(self) -> int:
        return len(self._queued) + len(self._active)
