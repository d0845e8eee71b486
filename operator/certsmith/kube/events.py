"""Events, posted from a thread of their own, off the workers' path and outside their rate limit.

As client-go's event broadcaster does: a reconcile hands an Event over and goes on; a bounded queue
holds what is not posted yet (beyond its bound, Events are dropped and the drop is logged, so a burst
can never grow memory or delay issuance); a repeat of a queued Event (same object, type and reason)
merges into it, and a repeat of one posted within `EVENT_AGGREGATION_WINDOW` updates that Event's count,
message and lastTimestamp instead of creating another object. `SENDERS` threads post, so Events never
hold more than that many of the API server's request slots, and never two of one aggregate at once.
"""

from __future__ import annotations

import collections
import datetime
import logging
import threading
from typing import TYPE_CHECKING, Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.kube.core import Resources

if TYPE_CHECKING:
    from certsmith.kube.port import EventRecord

logger = logging.getLogger("certsmith")

COMPONENT = "certsmith"
EVENT_AGGREGATION_WINDOW = datetime.timedelta(hours=1)
"""A repeat of an Event (same object, type and reason) within this window updates the first one's
count, message and lastTimestamp instead of creating another object."""
QUEUED_EVENTS = 1000
"""Events waiting to be posted, at most (client-go's broadcaster keeps 1000 too)."""
REMEMBERED_EVENTS = 4096
"""Posted Events kept for aggregation, at most, the least recently posted forgotten first (client-go's
correlator keeps 4096 too): a burst of issuances posts one Event per Certificate, and an hour of them
at 40 per second would be 144,000 entries. A repeat of a forgotten Event makes a new Event object."""
SENDERS = 4
"""Threads posting Events. One fell behind a burst of 10,000 issuances on a loaded machine (its queue
filled and Events were dropped): each post waits for the API server, and the workers hold the GIL."""
_CLUSTER_SCOPED_EVENT_NAMESPACE = "default"
_MAX_MESSAGE = 1024
_HTTP_NOT_FOUND = 404

Aggregate = tuple[str, str | None, str, bool, str]
"""(kind, namespace, name, warning, reason): Events with the same aggregate are one Event, counted."""


class EventRecorder:
    """Thread-safe. `record` never blocks and never raises; the threads start with the first Event."""

    def __init__(self, api: client.ApiClient, bound: int = QUEUED_EVENTS, senders: int = SENDERS) -> None:
        self._core = Resources(api)
        self._bound = bound
        self._senders = senders
        self._pending: collections.OrderedDict[Aggregate, tuple[EventRecord, int]] = collections.OrderedDict()
        self._ready = threading.Condition()
        self._posting: set[Aggregate] = set()
        self._dropped = 0
        self._posted = _EventLog(REMEMBERED_EVENTS)
        self._started = False

    def record(self, event: EventRecord) -> None:
        regarding = event.regarding
        aggregate = (regarding.kind, regarding.namespace, regarding.name, event.warning, event.reason)
        with self._ready:
            queued = self._pending.get(aggregate)
            if queued is not None:
                self._pending[aggregate] = (event, queued[1] + 1)
            elif len(self._pending) >= self._bound:
                self._dropped += 1
                return
            else:
                self._pending[aggregate] = (event, 1)
            if not self._started:
                self._started = True
                for index in range(self._senders):
                    threading.Thread(target=self._run, name=f"event-recorder-{index}", daemon=True).start()
            self._ready.notify()

    @property
    def posting(self) -> int:
        """Events being posted right now."""
        return len(self._posting)

    def flush(self, timeout: float) -> bool:
        """Wait until every recorded Event was posted (or given up on); False after `timeout` seconds."""
        with self._ready:
            return self._ready.wait_for(lambda: not self._pending and not self._posting, timeout)

    def _next(self) -> Aggregate | None:
        """The oldest queued aggregate that no other thread is posting."""
        return next((aggregate for aggregate in self._pending if aggregate not in self._posting), None)

    def _run(self) -> None:
        aggregate: Aggregate | None = None
        while True:
            with self._ready:
                if aggregate is not None:
                    self._posting.discard(aggregate)
                    self._ready.notify_all()
                self._ready.wait_for(lambda: self._next() is not None)
                aggregate = self._next()
                assert aggregate is not None  # noqa: S101 -- just waited for it, under the lock
                event, repeats = self._pending.pop(aggregate)
                self._posting.add(aggregate)
                dropped, self._dropped = self._dropped, 0
            if dropped:
                logger.warning(
                    "%d Events were dropped: more than %d waited to be posted", dropped, self._bound
                )
            try:
                self._post(aggregate, event, repeats)
            except ApiException as error:
                logger.warning(  # never the body: the API server may echo the Event
                    "posting an Event about %s %s failed: the API server answered %s %s",
                    event.regarding.kind,
                    event.regarding.name,
                    error.status,
                    error.reason,
                )
            except Exception as error:
                logger.warning(
                    "posting an Event about %s %s failed: %s",
                    event.regarding.kind,
                    event.regarding.name,
                    type(error).__name__,
                )

    def _post(self, aggregate: Aggregate, event: EventRecord, repeats: int) -> None:
        regarding = event.regarding
        namespace = regarding.namespace or _CLUSTER_SCOPED_EVENT_NAMESPACE
        now = datetime.datetime.now(datetime.UTC)
        message = event.message[:_MAX_MESSAGE]
        earlier = self._posted.recent(aggregate, now)
        if earlier is not None:
            name, count = earlier
            try:
                self._core.merge_patch(
                    "events",
                    namespace,
                    name,
                    {"count": count + repeats, "lastTimestamp": _time(now), "message": message},
                )
            except ApiException as error:
                if error.status != _HTTP_NOT_FOUND:  # the API server drops Events after an hour
                    raise
            else:
                self._posted.remember(aggregate, name, count + repeats, now)
                return
        created = self._core.create("events", namespace, _event_body(event, namespace, now, repeats))
        created_name = (created.get("metadata") or {}).get("name")
        if created_name:
            self._posted.remember(aggregate, created_name, repeats, now)


class _EventLog:
    """The Events posted within the aggregation window, `bound` at most, oldest first, so pruning is
    cheap. Thread-safe (the recorder's threads share it)."""

    def __init__(self, bound: int) -> None:
        self._bound = bound
        self._lock = threading.Lock()
        self._posted: collections.OrderedDict[Aggregate, tuple[str, int, datetime.datetime]] = (
            collections.OrderedDict()
        )

    def recent(self, aggregate: Aggregate, now: datetime.datetime) -> tuple[str, int] | None:
        with self._lock:
            while self._posted:
                oldest = next(iter(self._posted.values()))
                if now - oldest[2] < EVENT_AGGREGATION_WINDOW:
                    break
                self._posted.popitem(last=False)
            found = self._posted.get(aggregate)
        return (found[0], found[1]) if found else None

    def remember(self, aggregate: Aggregate, name: str, count: int, now: datetime.datetime) -> None:
        with self._lock:
            self._posted[aggregate] = (name, count, now)
            self._posted.move_to_end(aggregate)
            while len(self._posted) > self._bound:
                self._posted.popitem(last=False)


def _event_body(event: EventRecord, namespace: str, now: datetime.datetime, count: int) -> dict[str, Any]:
    regarding = event.regarding
    involved = {
        "apiVersion": regarding.api_version,
        "kind": regarding.kind,
        "name": regarding.name,
        "namespace": regarding.namespace,
        "uid": regarding.uid,
        "resourceVersion": regarding.resource_version,
    }
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{regarding.name}.", "namespace": namespace},
        "involvedObject": {name: value for name, value in involved.items() if value is not None},
        "reason": event.reason,
        "message": event.message[:_MAX_MESSAGE],
        "type": "Warning" if event.warning else "Normal",
        "firstTimestamp": _time(now),
        "lastTimestamp": _time(now),
        "count": count,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
    }


def _time(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC, to the second, as the API server keeps an Event's times."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
