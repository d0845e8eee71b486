"""The shipped RBAC is enough: the operator runs as its ServiceAccount (a token from the TokenRequest
API, nothing else) on the RBAC-enforcing API server, through every kind of API call it makes, and the
API server never says Forbidden."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from certsmith.api import GROUP, VERSION
from certsmith.devcluster.kit import condition, create_object, free_port
from tests.cluster.support import (
    apply_deploy,
    ca_secret,
    certificate,
    create_certificate,
    event_objects,
    eventually,
    service_account_kubeconfig,
    wait_ready,
)
from tests.conftest import REPO, Cluster, OperatorProcess


def test_the_operator_needs_nothing_beyond_its_service_account(
    cluster: Cluster, solo_namespace: str, tmp_path: Path
) -> None:
    apply_deploy(cluster)
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "certsmith.kubeconfig")
    port = free_port()
    operator = OperatorProcess(
        kubeconfig,
        tmp_path / "operator.log",
        "--namespace",
        solo_namespace,
        "--leader-elect",
        "--metrics-port",
        str(port),
        "--metrics-address",
        "127.0.0.1",
        "--backoff-initial",
        "1s",
        "--backoff-max",
        "2s",
    )
    operator.start()
    cluster_issuer = f"rbac-{solo_namespace}"
    objects = client.CustomObjectsApi(cluster.api)
    try:
        namespace = solo_namespace
        create_object(cluster.api, namespace, "Issuer", "selfsigned", {"selfSigned": {}})
        create_certificate(cluster, namespace, "self", "selfsigned", dnsNames=["self.example.com"])
        ca_secret(cluster, namespace)
        create_object(cluster.api, namespace, "Issuer", "ca", {"ca": {"secretName": "rbac-ca"}})
        create_certificate(cluster, namespace, "leaf", "ca", dnsNames=["leaf.example.com"])
        objects.create_cluster_custom_object(
            GROUP,
            VERSION,
            "clusterissuers",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ClusterIssuer",
                "metadata": {"name": cluster_issuer},
                "spec": {"selfSigned": {}},
            },
        )
        create_certificate(
            cluster,
            namespace,
            "cluster",
            cluster_issuer,
            dnsNames=["cluster.example.com"],
            issuerRef={"name": cluster_issuer, "kind": "ClusterIssuer"},
        )
        create_certificate(
            cluster, namespace, "twin1", "selfsigned", secretName="shared", dnsNames=["t.example.com"]
        )
        create_certificate(cluster, namespace, "orphan", "missing", dnsNames=["o.example.com"])
        for name in ("self", "leaf", "cluster", "twin1"):
            wait_ready(cluster, namespace, name, timeout=60)
        create_certificate(
            cluster, namespace, "twin2", "selfsigned", secretName="shared", dnsNames=["t.example.com"]
        )
        eventually(
            lambda: condition(certificate(cluster, namespace, "twin2")).get("reason") == "SecretInUse", 20
        )
        objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, "certificates", "twin1")
        wait_ready(cluster, namespace, "twin2", timeout=30)
        eventually(
            lambda: any((event.count or 0) >= 2 for event in event_objects(cluster, namespace, "orphan")),
            30,
            "a repeated Event counted (patched)",
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert 'secret="leaf"' in metrics, "the TLS-Secret scanner listed and watched Secrets"
        lease = client.CoordinationV1Api(cluster.api).read_namespaced_lease("certsmith", "certsmith")
        assert lease.spec is not None
        assert f"_{operator.pid}_" in (lease.spec.holder_identity or "")
    finally:
        operator.stop()
        objects.delete_cluster_custom_object(GROUP, VERSION, "clusterissuers", cluster_issuer)
    log = operator.log()
    assert "403" not in log, log[-3000:]
    assert "Forbidden" not in log, log[-3000:]


def _rules() -> list[tuple[str, int]]:
    """(kind, index) of every rule in the shipped ClusterRole and Role."""
    documents = list(yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text()))
    return [
        (document["kind"], index)
        for document in documents
        if document["kind"] in ("ClusterRole", "Role")
        for index in range(len(document["rules"]))
    ]


def _replace_role(cluster: Cluster, kind: str, without: int | None) -> None:
    """Put the shipped ClusterRole or Role back, less its rule number `without`."""
    document = next(
        d for d in yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text()) if d["kind"] == kind
    )
    if without is not None:
        del document["rules"][without]
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    if kind == "ClusterRole":
        rbac.replace_cluster_role(document["metadata"]["name"], document)
    else:
        rbac.replace_namespaced_role(document["metadata"]["name"], "certsmith", document)


@pytest.mark.parametrize(("kind", "index"), _rules(), ids=str)
def test_every_rule_is_needed(
    cluster: Cluster, solo_namespace: str, tmp_path: Path, kind: str, index: int
) -> None:
    """Without any one rule, the operator is refused something it does on the common paths."""
    apply_deploy(cluster)
    _replace_role(cluster, kind, index)
    operator = OperatorProcess(
        service_account_kubeconfig(cluster, tmp_path / "certsmith.kubeconfig"),
        tmp_path / "operator.log",
        "--namespace",
        solo_namespace,
        "--leader-elect",
        "--leader-elect-lease",
        f"minimal-{solo_namespace}",
        "--backoff-initial",
        "1s",
        "--backoff-max",
        "2s",
    )
    operator.start()
    try:
        create_object(cluster.api, solo_namespace, "Issuer", "selfsigned", {"selfSigned": {}})
        create_certificate(
            cluster, solo_namespace, "twin1", "selfsigned", secretName="shared", dnsNames=["t.example.com"]
        )
        create_certificate(cluster, solo_namespace, "orphan", "missing", dnsNames=["o.example.com"])
        time.sleep(3)
        create_certificate(
            cluster, solo_namespace, "twin2", "selfsigned", secretName="shared", dnsNames=["t.example.com"]
        )
        client.CustomObjectsApi(cluster.api).delete_namespaced_custom_object(
            GROUP, VERSION, solo_namespace, "certificates", "twin1"
        )
        eventually(
            lambda: any(word in operator.log() for word in ("403", "Forbidden", "Not enough permissions")),
            40,
            f"a refusal without rule {index} of the {kind}",
        )
    finally:
        operator.stop()
        _replace_role(cluster, kind, None)
