"""One slow or dead CA never stalls the cluster: Certificates hang on two ACME servers that accept
connections and never answer and on a DNS-01 nameserver that never answers, while a CA issuer's
Certificates and a healthy Pebble Certificate are issued on time; with the default workers and with one."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from certsmith.api import GROUP, VERSION
from certsmith_devtools.kit import condition, is_ready
from certsmith_devtools.pebble import Pebble
from tests.cluster.support import ca_secret, create, create_certificate, eventually
from tests.cluster.test_acme import http01_port, pebble
from tests.conftest import Cluster, OperatorProcess, assert_no_key_material, fresh_namespace

pytestmark = pytest.mark.cluster
__all__ = ["http01_port", "pebble"]  # fixtures

HANGING_PER_ISSUER = 4
CA_CERTIFICATES = 50


@pytest.fixture
def silent_acme() -> Iterator[list[str]]:
    """Two ACME servers that accept TCP connections and never say a word."""
    servers = []
    for _ in range(2):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        servers.append(server)
    yield [f"https://127.0.0.1:{server.getsockname()[1]}/dir" for server in servers]
    for server in servers:
        server.close()


@pytest.fixture
def silent_dns() -> Iterator[str]:
    """A DNS-01 nameserver that never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()


def _acme_issuer(
    cluster: Cluster, namespace: str, name: str, server: str, pebble: Pebble, **solver: Any
) -> None:
    spec = {
        "server": server,
        "privateKeySecretRef": {"name": f"{name}-account"},
        "caBundle": base64.b64encode(pebble.ca_bundle).decode(),
        "solvers": [solver or {"http01": {"ingress": {}}}],
    }
    create(cluster, namespace, "Issuer", name, {"acme": spec})


def _certificates(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    listed = client.CustomObjectsApi(cluster.api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "certificates"
    )
    assert isinstance(listed, dict)
    return {item["metadata"]["name"]: item for item in listed["items"]}


@pytest.mark.parametrize("workers", [4, 1])
def test_hanging_cas_and_a_silent_nameserver_stall_nothing_else(
    cluster: Cluster,
    tmp_path: Path,
    pebble: Pebble,
    http01_port: int,
    silent_acme: list[str],
    silent_dns: str,
    workers: int,
) -> None:
    process = OperatorProcess(
        cluster.kubeconfig,
        tmp_path / "operator.log",
        *("--namespace", "solo-stall-*", "--workers", str(workers)),
        *("--backoff-initial", "1s", "--backoff-max", "8s", "--acme-timeout", "15"),
        *("--acme-http01-port", str(http01_port), "--acme-http01-address", "127.0.0.1"),
        *("--acme-solver-service", "certsmith/certsmith-acme-solver"),
    )
    process.start()
    try:
        with fresh_namespace(cluster, "solo-stall") as namespace:
            _run(cluster, namespace, pebble, silent_acme, silent_dns)
    finally:
        process.stop()
        print(f"operator log: {process.log_path}")
    assert_no_key_material(process.log(), "the operator's log")


def _run(cluster: Cluster, namespace: str, pebble: Pebble, silent_acme: list[str], silent_dns: str) -> None:
    hanging: dict[str, str] = {}
    """Certificate -> what its status must name: the silent CA's address or the silent nameserver's."""
    for index, server in enumerate(silent_acme):
        _acme_issuer(cluster, namespace, f"dead-{index}", server, pebble)
        for number in range(HANGING_PER_ISSUER):
            name = f"dead-{index}-{number}"
            create_certificate(cluster, namespace, name, f"dead-{index}", dnsNames=[f"{name}.example.com"])
            hanging[name] = server
    _acme_issuer(
        cluster, namespace, "mute-dns", pebble.url, pebble, dns01={"rfc2136": {"nameserver": silent_dns}}
    )
    for number in range(HANGING_PER_ISSUER):
        name = f"mute-dns-{number}"
        create_certificate(cluster, namespace, name, "mute-dns", dnsNames=[f"{name}.example.com"])
        hanging[name] = silent_dns
    hung_at = time.monotonic()

    ca_secret(cluster, namespace)
    create(cluster, namespace, "Issuer", "ca", {"ca": {"secretName": "rbac-ca"}})
    _acme_issuer(cluster, namespace, "pebble", pebble.url, pebble)
    create_certificate(cluster, namespace, "healthy-acme", "pebble", dnsNames=["healthy.example.com"])
    started = time.monotonic()
    for number in range(CA_CERTIFICATES):
        create_certificate(cluster, namespace, f"ca-{number}", "ca", dnsNames=[f"ca-{number}.example.com"])
    print(f"{CA_CERTIFICATES} CA Certificates made in {time.monotonic() - started:.1f}s")

    def ready(names: list[str]) -> bool:
        found = _certificates(cluster, namespace)
        return all(name in found and is_ready(found[name]) for name in names)

    ca_names = [f"ca-{number}" for number in range(CA_CERTIFICATES)]
    eventually(lambda: ready(ca_names), 20 - (time.monotonic() - started), "50 CA Certificates to be Ready")
    print(
        f"{CA_CERTIFICATES} CA Certificates Ready {time.monotonic() - started:.1f}s after the first was made"
    )
    eventually(lambda: ready(["healthy-acme"]), 90 - (time.monotonic() - started), "the Pebble Certificate")
    print(f"the Pebble Certificate Ready {time.monotonic() - started:.1f}s after it was made")

    def said_why() -> bool:
        found = _certificates(cluster, namespace)
        return all(
            where in condition(found[name]).get("message", "")
            and ("CAUnreachable" in condition(found[name])["message"] or where == silent_dns)
            for name, where in hanging.items()
        )

    eventually(said_why, 150 - (time.monotonic() - hung_at), "every hanging Certificate to say why")
    print(
        f"{len(hanging)} hanging Certificates said why {time.monotonic() - hung_at:.1f}s after they were made"
    )
    found = _certificates(cluster, namespace)
    assert not any(is_ready(found[name]) for name in hanging)
    for name in hanging:
        if name.startswith("mute-dns"):
            assert condition(found[name], "Issuing")["reason"] == "DNSUpdateFailed", found[name]["status"]
