"""Active-active replicas: the Certificates are split into shards, each guarded by a Lease.

The shard of an object is the first 8 bytes of sha256("namespace/name"), big-endian, modulo the
number of shards: the same in every replica and every version (never Python's salted `hash()`).

Every replica keeps a *member* Lease of its own (`<name>-member-<id>`), renewed each round, so that
the replicas count one another, those without shards included. Shard `i` of `N` is guarded by the
Lease `<name>-shard-<i>-of-<N>`. Each round (every `retry`) a replica lists the Leases of its set
(one label-selected LIST), renews the shard Leases it holds and its member Lease, and aims at a fair
share: with R live members, at most ceil(N/R) shards; it releases extras gracefully (holder emptied,
after the writes in flight for that shard end) and takes Leases that are free or expired. Every Lease
write is a replace at the resourceVersion last listed, so the API server decides each race: no
consensus of certsmith's own.

Expiry is judged as client-go does: a Lease whose record has not changed for `duration` by this
replica's own clock. A holder stops writing for a shard once it could not renew it for
`renew_deadline` (< duration), so a replica frozen past its Lease never writes when it wakes: every
write asks `writing()` first, which refuses then.

A replica takes nothing while a live holder still holds a shard Lease of another shard count, or the
single leader-election Lease `<name>` (a rolling update that changes --shards, or from one leader to
shards): two replicas never split the same objects differently.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.kube.lease import LeaseSettings
from certsmith.kube.port import HTTP_CONFLICT, HTTP_NOT_FOUND, Key, ShardNotHeldError

logger = logging.getLogger("certsmith")

LEASE_SET_LABEL = "certsmith.dev/lease-set"
"""On every member and shard Lease: the leader-election Lease name they belong to."""


def shard_of(key: Key, shards: int) -> int:
    """The shard of the object (namespace, name): sha256("namespace/name")[:8] big-endian mod shards."""
    digest = hashlib.sha256(f"{key[0]}/{key[1]}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def fair_share(shards: int, members: int) -> tuple[int, int]:
    """The fewest and the most shards a replica should hold with `members` live replicas."""
    members = max(members, 1)
    return shards // members, math.ceil(shards / members)


def to_release(held: int, counts: list[int], shards: int) -> int:
    """How many of its `held` shards a replica gives up, given the shard counts of every live member
    (its own included): those above the most any should hold, or one above the fewest while another
    member holds fewer than that (so that a joiner gets its part)."""
    fewest, most = fair_share(shards, len(counts))
    if held > most:
        return held - most
    if held > fewest and any(count < fewest for count in counts):
        return 1
    return 0


@dataclass(frozen=True)
class _Seen:
    holder: str
    renewed: str
    changed_at: float


@dataclass(frozen=True)
class Round:
    gained: frozenset[int]
    lost: frozenset[int]


class ShardLeases:
    """`round()` once per `settings.retry`, from one thread; `holds` and `writing` from any thread."""

    def __init__(
        self,
        api: client.ApiClient,
        identity: str,
        member_id: str,
        shards: int,
        settings: LeaseSettings,
        monotonic: Callable[[], float] = time.monotonic,
        leases: client.CoordinationV1Api | None = None,
    ) -> None:
        self._api = leases or client.CoordinationV1Api(api)
        self.identity = identity
        self.shards = shards
        self.settings = settings
        self._monotonic = monotonic
        self._member = f"{settings.name}-member-{member_id}"
        self._prefix = f"{settings.name}-shard-"
        self._suffix = f"-of-{shards}"
        self._seen: dict[str, _Seen] = {}
        self._renewed_at: dict[int, float] = {}
        """The shards held, with when each was last renewed (monotonic)."""
        self._writing: dict[int, int] = {}
        self._condition = threading.Condition()
        self._rounds = 0

    def lease_name(self, shard: int) -> str:
        return f"{self._prefix}{shard}{self._suffix}"

    def shard(self, key: Key) -> int:
        return shard_of(key, self.shards)

    def holds(self, key: Key) -> bool:
        with self._condition:
            return self.shard(key) in self._renewed_at

    def held(self) -> frozenset[int]:
        with self._condition:
            return frozenset(self._renewed_at)

    @contextlib.contextmanager
    def writing(self, key: Key) -> Iterator[None]:
        """Around each write for the object `key`: refuses (ShardNotHeldError) unless its shard is held
        and was renewed within the renew deadline; a graceful release waits for the writes inside."""
        shard = self.shard(key)
        with self._condition:
            renewed = self._renewed_at.get(shard)
            if renewed is None or self._monotonic() - renewed > self.settings.renew_deadline.total_seconds():
                raise ShardNotHeldError(
                    f"not written: shard {shard} of {key[0]}/{key[1]} is not held by this replica "
                    f"(Lease {self.settings.namespace}/{self.lease_name(shard)}); its holder writes it"
                )
            self._writing[shard] = self._writing.get(shard, 0) + 1
        try:
            yield
        finally:
            with self._condition:
                self._writing[shard] -= 1
                self._condition.notify_all()

    def round(self) -> Round:
        """Renew, release and take shard Leases once; what this replica gained and lost."""
        now = self._monotonic()
        self._rounds += 1
        try:
            leases = self._list(now)
        except ApiException as error:
            logger.warning("shards: listing the Leases failed: %s %s", error.status, error.reason)
            return Round(frozenset(), self._expire())
        lost = self._renew(leases) | self._expire()
        self._keep_member(leases.get(self._member))
        try:
            leader = self._read(self.settings.name)
        except ApiException as error:
            logger.warning("shards: reading Lease %s failed: %s", self.settings.name, error.status)
            return Round(frozenset(), frozenset(lost))
        members = {
            _holder(lease)
            for name, lease in leases.items()
            if name.startswith(f"{self.settings.name}-member-") and self._live(name, lease, now)
        } | {self.identity}
        self._forget_dead_members(leases, now)
        counts, free = self._survey(leases, members, now)
        held = sorted(self.held())
        for shard in held[len(held) - to_release(len(held), counts, self.shards) :]:
            self.release(shard)
            lost.add(shard)
        gained: set[int] = set()
        _fewest, most = fair_share(self.shards, len(members))
        if self._rounds > 1 and not self._blocked(leases, leader, now):  # the first round announces
            for shard, candidate in free[: max(most - len(self.held()), 0)]:
                if self._write(shard, candidate):
                    gained.add(shard)
        return Round(frozenset(gained), frozenset(lost - gained))

    def _list(self, now: float) -> dict[str, client.V1Lease]:
        listed = self._api.list_namespaced_lease(
            self.settings.namespace, label_selector=f"{LEASE_SET_LABEL}={self.settings.name}"
        ).items
        leases: dict[str, client.V1Lease] = {}
        for item in listed:
            if item.metadata is not None and item.metadata.name:
                leases[item.metadata.name] = item
                self._observe(item.metadata.name, item, now)
        return leases

    def _renew(self, leases: dict[str, client.V1Lease]) -> set[int]:
        """Renew the shards held; those found taken (or gone) are lost."""
        lost = set()
        for shard in sorted(self.held()):
            mine = leases.get(self.lease_name(shard))
            if mine is None or _holder(mine) != self.identity or not self._write(shard, mine):
                lost.add(shard)
                self._drop(shard)
        return lost

    def _survey(
        self, leases: dict[str, client.V1Lease], members: set[str], now: float
    ) -> tuple[list[int], list[tuple[int, client.V1Lease | None]]]:
        """The shards each live member holds, and the shards no one holds (free or expired)."""
        counts = dict.fromkeys(members, 0)
        free: list[tuple[int, client.V1Lease | None]] = []
        for shard in range(self.shards):
            found = leases.get(self.lease_name(shard))
            if found is not None and self._live(self.lease_name(shard), found, now):
                holder = _holder(found)
                if holder in counts:
                    counts[holder] += 1
            elif shard not in self._renewed_at:
                free.append((shard, found))
        return list(counts.values()), free

    def release(self, shard: int) -> None:
        """Stop writing for `shard` (after the writes in flight), then empty its Lease's holder so that
        another replica takes it at once."""
        with self._condition:
            self._renewed_at.pop(shard, None)
            self._condition.wait_for(
                lambda: not self._writing.get(shard), self.settings.renew_deadline.total_seconds()
            )
        name = self.lease_name(shard)
        try:
            lease = self._api.read_namespaced_lease(name, self.settings.namespace)
            if lease.spec is not None and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                self._api.replace_namespaced_lease(name, self.settings.namespace, lease)
                logger.info("shards: released shard %d (Lease %s)", shard, name)
        except ApiException as error:
            logger.warning("shards: releasing Lease %s failed: %s %s", name, error.status, error.reason)

    def leave(self) -> None:
        """On a clean shutdown: release every shard and delete the member Lease."""
        for shard in sorted(self.held()):
            self.release(shard)
        try:
            self._api.delete_namespaced_lease(self._member, self.settings.namespace)
        except ApiException as error:
            if error.status != HTTP_NOT_FOUND:
                logger.warning("shards: deleting Lease %s failed: %s", self._member, error.status)

    def _read(self, name: str) -> client.V1Lease | None:
        try:
            return self._api.read_namespaced_lease(name, self.settings.namespace)
        except ApiException as error:
            if error.status == HTTP_NOT_FOUND:
                return None
            raise

    def _observe(self, name: str, lease: client.V1Lease, now: float) -> None:
        spec = lease.spec or client.V1LeaseSpec()
        holder, renewed = spec.holder_identity or "", str(spec.renew_time)
        seen = self._seen.get(name)
        if seen is None or (seen.holder, seen.renewed) != (holder, renewed):
            self._seen[name] = _Seen(holder, renewed, now)

    def _live(self, name: str, lease: client.V1Lease, now: float) -> bool:
        """Held by someone whose last renewal this replica saw less than `duration` ago."""
        seen = self._seen.get(name)
        return bool(_holder(lease)) and (
            _holder(lease) == self.identity
            or (seen is not None and now - seen.changed_at < self.settings.duration.total_seconds())
        )

    def _blocked(self, leases: dict[str, client.V1Lease], leader: client.V1Lease | None, now: float) -> bool:
        """Whether a live replica still splits the work otherwise (another shard count, or one leader)."""
        if leader is not None:
            self._observe(self.settings.name, leader, now)
            if self._live(self.settings.name, leader, now):
                return True
        return any(
            name.startswith(self._prefix) and not name.endswith(self._suffix) and self._live(name, lease, now)
            for name, lease in leases.items()
        )

    def _expire(self) -> frozenset[int]:
        """Drop the shards not renewed within the renew deadline."""
        deadline = self.settings.renew_deadline.total_seconds()
        now = self._monotonic()
        with self._condition:
            expired = [shard for shard, renewed in self._renewed_at.items() if now - renewed > deadline]
        for shard in expired:
            logger.warning("shards: shard %d not renewed within %.0fs: dropped", shard, deadline)
            self._drop(shard)
        return frozenset(expired)

    def _drop(self, shard: int) -> None:
        with self._condition:
            self._renewed_at.pop(shard, None)

    def _keep_member(self, lease: client.V1Lease | None) -> None:
        try:
            self._put(self._member, lease, {LEASE_SET_LABEL: self.settings.name})
        except ApiException as error:
            logger.warning(
                "shards: renewing Lease %s failed: %s %s", self._member, error.status, error.reason
            )

    def _forget_dead_members(self, leases: dict[str, client.V1Lease], now: float) -> None:
        """Delete member Leases expired for twice their duration (their replica was killed), at the
        resourceVersion listed, so that they do not pile up."""
        for name, lease in leases.items():
            seen = self._seen.get(name)
            if (
                name.startswith(f"{self.settings.name}-member-")
                and name != self._member
                and seen is not None
                and now - seen.changed_at > 2 * self.settings.duration.total_seconds()
            ):
                version = lease.metadata.resource_version if lease.metadata else None
                with contextlib.suppress(ApiException):
                    self._api.delete_namespaced_lease(
                        name,
                        self.settings.namespace,
                        body=client.V1DeleteOptions(
                            preconditions=client.V1Preconditions(resource_version=version)
                        ),
                    )

    def _write(self, shard: int, lease: client.V1Lease | None) -> bool:
        """Take or renew the shard's Lease at the listed resourceVersion; False if another write won.
        The renew deadline counts from before the request left: no one saw the Lease renewed earlier."""
        taking = lease is None or _holder(lease) != self.identity
        sent = self._monotonic()
        try:
            self._put(self.lease_name(shard), lease, {LEASE_SET_LABEL: self.settings.name})
        except ApiException as error:
            if error.status in (HTTP_CONFLICT, HTTP_NOT_FOUND):
                return False  # another replica wrote the Lease since it was listed
            logger.warning(
                "shards: writing Lease %s failed: %s %s", self.lease_name(shard), error.status, error.reason
            )
            return not taking and shard in self.held()  # kept until the renew deadline passes
        with self._condition:
            self._renewed_at[shard] = sent
        if taking:
            logger.info("shards: %s took shard %d (Lease %s)", self.identity, shard, self.lease_name(shard))
        return True

    def _put(self, name: str, lease: client.V1Lease | None, labels: dict[str, str]) -> None:
        stamp = datetime.datetime.now(datetime.UTC)
        spec = (lease.spec if lease is not None else None) or client.V1LeaseSpec()
        if spec.holder_identity != self.identity:
            spec.acquire_time = stamp
            spec.lease_transitions = (spec.lease_transitions or 0) + (0 if lease is None else 1)
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = int(self.settings.duration.total_seconds())
        spec.renew_time = stamp
        if lease is None:
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=name, namespace=self.settings.namespace, labels=labels),
                spec=spec,
            )
            self._api.create_namespaced_lease(self.settings.namespace, body)
        else:
            lease.spec = spec
            self._api.replace_namespaced_lease(name, self.settings.namespace, lease)


def _holder(lease: client.V1Lease) -> str:
    return (lease.spec.holder_identity if lease.spec else None) or ""
