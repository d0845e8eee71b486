"""ACME Renewal Information (RFC 9773) against a real Pebble v2.10.3: the renewal time lies inside the
CA's window, the window and its explanation are in the status and in `certsmith status`, requests
are one per certificate per interval, and a revoked certificate (Pebble then suggests a window in
the past) is replaced within the interval by an order that names it in `replaces` — and, restored from
a backup, is replaced again by an order without it once Pebble says it was already replaced."""

from __future__ import annotations

import base64
import datetime
import json
import re
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from acme.client import ClientNetwork, ClientV2
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.jwa import ES256
from josepy.jwk import JWKEC
from kubernetes import client

from certsmith.api.status import parse_timestamp
from certsmith.pki.keys import load_private_key
from certsmith.renewal_info import cert_id
from certsmith_devtools.pebble import Pebble
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
from tests.cluster.test_acme import http01_port, metrics_port, pebble
from tests.cluster.test_cli import certsmith
from tests.conftest import Cluster, OperatorProcess, fresh_namespace

pytestmark = pytest.mark.cluster
__all__ = ["http01_port", "metrics_port", "pebble"]  # fixtures

INTERVAL = 2
"""--acme-ari-interval of the operator under test, in seconds."""


@pytest.fixture(scope="module")
def ari_operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, http01_port: int, metrics_port: int
) -> Iterator[OperatorProcess]:
    with acme_operator_process(
        cluster,
        tmp_path_factory,
        "ARI",
        "solo-ari-*",
        http01_port,
        *("--acme-ari-interval", str(INTERVAL)),
        metrics_port=metrics_port,
    ) as process:
        yield process


@pytest.fixture
def ari_namespace(cluster: Cluster, ari_operator: OperatorProcess, pebble: Pebble) -> Iterator[str]:
    with fresh_namespace(cluster, "solo-ari") as name:
        spec = {
            "server": pebble.url,
            "privateKeySecretRef": {"name": "pebble-account"},
            "caBundle": base64.b64encode(pebble.ca_bundle).decode(),
            "profile": "shortlived",
            "solvers": [{"http01": {"ingress": {}}}],
        }
        create(cluster, name, "Issuer", "pebble", {"acme": spec})
        yield name


def issue(cluster: Cluster, namespace: str, name: str) -> tuple[x509.Certificate, dict[str, Any]]:
    """A shortlived Certificate from Pebble, once Ready and its first ARI answer is in its status."""
    create_certificate(
        cluster,
        namespace,
        name,
        "pebble",
        dnsNames=[f"{name}.example.com"],
        privateKey={"algorithm": "ECDSA"},
    )
    wait_ready(cluster, namespace, name, timeout=60)
    leaf = x509.load_pem_x509_certificate(secret_data(cluster, namespace, name)["tls.crt"])
    status = eventually(
        lambda: _answered(cluster, namespace, name, cert_id(leaf)), 30, "the first ARI answer in the status"
    )
    return leaf, status


def _answered(cluster: Cluster, namespace: str, name: str, cert: str | None) -> dict[str, Any] | None:
    status = certificate(cluster, namespace, name).get("status") or {}
    shown = status.get("renewalInformation") or {}
    return status if shown.get("certID") == cert and shown.get("suggestedWindow") else None


def pebble_window(pebble: Pebble, leaf: x509.Certificate) -> dict[str, Any]:
    """What Pebble answers to an ARI request for `leaf`, asked directly."""
    tls = ssl.create_default_context(cadata=pebble.ca_bundle.decode("ascii"))
    with urllib.request.urlopen(pebble.url, context=tls, timeout=10) as response:  # noqa: S310
        base = json.loads(response.read())["renewalInfo"]
    with urllib.request.urlopen(f"{base}/{cert_id(leaf)}", context=tls, timeout=10) as response:  # noqa: S310
        window: dict[str, Any] = json.loads(response.read())["suggestedWindow"]
    return window


def ari_requests(metrics_port: int) -> tuple[float, float]:
    """(successful ARI requests, seconds spent in all ARI requests) from the operator's metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(r'certsmith_acme_requests_total\{action="renewal-info",status="ok"\} (\S+)', text)
    spent = re.search(r'certsmith_acme_request_duration_seconds_sum\{action="renewal-info"\} (\S+)', text)
    return (float(found.group(1)) if found else 0.0), (float(spent.group(1)) if spent else 0.0)


def _instant(value: str) -> datetime.datetime:
    parsed = parse_timestamp(value)
    assert parsed is not None, value
    return parsed


def test_the_renewal_time_lies_inside_pebbles_window_and_the_ca_is_asked_once_per_interval(
    cluster: Cluster, pebble: Pebble, ari_namespace: str, metrics_port: int
) -> None:
    leaf, status = issue(cluster, ari_namespace, "web")
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc < datetime.timedelta(hours=161)
    shown = status["renewalInformation"]["suggestedWindow"]
    asked = pebble_window(pebble, leaf)
    assert _instant(shown["start"]) == _instant(asked["start"])
    assert _instant(shown["end"]) == _instant(asked["end"])
    renewal = _instant(status["renewalTime"])
    assert _instant(shown["start"]) <= renewal <= _instant(shown["end"]), (renewal, shown)

    (before, spent_before), started = ari_requests(metrics_port), time.monotonic()
    time.sleep(20)
    (after, spent_after), seconds = ari_requests(metrics_port), time.monotonic() - started
    made = after - before
    print(f"ARI requests for one certificate in {seconds:.1f}s at --acme-ari-interval {INTERVAL}: {made:.0f}")
    print(f"mean ARI request to Pebble: {(spent_after - spent_before) / max(made, 1) * 1000:.1f} ms")
    assert seconds / INTERVAL - 4 <= made <= seconds / INTERVAL + 1, made

    start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)
    window = {"start": start.isoformat(), "end": (start + datetime.timedelta(hours=3)).isoformat()}
    explanation = "https://ca.example/incident/42"
    pem = secret_data(cluster, ari_namespace, "web")["tls.crt"].split(b"-----END CERTIFICATE-----")[0]
    pebble.set_renewal_info(
        pem + b"-----END CERTIFICATE-----\n",
        json.dumps({"suggestedWindow": window, "explanationURL": explanation}),
    )

    def explained() -> dict[str, Any] | None:
        found = certificate(cluster, ari_namespace, "web")["status"]
        return found if found["renewalInformation"].get("explanationURL") == explanation else None

    status = eventually(explained, 4 * INTERVAL + 10, "the CA's new window and explanation in the status")
    renewal = _instant(status["renewalTime"])
    assert start - datetime.timedelta(seconds=1) <= renewal <= start + datetime.timedelta(hours=3)
    code, output = certsmith(cluster, "status", "web", "-n", ari_namespace)
    assert code == 0, output
    assert "Renewal:   the CA's ARI window is " in output
    assert f"(explained at {explanation})" in output


def test_a_revoked_certificate_is_replaced_within_the_interval_by_an_order_naming_it(
    cluster: Cluster, pebble: Pebble, ari_namespace: str, ari_operator: OperatorProcess, tmp_path: Path
) -> None:
    leaf, _ = issue(cluster, ari_namespace, "revoked")
    replaced = cert_id(leaf)
    backup = secret_data(cluster, ari_namespace, "revoked")
    key = load_private_key(backup["tls.key"])
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    bundle = tmp_path / "pebble-ca.pem"
    bundle.write_bytes(pebble.ca_bundle)
    network = ClientNetwork(JWKEC(key=key), alg=ES256, user_agent="certsmith-tests")
    network.verify_ssl = str(bundle)  # type: ignore[assignment]  # requests takes a bundle's path too
    ClientV2(ClientV2.get_directory(pebble.url, network), network).revoke(leaf, 1)
    revoked = time.monotonic()

    def renewed() -> x509.Certificate | None:
        found = x509.load_pem_x509_certificate(secret_data(cluster, ari_namespace, "revoked")["tls.crt"])
        return found if found.serial_number != leaf.serial_number else None

    new = eventually(renewed, 60, "the revoked certificate to be replaced")
    took = time.monotonic() - revoked
    print(f"revoked certificate replaced {took:.1f}s after the revocation (--acme-ari-interval {INTERVAL})")
    assert took < INTERVAL + 30
    assert f"it replaces certificate {replaced}" in ari_operator.log()
    assert "has been marked as replaced" in pebble.log()

    def reasons() -> list[str] | None:
        found = [
            message for _, reason, message in events(cluster, ari_namespace, "revoked") if reason == "Renewed"
        ]
        return found or None

    renewal_event = eventually(reasons, 10, "the Renewed Event")[0]
    assert "reason CARequestedRenewal: CA asked for renewal (ARI window " in renewal_event
    status = eventually(
        lambda: _answered(cluster, ari_namespace, "revoked", cert_id(new)), 30, "ARI of the new certificate"
    )
    assert status["renewalInformation"]["certID"] != replaced

    restored = {name: base64.b64encode(backup[name]).decode() for name in ("tls.crt", "tls.key")}
    client.CoreV1Api(cluster.api).patch_namespaced_secret("revoked", ari_namespace, {"data": restored})

    def third() -> x509.Certificate | None:
        found = x509.load_pem_x509_certificate(secret_data(cluster, ari_namespace, "revoked")["tls.crt"])
        return found if found.serial_number not in (leaf.serial_number, new.serial_number) else None

    eventually(third, 60, "the restored backup of the revoked certificate to be replaced")
    log = ari_operator.log()
    assert f"the CA refused an order replacing certificate {replaced}" in log, "Pebble: alreadyReplaced"
    assert "alreadyReplaced" in log
    assert "ordering again without replaces" in log
