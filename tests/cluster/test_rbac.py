"""The shipped RBAC is enough: the operator runs as its ServiceAccount (a token from the TokenRequest
API, nothing else) on the RBAC-enforcing API server, through every kind of API call it makes, and the
API server never says Forbidden."""

from __future__ import annotations

import base64
import contextlib
import datetime
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.api import CERTIFICATE_REQUESTS, GROUP, VERSION
from certsmith.api.certificate_request import PRIVATE_KEY_SECRET_ANNOTATION
from certsmith.pki.keys import KeyEncoding, encode_private_key
from certsmith.pki.request import CertificateTemplate, build_csr
from certsmith_devtools.kit import condition, create_object, free_port
from certsmith_devtools.pebble import Pebble
from tests.cluster.support import (
    HTTP_403,
    apply_deploy,
    ca_secret,
    certificate,
    create_certificate,
    create_secret,
    event_objects,
    eventually,
    key_pair,
    service_account_kubeconfig,
    wait_ready,
)
from tests.conftest import REPO, Cluster, OperatorProcess


def test_the_operator_needs_nothing_beyond_its_service_account(
    cluster: Cluster, solo_namespace: str, tmp_path: Path, stack: contextlib.ExitStack
) -> None:
    apply_deploy(cluster)
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "certsmith.kubeconfig")
    port, http01_port = free_port(), free_port()
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
        *_acme_arguments(http01_port),
    )
    pebble = stack.enter_context(Pebble(tmp_path / "pebble", http01_port))
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
        _acme_scenario(cluster, namespace, pebble)
        _shim_and_request_scenario(cluster, namespace)
        bundle = _bundle_scenario(cluster, namespace)
        for name in ("self", "leaf", "cluster", "twin1", "acme"):
            wait_ready(cluster, namespace, name, timeout=60)
        _shim_and_request_done(cluster, namespace)
        _bundle_done(cluster, namespace, bundle)
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
        _delete_bundle(cluster, solo_namespace)
    log = operator.log()
    assert not HTTP_403.search(log), log[-3000:]
    assert "Forbidden" not in log, log[-3000:]


@pytest.fixture(scope="module", autouse=True)
def _shared_operator_paused(operator: OperatorProcess) -> Iterator[None]:
    """The shared operator stopped while this module's operators run: it serves every namespace but
    solo-*, yet cluster-scoped objects too, and would write a scenario Bundle's ClusterTrustBundle with
    its own rights, hiding a rule the operator under test lacks."""
    operator.stop()
    try:
        yield
    finally:
        operator.start()


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    """Context managers entered by a test, exited after it."""
    with contextlib.ExitStack() as entered:
        yield entered


def _acme_arguments(http01_port: int) -> tuple[str, ...]:
    return (
        *("--acme-http01-port", str(http01_port), "--acme-http01-address", "127.0.0.1"),
        *("--acme-solver-service", "certsmith/certsmith-acme-solver"),
    )


def _acme_scenario(cluster: Cluster, namespace: str, pebble: Pebble) -> None:
    """An ACME issuer whose account key certsmith makes, and an HTTP-01 certificate (with its Ingress)."""
    acme = {
        "server": pebble.url,
        "privateKeySecretRef": {"name": "acme-account"},
        "caBundle": base64.b64encode(pebble.ca_bundle).decode(),
        "solvers": [{"http01": {"ingress": {"ingressClassName": "nginx"}}}],
    }
    create_object(cluster.api, namespace, "Issuer", "acme", {"acme": acme})
    create_certificate(cluster, namespace, "acme", "acme", dnsNames=["acme.example.com"])


def _shim_and_request_scenario(cluster: Cluster, namespace: str) -> None:
    """An Ingress annotated for two Certificates; a CertificateRequest auto-approved and self-signed with
    the key in its Secret (needs the Issuer "selfsigned")."""
    _ingress(cluster, namespace, {"shim-a": ["a.example.com"], "shim-b": ["b.example.com"]})
    key = ec.generate_private_key(ec.SECP256R1())
    create_secret(
        cluster, namespace, "cr-key", {"tls.key": encode_private_key(key, KeyEncoding.PKCS8)}, "Opaque"
    )
    csr = build_csr(CertificateTemplate(common_name="request.example"), key).public_bytes(Encoding.PEM)
    client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        CERTIFICATE_REQUESTS,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CertificateRequest",
            "metadata": {"name": "request", "annotations": {PRIVATE_KEY_SECRET_ANNOTATION: "cr-key"}},
            "spec": {"request": base64.b64encode(csr).decode(), "issuerRef": {"name": "selfsigned"}},
        },
    )


def _pod_certificate_scenario(cluster: Cluster, namespace: str) -> None:
    """A PodCertificateRequest for the CA Issuer "ca" (made here), filed as a kubelet does (the API
    server checks neither the Pod nor the node it names): watched, signed, its status written."""
    ca_secret(cluster, namespace)
    create_object(cluster.api, namespace, "Issuer", "ca", {"ca": {"secretName": "rbac-ca"}})
    key = ec.generate_private_key(ec.SECP256R1())
    stub = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    spec = {
        "signerName": f"issuers.certsmith.dev/{namespace}.ca",
        "podName": "web-0",
        "podUID": "6a1c2b9e-0000-4000-8000-000000000001",
        "serviceAccountName": "web",
        "serviceAccountUID": "6a1c2b9e-0000-4000-8000-000000000002",
        "nodeName": "node-a",
        "nodeUID": "6a1c2b9e-0000-4000-8000-000000000003",
        "maxExpirationSeconds": 3600,
        "stubPKCS10Request": base64.b64encode(stub.public_bytes(Encoding.DER)).decode(),
    }
    body = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "PodCertificateRequest",
        "metadata": {"name": "web-0"},
    }
    client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(
        "certificates.k8s.io", "v1", namespace, "podcertificaterequests", {**body, "spec": spec}
    )


def _shim_and_request_done(cluster: Cluster, namespace: str) -> None:
    """The scenario's objects made; then the Ingress edited: one Certificate updated, one deleted."""
    eventually(
        lambda: _certificate_names(cluster, namespace) >= {"shim-a", "shim-b"}, 30, "the shim's Certificates"
    )
    _ingress(cluster, namespace, {"shim-a": ["a.example.com", "www.a.example.com"]}, replace=True)
    eventually(lambda: "shim-b" not in _certificate_names(cluster, namespace), 30, "shim-b deleted")
    eventually(
        lambda: (
            certificate(cluster, namespace, "shim-a")["spec"]["dnsNames"]
            == ["a.example.com", "www.a.example.com"]
        ),
        30,
        "shim-a updated",
    )
    wait_ready(cluster, namespace, "shim-a", timeout=30)

    def signed() -> bool:
        found = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, CERTIFICATE_REQUESTS, "request"
        )
        return isinstance(found, dict) and bool((found.get("status") or {}).get("certificate"))

    eventually(signed, 30, "the CertificateRequest signed")


def _bundle_scenario(cluster: Cluster, namespace: str) -> str:
    """A Bundle of an inline CA certificate into a ConfigMap and a Secret of `namespace`, and into a
    ClusterTrustBundle for a certsmith signer (where the API server serves them: Kubernetes 1.37); its
    name."""
    name = f"rbac-{namespace}"
    inline = key_pair("rbac bundle CA", True, datetime.timedelta(days=1))["tls.crt"].decode()
    client.CustomObjectsApi(cluster.api).create_cluster_custom_object(
        GROUP,
        VERSION,
        "bundles",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Bundle",
            "metadata": {"name": name},
            "spec": {
                "sources": [{"inLine": inline}],
                "target": {
                    "configMap": {"key": "ca.crt"},
                    "secret": {"key": "ca.crt"},
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                    "clusterTrustBundle": {"signerName": f"clusterissuers.certsmith.dev/{name}"},
                },
            },
        },
    )
    return name


def _delete_bundle(cluster: Cluster, namespace: str) -> None:
    """The scenario's Bundle, if it is still there."""
    with contextlib.suppress(ApiException):
        client.CustomObjectsApi(cluster.api).delete_cluster_custom_object(
            GROUP, VERSION, "bundles", f"rbac-{namespace}"
        )


def _bundle_done(cluster: Cluster, namespace: str, name: str) -> None:
    """The Bundle's targets written; then its Secret target dropped and its source changed (the Secret
    deleted, the ConfigMap replaced); then the Bundle deleted (the ConfigMap deleted)."""
    core = client.CoreV1Api(cluster.api)

    def config_maps() -> set[str]:
        return {
            item.metadata.name or ""
            for item in core.list_namespaced_config_map(namespace).items
            if item.metadata
        }

    def secrets() -> set[str]:
        return {
            item.metadata.name or "" for item in core.list_namespaced_secret(namespace).items if item.metadata
        }

    eventually(lambda: name in config_maps() and name in secrets(), 30, "the Bundle's ConfigMap and Secret")
    inline = key_pair("rbac bundle CA 2", True, datetime.timedelta(days=1))["tls.crt"].decode()
    client.CustomObjectsApi(cluster.api).patch_cluster_custom_object(
        GROUP,
        VERSION,
        "bundles",
        name,
        {"spec": {"sources": [{"inLine": inline}], "target": {"secret": None}}},
    )
    eventually(lambda: name not in secrets(), 30, "the Bundle's Secret deleted")
    eventually(
        lambda: (core.read_namespaced_config_map(name, namespace).data or {}).get("ca.crt") == inline,
        30,
        "the Bundle's ConfigMap replaced",
    )
    client.CustomObjectsApi(cluster.api).delete_cluster_custom_object(GROUP, VERSION, "bundles", name)
    eventually(lambda: name not in config_maps(), 30, "the Bundle's ConfigMap deleted")


def _ingress(cluster: Cluster, namespace: str, secrets: dict[str, list[str]], replace: bool = False) -> None:
    body = client.V1Ingress(
        metadata=client.V1ObjectMeta(name="web", annotations={"certsmith.dev/issuer": "selfsigned"}),
        spec=client.V1IngressSpec(
            tls=[client.V1IngressTLS(hosts=hosts, secret_name=secret) for secret, hosts in secrets.items()],
            default_backend=client.V1IngressBackend(
                service=client.V1IngressServiceBackend(
                    name="web", port=client.V1ServiceBackendPort(number=80)
                )
            ),
        ),
    )
    networking = client.NetworkingV1Api(cluster.api)
    if replace:
        networking.patch_namespaced_ingress("web", namespace, {"spec": {"tls": body.spec.tls}})  # type: ignore[union-attr]
    else:
        networking.create_namespaced_ingress(namespace, body)


def _certificate_names(cluster: Cluster, namespace: str) -> set[str]:
    listed = client.CustomObjectsApi(cluster.api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "certificates"
    )
    assert isinstance(listed, dict)
    return {item["metadata"]["name"] for item in listed["items"]}


def test_a_namespaced_install_needs_only_its_role(
    cluster: Cluster, solo_namespace: str, tmp_path: Path, stack: contextlib.ExitStack
) -> None:
    """deploy/namespaced/'s Role, bound in one namespace, is all that `certsmith run --namespaced` needs:
    self-signed, CA and ACME issuance, leader election, the metrics; ClusterIssuers are refused."""
    namespace = solo_namespace
    documents = yaml.safe_load_all((REPO / "deploy" / "namespaced" / "role.yaml").read_text())
    for document in documents:
        document["metadata"]["namespace"] = namespace
        for subject in document.get("subjects", ()):
            subject["namespace"] = namespace
        create_object_from(cluster, document)
    client.CoreV1Api(cluster.api).create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="certsmith"))
    )
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "namespaced.kubeconfig", namespace)
    port, http01_port = free_port(), free_port()
    pebble = stack.enter_context(Pebble(tmp_path / "pebble", http01_port))
    operator = OperatorProcess(
        kubeconfig,
        tmp_path / "operator.log",
        *("--namespaced", "--namespace", namespace, "--leader-elect", "--leader-elect-namespace", namespace),
        *("--metrics-port", str(port), "--metrics-address", "127.0.0.1", "--backoff-initial", "1s"),
        *_acme_arguments(http01_port),
    )
    operator.start()
    try:
        create_object(cluster.api, namespace, "Issuer", "selfsigned", {"selfSigned": {}})
        create_certificate(cluster, namespace, "self", "selfsigned", dnsNames=["self.example.com"])
        ca_secret(cluster, namespace)
        create_object(cluster.api, namespace, "Issuer", "ca", {"ca": {"secretName": "rbac-ca"}})
        create_certificate(cluster, namespace, "leaf", "ca", dnsNames=["leaf.example.com"])
        _acme_scenario(cluster, namespace, pebble)
        create_certificate(
            cluster,
            namespace,
            "cluster",
            "any",
            dnsNames=["cluster.example.com"],
            issuerRef={"name": "any", "kind": "ClusterIssuer"},
        )
        _shim_and_request_scenario(cluster, namespace)
        for name in ("self", "leaf", "acme"):
            wait_ready(cluster, namespace, name, timeout=60)
        _shim_and_request_done(cluster, namespace)
        refused = eventually(lambda: condition(certificate(cluster, namespace, "cluster")).get("reason"), 30)
        assert refused == "ClusterIssuersNotServed"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert 'secret="leaf"' in response.read().decode()
    finally:
        operator.stop()
    log = operator.log()
    assert not HTTP_403.search(log), log[-3000:]
    assert "Forbidden" not in log, log[-3000:]


def create_object_from(cluster: Cluster, document: dict[str, Any]) -> None:
    """A Role or RoleBinding as written in a manifest."""
    plural = "roles" if document["kind"] == "Role" else "rolebindings"
    client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(
        "rbac.authorization.k8s.io", "v1", document["metadata"]["namespace"], plural, document
    )


def _rules() -> list[tuple[str, int]]:
    """(kind, index) of every rule in the shipped ClusterRole and Role."""
    documents = list(yaml.safe_load_all((REPO / "deploy" / "base" / "rbac.yaml").read_text()))
    return [
        (document["kind"], index)
        for document in documents
        if document["kind"] in ("ClusterRole", "Role")
        for index in range(len(document["rules"]))
    ]


def _replace_role(cluster: Cluster, kind: str, without: int | None) -> None:
    """Put the shipped ClusterRole or Role back, less its rule number `without`."""
    document = next(
        d
        for d in yaml.safe_load_all((REPO / "deploy" / "base" / "rbac.yaml").read_text())
        if d["kind"] == kind
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
    cluster: Cluster, solo_namespace: str, tmp_path: Path, stack: contextlib.ExitStack, kind: str, index: int
) -> None:
    """Without any one rule, the operator is refused something it does on the common paths."""
    apply_deploy(cluster)
    _replace_role(cluster, kind, index)
    http01_port = free_port()
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
        *_acme_arguments(http01_port),
    )
    pebble = stack.enter_context(Pebble(tmp_path / "pebble", http01_port))
    operator.start()
    try:
        _acme_scenario(cluster, solo_namespace, pebble)
        create_object(cluster.api, solo_namespace, "Issuer", "selfsigned", {"selfSigned": {}})
        _shim_and_request_scenario(cluster, solo_namespace)
        _bundle_scenario(cluster, solo_namespace)
        _pod_certificate_scenario(cluster, solo_namespace)
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
            lambda: (
                HTTP_403.search(operator.log())
                or any(word in operator.log() for word in ("Forbidden", "Not enough permissions"))
            ),
            40,
            f"a refusal without rule {index} of the {kind}",
        )
    finally:
        operator.stop()
        _replace_role(cluster, kind, None)
        _delete_bundle(cluster, solo_namespace)
