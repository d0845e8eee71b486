"""The event-loop side: watch events feed the store and the queue; workers reconcile in threads.

The store has one owner, the event loop: watch events update it here, and what a worker wrote comes
back in its `Outcome` and is merged here too. Workers only read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

from kubernetes import client

from certsmith.api import (
    CERTIFICATE_REQUESTS,
    CERTIFICATES,
    CLUSTER_ISSUERS,
    GATEWAYS,
    INGRESSES,
    ISSUERS,
    SpecError,
)
from certsmith.api.bundle import BUNDLE_LABEL, BUNDLES, IssuerSource, SecretSource, parse_bundle_spec
from certsmith.api.certificate_request import PRIVATE_KEY_SECRET_ANNOTATION
from certsmith.api.issuer import issuer_secret_names
from certsmith.api.pod_certificate_request import POD_CERTIFICATE_REQUESTS, is_answered, signer_issuer
from certsmith.api.references import IssuerKind, IssuerRef
from certsmith.api.shim import asks_for_certificates
from certsmith.api.status import is_ready_for_its_spec
from certsmith.engine.lanes import Lanes
from certsmith.issuers import IssuerId
from certsmith.issuers.acme.http01 import HTTP01Responder
from certsmith.issuers.acme.orders import presented_http01_tokens, presents_http01
from certsmith.issuers.acme.signer import AcmeContext
from certsmith.issuers.resolver import IssuerResolver
from certsmith.kube.certificates import CertificateWriter
from certsmith.kube.lease import LeaderElector, LeaseSettings
from certsmith.kube.port import ApiAccessError, ApiServer, Key, ShardNotHeldError, failure_reason, key_of
from certsmith.kube.routes import ChallengeRoutes
from certsmith.kube.secrets import ObservedSecret, observed_secret
from certsmith.kube.shards import ShardLeases
from certsmith.kube.trust import SECRETS, TrustApi, observed_target, target_from_secret
from certsmith.kube.watch import Listed, SecretEvent, SecretWatch, Selection, as_is, retry_delay
from certsmith.metrics.issuance import IssuanceMetrics
from certsmith.metrics.scanner import TLSSecretScanner
from certsmith.pki.system_trust import system_trust
from certsmith.reconcile.bundle import BundleReconciler
from certsmith.reconcile.certificate import CertificateReconciler
from certsmith.reconcile.certificate_request import CertificateRequestReconciler
from certsmith.reconcile.escaped import escaped_failure
from certsmith.reconcile.issuer import IssuerReconciler
from certsmith.reconcile.plan import Outcome, merge_written
from certsmith.reconcile.pod_certificate_request import PodCertificateRequestReconciler
from certsmith.reconcile.shim import ShimReconciler
from certsmith.reconcile.store import Store, UnfinishedElsewhere, WorkItem
from certsmith.scheduler import Scheduler
from certsmith.settings import OperatorSettings, is_namespace_pattern, namespace_filter
from certsmith.tls_secret import CERTIFICATE_NAME, MANAGED_LABEL
from certsmith.workqueue import WorkQueue

logger = logging.getLogger("certsmith")

DELETED = "DELETED"
MODIFIED = "MODIFIED"

_Page = TypeVar("_Page")


class RuntimeStoppingError(Exception):
    """Ends a listing's thread once the runtime stops."""


_UNFINISHED_ELSEWHERE = 2000
"""How many of other shards' unfinished objects a replica keeps for a takeover: about 2 MiB at most."""

_TAKEOVER_PAGE_WAITS_AT_MOST = 1.0
"""Seconds a page of a takeover's listing waits for the queue to empty (`Runtime._after_queued_work`):
at 100,000 that listing reads 400 pages, and the work it found or the watch brought goes first."""


@dataclass
class _Takeovers:
    """With shards: what a replica keeps for the shards it takes over (`Runtime._take_shards`)."""

    running: int = 0
    """Listings of taken shards running."""
    unlisted: set[int] = field(default_factory=set)
    """Shards taken whose managed Secrets are not all listed yet."""
    deleted: set[WorkItem] = field(default_factory=set)
    """Objects deleted while a listing ran: it must not bring them back."""
    unfinished_elsewhere: UnfinishedElsewhere = field(
        default_factory=lambda: UnfinishedElsewhere(_UNFINISHED_ELSEWHERE)
    )


class Runtime:
    def __init__(
        self,
        api: client.ApiClient,
        settings: OperatorSettings,
        clock: Callable[[], datetime.datetime],
        metrics: IssuanceMetrics,
    ) -> None:
        self.api = api
        self.settings = settings
        self.clock = clock
        self.store = Store(secrets_listed=self._secrets_listed)
        identity = f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        duration, renew_deadline, retry = settings.lease
        lease = LeaseSettings(settings.lease_namespace, settings.lease_name, duration, renew_deadline, retry)
        self.shards = (
            ShardLeases(api, identity, uuid.uuid4().hex[:10], settings.shards, lease)
            if settings.shards > 1
            else None
        )
        """With --shards N > 1: the shard Leases this replica holds; it keeps and reconciles only
        their objects, and writes for them only while it holds them."""
        self.port = ApiServer(  # Events: not in the writes' limit
            api, client.ApiClient(api.configuration), guard=self.shards
        )
        routes = ChallengeRoutes(api, settings.acme_solver_service) if settings.acme_solver_service else None
        self.acme = AcmeContext(
            HTTP01Responder(self._http01_answer),
            settings.acme_orders_per_hour,
            settings.acme_timeout,
            routes,
            metrics.acme_request,
            clock,
            dns01_nameservers=settings.dns01_recursive_nameservers,
        )
        self.lanes = Lanes(
            self.acme.accounts, self.acme.health, self._step_done, self._health_changed, clock
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self.resolver = IssuerResolver(
            lambda plural, key: self.store.objects(plural).get(key),
            self.store.referenced,
            self.port,
            settings.cluster_resource_namespace,
            self.acme,
            cluster_issuers=not settings.namespaced,
        )
        self.certificates = CertificateReconciler(
            self.store, self.port, self.resolver, settings, clock, metrics, self.lanes
        )
        self.tls_secrets = (
            TLSSecretScanner(api, settings.namespaces, self._holds_secret)
            if settings.scan_tls_secrets and settings.metrics_port
            else None
        )
        self.issuers = IssuerReconciler(self.store, self.port, self.resolver, clock, self.lanes)
        self.certificate_requests = CertificateRequestReconciler(
            self.store, self.port, self.resolver, settings.auto_approve, clock, self.lanes
        )
        self.pod_certificate_requests = PodCertificateRequestReconciler(
            self.store, self.port, self.resolver, settings.spiffe_trust_domain, clock, metrics
        )
        self.shim = ShimReconciler(self.store, self.port, CertificateWriter(api))
        self.bundles = BundleReconciler(
            self.store, self.port, TrustApi(api, self.port.own_writes), settings, clock, system_trust
        )
        self.queue: WorkQueue[WorkItem] = WorkQueue()
        self.scheduler: Scheduler[WorkItem] = Scheduler(self.queue.add, clock)
        self._references = _References()
        self._watches: dict[Key, SecretWatch[ObservedSecret]] = {}
        self._bundle_secrets = (
            None
            if settings.namespaced  # Bundles are not served
            else SecretWatch(
                api, None, Selection("type=Opaque", BUNDLE_LABEL), self._deliver_bundle_secret, as_is
            )
        )
        self._in_scope = namespace_filter(settings.namespaces)
        self._errors: dict[WorkItem, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.last_tick = time.monotonic()
        """When the event loop last ticked (monotonic), for the liveness probe."""
        self.not_ready: str | None = "starting"
        """Why this replica is not ready yet, for the readiness probe; None once it serves or stands by."""
        self.stopped: str | None = None
        """Why the runtime stopped, once it has (the process is exiting), for both probes."""
        self._task: asyncio.Task[None] | None = None
        self._shutting_down = False
        self._stopping = threading.Event()
        """Set once the runtime stops, for its threads (see `_unless_stopping`)."""
        self._elector = (
            LeaderElector(api, identity, lease) if settings.leader_election and self.shards is None else None
        )
        self._takeovers = _Takeovers()
        self._listing_lock = threading.Lock()
        self._listed: tuple[float, list[tuple[Key, Mapping[str, Any]]]] = (float("-inf"), [])
        """The last listing an HTTP-01 request made (monotonic time it began), and of it only the objects
        that present an HTTP-01 challenge: not a copy of every Certificate of the cluster."""
        self._started = time.monotonic()
        self._not_yet_reconciled: set[WorkItem] | None = set()
        """Certificates seen but not reconciled since start; None once all were (see `_note_progress`)."""

    exit_process: Callable[[int], NoReturn] = staticmethod(os._exit)
    """How the process ends when the runtime cannot go on: at once, so that nothing of it writes again."""

    def start(self) -> None:
        """Run the runtime as a task, supervised: if it ends for any reason but `shutdown`, the process
        logs why and exits non-zero, so that the kubelet (or `certsmith dev`) starts it again instead
        of leaving a process that is up and does nothing."""
        self._task = asyncio.create_task(self.run(), name="certsmith-runtime")
        self._task.add_done_callback(self._ended)

    def shutdown(self) -> None:
        self._shutting_down = True
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._shutting_down:
            return
        error = None if task.cancelled() else task.exception()
        if task.cancelled():
            reason = "its task was cancelled"
        elif error is None:
            reason = "it returned"
        else:
            reason = _describe(error)
            if not isinstance(error, client.exceptions.ApiException):  # its text may hold a response body
                logger.error("the runtime failed", exc_info=error)
        self.exit(f"the runtime stopped: {reason}")

    def exit(self, reason: str) -> NoReturn:
        self.stopped = self.not_ready = reason
        logger.critical("%s; exiting so that the operator is started again", reason)
        self.exit_process(1)

    def liveness_problem(self) -> str | None:
        """Why the process should be restarted, if it should: the runtime stopped, or a watch is
        stuck. Called from the probe's thread."""
        return self.stopped or self.stuck_watch()

    async def run(self) -> None:
        """Lead (if elected), list what Certificates depend on, then reconcile; events received meanwhile
        wait in the queue, so a standby that takes over starts with a warm store."""
        self._loop = asyncio.get_running_loop()
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(self.settings.threads, thread_name_prefix="certsmith")
        )
        self._tasks.append(asyncio.create_task(self._tick(), name="certsmith-tick"))
        try:
            if self._elector is not None:
                self.not_ready = None  # a standby is ready: it takes over when the leader goes
                await self._lead(self._elector)
            await self._serve()
        finally:
            self._stopping.set()
            for task in self._tasks:
                task.cancel()
            for watch in self._watches.values():
                watch.stop()
            if self._bundle_secrets is not None:
                self._bundle_secrets.stop()
            self.lanes.shutdown()
            if self._elector is not None:
                await asyncio.to_thread(self._elector.release)
            if self.shards is not None:
                await asyncio.to_thread(self.shards.leave)

    async def _lead(self, elector: LeaderElector) -> None:
        retry = elector.settings.retry.total_seconds()
        logger.info("leader election: %s waits for Lease %s/%s", elector.identity, *self._lease_key())
        while not await asyncio.to_thread(elector.try_lead):
            await asyncio.sleep(retry)
        self._tasks.append(asyncio.create_task(self._keep_leading(elector), name="certsmith-lease"))

    async def _keep_leading(self, elector: LeaderElector) -> None:
        """Renew the Lease; if another replica holds it, or it cannot be renewed within the deadline,
        stop at once: nothing of this replica may write while another acts."""
        while True:
            await asyncio.sleep(elector.settings.retry.total_seconds())
            leading = await asyncio.to_thread(elector.try_lead)
            if not leading or elector.lost():
                namespace, name = self._lease_key()
                self.exit(f"leader election: Lease {namespace}/{name} lost")

    def _lease_key(self) -> tuple[str, str]:
        return self.settings.lease_namespace, self.settings.lease_name

    def _mine(self, item: WorkItem) -> bool:
        """Whether this replica reconciles `item`: always without shards; with shards, Certificates,
        CertificateRequests and what `KEPT_BY_ALL` names of the shards it holds (a Bundle's shard is
        that of ("", its name)), and every issuer (each replica needs every issuer's state; its status
        is written by the holder of its shard)."""
        if self.shards is None or item.plural not in (*SHARDED, *KEPT_BY_ALL):
            return True
        return self.shards.holds(item.key)

    def _holds_secret(self, key: Key) -> bool:
        """Whether this replica exports the expiry metrics of TLS Secret `key`: that of its own shard,
        whatever the Certificate it belongs to."""
        return self.shards is None or self.shards.holds(key)

    async def _keep_shards(self, shards: ShardLeases) -> None:
        """A round of the shard Leases every retry period; objects of lost shards are forgotten at
        once, those of gained shards listed (in a task of their own: a long listing delays no renewal)."""
        retry = shards.settings.retry.total_seconds()
        loop = asyncio.get_running_loop()
        thread = ThreadPoolExecutor(1, thread_name_prefix="certsmith-shards")  # never waits for a worker's
        while True:
            try:
                outcome = await loop.run_in_executor(thread, shards.round)
            except Exception as error:  # a bug: stop, as when the leader's Lease is lost
                logger.exception("shards: a round of the shard Leases failed")
                self.exit(f"shards: a round of the shard Leases failed: {_describe(error)}")
            if outcome.lost:
                self._forget_shards(outcome.lost)
            if outcome.gained:
                self._tasks = [task for task in self._tasks if not task.done()]
                self._tasks.append(
                    asyncio.create_task(self._take_shards(outcome.gained), name="certsmith-take-shards")
                )
            if outcome.lost or outcome.gained:
                logger.info(
                    "shards: holding %s of %d (gained %s, lost %s)",
                    sorted(shards.held()),
                    shards.shards,
                    sorted(outcome.gained),
                    sorted(outcome.lost),
                )
            await asyncio.sleep(retry)

    def _forget_shards(self, lost: frozenset[int]) -> None:
        """Drop what the lost shards held from memory and from the schedule; their queued items are
        skipped by the workers (`_mine`)."""
        shards = self.shards
        assert shards is not None  # noqa: S101 -- called by _keep_shards only
        for plural in SHARDED:
            objects = self.store.objects(plural)
            for key in [key for key in objects if shards.shard(key) in lost]:
                item = WorkItem(plural, key)
                del objects[key]
                self.scheduler.cancel(item)
                self.lanes.forget(item)
                self._refer(item, frozenset())
                if self._not_yet_reconciled is not None:
                    self._not_yet_reconciled.discard(item)
        for key in [
            key
            for key, owner in self.store.secrets.owners()
            if owner and shards.shard((key[0], owner)) in lost
        ]:
            del self.store.secrets[key]
        if self.tls_secrets is not None:
            self.tls_secrets.shards_changed(gained=False)
        for plural in KEPT_BY_ALL:
            for key in self.store.objects(plural):
                if shards.shard(key) in lost:
                    self.scheduler.cancel(WorkItem(plural, key))

    async def _take_shards(self, gained: frozenset[int]) -> None:
        """List the gained shards' Certificates and CertificateRequests, then their managed Secrets, a
        page at a time once the queued work is done (`_after_queued_work`), keeping only theirs. An
        object with work left is queued at once if the watch showed it unfinished
        (`UnfinishedElsewhere`), else as its page arrives: until the Secrets are listed, its reconcile
        reads its Secret (one GET) instead of taking one not listed yet for a missing one
        (`secrets_listed`). The Ready ones are queued once the Secrets are listed: each is then a no-op
        that makes no request. Events that arrived meanwhile are newer and kept. Retried from the
        start, with back-off, if a page cannot be read."""
        self._takeovers.running += 1
        self._takeovers.unlisted |= gained
        for item, body in self._takeovers.unfinished_elsewhere.take(lambda key: self._shard(key) in gained):
            self._adopt(item, body)
            self.queue.add(item)
        failures = 0
        try:
            while True:
                started = time.monotonic()
                try:
                    objects, secrets = await self._list_gained(gained)
                except Exception as error:
                    failures += 1
                    delay = retry_delay(failures)
                    logger.warning(
                        "listing shards %s failed (attempt %d: %s); retrying in %ds",
                        sorted(gained),
                        failures,
                        _describe(error),
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                logger.info(
                    "shards: listed %d objects and %d Secrets of shards %s in %.1fs",
                    objects,
                    secrets,
                    sorted(gained),
                    time.monotonic() - started,
                )
                if self.tls_secrets is not None:  # after the takeover: that listing would slow it
                    self.tls_secrets.shards_changed(gained=True)
                return
        finally:
            self._takeovers.unlisted -= gained
            self._takeovers.running -= 1
            if not self._takeovers.running:
                self._takeovers.deleted.clear()

    async def _list_gained(self, gained: frozenset[int]) -> tuple[int, int]:
        """(objects, Secrets) of the `gained` shards, into the store and the queue (`_take_shards`)."""
        ready: list[WorkItem] = []
        objects = 0
        for namespace in self._listed_namespaces():
            for plural in SHARDED:
                pages = self.port.object_pages(plural, namespace)
                async for page in _each_page(pages, self._after_queued_work):
                    for item, body in self._taken(plural, page, gained):
                        objects += 1
                        if is_ready_for_its_spec(body):
                            ready.append(item)
                        else:
                            self.queue.add(item)
        secrets = 0
        for namespace in self._listed_namespaces():
            secret_pages = self.port.secret_pages(namespace, f"{MANAGED_LABEL}=true")
            async for listed in _each_page(secret_pages, self._after_queued_work):
                for key, secret in self._taken_secrets(listed, gained):
                    secrets += 1
                    self.store.secrets.setdefault(key, secret)
        self._takeovers.unlisted -= gained
        for item in ready:
            self.queue.add(item)
        self._queue_kept_by_all()
        return objects, secrets

    async def _after_queued_work(self) -> None:
        """Returns once the queue is empty, or after `_TAKEOVER_PAGE_WAITS_AT_MOST`: a takeover's
        listing of the whole cluster competes for the API server and the cores with the work it is for
        (the new objects of the taken shards, queued at once, and those of the shards held already)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.empty(), _TAKEOVER_PAGE_WAITS_AT_MOST)

    def _queue_kept_by_all(self) -> None:
        """What every replica keeps and the holder of its shard writes for: this replica's now."""
        for plural in (*KEPT_BY_ALL, ISSUERS, CLUSTER_ISSUERS):
            for key in self.store.objects(plural):
                if self._mine(WorkItem(plural, key)):
                    self.queue.add(WorkItem(plural, key))

    def _taken(
        self, plural: str, page: list[Mapping[str, Any]], gained: frozenset[int]
    ) -> Iterator[tuple[WorkItem, Mapping[str, Any]]]:
        """The objects of a page that belong to the `gained` shards and are to be reconciled, now in
        the store. What the watch delivered meanwhile is newer than the listing and kept; what was
        deleted meanwhile is not brought back."""
        for body in page:
            item = WorkItem(plural, _key(body))
            if (
                not self._mine(item)
                or self._shard(item.key) not in gained
                or item in self._takeovers.deleted
            ):
                continue
            self._adopt(item, body)
            yield item, body

    def _adopt(self, item: WorkItem, body: Mapping[str, Any]) -> None:
        """Keep `body` of a taken shard, unless the watch brought a newer one meanwhile."""
        if item.key not in self.store.objects(item.plural):
            self.store.remember(item.plural, item.key, body)
            self._refer(item, self._referenced_by(item, body))

    def _taken_secrets(
        self, page: list[tuple[Key, ObservedSecret]], gained: frozenset[int]
    ) -> Iterator[tuple[Key, ObservedSecret]]:
        """The managed Secrets of a page whose Certificates belong to the `gained` shards."""
        for key, secret in page:
            owner = WorkItem(CERTIFICATES, (key[0], secret.contents.annotations.get(CERTIFICATE_NAME, "")))
            if owner.key[1] and self._shard(owner.key) in gained and self._mine(owner):
                yield key, secret

    def _shard(self, key: Key) -> int:
        assert self.shards is not None  # noqa: S101 -- called for shards taken only
        return self.shards.shard(key)

    def _secrets_listed(self, key: Key) -> bool:
        """Whether the managed Secrets of Certificate `key`'s shard are in the store: false while its
        shard is being taken (`_Takeovers.unlisted`: the store may lack a Secret that exists)."""
        return self.shards is None or self.shards.shard(key) not in self._takeovers.unlisted

    def _unless_stopping(self, pages: Iterable[_Page]) -> Iterator[_Page]:
        """The pages of a listing, until the process stops: the interpreter waits for the listing's
        thread before it exits, and a listing of 100,000 objects takes longer than a Pod's grace."""
        for page in pages:
            if self._stopping.is_set():
                raise RuntimeStoppingError("the operator is stopping")
            yield page

    def _listed_namespaces(self) -> list[str | None]:
        """Where listings look: the watched namespaces, or all (None); a glob lists all, kept or not
        by the namespace filter of the watches."""
        namespaces = self.settings.namespaces
        if not namespaces or any(map(is_namespace_pattern, namespaces)):
            return [None]
        return list(namespaces)

    async def _tick(self) -> None:
        while True:
            self.last_tick = time.monotonic()
            await asyncio.sleep(1)

    async def _serve(self) -> None:
        self.not_ready = "listing Secrets and issuers"
        listing = await self._list()
        if listing is not None:
            self._fill(listing)
        self.not_ready = None  # with shards, a replica holding none yet is ready: it takes some soon
        if self.shards is not None:
            self._tasks.append(asyncio.create_task(self._keep_shards(self.shards), name="certsmith-shards"))
        if self.tls_secrets is not None and self.shards is None:  # with shards: once some are taken
            self.tls_secrets.start()
        if self._bundle_secrets is not None:
            self._bundle_secrets.start()
        try:
            await asyncio.gather(self.scheduler.run(), *(self._work() for _ in range(self.settings.workers)))
        finally:
            if self.tls_secrets is not None:
                self.tls_secrets.stop()

    async def _list(self) -> _Listing | None:
        """The initial listing, retried with back-off until it succeeds: an API server that resets
        connections for a while (a restart behind a load balancer) delays serving, nothing more."""
        failures = 0
        while True:
            try:
                return await asyncio.to_thread(self._listing)
            except RuntimeStoppingError:
                raise
            except Exception as error:
                failures += 1
                delay = retry_delay(failures)
                cause = _describe(error)
                self.not_ready = (
                    f"listing Secrets and issuers failed {failures} times in a row, last: {cause}"
                )
                logger.warning(
                    "listing Secrets and issuers failed (attempt %d: %s); retrying in %ds",
                    failures,
                    cause,
                    delay,
                )
                await asyncio.sleep(delay)

    def stuck_watch(self) -> str | None:
        """Which of certsmith's own watch threads has made no progress for longer than any request
        can take, if one has (kopf's watches reconnect by themselves after 70 s without a bookmark).
        Called from the probe's thread."""
        now = time.monotonic()
        watches: list[SecretWatch[Any]] = [
            *list(self._watches.values()),
            *(self.tls_secrets.watches if self.tls_secrets else ()),
            *([self._bundle_secrets] if self._bundle_secrets else []),
        ]
        return next((problem for watch in watches if (problem := watch.stuck(now))), None)

    def _step_done(self, owner: Hashable) -> None:
        """An I/O step ended (in its lane's thread): its owner's next reconcile reads the result."""
        if isinstance(owner, WorkItem) and self._loop is not None:
            self._loop.call_soon_threadsafe(self._step_ended, owner)

    def _step_ended(self, item: WorkItem) -> None:
        if item.key in self.store.objects(item.plural):
            self.queue.add(item)
        else:
            self.lanes.forget(item)  # deleted while its step ran

    def _health_changed(self, issuer: IssuerId) -> None:
        """An issuer's CA stopped or started answering: the issuer says so and releases its own."""
        self._step_done(WorkItem(*issuer))

    def _http01_answer(self, token: str) -> str | None:
        """An HTTP-01 token presented by another replica, or by this one before a restart: found in
        the Certificates' status. Runs in the solver's threads; reads a copy of the store. A token not
        found in the store is looked for in a listing, a page at a time: with shards, the Service in
        front of the solvers may send the CA to a replica that does not hold the Certificate; without,
        the CA may ask a standby before the watch has brought it the status that presents the token
        (the leader tells the CA as soon as its status write returns)."""
        for (namespace, _), body in self._bodies_presenting(token):
            if presents_http01(body.get("status") or {}, token):
                reference = (body.get("spec") or {}).get("issuerRef") or {}
                issuer = IssuerRef(reference.get("name", ""), IssuerKind(reference.get("kind") or "Issuer"))
                return self.resolver.key_authorization(issuer, namespace, token)
        return None

    def _bodies_presenting(self, token: str) -> Iterator[tuple[Key, Mapping[str, Any]]]:
        """Certificates and CertificateRequests that may present `token`: the store's, then (only if
        none of those does) a listing's."""
        yield from self.store.certificates.referring(token)
        yield from self.store.certificate_requests.referring(token)
        yield from self._listed_bodies()

    def _listed_bodies(self) -> list[tuple[Key, Mapping[str, Any]]]:
        """Every replica's Certificates and CertificateRequests that present an HTTP-01 challenge, from a
        listing begun after this request came: one listing at a time, shared by the requests that waited
        for it (anyone can send the solver tokens it does not know)."""
        arrived = time.monotonic()
        with self._listing_lock:
            started, bodies = self._listed
            if started < arrived:
                started = time.monotonic()
                bodies = [
                    (_key(body), body)
                    for namespace in self._listed_namespaces()
                    for plural in SHARDED
                    for page in self.port.object_pages(plural, namespace)
                    for body in page
                    if presented_http01_tokens(body.get("status") or {})
                ]
                self._listed = (started, bodies)
            return bodies

    def custom_object_event(self, plural: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        key = _key(body, cluster_scoped=plural in CLUSTER_SCOPED)
        objects = self.store.objects(plural)
        item = WorkItem(plural, key)
        if plural in SHARDED and not self._mine(item):
            objects.pop(key, None)  # another replica's shard (from before a loss, or ever)
            if event_type == DELETED and self._takeovers.running:
                self._takeovers.deleted.add(item)
            finished = event_type == DELETED or is_ready_for_its_spec(body)
            self._takeovers.unfinished_elsewhere.note(item, None if finished else body)
            return
        if plural == CERTIFICATES and self._own_write(plural, key, event_type, body):
            self.store.remember(plural, key, body)
            return
        if plural == CERTIFICATES and event_type != MODIFIED:  # not for each status patch: made or gone
            for owner in _shim_owners(body):
                self.queue.add(owner)
        if not _worth_keeping(plural, key, body):
            objects.pop(key, None)
            self.scheduler.cancel(item)
            return
        if event_type == DELETED:
            if self._takeovers.running:
                self._takeovers.deleted.add(item)
            objects.pop(key, None)
            self.scheduler.cancel(item)
            self.lanes.forget(item)
            self._refer(item, frozenset())
            if plural in (CERTIFICATES, CERTIFICATE_REQUESTS, POD_CERTIFICATE_REQUESTS):
                return
        else:
            self.store.remember(plural, key, body)
            self._refer(item, self._referenced_by(item, body))
            if plural == CERTIFICATES and self._not_yet_reconciled is not None:
                self._not_yet_reconciled.add(item)
        self.queue.add(item)
        if plural in (ISSUERS, CLUSTER_ISSUERS):  # its CA Secret may be another now
            self._requeue_bundles()

    def _requeue_bundles(self) -> None:
        """Every Bundle looks again, following the CA Secrets its issuers name now."""
        for bundle_key, bundle in list(self.store.bundles.items()):
            bundle_item = WorkItem(BUNDLES, bundle_key)
            self._refer(bundle_item, self._referenced_by(bundle_item, bundle))
            self.queue.add(bundle_item)

    def namespace_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A namespace came, went or changed: if its labels (or its being there) changed, every Bundle
        looks again (there are few Bundles, and each reconcile writes only what differs)."""
        name = body["metadata"]["name"]
        going = event_type == DELETED or (body.get("status") or {}).get("phase") == "Terminating"
        labels = None if going else dict(body["metadata"].get("labels") or {})
        if self.store.namespaces.get(name) == labels:
            return
        if labels is None:
            self.store.namespaces.pop(name, None)
        else:
            self.store.namespaces[name] = labels
        for key in list(self.store.bundles):
            self.queue.add(WorkItem(BUNDLES, key))

    def _deliver_bundle_secret(self, event: SecretEvent) -> None:
        """From the watch's thread to the loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.bundle_secret_event, event)

    def bundle_secret_event(self, event: SecretEvent) -> None:
        """Bundles' Secrets, from their own label-selected watch (kopf's one Secret watch selects
        managed Secrets only). After a (re)listing every Bundle looks again."""
        if isinstance(event, Listed):
            for stale in [stale for stale in self.store.bundle_targets if stale[0] == SECRETS]:
                del self.store.bundle_targets[stale]
            for key, observed in event.secrets.items():
                if self._in_scope(key[0]):
                    self.store.bundle_targets[(SECRETS, key)] = target_from_secret(key, observed)
            for bundle in list(self.store.bundles):
                self.queue.add(WorkItem(BUNDLES, bundle))
            return
        if not self._in_scope(event.key[0]):
            return
        previous = self.store.bundle_targets.get((SECRETS, event.key))
        if event.secret is None:
            self.port.own_writes.forget(SECRETS, event.key)
            self.store.bundle_targets.pop((SECRETS, event.key), None)
            own = False
        else:
            target = target_from_secret(event.key, event.secret)
            own = self.port.own_writes.is_own(SECRETS, event.key, target.resource_version)
            self.store.bundle_targets[(SECRETS, event.key)] = target
        owner = previous.labels.get(BUNDLE_LABEL) if previous is not None else None
        if event.secret is not None:
            owner = event.secret.contents.labels.get(BUNDLE_LABEL) or owner
        if not own and owner:
            self.queue.add(WorkItem(BUNDLES, ("", owner)))

    def bundle_target_event(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A ConfigMap or Secret labelled as a Bundle's changed: unless it is certsmith's own write, its
        Bundle looks again (someone edited or deleted a target)."""
        target = observed_target(kind, body)
        key = (target.namespace, target.name)
        own = self._own_write(kind, key, event_type, body)
        if event_type == DELETED:
            self.store.bundle_targets.pop((kind, key), None)
        else:
            self.store.bundle_targets[(kind, key)] = target
        owner = target.labels.get(BUNDLE_LABEL)
        if not own and owner:
            self.queue.add(WorkItem(BUNDLES, ("", owner)))

    def secret_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A managed Secret changed."""
        key = _key(body, cluster_scoped=False)
        owner = ((body.get("metadata") or {}).get("annotations") or {}).get(CERTIFICATE_NAME)
        if owner and not self._mine(WorkItem(CERTIFICATES, (key[0], owner))):
            self.store.secrets.pop(key, None)  # kept by the replica that holds its Certificate's shard
            return
        own = self._own_write("secrets", key, event_type, body)
        if event_type == DELETED:
            self.store.secrets.pop(key, None)
        else:
            self.store.secrets[key] = observed_secret(body)
        if own:
            return
        if owner:
            self.queue.add(WorkItem(CERTIFICATES, (key[0], owner)))

    def _own_write(self, resource: str, key: Key, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """Whether the event only reports a write of certsmith's own (its resourceVersion is the one that
        write returned): the store learns the object, and no reconcile runs, as it would find nothing
        to do. Issuers' and CertificateRequests' writes still come back as events (they are few)."""
        if event_type == DELETED:
            self.port.own_writes.forget(resource, key)
            return False
        version = (body.get("metadata") or {}).get("resourceVersion")
        return self.port.own_writes.is_own(resource, key, version)

    def referenced_secret_event(self, key: Key, observed: ObservedSecret | None) -> None:
        """A Secret that issuers or keystores refer to changed (from its own watch)."""
        if key not in self._watches:
            return  # delivered after its watch was stopped
        self.store.referenced[key] = observed
        self.resolver.invalidate(key)
        for item in self._references.users(key):
            self.queue.add(item)

    def _listing(self) -> _Listing | None:
        """Managed Secrets, issuers and the Secrets those refer to, by one request each, so that a
        restart never takes a Secret that the watch has not delivered yet for a missing one. Runs in a
        thread; the store is filled on the loop (`_fill`).

        With namespace patterns (globs) there is no list to make without cluster-wide rights; the
        write conflicts of a not-yet-listed Secret then resolve by a re-read (one extra request).
        """
        namespaces: list[str | None] = list(self.settings.namespaces) or [None]
        if any(is_namespace_pattern(namespace or "") for namespace in namespaces):
            logger.info("namespace patterns given: the store fills from the watch streams alone")
            return None
        started = self.clock()
        listing = _Listing()
        for namespace in namespaces:
            if self.shards is None:  # with shards, each shard's Secrets are listed when it is taken
                for page in self._unless_stopping(self.port.secret_pages(namespace, f"{MANAGED_LABEL}=true")):
                    listing.secrets += page
            listing.issuers += [(ISSUERS, body) for body in self.port.list_objects(ISSUERS, namespace)]
        if not self.settings.namespaced:
            listing.issuers += [
                (CLUSTER_ISSUERS, body) for body in self.port.list_objects(CLUSTER_ISSUERS, None)
            ]
        referenced: set[Key] = set()
        for plural, body in listing.issuers:
            referenced |= self._referenced_by(WorkItem(plural, _key(body, plural == CLUSTER_ISSUERS)), body)
        for key in referenced:
            try:
                listing.referenced[key] = self.port.read_secret(*key)
            except ApiAccessError as error:
                logger.warning("%s; the issuers using it will say so", error)
        logger.info(
            "listed %d managed Secrets, %d issuers and %d Secrets they refer to in %.1fs",
            len(listing.secrets),
            len(listing.issuers),
            len(listing.referenced),
            (self.clock() - started).total_seconds(),
        )
        return listing

    def _fill(self, listing: _Listing) -> None:
        """Watch events that arrived before the listing are newer and are kept."""
        for key, observed in listing.secrets:
            self.store.secrets.setdefault(key, observed)
        for plural, body in listing.issuers:
            key = _key(body, plural == CLUSTER_ISSUERS)
            if key not in self.store.objects(plural):
                self.store.remember(plural, key, body)
        for key, referenced in listing.referenced.items():
            self.store.referenced.setdefault(key, referenced)

    def _referenced_by(self, item: WorkItem, body: Mapping[str, Any]) -> frozenset[Key]:
        """The unmanaged Secrets an object reads: an issuer's CA Secret or ACME account key and
        credentials, a keystore's password Secret, a self-signed request's private key."""
        spec = body.get("spec") or {}
        if item.plural in SHIMMED or item.plural == POD_CERTIFICATE_REQUESTS:
            return frozenset()
        if item.plural == BUNDLES:
            return self._bundle_reads(item, spec)
        if item.plural == CERTIFICATE_REQUESTS:
            annotations = (body.get("metadata") or {}).get("annotations") or {}
            private_key = annotations.get(PRIVATE_KEY_SECRET_ANNOTATION)
            return frozenset({(item.key[0], private_key)}) if private_key else frozenset()
        if item.plural == CERTIFICATES:
            pkcs12 = (spec.get("keystores") or {}).get("pkcs12") or {}
            password = (pkcs12.get("passwordSecretRef") or {}).get("name")
            return frozenset({(item.key[0], password)}) if pkcs12.get("create") and password else frozenset()
        namespace = (
            self.settings.cluster_resource_namespace if item.plural == CLUSTER_ISSUERS else item.key[0]
        )
        return frozenset((namespace, name) for name in issuer_secret_names(spec))

    def _bundle_reads(self, item: WorkItem, spec: Mapping[str, Any]) -> frozenset[Key]:
        """The Secrets a Bundle reads: its issuers' CA Secrets, and the Secrets its sources name."""
        try:
            parsed = parse_bundle_spec(item.key[1], spec)
        except SpecError:
            return frozenset()
        keys = set()
        for source in parsed.sources:
            if isinstance(source, IssuerSource):
                secret = self.bundles.issuer_secret(source)
                if secret is not None:
                    keys.add(secret)
            elif isinstance(source, SecretSource) and source.name is not None:
                keys.add((self.settings.trust_namespace, source.name))
        return frozenset(keys)

    def _refer(self, item: WorkItem, keys: frozenset[Key]) -> None:
        started, stopped = self._references.update(item, keys)
        loop = asyncio.get_running_loop()
        for key in started:

            def deliver(event: SecretEvent, key: Key = key) -> None:
                observed = event.secrets.get(key) if isinstance(event, Listed) else event.secret
                loop.call_soon_threadsafe(self.referenced_secret_event, key, observed)

            watch = SecretWatch(self.api, key[0], Selection(f"metadata.name={key[1]}"), deliver, as_is)
            self._watches[key] = watch
            watch.start()
        for key in stopped:
            self._watches.pop(key).stop()
            self.store.referenced.pop(key, None)
            self.resolver.invalidate(key)

    async def _work(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                if not self._mine(item):
                    continue  # its shard was lost while it was queued
                outcome = await asyncio.to_thread(self._reconcile, item)
            except ShardNotHeldError as refused:
                logger.info("%s", refused)
                if self._mine(item):  # held, but its renewal is late: once renewed, the write goes
                    self.scheduler.schedule(item, self.clock() + self.settings.lease[2])
            except Exception as error:  # one object's failure must not stop the others
                await self._failed(item, error)
            else:
                self._errors.pop(item, None)
                merge_written(self.store, outcome.written)
                if outcome.recheck_at is not None:
                    self.scheduler.schedule(item, outcome.recheck_at)
                for follow_up in outcome.follow_up:
                    self.queue.add(follow_up)
            finally:
                self.queue.done(item)
                self._note_progress(item)

    async def _failed(self, item: WorkItem, error: Exception) -> None:
        """Retry `item` with back-off. A Certificate's failure is recorded in its status (see
        `certsmith.reconcile.escaped`), so that the back-off survives a restart; only if that patch
        fails too, or for other kinds of objects, is the count kept in memory."""
        reason, message = failure_reason(error)
        now = self.clock()
        body = self.store.certificates.get(item.key) if item.plural == CERTIFICATES else None
        if body is not None:
            status, retry_at = escaped_failure(body, reason, message, now, self.settings.backoff)
            failures = status["failedIssuanceAttempts"]
            try:
                await asyncio.to_thread(
                    self.port.patch_status, CERTIFICATES, item.key[0], item.key[1], status
                )
            except Exception as patch_error:
                logger.warning(
                    "recording the failure of %s in its status failed (%s); its back-off is kept in memory",
                    item,
                    failure_reason(patch_error)[1],
                )
            else:
                self.store.remember_status(CERTIFICATES, item.key, status)
        else:
            failures = self._errors[item] = self._errors.get(item, 0) + 1
            retry_at = now + self.settings.backoff.delay(failures)
        logger.error(
            "reconciling %s failed (attempt %d, %s: %s); retrying at %s",
            item,
            failures,
            reason,
            message,
            retry_at.isoformat(timespec="seconds"),
        )
        self.scheduler.schedule(item, retry_at)

    def _reconcile(self, item: WorkItem) -> Outcome:
        if item.plural == CERTIFICATES:
            return self.certificates.reconcile(item.key)
        if item.plural == CERTIFICATE_REQUESTS:
            return self.certificate_requests.reconcile(item.key)
        if item.plural == POD_CERTIFICATE_REQUESTS:
            return self.pod_certificate_requests.reconcile(item.key)
        if item.plural in SHIMMED:
            return self.shim.reconcile(item)
        if item.plural == BUNDLES:
            return self.bundles.reconcile(item.key[1])
        return self.issuers.reconcile(item)

    def _note_progress(self, item: WorkItem) -> None:
        """Log once when Certificates have been seen, every one of them has been reconciled since start,
        and nothing is queued: after a restart, the moment the operator has caught up."""
        if self._not_yet_reconciled is None:
            return
        self._not_yet_reconciled.discard(item)
        if not self._not_yet_reconciled and not len(self.queue) and self.store.certificates:
            logger.info(
                "caught up: %d certificates reconciled %.1fs after start",
                len(self.store.certificates),
                time.monotonic() - self._started,
            )
            self._not_yet_reconciled = None


@dataclass
class _Listing:
    secrets: list[tuple[Key, ObservedSecret]] = field(default_factory=list)
    issuers: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)
    referenced: dict[Key, ObservedSecret | None] = field(default_factory=dict)


class _References:
    """Which objects read which unmanaged Secrets, kept up to date per event in O(1)."""

    def __init__(self) -> None:
        self._of: dict[WorkItem, frozenset[Key]] = {}
        self._users: dict[Key, set[WorkItem]] = {}

    def update(self, item: WorkItem, keys: frozenset[Key]) -> tuple[list[Key], list[Key]]:
        """Record that `item` reads `keys`; return the Secrets now read by someone for the first time,
        and those no longer read by anyone."""
        before = self._of.pop(item, frozenset())
        if keys:
            self._of[item] = keys
        started, stopped = [], []
        for key in keys - before:
            users = self._users.setdefault(key, set())
            if not users:
                started.append(key)
            users.add(item)
        for key in before - keys:
            users = self._users[key]
            users.discard(item)
            if not users:
                del self._users[key]
                stopped.append(key)
        return started, stopped

    def users(self, key: Key) -> set[WorkItem]:
        return set(self._users.get(key, ()))


SHIMMED = (INGRESSES, GATEWAYS)
SHARDED = (CERTIFICATES, CERTIFICATE_REQUESTS)
"""Kept in memory only by the replica holding their shard."""
KEPT_BY_ALL = (*SHIMMED, BUNDLES, POD_CERTIFICATE_REQUESTS)
"""Kept in memory by every replica (few, or short-lived), reconciled only by the holder of their shard."""
CLUSTER_SCOPED = (CLUSTER_ISSUERS, BUNDLES)
_SHIM_KINDS = {"Ingress": INGRESSES, "Gateway": GATEWAYS}


def _shim_owners(certificate: Mapping[str, Any]) -> list[WorkItem]:
    """The Ingress or Gateway a Certificate was made for, which looks again when it changes or goes."""
    metadata = certificate.get("metadata") or {}
    return [
        WorkItem(_SHIM_KINDS[reference["kind"]], (metadata.get("namespace", ""), reference["name"]))
        for reference in metadata.get("ownerReferences") or []
        if reference.get("kind") in _SHIM_KINDS
    ]


def _worth_keeping(plural: str, key: Key, body: Mapping[str, Any]) -> bool:
    """False for the many Ingresses and Gateways no one annotated, and for PodCertificateRequests of
    other signers or already answered: they are neither kept nor looked at."""
    if plural in SHIMMED:
        return asks_for_certificates(body)
    if plural == POD_CERTIFICATE_REQUESTS:
        return _pod_certificate_to_answer(body, key[0])
    return True


def _pod_certificate_to_answer(body: Mapping[str, Any], namespace: str) -> bool:
    signer_name = str((body.get("spec") or {}).get("signerName") or "")
    return signer_issuer(signer_name, namespace) is not None and not is_answered(body.get("status") or {})


async def _each_page(
    pages: Iterator[_Page], before_each: Callable[[], Awaitable[None]]
) -> AsyncIterator[_Page]:
    """The pages of a listing, each fetched in a thread after `before_each` and handed over on the
    event loop; a task cancelled between pages fetches no more."""
    while True:
        await before_each()
        page = await asyncio.to_thread(next, pages, None)
        if page is None:
            return
        yield page


def _key(body: Mapping[str, Any], cluster_scoped: bool = False) -> Key:
    metadata = body["metadata"]
    return ("", sys.intern(metadata["name"])) if cluster_scoped else key_of(metadata)


def _describe(error: BaseException) -> str:
    """An error for the log: never a response body (it may hold a Secret)."""
    if isinstance(error, client.exceptions.ApiException):
        return f"Kubernetes API {error.status} {error.reason}"
    return f"{type(error).__name__}: {error}"
