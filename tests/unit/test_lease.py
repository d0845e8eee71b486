"""Leader election against an in-memory Lease API with resourceVersions, in virtual time."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.kube.lease import LeaderElector, LeaseSettings


class FakeLeases:
    def __init__(self) -> None:
        self.lease: client.V1Lease | None = None
        self.version = 0
        self.failing = False

    def read_namespaced_lease(self, name: str, namespace: str) -> client.V1Lease:
        self._maybe_fail()
        if self.lease is None:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.lease)

    def create_namespaced_lease(self, namespace: str, body: client.V1Lease) -> client.V1Lease:
        self._maybe_fail()
        if self.lease is not None:
            raise ApiException(status=409, reason="Conflict")
        return self._store(body)

    def replace_namespaced_lease(self, name: str, namespace: str, body: client.V1Lease) -> client.V1Lease:
        self._maybe_fail()
        assert self.lease is not None
        assert body.metadata is not None
        assert self.lease.metadata is not None
        if body.metadata.resource_version != self.lease.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        return self._store(body)

    def _store(self, body: client.V1Lease) -> client.V1Lease:
        self.version += 1
        stored = copy.deepcopy(body)
        assert stored.metadata is not None
        stored.metadata.resource_version = str(self.version)
        self.lease = stored
        return copy.deepcopy(stored)

    def _maybe_fail(self) -> None:
        if self.failing:
            raise ApiException(status=503, reason="Service Unavailable")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _replica(name: str, leases: FakeLeases, clock: Clock) -> LeaderElector:
    fake: Any = leases
    return LeaderElector(client.ApiClient(), name, LeaseSettings(), clock, leases=fake)


@pytest.fixture
def world() -> tuple[FakeLeases, Clock, LeaderElector, LeaderElector]:
    leases, clock = FakeLeases(), Clock()
    return leases, clock, _replica("a", leases, clock), _replica("b", leases, clock)


def test_one_leads_and_the_other_takes_over_only_once_the_lease_is_stale(
    world: tuple[FakeLeases, Clock, LeaderElector, LeaderElector],
) -> None:
    leases, clock, a, b = world
    assert a.try_lead()
    assert not b.try_lead()
    for _ in range(20):  # a renews every 2 s: b never gets it
        clock.now += 2
        assert a.try_lead()
        assert not b.try_lead()
    clock.now += 14  # a stopped renewing; b has seen the same record for 14 s
    assert not b.try_lead()
    clock.now += 2
    assert b.try_lead()
    assert leases.lease is not None
    assert leases.lease.spec is not None
    assert leases.lease.spec.holder_identity == "b"
    assert leases.lease.spec.lease_transitions == 1
    assert not a.try_lead(), "the old leader learns it lost the Lease"


def test_a_released_lease_is_taken_at_once(
    world: tuple[FakeLeases, Clock, LeaderElector, LeaderElector],
) -> None:
    _leases, clock, a, b = world
    assert a.try_lead()
    assert not b.try_lead()
    a.release()
    clock.now += 0.5
    assert b.try_lead()


def test_a_leader_that_cannot_renew_knows_it_lost_before_the_lease_expires(
    world: tuple[FakeLeases, Clock, LeaderElector, LeaderElector],
) -> None:
    leases, clock, a, _b = world
    assert a.try_lead()
    leases.failing = True
    clock.now += 8
    assert a.try_lead(), "within the renew deadline a failed renewal is survivable"
    assert not a.lost()
    clock.now += 3
    assert not a.try_lead()
    assert a.lost()
    assert LeaseSettings().duration.total_seconds() + 1 > 11
