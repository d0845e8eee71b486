"""Bundles against the real API server with the operator running: a CA issuer's CA and an inline
certificate land in exactly the namespaces the selector picks, follow label changes, new namespaces
and the CA's rotation, never overwrite a ConfigMap certsmith did not make (the status says so), and
deleting the Bundle removes only its own ConfigMaps.

The shared operator reads sources from its default trust namespace, `certsmith` (made here if no
other test made it first); each test's objects there have names of their own and are deleted."""

from __future__ import annotations

import base64
import contextlib
import datetime
import functools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.api import GROUP, VERSION
from certsmith.kube.port import OwnWrites
from certsmith.kube.trust import TrustApi
from certsmith.pki.encodings import certificates_pem
from certsmith.pki.keys import KeyAlgorithm, KeySpec, generate_private_key
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import self_sign
from certsmith.pki.system_trust import system_trust
from certsmith.pki.trust import trust_bundle
from certsmith_devtools.kit import condition, create_object
from tests.cluster.support import certificate, eventually, secret, secret_data, wait_ready
from tests.conftest import Cluster, OperatorProcess, fresh_namespace

pytestmark = pytest.mark.cluster

TRUST_NAMESPACE = "certsmith"
TIMEOUT = 20.0


@pytest.fixture
def trust(cluster: Cluster, operator: OperatorProcess) -> Iterator[str]:
    """A CA Issuer in the trust namespace, with its root Certificate; yields the Issuer's name."""
    core = client.CoreV1Api(cluster.api)
    with contextlib.suppress(ApiException):  # already there: made by another test
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=TRUST_NAMESPACE)))
    suffix = uuid.uuid4().hex[:6]
    selfsigned, root, ca = f"bundle-selfsigned-{suffix}", f"bundle-root-{suffix}", f"bundle-ca-{suffix}"
    create_object(cluster.api, TRUST_NAMESPACE, "Issuer", selfsigned, {"selfSigned": {}})
    create_object(
        cluster.api,
        TRUST_NAMESPACE,
        "Certificate",
        root,
        {
            "secretName": root,
            "isCA": True,
            "commonName": "bundle test root",
            "privateKey": {"algorithm": "ECDSA", "rotationPolicy": "Always"},
            "issuerRef": {"name": selfsigned},
        },
    )
    create_object(cluster.api, TRUST_NAMESPACE, "Issuer", ca, {"ca": {"secretName": root}})
    wait_ready(cluster, TRUST_NAMESPACE, root)
    yield ca
    objects = client.CustomObjectsApi(cluster.api)
    for plural, name in (("issuers", ca), ("certificates", root), ("issuers", selfsigned)):
        objects.delete_namespaced_custom_object(GROUP, VERSION, TRUST_NAMESPACE, plural, name)
    core.delete_namespaced_secret(root, TRUST_NAMESPACE)


@pytest.fixture
def label() -> str:
    """A label value of this test's own, so that its selector picks only its own namespaces."""
    return uuid.uuid4().hex[:8]


@contextlib.contextmanager
def _namespaces(cluster: Cluster, count: int) -> Iterator[list[str]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(fresh_namespace(cluster, "test")) for _ in range(count)]


def _label(cluster: Cluster, namespace: str, value: str | None) -> None:
    client.CoreV1Api(cluster.api).patch_namespace(namespace, {"metadata": {"labels": {"bundle-test": value}}})


def _inline_certificate() -> x509.Certificate:
    key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    template = CertificateTemplate(common_name="inline CA", is_ca=True, duration=datetime.timedelta(days=1))
    return self_sign(template, key, datetime.datetime.now(datetime.UTC)).certificate


def _create_bundle(cluster: Cluster, name: str, spec: dict[str, Any]) -> None:
    client.CustomObjectsApi(cluster.api).create_cluster_custom_object(
        GROUP,
        VERSION,
        "bundles",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Bundle", "metadata": {"name": name}, "spec": spec},
    )


def _bundle(cluster: Cluster, name: str) -> dict[str, Any]:
    body = client.CustomObjectsApi(cluster.api).get_cluster_custom_object(GROUP, VERSION, "bundles", name)
    assert isinstance(body, dict)
    return body


def _delete_bundle(cluster: Cluster, name: str) -> None:
    with contextlib.suppress(ApiException):
        client.CustomObjectsApi(cluster.api).delete_cluster_custom_object(GROUP, VERSION, "bundles", name)


def _config_map(cluster: Cluster, namespace: str, name: str) -> client.V1ConfigMap | None:
    try:
        return client.CoreV1Api(cluster.api).read_namespaced_config_map(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def _holding(cluster: Cluster, namespaces: list[str], name: str) -> set[str]:
    """Those of `namespaces` where the Bundle's ConfigMap is."""
    return {namespace for namespace in namespaces if _config_map(cluster, namespace, name) is not None}


def _pem(cluster: Cluster, namespace: str, name: str) -> str | None:
    found = _config_map(cluster, namespace, name)
    return (found.data or {}).get("ca.pem") if found is not None else None


def _ca_certificate(cluster: Cluster, issuer: str) -> bytes:
    root = certificate(cluster, TRUST_NAMESPACE, issuer.replace("bundle-ca-", "bundle-root-"))
    return secret_data(cluster, TRUST_NAMESPACE, root["spec"]["secretName"])["tls.crt"]


def _spec(issuer: str, inline: x509.Certificate, label: str) -> dict[str, Any]:
    return {
        "sources": [
            {"issuerRef": {"name": issuer}},
            {"inLine": certificates_pem([inline]).decode()},
        ],
        "target": {
            "configMap": {"key": "ca.pem"},
            "additionalFormats": {"pkcs12": {"key": "ca.p12", "password": "changeit"}},
            "namespaceSelector": {"matchLabels": {"bundle-test": label}},
        },
    }


def test_a_bundle_lands_in_exactly_the_selected_namespaces_and_follows_them(
    cluster: Cluster, trust: str, label: str
) -> None:
    name = f"trust-{label}"
    inline = _inline_certificate()
    with _namespaces(cluster, 4) as (first, second, unselected, later):
        for namespace in (first, second):
            _label(cluster, namespace, label)
        _create_bundle(cluster, name, _spec(trust, inline, label))
        try:
            everywhere = [first, second, unselected, later]
            eventually(lambda: _holding(cluster, everywhere, name) == {first, second}, TIMEOUT, "the targets")
            ca = x509.load_pem_x509_certificates(_ca_certificate(cluster, trust))
            assert _pem(cluster, first, name) == trust_bundle([*ca, inline]).pem
            target = _config_map(cluster, first, name)
            assert target is not None
            assert target.metadata is not None
            assert (target.metadata.labels or {}).get("certsmith.dev/bundle") == name
            assert [reference.kind for reference in target.metadata.owner_references or []] == ["Bundle"]
            store = pkcs12.load_pkcs12(base64.b64decode((target.binary_data or {})["ca.p12"]), b"changeit")
            assert len(store.additional_certs) == 2
            status = eventually(lambda: _ready(cluster, name), TIMEOUT, "the Bundle to be Ready")
            assert (status["certificates"], status["targetNamespaces"]) == (2, 2)

            version = target.metadata.resource_version
            _label(cluster, unselected, "another")  # every Bundle looks again; nothing changed for this one
            _label(cluster, unselected, label)
            _label(cluster, second, None)
            _label(cluster, later, label)
            eventually(
                lambda: _holding(cluster, everywhere, name) == {first, unselected, later},
                TIMEOUT,
                "the targets to follow the labels",
            )
            target = _config_map(cluster, first, name)
            assert target is not None
            assert target.metadata is not None
            assert target.metadata.resource_version == version, "an equal target was written again"

            before, rotated = _rotate_ca(cluster, trust)
            for namespace in (first, unselected, later):
                eventually(
                    functools.partial(_holds_only, cluster, namespace, name, rotated, before),
                    TIMEOUT,
                    f"the rotated CA in {namespace}",
                )
        finally:
            _delete_bundle(cluster, name)


def _rotate_ca(cluster: Cluster, trust: str) -> tuple[bytes, bytes]:
    """Re-issue the root behind the CA issuer `trust` under a new name: its CA certificate before, after."""
    before = _ca_certificate(cluster, trust)
    client.CustomObjectsApi(cluster.api).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        TRUST_NAMESPACE,
        "certificates",
        trust.replace("bundle-ca-", "bundle-root-"),
        {"spec": {"commonName": "bundle test root, rotated"}},
    )
    return before, eventually(lambda: _rotated(cluster, trust, before), TIMEOUT, "the CA's rotation")


def _rotated(cluster: Cluster, issuer: str, before: bytes) -> bytes | None:
    now = _ca_certificate(cluster, issuer)
    return now if now != before else None


def _holds_only(cluster: Cluster, namespace: str, name: str, wanted: bytes, gone: bytes) -> bool:
    pem = _pem(cluster, namespace, name) or ""
    return wanted.decode() in pem and gone.decode() not in pem


def _ready(cluster: Cluster, name: str) -> dict[str, Any] | None:
    body = _bundle(cluster, name)
    return body["status"] if condition(body).get("status") == "True" else None


def test_a_foreign_configmap_is_never_overwritten_and_deleting_the_bundle_removes_only_its_own(
    cluster: Cluster, trust: str, label: str
) -> None:
    name = f"trust-{label}"
    with _namespaces(cluster, 2) as (foreign, own):
        client.CoreV1Api(cluster.api).create_namespaced_config_map(
            foreign,
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"ca.pem": "someone else's"}),
        )
        for namespace in (foreign, own):
            _label(cluster, namespace, label)
        spec = _spec(trust, _inline_certificate(), label)
        spec["sources"].append({"useDefaultCAs": True})
        spec["target"]["secret"] = {"key": "ca.pem"}
        _create_bundle(cluster, name, spec)
        try:
            eventually(lambda: _pem(cluster, own, name), TIMEOUT, "the Bundle's own target")
            for namespace in (foreign, own):  # the foreign ConfigMap stops only the ConfigMap
                found = eventually(functools.partial(secret, cluster, namespace, name), TIMEOUT, "Secrets")
                assert base64.b64decode((found.data or {})["ca.pem"]).decode() == _pem(cluster, own, name)

            def refused() -> dict[str, Any] | None:
                body = _bundle(cluster, name)
                return body if condition(body).get("reason") == "TargetNotOwned" else None

            body = eventually(refused, TIMEOUT, "the status to name the foreign ConfigMap")
            assert condition(body)["status"] == "False"
            assert f"ConfigMap {foreign}/{name}" in condition(body)["message"]
            assert body["status"]["notOwned"] == [
                {"kind": "ConfigMap", "namespace": foreign, "reason": body["status"]["notOwned"][0]["reason"]}
            ]
            assert "did not make it" in body["status"]["notOwned"][0]["reason"]
            system = system_trust()
            assert body["status"]["defaultCAVersion"] == system.version != "unknown"
            assert body["status"]["certificates"] == len(trust_bundle(system.certificates).certificates) + 2
            events = client.CoreV1Api(cluster.api).list_event_for_all_namespaces(
                field_selector=f"involvedObject.kind=Bundle,involvedObject.name={name}"
            )
            assert any(
                event.reason == "TargetNotOwned" and foreign in (event.message or "")
                for event in events.items
            )
            assert _pem(cluster, foreign, name) == "someone else's"
        finally:
            _delete_bundle(cluster, name)
        eventually(lambda: _config_map(cluster, own, name) is None, TIMEOUT, "the Bundle's ConfigMap to go")
        for namespace in (foreign, own):
            eventually(
                functools.partial(_gone, cluster, namespace, name),
                TIMEOUT,
                f"Secret {namespace}/{name} to go",
            )
        assert _pem(cluster, foreign, name) == "someone else's"


def _gone(cluster: Cluster, namespace: str, name: str) -> bool:
    return secret(cluster, namespace, name) is None


def _trust_bundle(cluster: Cluster, name: str) -> dict[str, Any] | None:
    """The ClusterTrustBundle `name`, by the API version the server serves (v1 since 1.37)."""
    version = TrustApi(cluster.api, OwnWrites()).trust_bundle_version()
    try:
        body = client.CustomObjectsApi(cluster.api).get_cluster_custom_object(
            "certificates.k8s.io", version, "clustertrustbundles", name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    assert isinstance(body, dict)
    return body


def test_a_cluster_trust_bundle_holds_the_ca_certificates_for_a_signer(
    cluster: Cluster, trust: str, label: str
) -> None:
    name = f"trust-{label}"
    signer = f"clusterissuers.certsmith.dev/{name}"
    expected_name = f"clusterissuers.certsmith.dev:{name}:{name}"
    inline = _inline_certificate()
    leaf_key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    leaf = self_sign(
        CertificateTemplate(common_name="not a CA", duration=datetime.timedelta(days=1)),
        leaf_key,
        datetime.datetime.now(datetime.UTC),
    ).certificate
    spec = {
        "sources": [
            {"issuerRef": {"name": trust}},
            {"inLine": certificates_pem([inline, leaf]).decode()},
        ],
        "target": {"clusterTrustBundle": {"signerName": signer}},
    }
    _create_bundle(cluster, name, spec)
    try:
        found = eventually(lambda: _trust_bundle(cluster, expected_name), TIMEOUT, "the ClusterTrustBundle")
        ca = x509.load_pem_x509_certificates(_ca_certificate(cluster, trust))
        assert found["spec"]["signerName"] == signer
        assert found["spec"]["trustBundle"] == trust_bundle([*ca, inline]).pem, "the leaf is left out"
        assert [reference["kind"] for reference in found["metadata"]["ownerReferences"]] == ["Bundle"]
        status = eventually(lambda: _ready(cluster, name), TIMEOUT, "the Bundle to be Ready")
        assert status["clusterTrustBundle"] == expected_name

        before, rotated = _rotate_ca(cluster, trust)

        def holds_rotated() -> bool:
            body = _trust_bundle(cluster, expected_name) or {}
            pem = (body.get("spec") or {}).get("trustBundle", "")
            return rotated.decode() in pem and before.decode() not in pem

        eventually(holds_rotated, TIMEOUT, "the rotated CA in the ClusterTrustBundle")
    finally:
        _delete_bundle(cluster, name)
    eventually(lambda: _trust_bundle(cluster, expected_name) is None, TIMEOUT, "the ClusterTrustBundle to go")
