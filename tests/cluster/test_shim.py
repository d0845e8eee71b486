"""Certificates for annotated Ingresses and Gateways, against the real API server with the operator
running: made per TLS entry, updated when the Ingress changes, deleted when the entry goes (and with
the Ingress), refusals said as Events on the Ingress; the same for a Gateway's listeners, with the
Gateway API's own CRDs (installed with certsmith's, before the operator starts: tests/conftest.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from kubernetes import client

from certsmith.api import GROUP, VERSION
from certsmith_devtools.kit import create_object
from tests.cluster.support import certificate, create_certificate, eventually, secret_data, wait_ready
from tests.conftest import Cluster, OperatorProcess

pytestmark = pytest.mark.cluster


@pytest.fixture
def selfsigned(cluster: Cluster, operator: OperatorProcess, namespace: str) -> str:
    create_object(cluster.api, namespace, "Issuer", "selfsigned", {"selfSigned": {}})
    return namespace


def _ingresses(namespace: str) -> tuple[str, str, str, str]:
    return ("networking.k8s.io", "v1", namespace, "ingresses")


def _ingress(secrets: dict[str, list[str]], **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "annotations": {"certsmith.dev/issuer": "selfsigned", **annotations}},
        "spec": {
            "tls": [{"hosts": hosts, "secretName": secret} for secret, hosts in secrets.items()],
            "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}},
        },
    }


def _names(cluster: Cluster, namespace: str) -> set[str]:
    listed = client.CustomObjectsApi(cluster.api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "certificates"
    )
    assert isinstance(listed, dict)
    return {item["metadata"]["name"] for item in listed["items"]}


def _sans(cluster: Cluster, namespace: str, secret: str) -> list[str]:
    leaf = x509.load_pem_x509_certificate(secret_data(cluster, namespace, secret)["tls.crt"])
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return names.get_values_for_type(x509.DNSName)


def _warnings(cluster: Cluster, namespace: str, kind: str, name: str) -> list[str]:
    listed = client.CoreV1Api(cluster.api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind={kind},involvedObject.name={name}"
    )
    return [event.message or "" for event in listed.items if event.type == "Warning"]


def test_an_annotated_ingress_gets_a_certificate_per_tls_entry(cluster: Cluster, selfsigned: str) -> None:
    namespace = selfsigned
    objects = client.CustomObjectsApi(cluster.api)
    objects.create_namespaced_custom_object(
        *_ingresses(namespace),
        _ingress(
            {"web-tls": ["web.example.com", "www.example.com"], "api-tls": ["api.example.com"]},
            **{"certsmith.dev/duration": "48h", "certsmith.dev/private-key-algorithm": "Ed25519"},
        ),
    )
    eventually(lambda: _names(cluster, namespace) >= {"web-tls", "api-tls"}, 30, "the Ingress's Certificates")
    for name in ("web-tls", "api-tls"):
        body = wait_ready(cluster, namespace, name, timeout=30)
        assert body["metadata"]["ownerReferences"][0]["kind"] == "Ingress"
        assert body["spec"]["duration"] == "48h"
        assert body["spec"]["privateKey"]["algorithm"] == "Ed25519"
    assert _sans(cluster, namespace, "web-tls") == ["web.example.com", "www.example.com"]

    objects.patch_namespaced_custom_object(
        *_ingresses(namespace),
        "web",
        {"spec": {"tls": [{"hosts": ["web.example.com", "new.example.com"], "secretName": "web-tls"}]}},
    )
    eventually(lambda: "api-tls" not in _names(cluster, namespace), 30, "api-tls deleted with its entry")
    eventually(
        lambda: _sans(cluster, namespace, "web-tls") == ["web.example.com", "new.example.com"],
        30,
        "web-tls re-issued for the new hosts",
    )
    revision = certificate(cluster, namespace, "web-tls")["status"]["revision"]
    objects.patch_namespaced_custom_object(
        *_ingresses(namespace), "web", {"metadata": {"labels": {"touched": "yes"}}}
    )
    time.sleep(2)  # the operator sees the edit (a watch event) and compares
    assert certificate(cluster, namespace, "web-tls")["status"]["revision"] == revision, (
        "an unrelated edit re-issued"
    )

    objects.delete_namespaced_custom_object(*_ingresses(namespace), "web")
    eventually(lambda: "web-tls" not in _names(cluster, namespace), 60, "web-tls collected with its Ingress")


def test_bad_annotations_and_foreign_certificates_are_said_on_the_ingress(
    cluster: Cluster, selfsigned: str
) -> None:
    namespace = selfsigned
    objects = client.CustomObjectsApi(cluster.api)
    objects.create_namespaced_custom_object(
        *_ingresses(namespace),
        _ingress({"bad-tls": ["bad.example.com"]}, **{"certsmith.dev/duration": "soon"}),
    )
    message = eventually(
        lambda: "".join(_warnings(cluster, namespace, "Ingress", "web")), 30, "a Warning on the Ingress"
    )
    assert "annotation certsmith.dev/duration" in message
    assert "Go duration" in message
    assert "bad-tls" not in _names(cluster, namespace)
    objects.delete_namespaced_custom_object(*_ingresses(namespace), "web")

    create_certificate(cluster, namespace, "mine", "selfsigned", dnsNames=["mine.example.com"])
    wait_ready(cluster, namespace, "mine")
    before = certificate(cluster, namespace, "mine")
    body = _ingress({"mine": ["other.example.com"]})
    body["metadata"]["name"] = "other"
    objects.create_namespaced_custom_object(*_ingresses(namespace), body)
    message = eventually(
        lambda: "".join(_warnings(cluster, namespace, "Ingress", "other")),
        30,
        "a Warning on the other Ingress",
    )
    assert "Certificate mine exists and is not this Ingress's" in message
    after = certificate(cluster, namespace, "mine")
    assert after["spec"] == before["spec"]
    assert "ownerReferences" not in after["metadata"]


def _gateway(listeners: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "edge", "annotations": {"certsmith.dev/issuer": "selfsigned"}},
        "spec": {
            "gatewayClassName": "example",
            "listeners": [
                {
                    "name": f"https-{index}",
                    "hostname": hostname,
                    "port": 443,
                    "protocol": "HTTPS",
                    "tls": {"mode": "Terminate", "certificateRefs": [{"name": secret}]},
                }
                for index, (hostname, secret) in enumerate(listeners)
            ],
        },
    }


def test_a_gateways_listeners_get_their_certificates(
    cluster: Cluster, selfsigned: str, tmp_path: Path
) -> None:
    namespace = selfsigned
    objects = client.CustomObjectsApi(cluster.api)
    gateways = ("gateway.networking.k8s.io", "v1", namespace, "gateways")
    objects.create_namespaced_custom_object(
        *gateways, _gateway([("shop.example.com", "shop-tls"), ("pay.example.com", "pay-tls")])
    )
    eventually(
        lambda: _names(cluster, namespace) >= {"shop-tls", "pay-tls"}, 60, "the listeners' Certificates"
    )
    for name in ("shop-tls", "pay-tls"):
        wait_ready(cluster, namespace, name, timeout=30)
    assert certificate(cluster, namespace, "shop-tls")["metadata"]["ownerReferences"][0]["kind"] == "Gateway"
    objects.patch_namespaced_custom_object(
        *gateways,
        "edge",
        {"spec": {"listeners": _gateway([("store.example.com", "shop-tls")])["spec"]["listeners"]}},
    )
    eventually(lambda: "pay-tls" not in _names(cluster, namespace), 30, "pay-tls deleted with its listener")
    eventually(
        lambda: _sans(cluster, namespace, "shop-tls") == ["store.example.com"], 30, "shop-tls re-issued"
    )
    objects.delete_namespaced_custom_object(*gateways, "edge")
    eventually(
        lambda: "shop-tls" not in _names(cluster, namespace), 60, "shop-tls collected with its Gateway"
    )


def test_two_ingresses_naming_one_secret_the_older_gets_it_and_the_other_is_told(
    cluster: Cluster, selfsigned: str
) -> None:
    """The newer Ingress is annotated first, so its Certificate exists when the older one asks too:
    the older takes it over (whichever the operator saw first), the newer gets a Warning naming it."""
    namespace = selfsigned
    objects = client.CustomObjectsApi(cluster.api)
    older = _ingress({"shared-tls": ["older.example.com"]})
    older["metadata"]["name"] = "older"
    del older["metadata"]["annotations"]
    objects.create_namespaced_custom_object(*_ingresses(namespace), older)
    time.sleep(1.1)  # creationTimestamp has whole seconds
    newer = _ingress({"shared-tls": ["newer.example.com"]})
    newer["metadata"]["name"] = "newer"
    objects.create_namespaced_custom_object(*_ingresses(namespace), newer)
    eventually(lambda: "shared-tls" in _names(cluster, namespace), 30, "the newer Ingress's Certificate")
    wait_ready(cluster, namespace, "shared-tls", timeout=30)

    objects.patch_namespaced_custom_object(
        *_ingresses(namespace), "older", {"metadata": {"annotations": {"certsmith.dev/issuer": "selfsigned"}}}
    )

    def taken_over() -> bool | None:
        body = certificate(cluster, namespace, "shared-tls")
        owners = [reference["name"] for reference in body["metadata"].get("ownerReferences") or []]
        return (owners == ["older"] and body["spec"]["dnsNames"] == ["older.example.com"]) or None

    eventually(taken_over, 30, "the older Ingress to take the Certificate over")
    eventually(
        lambda: _sans(cluster, namespace, "shared-tls") == ["older.example.com"], 30, "re-issued for it"
    )
    warning = eventually(
        lambda: next((m for m in _warnings(cluster, namespace, "Ingress", "newer") if "older" in m), None),
        30,
        "a Warning on the newer Ingress",
    )
    assert "Secret shared-tls is also named by Ingress older" in warning
    assert "name another Secret" in warning
    assert not [m for m in _warnings(cluster, namespace, "Ingress", "older") if "shared-tls" in m]
    time.sleep(2)
    assert "shared-tls" in _names(cluster, namespace), "the newer Ingress did not delete what it lost"
