"""Leader election through a coordination.k8s.io Lease, so that of several replicas one acts at a time.

As client-go does it: the holder renews the Lease every `retry`; the others look as often and take it
over once it has not changed for `duration` by *their own* clock (never comparing clocks across
machines). A holder that cannot renew for `renew_deadline` (< duration) stops acting before anyone
else may start. On a clean shutdown the holder releases the Lease, so a standby takes over at once.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.kube.port import HTTP_NOT_FOUND

logger = logging.getLogger("certsmith")

_HTTP_CONFLICT = 409


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str = "certsmith"
    name: str = "certsmith"
    duration: datetime.timedelta = datetime.timedelta(seconds=15)
    renew_deadline: datetime.timedelta = datetime.timedelta(seconds=10)
    retry: datetime.timedelta = datetime.timedelta(seconds=2)


@dataclass(frozen=True)
class _Seen:
    """The Lease's record as last seen, and when (monotonic seconds) it last changed."""

    holder: str
    renewed: str
    changed_at: float


class LeaderElector:
    """`try_lead()` once per `settings.retry`: True while this replica holds the Lease."""

    def __init__(
        self,
        api: client.ApiClient,
        identity: str,
        settings: LeaseSettings,
        monotonic: Callable[[], float] = time.monotonic,
        leases: client.CoordinationV1Api | None = None,
    ) -> None:
        self._api = leases or client.CoordinationV1Api(api)
        self.identity = identity
        self.settings = settings
        self._monotonic = monotonic
        self._seen: _Seen | None = None
        self._renewed_at: float | None = None
        """When this replica last renewed successfully (monotonic), while it leads."""

    def try_lead(self) -> bool:
        """Acquire or renew the Lease; False while another replica holds it."""
        now = self._monotonic()
        try:
            lease = self._api.read_namespaced_lease(self.settings.name, self.settings.namespace)
        except ApiException as error:
            if error.status != HTTP_NOT_FOUND:
                return self._failed(error)
            return self._write(None)
        spec = lease.spec or client.V1LeaseSpec()
        holder = spec.holder_identity or ""
        renewed = str(spec.renew_time)
        if self._seen is None or (self._seen.holder, self._seen.renewed) != (holder, renewed):
            self._seen = _Seen(holder, renewed, now)
        if holder == self.identity:
            return self._write(lease)
        expired = now - self._seen.changed_at >= self.settings.duration.total_seconds()
        if holder and not expired:
            return False
        logger.info("leader election: taking over Lease %s from %r", self._where(), holder or "nobody")
        return self._write(lease)

    def lost(self) -> bool:
        """True if this replica led but could not renew within the renew deadline: it must stop acting."""
        if self._renewed_at is None:
            return False
        return self._monotonic() - self._renewed_at > self.settings.renew_deadline.total_seconds()

    def release(self) -> None:
        """Give the Lease up, if held, so that a standby takes over without waiting for it to expire."""
        if self._renewed_at is None:
            return
        try:
            lease = self._api.read_namespaced_lease(self.settings.name, self.settings.namespace)
            if lease.spec is not None and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.lease_duration_seconds = 1
                self._api.replace_namespaced_lease(self.settings.name, self.settings.namespace, lease)
                logger.info("leader election: released Lease %s", self._where())
        except ApiException as error:
            logger.warning(
                "leader election: releasing Lease %s failed: %s %s", self._where(), error.status, error.reason
            )
        self._renewed_at = None

    def _write(self, lease: client.V1Lease | None) -> bool:
        now = datetime.datetime.now(datetime.UTC)
        taking_over = lease is None or lease.spec is None or lease.spec.holder_identity != self.identity
        spec = (lease.spec if lease is not None else None) or client.V1LeaseSpec()
        if taking_over:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + (0 if lease is None else 1)
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = int(self.settings.duration.total_seconds())
        spec.renew_time = now
        try:
            if lease is None:
                body = client.V1Lease(
                    metadata=client.V1ObjectMeta(name=self.settings.name, namespace=self.settings.namespace),
                    spec=spec,
                )
                self._api.create_namespaced_lease(self.settings.namespace, body)
            else:
                lease.spec = spec
                self._api.replace_namespaced_lease(self.settings.name, self.settings.namespace, lease)
        except ApiException as error:
            if error.status == _HTTP_CONFLICT:
                return False  # someone else wrote the Lease meanwhile: not ours, for now at least
            return self._failed(error)
        if taking_over:
            logger.info("leader election: %s leads through Lease %s", self.identity, self._where())
        self._renewed_at = self._monotonic()
        return True

    def _failed(self, error: ApiException) -> bool:
        logger.warning(
            "leader election: Lease %s: the API server answered %s %s",
            self._where(),
            error.status,
            error.reason,
        )
        return self._renewed_at is not None and not self.lost()

    def _where(self) -> str:
        return f"{self.settings.namespace}/{self.settings.name}"
