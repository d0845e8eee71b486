"""A rewrite budget per Secret, so that certsmith and another writer cannot fight in a loop."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class RewriteBudget(Generic[K]):
    """At most `limit` rewrites per key in any `window`; in memory, so a restart starts afresh.

    Memory is spent on the keys rewritten within the window only: each keeps its last `limit` times
    (the older ones cannot matter), and a key whose last rewrite has left the window is forgotten at
    the next spend of any key. Every Certificate spends at its issuance, so a budget that kept every
    key until it was looked at again would keep one entry per Certificate. Thread-safe."""

    def __init__(self, limit: int, window: datetime.timedelta) -> None:
        self.limit = limit
        self.window = window
        self._lock = threading.Lock()
        self._history: dict[K, tuple[datetime.datetime, ...]] = {}
        """The last rewrites of each key, oldest first; the keys in the order of their last rewrite."""

    def next_allowed(self, key: K, now: datetime.datetime) -> datetime.datetime | None:
        """None if a rewrite is allowed now, else when the next one will be."""
        with self._lock:
            recent = [spent for spent in self._history.get(key, ()) if now - spent < self.window]
        return recent[0] + self.window if recent and len(recent) >= self.limit else None

    def spend(self, key: K, now: datetime.datetime) -> None:
        with self._lock:
            history = (*self._history.pop(key, ()), now)
            self._history[key] = history[-max(self.limit, 1) :]
            while self._history:
                oldest = next(iter(self._history))
                if now - self._history[oldest][-1] < self.window:
                    break
                del self._history[oldest]

    def __len__(self) -> int:
        """The keys remembered."""
        with self._lock:
            return len(self._history)
