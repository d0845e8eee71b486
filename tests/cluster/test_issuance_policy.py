"""A ClusterIssuer signs a CA certificate for a namespace only when its spec.issuancePolicy says so:
refused by the API server (crds/issuance-policy.yaml) when the request is created, and by the operator
when it signs (a ClusterIssuer made or narrowed after the request). Leaf certificates need nothing."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.api import GROUP, VERSION
from certsmith.kube.client import api_client_from_kubeconfig
from certsmith.pki.keys import KeyAlgorithm, KeySpec, generate_private_key
from certsmith.pki.request import CertificateTemplate, build_csr
from certsmith_devtools.kit import condition
from tests.cluster.support import (
    certificate,
    create_secret,
    eventually,
    key_pair,
    secret,
    service_account_kubeconfig,
    wait_ready,
)
from tests.conftest import Cluster, OperatorProcess

pytestmark = pytest.mark.cluster

CLUSTER_RESOURCE_NAMESPACE = "certsmith"


@pytest.fixture
def cluster_issuer(cluster: Cluster, operator: OperatorProcess, namespace: str) -> Iterator[str]:
    """The name for a CA ClusterIssuer whose key pair is in the cluster resource namespace; it is
    created by the test (with the spec it needs) and deleted after."""
    core = client.CoreV1Api(cluster.api)
    try:
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=CLUSTER_RESOURCE_NAMESPACE))
        )
    except ApiException as error:
        if error.status != 409:
            raise
    name = f"policy-{namespace}"
    create_secret(
        cluster, CLUSTER_RESOURCE_NAMESPACE, name, key_pair("policy CA", True, datetime.timedelta(days=30))
    )
    yield name
    objects = client.CustomObjectsApi(cluster.api)
    try:
        objects.delete_cluster_custom_object(GROUP, VERSION, "clusterissuers", name)
    except ApiException as error:
        if error.status != 404:
            raise
    core.delete_namespaced_secret(name, CLUSTER_RESOURCE_NAMESPACE)


def _create_cluster_issuer(cluster: Cluster, name: str, **spec: Any) -> None:
    client.CustomObjectsApi(cluster.api).create_cluster_custom_object(
        GROUP,
        VERSION,
        "clusterissuers",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ClusterIssuer",
            "metadata": {"name": name},
            "spec": {"ca": {"secretName": name}, **spec},
        },
    )


def _certificate(name: str, issuer: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Certificate",
        "metadata": {"name": name},
        "spec": {
            "secretName": name,
            "commonName": name,
            "privateKey": {"algorithm": "ECDSA"},
            "issuerRef": {"name": issuer, "kind": "ClusterIssuer"},
            **spec,
        },
    }


def _request(name: str, issuer: str) -> dict[str, Any]:
    key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    csr = build_csr(CertificateTemplate(common_name="evil-ca", dns_names=("kubernetes.default.svc",)), key)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CertificateRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64.b64encode(csr.public_bytes(Encoding.PEM)).decode(),
            "issuerRef": {"name": issuer, "kind": "ClusterIssuer"},
            "isCA": True,
        },
    }


def _tenant(cluster: Cluster, namespace: str, tmp_path: Path) -> client.CustomObjectsApi:
    """A namespace user who may only create (and read) Certificates and CertificateRequests there."""
    core, rbac = client.CoreV1Api(cluster.api), client.RbacAuthorizationV1Api(cluster.api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="tenant"))
    )
    rules = [
        client.V1PolicyRule(
            api_groups=[GROUP],
            resources=["certificates", "certificaterequests"],
            verbs=["create", "get", "list"],
        )
    ]
    rbac.create_namespaced_role(
        namespace, client.V1Role(metadata=client.V1ObjectMeta(name="tenant"), rules=rules)
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="tenant"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="tenant"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="tenant", namespace=namespace)],
        ),
    )
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "tenant.kubeconfig", namespace, "tenant")
    return client.CustomObjectsApi(api_client_from_kubeconfig(kubeconfig))


def test_a_namespace_user_gets_leaf_certificates_but_no_ca_from_a_cluster_issuer(
    cluster: Cluster, namespace: str, cluster_issuer: str, tmp_path: Path
) -> None:
    _create_cluster_issuer(cluster, cluster_issuer)
    tenant = _tenant(cluster, namespace, tmp_path)
    for plural, body in (
        ("certificates", _certificate("evil-ca", cluster_issuer, isCA=True)),
        ("certificaterequests", _request("evil-ca", cluster_issuer)),
    ):
        with pytest.raises(ApiException) as refused:
            tenant.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
        assert refused.value.status in (403, 422), refused.value
        assert f"ClusterIssuer {cluster_issuer} signs no CA certificate" in str(refused.value.body)
        assert "spec.issuancePolicy.caNamespaces" in str(refused.value.body)
    tenant.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "certificates",
        _certificate("leaf", cluster_issuer, dnsNames=["leaf.example"]),
    )
    wait_ready(cluster, namespace, "leaf")


def test_a_cluster_issuer_made_after_the_request_refuses_a_ca_until_it_opts_in(
    cluster: Cluster, namespace: str, cluster_issuer: str
) -> None:
    """The API server cannot refuse what asks a ClusterIssuer that does not exist yet: the operator does."""
    objects = client.CustomObjectsApi(cluster.api)
    objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "certificates", _certificate("sub-ca", cluster_issuer, isCA=True)
    )
    objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "certificaterequests", _request("sub-ca", cluster_issuer)
    )
    _create_cluster_issuer(cluster, cluster_issuer)

    def refused() -> dict[str, Any] | None:
        ready = condition(certificate(cluster, namespace, "sub-ca"))
        return ready if ready.get("reason") == "CANotAllowed" else None

    ready = eventually(refused, 30, "the CA Certificate refused by the operator")
    assert ready["status"] == "False"
    assert "spec.issuancePolicy" in ready["message"]
    assert "caNamespaces" in ready["message"]
    assert secret(cluster, namespace, "sub-ca") is None

    def denied() -> dict[str, Any] | None:
        body = objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "certificaterequests", "sub-ca"
        )
        assert isinstance(body, dict)
        return condition(body, "Denied") or None

    decision = eventually(denied, 30, "the CA CertificateRequest denied")
    assert (decision["status"], decision["reason"]) == ("True", "CANotAllowed")

    objects.patch_cluster_custom_object(
        GROUP,
        VERSION,
        "clusterissuers",
        cluster_issuer,
        {"spec": {"issuancePolicy": {"caNamespaces": [namespace]}}},
    )
    wait_ready(cluster, namespace, "sub-ca", timeout=30)  # after the back-off (at most 8 s here)
