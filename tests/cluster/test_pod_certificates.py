"""certsmith as the signer of Kubernetes' PodCertificateRequests (certificates.k8s.io/v1), against the
real API server, which checks what a signer writes: the leaf's key is the request's, its times match
the status, its lifetime fits maxExpirationSeconds."""

from __future__ import annotations

import base64
import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.api import GROUP, VERSION
from certsmith.api.status import parse_timestamp
from certsmith.pki.inspection import load_certificates
from certsmith.pki.keys import same_public_key
from certsmith_devtools.kit import create_object
from tests.cluster.support import (
    HTTP_403,
    apply_deploy,
    ca_secret,
    create_secret,
    eventually,
    key_pair,
    openssl_verify,
    service_account_kubeconfig,
)
from tests.conftest import Cluster, OperatorProcess, fresh_namespace

PCR = ("certificates.k8s.io", "v1")
HTTP_CONFLICT = 409


@pytest.fixture
def cluster_issuer(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> Iterator[tuple[str, bytes]]:
    """A CA ClusterIssuer that serves only `namespace`; yields its name and its CA certificate."""
    name = f"pods-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(cluster.api)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="certsmith")))
    except ApiException as error:
        if error.status != HTTP_CONFLICT:
            raise
    data = key_pair("pod certificates CA", True, datetime.timedelta(days=30))
    create_secret(cluster, "certsmith", name, data)
    objects = client.CustomObjectsApi(cluster.api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterIssuer",
        "metadata": {"name": name},
        "spec": {"ca": {"secretName": name}, "issuancePolicy": {"namespaces": [namespace]}},
    }
    objects.create_cluster_custom_object(GROUP, VERSION, "clusterissuers", body)
    eventually(
        lambda: (
            _condition(objects.get_cluster_custom_object(GROUP, VERSION, "clusterissuers", name), "Ready")
            == "True"
        ),
        what=f"ClusterIssuer {name} Ready",
    )
    yield name, data["tls.crt"]
    objects.delete_cluster_custom_object(GROUP, VERSION, "clusterissuers", name)
    core.delete_namespaced_secret(name, "certsmith")


@pytest.fixture
def node(cluster: Cluster) -> Iterator[tuple[str, str]]:
    """A Node object (no kubelet behind it) for pods to be bound to: its name and uid."""
    core = client.CoreV1Api(cluster.api)
    name = f"node-{uuid.uuid4().hex[:8]}"
    created = _identity(core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=name))).metadata)
    yield created
    core.delete_node(name)


def test_a_pod_certificate_request_is_issued_with_the_requests_key_and_the_pods_spiffe_id(
    cluster: Cluster, namespace: str, cluster_issuer: tuple[str, bytes], node: tuple[str, str], tmp_path: Path
) -> None:
    issuer, ca = cluster_issuer
    key = ec.generate_private_key(ec.SECP256R1())
    created = _request(cluster, namespace, node, f"clusterissuers.certsmith.dev/{issuer}", key, 7200)

    status = _answered(cluster, namespace, created)
    assert _condition({"status": status}, "Issued") == "True", status
    chain = load_certificates(status["certificateChain"].encode())
    leaf = chain[0]
    assert same_public_key(leaf.public_key(), key)  # type: ignore[arg-type]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"spiffe://cluster.local/ns/{namespace}/sa/web"
    ]
    not_before, refresh, not_after = (
        parse_timestamp(status[field]) for field in ("notBefore", "beginRefreshAt", "notAfter")
    )
    assert (not_before, not_after) == (leaf.not_valid_before_utc, leaf.not_valid_after_utc)
    assert not_before is not None
    assert not_after is not None
    assert refresh is not None
    assert not_after - not_before == datetime.timedelta(seconds=7200)
    assert refresh - not_before == datetime.timedelta(seconds=3600)
    (tmp_path / "ca.crt").write_bytes(ca)
    (tmp_path / "chain.crt").write_text(status["certificateChain"])
    openssl_verify(tmp_path / "ca.crt", tmp_path / "chain.crt", "-purpose", "sslclient")
    message = f"signed by ClusterIssuer/{issuer} for spiffe://cluster.local/ns/{namespace}/sa/web"
    eventually(
        lambda: ("Normal", "Issued", message) in _events(cluster, namespace, created["metadata"]["name"]),
        what="the Event about the issued PodCertificateRequest",
    )


def test_a_namespace_the_cluster_issuers_policy_does_not_serve_is_denied(
    cluster: Cluster, cluster_issuer: tuple[str, bytes], node: tuple[str, str]
) -> None:
    issuer, _ = cluster_issuer
    with fresh_namespace(cluster, "test") as elsewhere:
        key = ec.generate_private_key(ec.SECP256R1())
        created = _request(cluster, elsewhere, node, f"clusterissuers.certsmith.dev/{issuer}", key, 3600)
        status = _answered(cluster, elsewhere, created)
    denied = next(item for item in status["conditions"] if item["type"] == "Denied")
    assert denied["reason"] == "NamespaceNotAllowed"
    assert "spec.issuancePolicy" in denied["message"]
    assert "certificateChain" not in status


def test_the_operators_service_account_may_answer_for_its_signer_names(
    cluster: Cluster, solo_namespace: str, node: tuple[str, str], tmp_path: Path
) -> None:
    """The API server lets only holders of the verb sign on a signer name write the status; the
    operator runs here as its ServiceAccount with deploy/'s RBAC, for an Issuer's signer name."""
    apply_deploy(cluster)
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "certsmith.kubeconfig")
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", "--namespace", solo_namespace)
    operator.start()
    try:
        ca_secret(cluster, solo_namespace)
        create_object(cluster.api, solo_namespace, "Issuer", "ca", {"ca": {"secretName": "rbac-ca"}})
        key = ec.generate_private_key(ec.SECP384R1())
        signer = f"issuers.certsmith.dev/{solo_namespace}.ca"
        status = _answered(
            cluster, solo_namespace, _request(cluster, solo_namespace, node, signer, key, 3600)
        )
    finally:
        operator.stop()
    assert _condition({"status": status}, "Issued") == "True", status
    assert same_public_key(load_certificates(status["certificateChain"].encode())[0].public_key(), key)  # type: ignore[arg-type]
    log = operator.log()
    assert not HTTP_403.search(log), log[-3000:]
    assert "Forbidden" not in log, log[-3000:]


def _request(
    cluster: Cluster,
    namespace: str,
    node: tuple[str, str],
    signer_name: str,
    key: ec.EllipticCurvePrivateKey,
    max_expiration_seconds: int,
) -> dict[str, Any]:
    """A PodCertificateRequest as the kubelet files it, for a real Pod of ServiceAccount "web" bound to
    `node` (the API server checks neither, but certsmith's answer names them)."""
    core = client.CoreV1Api(cluster.api)
    account = core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="web"))
    )
    _, account_uid = _identity(account.metadata)
    node_name, node_uid = node
    pod = core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="web-0"),
            spec=client.V1PodSpec(
                node_name=node_name,
                service_account_name="web",
                containers=[client.V1Container(name="web", image="registry.invalid/web:1")],
            ),
        ),
    )
    pod_name, pod_uid = _identity(pod.metadata)
    stub = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    body = {
        "apiVersion": "/".join(PCR),
        "kind": "PodCertificateRequest",
        "metadata": {"generateName": "web-0-"},
        "spec": {
            "signerName": signer_name,
            "podName": pod_name,
            "podUID": pod_uid,
            "serviceAccountName": "web",
            "serviceAccountUID": account_uid,
            "nodeName": node_name,
            "nodeUID": node_uid,
            "maxExpirationSeconds": max_expiration_seconds,
            "stubPKCS10Request": base64.b64encode(stub.public_bytes(Encoding.DER)).decode(),
        },
    }
    created = client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(
        *PCR, namespace, "podcertificaterequests", body
    )
    assert isinstance(created, dict)
    return created


def _answered(cluster: Cluster, namespace: str, created: dict[str, Any]) -> dict[str, Any]:
    name = created["metadata"]["name"]

    def status() -> dict[str, Any] | None:
        body = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
            *PCR, namespace, "podcertificaterequests", name
        )
        assert isinstance(body, dict)
        found: dict[str, Any] = body.get("status") or {}
        return found if found.get("conditions") else None

    return eventually(status, 60, f"PodCertificateRequest {namespace}/{name} answered")


def _events(cluster: Cluster, namespace: str, name: str) -> list[tuple[str, str, str]]:
    listed = client.CoreV1Api(cluster.api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=PodCertificateRequest"
    )
    return [(e.type or "", e.reason or "", e.message or "") for e in listed.items]


def _identity(metadata: client.V1ObjectMeta | None) -> tuple[str, str]:
    assert metadata is not None
    assert metadata.name
    assert metadata.uid
    return metadata.name, metadata.uid


def _condition(body: object, kind: str) -> str | None:
    assert isinstance(body, dict)
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((item.get("status") for item in conditions if item.get("type") == kind), None)
