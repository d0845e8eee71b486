"""ACME profiles, short-lived certificates and IP address identifiers against a real Pebble v2.10.3
offering Let's Encrypt's profiles (classic, tlsserver, shortlived; certsmith_devtools.pebble.PROFILES).

A shortlived ClusterIssuer issues a 160-hour certificate that is Ready with no word of being cut short
and renews at 2/3 of that lifetime; an issuer naming no profile gets whatever the CA chooses (Pebble
picks one of its profiles at random); an unknown profile makes the issuer Ready=False naming the
offered ones before any order is made; an IP-only certificate is issued through HTTP-01, and refused
with a clear message where only DNS-01 could prove it."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.api import GROUP, VERSION
from certsmith.issuers.acme.client import AcmeClient, AcmeError
from certsmith.pki.keys import load_private_key
from certsmith_devtools.kit import condition
from certsmith_devtools.pebble import PROFILES, Pebble
from tests.cluster.acme_support import acme_operator_process
from tests.cluster.support import (
    certificate,
    create,
    create_certificate,
    events,
    eventually,
    secret_data,
    wait_ready,
)
from tests.cluster.test_acme import http01_port, pebble
from tests.conftest import Cluster, OperatorProcess, fresh_namespace

pytestmark = pytest.mark.cluster
__all__ = ["http01_port", "pebble"]  # fixtures

NAMESPACES = "solo-profiles-*"
CLUSTER_RESOURCE_NAMESPACE = "certsmith"
"""The operator's default --cluster-resource-namespace: where a ClusterIssuer's account key lives."""
SHORTLIVED = PROFILES["shortlived"].lifetime - datetime.timedelta(seconds=1)
"""What Pebble issues for the shortlived profile: its notAfter is inclusive."""


@pytest.fixture(scope="module")
def profiles_operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, http01_port: int
) -> Iterator[OperatorProcess]:
    with acme_operator_process(cluster, tmp_path_factory, "profiles", NAMESPACES, http01_port) as process:
        yield process


@pytest.fixture
def namespace(cluster: Cluster, profiles_operator: OperatorProcess) -> Iterator[str]:
    with fresh_namespace(cluster, "solo-profiles") as name:
        yield name


def _acme(pebble: Pebble, account: str, **fields: Any) -> dict[str, Any]:
    return {
        "acme": {
            "server": pebble.url,
            "privateKeySecretRef": {"name": account},
            "caBundle": base64.b64encode(pebble.ca_bundle).decode(),
            "solvers": [{"http01": {"ingress": {}}}],
            **fields,
        }
    }


def _issuer(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    body = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "issuers", name
    )
    assert isinstance(body, dict)
    return body


def _issuer_ready(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        body = _issuer(cluster, namespace, name)
        return body if condition(body).get("status") == "True" else None

    return eventually(ready, what=f"Issuer {name} to be Ready")


def _lifetime(cluster: Cluster, namespace: str, name: str) -> tuple[x509.Certificate, datetime.timedelta]:
    leaf = x509.load_pem_x509_certificate(secret_data(cluster, namespace, name)["tls.crt"])
    return leaf, leaf.not_valid_after_utc - leaf.not_valid_before_utc


def _orders_made(pebble: Pebble) -> int:
    return pebble.log().count("Added order")


@pytest.fixture
def shortlived_cluster_issuer(cluster: Cluster, pebble: Pebble, namespace: str) -> Iterator[str]:
    """A ClusterIssuer for Pebble's shortlived profile, deleted after the test."""
    core = client.CoreV1Api(cluster.api)
    try:
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=CLUSTER_RESOURCE_NAMESPACE))
        )
    except ApiException as error:
        if error.status != 409:
            raise
    name = f"shortlived-{namespace}"
    api = client.CustomObjectsApi(cluster.api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterIssuer",
        "metadata": {"name": name},
        "spec": _acme(pebble, name, profile="shortlived"),
    }
    api.create_cluster_custom_object(GROUP, VERSION, "clusterissuers", body)
    yield name
    api.delete_cluster_custom_object(GROUP, VERSION, "clusterissuers", name)


def test_a_shortlived_cluster_issuer_issues_160_hour_certificates_not_reported_as_cut_short(
    cluster: Cluster, namespace: str, shortlived_cluster_issuer: str
) -> None:
    def ready_issuer() -> dict[str, Any] | None:
        body = client.CustomObjectsApi(cluster.api).get_cluster_custom_object(
            GROUP, VERSION, "clusterissuers", shortlived_cluster_issuer
        )
        assert isinstance(body, dict)
        return body if condition(body).get("status") == "True" else None

    issuer = eventually(ready_issuer, what="the shortlived ClusterIssuer to be Ready")
    offered = [item["name"] for item in issuer["status"]["acme"]["profiles"]]
    assert offered == sorted(PROFILES), issuer["status"]
    assert "shortlived" in condition(issuer)["message"]

    reference = {"name": shortlived_cluster_issuer, "kind": "ClusterIssuer"}
    applied = time.monotonic()
    create_certificate(cluster, namespace, "short", "", dnsNames=["short.example.com"], issuerRef=reference)
    body = wait_ready(cluster, namespace, "short", timeout=60)
    took = time.monotonic() - applied
    leaf, lifetime = _lifetime(cluster, namespace, "short")
    assert lifetime == SHORTLIVED, lifetime
    message = condition(body)["message"]
    assert "instead of" not in message, message
    assert "CA certificate" not in message, message
    assert "Shortened" not in [reason for _, reason, _ in events(cluster, namespace, "short")]
    renewal = datetime.datetime.fromisoformat(body["status"]["renewalTime"])
    two_thirds = leaf.not_valid_before_utc + lifetime * 2 / 3
    assert abs(renewal - two_thirds) < datetime.timedelta(seconds=1), (renewal, two_thirds)
    print(f"shortlived certificate: apply to Ready in {took:.1f}s")

    create_certificate(cluster, namespace, "address", "", ipAddresses=["127.0.0.1"], issuerRef=reference)
    wait_ready(cluster, namespace, "address", timeout=60)
    leaf, lifetime = _lifetime(cluster, namespace, "address")
    assert lifetime == SHORTLIVED, lifetime
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == []


def test_without_a_profile_the_ca_chooses(cluster: Cluster, pebble: Pebble, namespace: str) -> None:
    """No profile is sent, so the lifetime is whichever of its profiles Pebble picked (at random)."""
    create(cluster, namespace, "Issuer", "default", _acme(pebble, "default-account"))
    issuer = _issuer_ready(cluster, namespace, "default")
    assert [item["name"] for item in issuer["status"]["acme"]["profiles"]] == sorted(PROFILES)
    create_certificate(cluster, namespace, "web", "default", dnsNames=["web.example.com"])
    body = wait_ready(cluster, namespace, "web", timeout=60)
    _, lifetime = _lifetime(cluster, namespace, "web")
    offered = {profile.lifetime - datetime.timedelta(seconds=1) for profile in PROFILES.values()}
    assert lifetime in offered, lifetime
    assert "instead of" not in condition(body)["message"]


def test_an_unknown_profile_is_reported_with_the_offered_ones_before_any_order(
    cluster: Cluster, pebble: Pebble, namespace: str
) -> None:
    create(cluster, namespace, "Issuer", "typo", _acme(pebble, "typo-account", profile="shortlive"))

    def refused() -> dict[str, Any] | None:
        found = condition(_issuer(cluster, namespace, "typo"))
        return found if found.get("reason") == "UnknownProfile" else None

    before = _orders_made(pebble)
    ready = eventually(refused, what="Issuer typo to say UnknownProfile")
    assert ready["status"] == "False"
    assert "'shortlive'" in ready["message"], ready
    assert "classic, shortlived, tlsserver" in ready["message"], ready

    create_certificate(cluster, namespace, "web", "typo", dnsNames=["web.example.com"])

    def waiting() -> dict[str, Any] | None:
        found = condition(certificate(cluster, namespace, "web"))
        return found if "UnknownProfile" in found.get("message", "") else None

    eventually(waiting, what="Certificate web to say its issuer's profile is unknown")
    time.sleep(3)
    assert _orders_made(pebble) == before, "no order for a profile the CA does not offer"

    account = AcmeClient(
        pebble.url,
        load_private_key(secret_data(cluster, namespace, "typo-account")["tls.key"]),
        pebble.ca_bundle,
        skip_tls_verify=False,
        timeout=30,
    )
    account.register(None, None)
    with pytest.raises(AcmeError) as invalid:
        account.new_order(["web.example.com"], "shortlive")
    assert invalid.value.reason == "InvalidProfile", invalid.value
    assert "spec.acme.profile 'shortlive' is not one the CA takes" in str(invalid.value)

    client.CustomObjectsApi(cluster.api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "issuers", "typo", {"spec": {"acme": {"profile": "shortlived"}}}
    )
    wait_ready(cluster, namespace, "web", timeout=60)
    assert _lifetime(cluster, namespace, "web")[1] == SHORTLIVED


def test_an_ip_address_only_dns01_could_prove_is_refused_before_any_order(
    cluster: Cluster, pebble: Pebble, namespace: str
) -> None:
    dns01 = {"dns01": {"rfc2136": {"nameserver": "127.0.0.1:53"}}}
    create(cluster, namespace, "Issuer", "dns", _acme(pebble, "dns-account", solvers=[dns01]))
    _issuer_ready(cluster, namespace, "dns")
    before = _orders_made(pebble)
    create_certificate(cluster, namespace, "address", "dns", ipAddresses=["127.0.0.1"])

    def refused() -> dict[str, Any] | None:
        found = condition(certificate(cluster, namespace, "address"))
        return found if found.get("reason") == "UnsupportedIdentifiers" else None

    found = eventually(refused, what="Certificate address to say UnsupportedIdentifiers")
    assert found["status"] == "False"
    assert "IP address 127.0.0.1 can only be validated with HTTP-01" in found["message"], found
    assert "add one whose selector matches it" in found["message"], found
    assert _orders_made(pebble) == before
