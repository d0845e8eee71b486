"""The shard of an object, the fair share of each replica, and the shard Leases against an in-memory
Lease API with resourceVersions, in virtual time."""

from __future__ import annotations

import asyncio
import copy
import datetime
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry

from certsmith import runtime as runtime_module
from certsmith.api import CERTIFICATES
from certsmith.kube.lease import LeaseSettings
from certsmith.kube.port import Key, ShardNotHeldError
from certsmith.kube.shards import ShardLeases, fair_share, shard_of, to_release
from certsmith.metrics.issuance import IssuanceMetrics
from certsmith.reconcile.store import UnfinishedElsewhere, WorkItem
from certsmith.runtime import Runtime
from certsmith.scheduler import utc_now
from certsmith.settings import OperatorSettings


def test_the_shard_is_sha256_of_namespace_and_name_mod_the_count() -> None:
    """Pinned values (sha256(b"team-a/web")[:8] = 0xa6d6889313c23313): no version may move an object."""
    assert shard_of(("team-a", "web"), 2**64) == 0xA6D6889313C23313
    assert [shard_of(("team-a", "web"), count) for count in (1, 2, 6, 256)] == [0, 1, 1, 19]
    assert shard_of(("", "cluster-wide"), 6) == 0


def test_shards_spread_evenly() -> None:
    counts = Counter(shard_of(("ns", f"cert-{index}"), 6) for index in range(6000))
    assert len(counts) == 6
    assert all(900 < count < 1100 for count in counts.values())


def test_fair_share() -> None:
    assert fair_share(6, 3) == (2, 2)
    assert fair_share(6, 4) == (1, 2)
    assert fair_share(6, 0) == (6, 6)


def test_a_replica_releases_above_its_share_and_for_a_joiner() -> None:
    assert to_release(6, [6, 0, 0], 6) == 4
    assert to_release(2, [2, 2, 2], 6) == 0
    assert to_release(2, [2, 2, 2, 0], 6) == 1  # four replicas: each keeps at least one
    assert to_release(1, [1, 2, 2, 1], 6) == 0
    assert to_release(3, [3, 3], 6) == 0


class FakeLeases:
    """Leases of one namespace with resourceVersions: a replace at an old version is a 409."""

    def __init__(self) -> None:
        self.leases: dict[str, client.V1Lease] = {}
        self.version = 0

    def list_namespaced_lease(self, namespace: str, label_selector: str) -> client.V1LeaseList:
        key, value = label_selector.split("=")
        return client.V1LeaseList(
            items=[
                copy.deepcopy(lease)
                for lease in self.leases.values()
                if (_meta(lease).labels or {}).get(key) == value
            ]
        )

    def read_namespaced_lease(self, name: str, namespace: str) -> client.V1Lease:
        if name not in self.leases:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.leases[name])

    def create_namespaced_lease(self, namespace: str, body: client.V1Lease) -> client.V1Lease:
        if _meta(body).name in self.leases:
            raise ApiException(status=409, reason="Conflict")
        return self._store(body)

    def replace_namespaced_lease(self, name: str, namespace: str, body: client.V1Lease) -> client.V1Lease:
        if name not in self.leases:
            raise ApiException(status=404, reason="Not Found")
        if _meta(body).resource_version != _meta(self.leases[name]).resource_version:
            raise ApiException(status=409, reason="Conflict")
        return self._store(body)

    def delete_namespaced_lease(self, name: str, namespace: str, body: Any = None) -> None:
        self.leases.pop(name, None)

    def _store(self, body: client.V1Lease) -> client.V1Lease:
        self.version += 1
        body = copy.deepcopy(body)
        _meta(body).resource_version = str(self.version)
        self.leases[str(_meta(body).name)] = body
        return copy.deepcopy(body)


def _meta(lease: client.V1Lease) -> client.V1ObjectMeta:
    assert lease.metadata is not None
    return lease.metadata


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SETTINGS = LeaseSettings(
    "certsmith",
    "certsmith",
    datetime.timedelta(seconds=15),
    datetime.timedelta(seconds=10),
    datetime.timedelta(seconds=2),
)


def _replicas(fake: FakeLeases, clock: Clock, count: int, shards: int = 6) -> list[ShardLeases]:
    return [
        ShardLeases(None, f"replica-{index}", f"m{index}", shards, SETTINGS, clock, leases=fake)  # type: ignore[arg-type]
        for index in range(count)
    ]


def _rounds(replicas: list[ShardLeases], clock: Clock, times: int) -> None:
    for _ in range(times):
        for replica in replicas:
            replica.round()
        clock.now += 2


def test_replicas_share_fairly_and_take_a_dead_ones_shards_after_the_lease_duration() -> None:
    fake, clock = FakeLeases(), Clock()
    replicas = _replicas(fake, clock, 3)
    _rounds(replicas, clock, 4)
    held = [replica.held() for replica in replicas]
    assert [len(shards) for shards in held] == [2, 2, 2]
    assert frozenset().union(*held) == frozenset(range(6))
    dead, survivors = replicas[0], replicas[1:]
    _rounds(survivors, clock, 6)  # 12 s < 15 s: not yet expired
    assert [len(replica.held()) for replica in survivors] == [2, 2]
    _rounds(survivors, clock, 4)
    assert [len(replica.held()) for replica in survivors] == [3, 3]
    with pytest.raises(ShardNotHeldError, match="not held by this replica"):  # the dead one woke up
        next(
            dead.writing(("ns", f"cert-{index}")).__enter__()
            for index in range(100)
            if shard_of(("ns", f"cert-{index}"), 6) in dead.held()
        )


def test_a_joiner_gets_its_share_from_graceful_releases() -> None:
    fake, clock = FakeLeases(), Clock()
    first, second = _replicas(fake, clock, 2)
    _rounds([first], clock, 3)
    assert len(first.held()) == 6
    _rounds([first, second], clock, 3)  # far less than the Lease duration: released, not expired
    assert (len(first.held()), len(second.held())) == (3, 3)
    first.leave()
    _rounds([second], clock, 2)
    assert len(second.held()) == 6


def test_a_replica_frozen_past_its_leases_writes_nothing_and_finds_them_lost() -> None:
    fake, clock = FakeLeases(), Clock()
    frozen, awake = _replicas(fake, clock, 2, shards=2)
    _rounds([frozen, awake], clock, 3)
    (shard,) = frozen.held()
    key = next(
        ("ns", f"cert-{index}") for index in range(100) if shard_of(("ns", f"cert-{index}"), 2) == shard
    )
    with frozen.writing(key):
        pass
    clock.now += 11  # past the renew deadline, not yet the Lease duration: no write, no one else took it
    with pytest.raises(ShardNotHeldError):
        frozen.writing(key).__enter__()
    assert frozen.round().lost == frozenset()  # renewed at the resourceVersion listed: still its own
    with frozen.writing(key):
        pass
    clock.now += 11
    _rounds([awake], clock, 9)  # 15 s after it saw the last renewal, the other takes the Lease
    assert awake.held() == frozenset({0, 1})
    with pytest.raises(ShardNotHeldError):
        frozen.writing(key).__enter__()
    assert frozen.round().lost == frozenset({shard})
    assert frozen.held() == frozenset()


class ListedPort:
    """The two listings a takeover makes, a page at a time; asserts what the runtime knows when the
    Secrets are listed."""

    def __init__(self, runtime: Runtime, bodies: list[Mapping[str, Any]]) -> None:
        self.runtime = runtime
        self.bodies = bodies
        self.queued_when_secrets_were_listed: list[str] = []
        self.queued_when_objects_were_listed: list[str] | None = None

    def object_pages(self, plural: str, namespace: str | None) -> Iterator[list[Mapping[str, Any]]]:
        if self.queued_when_objects_were_listed is None:
            self.queued_when_objects_were_listed = _queued(self.runtime)
        if plural == CERTIFICATES:
            yield from ([body] for body in self.bodies)

    def secret_pages(self, namespace: str | None, selector: str) -> Iterator[list[tuple[Key, Any]]]:
        assert not self.runtime.store.secrets_listed(("apps", "new")), "a Certificate's Secret is read"
        self.queued_when_secrets_were_listed = _queued(self.runtime)
        yield []


def _queued(runtime: Runtime) -> list[str]:
    return [item.key[1] for item in list(runtime.queue._queue._queue)]  # type: ignore[attr-defined]


def _runtime(shards: int) -> Runtime:
    settings = OperatorSettings(health_port=0, metrics_port=0, acme_http01_port=0, shards=shards)
    return Runtime(
        client.ApiClient(client.Configuration()), settings, utc_now, IssuanceMetrics(CollectorRegistry())
    )


def _certificate(name: str, ready: str | None, observed: int = 1) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": ready, "observedGeneration": observed}] if ready else []
    metadata = {"namespace": "apps", "name": name, "generation": 1, "managedFields": [{"manager": "kubectl"}]}
    return {"metadata": metadata, "spec": {}, "status": {"conditions": conditions}}


@pytest.fixture
def pages_wait_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    """No worker empties the queue in these tests: a page of a takeover's listing waits 0.05 s for it."""
    monkeypatch.setattr(runtime_module, "_TAKEOVER_PAGE_WAITS_AT_MOST", 0.05)


def _taking_both_of_two_shards() -> Runtime:
    runtime = _runtime(2)
    clock = Clock()
    runtime.shards = ShardLeases(None, "replica", "m0", 2, SETTINGS, clock, leases=FakeLeases())  # type: ignore[arg-type]
    _rounds([runtime.shards], clock, 3)
    assert runtime.shards.held() == {0, 1}
    return runtime


@pytest.mark.usefixtures("pages_wait_briefly")
def test_a_takeover_queues_the_objects_with_work_left_as_they_are_listed_and_the_ready_ones_last() -> None:
    runtime = _taking_both_of_two_shards()
    port = ListedPort(
        runtime,
        [
            _certificate("ready", "True"),
            _certificate("failing", "False"),
            _certificate("ready-for-an-older-spec", "True", observed=0),
            _certificate("new", None),
            _certificate("also-ready", "True"),
        ],
    )
    runtime.port = port  # type: ignore[assignment]
    asyncio.run(runtime._take_shards(frozenset({0, 1})))
    assert port.queued_when_secrets_were_listed == ["failing", "ready-for-an-older-spec", "new"]
    queued = [runtime.queue._queue.get_nowait().key[1] for _ in range(5)]
    assert queued == ["failing", "ready-for-an-older-spec", "new", "ready", "also-ready"]
    assert runtime.store.secrets_listed(("apps", "new"))


class PagedPort:
    """Pages of new Certificates, then one empty page of Secrets; notes how much work was queued when
    each page was read."""

    def __init__(self, runtime: Runtime, pages: int) -> None:
        self.runtime = runtime
        self.pages: list[list[Mapping[str, Any]]] = [
            [_certificate(f"cert-{page}-{index}", None) for index in range(2)] for page in range(pages)
        ]
        self.queued_at_each_page: list[int] = []

    def object_pages(self, plural: str, namespace: str | None) -> Iterator[list[Mapping[str, Any]]]:
        for page in self.pages if plural == CERTIFICATES else []:
            self.queued_at_each_page.append(len(self.runtime.queue))
            yield page

    def secret_pages(self, namespace: str | None, selector: str) -> Iterator[list[tuple[Key, Any]]]:
        self.queued_at_each_page.append(len(self.runtime.queue))
        yield []


async def _take_both_shards_with_a_worker(runtime: Runtime) -> None:
    async def work() -> None:
        while True:
            item = await runtime.queue.get()
            await asyncio.sleep(0.01)
            runtime.queue.done(item)

    worker = asyncio.create_task(work())
    await runtime._take_shards(frozenset({0, 1}))
    worker.cancel()


def test_a_takeover_reads_its_next_page_once_the_work_queued_is_done() -> None:
    """At 100,000 a takeover lists the whole cluster's Certificates and Secrets (400 pages): the work it
    found and the new objects the watch brings go first."""
    runtime = _taking_both_of_two_shards()
    port = PagedPort(runtime, pages=3)
    runtime.port = port  # type: ignore[assignment]
    asyncio.run(_take_both_shards_with_a_worker(runtime))
    assert port.queued_at_each_page == [0, 0, 0, 0]
    assert len(runtime.store.certificates) == 6


@pytest.mark.usefixtures("pages_wait_briefly")
def test_a_takeover_reads_its_next_page_after_a_bounded_wait_when_the_work_is_not_done() -> None:
    runtime = _taking_both_of_two_shards()
    port = PagedPort(runtime, pages=3)
    runtime.port = port  # type: ignore[assignment]
    started = time.monotonic()
    asyncio.run(runtime._take_shards(frozenset({0, 1})))
    assert port.queued_at_each_page == [0, 2, 4, 6]
    assert time.monotonic() - started >= 3 * 0.05
    assert runtime.store.secrets_listed(("apps", "cert-0-0"))


@pytest.mark.usefixtures("pages_wait_briefly")
def test_a_takeover_queues_what_the_watch_showed_unfinished_before_its_listing_reaches_it() -> None:
    """A replica keeps the other shards' objects that are not Ready (bounded): when their holder dies,
    the survivor that takes the shard starts on them at once, not when its listing (a minute at
    100,000) reaches them. Those that became Ready or were deleted meanwhile are not kept."""
    runtime = _runtime(2)
    clock = Clock()
    leases = FakeLeases()
    runtime.shards, other = (
        ShardLeases(None, f"replica-{index}", f"m{index}", 2, SETTINGS, clock, leases=leases)  # type: ignore[arg-type]
        for index in range(2)
    )
    _rounds([runtime.shards, other], clock, 6)
    (elsewhere,) = other.held()
    names = (f"cert-{index}" for index in range(1000) if shard_of(("apps", f"cert-{index}"), 2) == elsewhere)
    unfinished, finished, deleted = next(names), next(names), next(names)
    runtime.custom_object_event(CERTIFICATES, "ADDED", _certificate(unfinished, None))
    runtime.custom_object_event(CERTIFICATES, "ADDED", _certificate(finished, None))
    runtime.custom_object_event(CERTIFICATES, "MODIFIED", _certificate(finished, "True"))
    runtime.custom_object_event(CERTIFICATES, "ADDED", _certificate(deleted, "False"))
    runtime.custom_object_event(CERTIFICATES, "DELETED", _certificate(deleted, "False"))
    assert _queued(runtime) == []
    assert not runtime.store.certificates

    _rounds([runtime.shards], clock, 9)  # the other replica is gone: its Lease expires
    assert runtime.shards.held() == {0, 1}
    port = ListedPort(runtime, [])
    runtime.port = port  # type: ignore[assignment]
    asyncio.run(runtime._take_shards(frozenset({elsewhere})))
    assert port.queued_when_objects_were_listed == [unfinished]
    kept = runtime.store.certificates[("apps", unfinished)]
    assert "managedFields" not in kept["metadata"]
    assert len(runtime._takeovers.unfinished_elsewhere) == 0


def test_at_most_so_many_unfinished_objects_of_other_shards_are_kept() -> None:
    kept = UnfinishedElsewhere(2)
    for name in ("a", "b", "c"):
        kept.note(WorkItem(CERTIFICATES, ("apps", name)), _certificate(name, None))
    kept.note(WorkItem(CERTIFICATES, ("apps", "a")), None)
    kept.note(WorkItem(CERTIFICATES, ("apps", "d")), _certificate("d", "False"))
    taken = kept.take(lambda key: True)
    assert [item.key[1] for item, _ in taken] == ["b", "d"]
    assert len(kept) == 0
