"""Liveness and readiness that mean something, served from a thread of their own.

- `/healthz` (liveness): the event loop — which runs the watches, the queue and the scheduler — has
  ticked within `STALLED_AFTER`, the runtime has not stopped, and no watch thread of certsmith's own
  is stuck (one that made no progress for longer than any of its requests can take); any of these
  makes the kubelet restart the Pod, and the answer names which.
  An API server that is down does not: the watches keep retrying, which is progress, and a restart
  would not help.
- `/readyz` (readiness): this replica has started: it serves (it has listed what it needs), or it
  stands by for the Lease. A standby counts as ready on purpose: a Deployment's rolling update waits
  for new Pods to be ready, and a new Pod stands by until an old one releases the Lease, so a standby
  that was never ready would stall every upgrade. Who leads is in the Lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from certsmith.metrics.server import StartResponse

STALLED_AFTER = 30.0
"""Seconds without a tick of the event loop after which the operator counts as stuck."""


class HealthApp:
    def __init__(
        self,
        last_tick: Callable[[], float],
        serving: Callable[[], str | None],
        failing: Callable[[], str | None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`last_tick`: when the event loop last ticked (monotonic); `serving`: None once ready, else
        why not yet; `failing`: None, or why the process should be restarted (the runtime stopped, a
        watch is stuck) — named before a stalled tick, which is only its symptom."""
        self._last_tick = last_tick
        self._serving = serving
        self._failing = failing
        self._monotonic = monotonic

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path == "/healthz":
            stalled = self._monotonic() - self._last_tick()
            problem = self._failing() or (
                f"the event loop has not ticked for {stalled:.0f}s" if stalled > STALLED_AFTER else None
            )
        elif path == "/readyz":
            problem = self._serving()
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"certsmith serves /healthz and /readyz\n"]
        if problem is None:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [f"{problem}\n".encode()]
