"""The event-loop side: watch events feed the store and the queue; workers reconcile in threads."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from certsmith.controller import CERTIFICATES, CLUSTER_ISSUERS, Controller, Key, WorkItem
from certsmith.kube.secrets import observed_secret
from certsmith.scheduler import Scheduler
from certsmith.tls_secret import CERTIFICATE_NAME
from certsmith.workqueue import WorkQueue

logger = logging.getLogger("certsmith")

DELETED = "DELETED"


class Runtime:
    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.queue: WorkQueue[WorkItem] = WorkQueue()
        self.scheduler: Scheduler[WorkItem] = Scheduler(self.queue.add, controller.clock)
        self._errors: dict[WorkItem, int] = {}
        self._started = time.monotonic()
        self._not_yet_reconciled: set[WorkItem] | None = set()
        """Certificates seen but not reconciled since start; None once all were (see `_note_progress`)."""

    async def run(self) -> None:
        """List what Certificates depend on, then reconcile; events received meanwhile wait in the queue."""
        await asyncio.to_thread(self.controller.prime)
        workers = self.controller.settings.workers
        await asyncio.gather(self.scheduler.run(), *(self._work() for _ in range(workers)))

    def custom_object_event(self, plural: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        key = _key(body, cluster_scoped=plural == CLUSTER_ISSUERS)
        objects = self.controller.store.objects(plural)
        item = WorkItem(plural, key)
        if event_type == DELETED:
            objects.pop(key, None)
            self.scheduler.cancel(item)
            if plural == CERTIFICATES:
                return
        else:
            self.controller.store.remember(plural, key, body)
            if plural == CERTIFICATES and self._not_yet_reconciled is not None:
                self._not_yet_reconciled.add(item)
        self.queue.add(item)

    def secret_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        key = _key(body, cluster_scoped=False)
        secrets = self.controller.store.secrets
        if event_type == DELETED:
            secrets.pop(key, None)
        else:
            secrets[key] = observed_secret(body)
        owner = ((body.get("metadata") or {}).get("annotations") or {}).get(CERTIFICATE_NAME)
        if owner:
            self.queue.add(WorkItem(CERTIFICATES, (key[0], owner)))
        for issuer in self.controller.issuers_using_secret(key):
            self.queue.add(issuer)

    async def _work(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                outcome = await asyncio.to_thread(self.controller.reconcile, item)
            except Exception as error:  # one object's failure must not stop the others
                failures = self._errors[item] = self._errors.get(item, 0) + 1
                delay = self.controller.settings.backoff.delay(failures)
                logger.error(  # noqa: TRY400 -- a traceback would print the API response body
                    "reconciling %s failed (attempt %d), retrying in %ds: %s",
                    item,
                    failures,
                    delay.total_seconds(),
                    _describe(error),
                )
                self.scheduler.schedule(item, self.controller.clock() + delay)
            else:
                self._errors.pop(item, None)
                if outcome.recheck_at is not None:
                    self.scheduler.schedule(item, outcome.recheck_at)
                for follow_up in outcome.follow_up:
                    self.queue.add(follow_up)
            finally:
                self.queue.done(item)
                self._note_progress(item)

    def _note_progress(self, item: WorkItem) -> None:
        """Log once when Certificates have been seen, every one of them has been reconciled since start,
        and nothing is queued: after a restart, the moment the operator has caught up."""
        if self._not_yet_reconciled is None:
            return
        self._not_yet_reconciled.discard(item)
        if not self._not_yet_reconciled and not len(self.queue) and self.controller.store.certificates:
            logger.info(
                "caught up: %d certificates reconciled %.1fs after start",
                len(self.controller.store.certificates),
                time.monotonic() - self._started,
            )
            self._not_yet_reconciled = None


def _key(body: Mapping[str, Any], cluster_scoped: bool) -> Key:
    metadata = body["metadata"]
    return ("" if cluster_scoped else metadata.get("namespace", ""), metadata["name"])


def _describe(error: Exception) -> str:
    """An error for the log: the API's status and reason, never a response body (it may hold a Secret)."""
    if isinstance(error, ApiException):
        return f"Kubernetes API {error.status} {error.reason}"
    return f"{type(error).__name__}: {error}"
