"""Two replicas with leader election against one API server: one acts at a time, a SIGKILLed leader
is replaced within 30 s without any certificate issued twice, and a SIGTERMed one hands over at once."""

from __future__ import annotations

import time
from pathlib import Path

from kubernetes import client

from certsmith_devtools.kit import create_ca_issuer, free_port
from tests.cluster.support import create_certificate, eventually, http_status, secret, wait_ready
from tests.conftest import Cluster, OperatorProcess

COUNT = 100


def _holder(cluster: Cluster, namespace: str) -> str:
    try:
        lease = client.CoordinationV1Api(cluster.api).read_namespaced_lease("certsmith", namespace)
    except client.exceptions.ApiException as error:
        if error.status == 404:
            return ""
        raise
    return (lease.spec.holder_identity if lease.spec else None) or ""


def _replica(cluster: Cluster, namespace: str, log: Path, health_port: int) -> OperatorProcess:
    process = OperatorProcess(
        cluster.kubeconfig,
        log,
        "--namespace",
        namespace,
        "--leader-elect",
        "--leader-elect-namespace",
        namespace,
        "--health-port",
        str(health_port),
    )
    process.start()
    return process


def _leader(replicas: list[OperatorProcess], holder: str) -> OperatorProcess:
    return next(replica for replica in replicas if f"_{replica.pid}_" in holder)


def _ready_count(cluster: Cluster, namespace: str) -> int:
    listed = client.CustomObjectsApi(cluster.api).list_namespaced_custom_object(
        "certsmith.dev", "v1alpha1", namespace, "certificates"
    )
    assert isinstance(listed, dict)
    return sum(
        any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (i.get("status") or {}).get("conditions", [])
        )
        for i in listed["items"]
    )


def test_a_killed_leader_is_replaced_without_issuing_twice(
    cluster: Cluster, solo_namespace: str, tmp_path: Path
) -> None:
    namespace = solo_namespace
    ports = [free_port(), free_port()]
    replicas = [_replica(cluster, namespace, tmp_path / f"replica-{i}.log", ports[i]) for i in range(2)]
    try:
        holder = eventually(lambda: _holder(cluster, namespace), 30, "a leader")
        leader = _leader(replicas, holder)
        leading, standing_by = (ports[0], ports[1]) if leader is replicas[0] else (ports[1], ports[0])
        eventually(lambda: http_status(leading, "/readyz") == 200, 30, "the leader to be ready")
        eventually(  # a standby is ready too, or rolling updates would stall
            lambda: http_status(standing_by, "/readyz") == 200, 30, "the standby to be ready"
        )
        assert http_status(standing_by, "/healthz") == 200
        issuer = create_ca_issuer(cluster.api, namespace, "ha root")
        wait_ready(cluster, namespace, "root")
        for index in range(COUNT):
            create_certificate(
                cluster, namespace, f"ha-{index:03d}", issuer, dnsNames=[f"ha-{index}.example.com"]
            )
        eventually(lambda: _ready_count(cluster, namespace) >= 20, 60, "some certificates Ready")
        leader.kill()
        killed_at = time.monotonic()
        new_holder = eventually(
            lambda: found if (found := _holder(cluster, namespace)) and found != holder else None,
            40,
            "another replica to take the Lease",
        )
        failover = time.monotonic() - killed_at
        assert failover < 30, f"failover took {failover:.1f}s"
        print(f"failover after SIGKILL: {failover:.1f}s")
        eventually(lambda: _ready_count(cluster, namespace) == COUNT + 1, 120, "all certificates Ready")
        for index in range(COUNT):
            stored = secret(cluster, namespace, f"ha-{index:03d}")
            assert stored is not None
            assert stored.metadata is not None
            assert (stored.metadata.annotations or {})["certsmith.dev/revision"] == "1", f"ha-{index:03d}"

        standby = replicas[replicas.index(leader)]
        standby.start()
        second = _leader(replicas, new_holder)
        time.sleep(3)  # the restarted replica is waiting for the Lease
        stopped_at = time.monotonic()
        second.stop()
        third_holder = eventually(
            lambda: found if (found := _holder(cluster, namespace)) and found != new_holder else None,
            20,
            "the standby to take the released Lease",
        )
        handover = time.monotonic() - stopped_at
        print(f"handover after SIGTERM: {handover:.1f}s")
        assert handover < 10, f"handover took {handover:.1f}s"
        assert f"_{standby.pid}_" in third_holder
        create_certificate(cluster, namespace, "after-handover", issuer, dnsNames=["after.example.com"])
        wait_ready(cluster, namespace, "after-handover")
    finally:
        for replica in replicas:
            replica.stop()
