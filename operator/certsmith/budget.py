"""A rewrite budget per Secret, so that certsmith and another writer cannot fight in a loop."""

from __future__ import annotations

import collections
import datetime
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class RewriteBudget(Generic[K]):
    """At most `limit` rewrites per key in any `window`; in memory, so a restart starts afresh."""

    def __init__(self, limit: int, window: datetime.timedelta) -> None:
        self.limit = limit
        self.window = window
        self._history: dict[K, collections.deque[datetime.datetime]] = {}

    def next_allowed(self, key: K, now: datetime.datetime) -> datetime.datetime | None:
        """None if a rewrite is allowed now, else when the next one will be."""
        history = self._history.get(key)
        if history is None:
            return None
        while history and now - history[0] >= self.window:
            history.popleft()
        if not history:
            del self._history[key]
            return None
        return history[0] + self.window if len(history) >= self.limit else None

    def spend(self, key: K, now: datetime.datetime) -> None:
        self._history.setdefault(key, collections.deque()).append(now)
