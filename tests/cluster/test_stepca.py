"""ACME issuance against a second real CA, smallstep's step-ca: HTTP-01 answered by the operator, a
renewal, a challenge step-ca fails while it leaves the authorization pending, and the CAA pre-flight
check against BIND's CAA records."""

from __future__ import annotations

import base64
import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from certsmith_devtools.bind import Bind
from certsmith_devtools.kit import condition, free_port
from certsmith_devtools.stepca import StepCA
from tests.cluster.acme_support import acme_operator_process
from tests.cluster.support import (
    certificate,
    create,
    create_certificate,
    events,
    eventually,
    openssl_verify,
    secret_data,
    wait_ready,
)
from tests.cluster.test_acme import issuer
from tests.cluster.test_cli import certsmith
from tests.conftest import Cluster, OperatorProcess, fresh_namespace

pytestmark = pytest.mark.cluster

NAMESPACES = "solo-stepca-*"
ZONE = "stepca.test"
UNREACHABLE = f"dead.{ZONE}"
"""Resolves to 127.0.0.2, where nothing answers HTTP-01 (the operator's solver listens on 127.0.0.1)."""
OTHER_CA = "other-ca.example"
"""The CA that the CAA record at forbidden.stepca.test names; the zone's apex names step-ca's domain,
which its directory gives as meta.caaIdentities."""


@pytest.fixture(scope="module")
def http01_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bind]:
    records = [
        "dead IN A 127.0.0.2",
        f'@ IN CAA 0 issue "{ZONE}"',
        f'forbidden IN CAA 0 issue "{OTHER_CA}"',
        "*.forbidden IN A 127.0.0.1",
    ]
    with Bind(tmp_path_factory.mktemp("bind"), ZONE, records=records) as server:
        yield server


@pytest.fixture(scope="module")
def step_ca(tmp_path_factory: pytest.TempPathFactory, http01_port: int, bind: Bind) -> Iterator[StepCA]:
    with StepCA(
        tmp_path_factory.mktemp("step-ca"), http01_port, bind.address, caa_identities=[ZONE]
    ) as server:
        yield server


@pytest.fixture(scope="module")
def stepca_operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, http01_port: int, bind: Bind
) -> Iterator[OperatorProcess]:
    with acme_operator_process(
        cluster,
        tmp_path_factory,
        "step-ca",
        NAMESPACES,
        http01_port,
        *("--acme-solver-service", "certsmith/certsmith-acme-solver"),
        *("--dns01-recursive-nameserver", bind.address),
        metrics_port=free_port(),
    ) as process:
        yield process


@pytest.fixture
def namespace(cluster: Cluster, stepca_operator: OperatorProcess, step_ca: StepCA) -> Iterator[str]:
    with fresh_namespace(cluster, "solo-stepca") as name:
        _acme_issuer(cluster, name, step_ca, "step-ca")
        yield name


def _acme_issuer(cluster: Cluster, namespace: str, step_ca: StepCA, name: str, **acme: Any) -> None:
    spec = {
        "server": step_ca.url,
        "email": "ops@example.com",
        "privateKeySecretRef": {"name": f"{name}-account"},
        "caBundle": base64.b64encode(step_ca.ca_bundle).decode(),
        "solvers": [{"http01": {"ingress": {}}}],
        **acme,
    }
    create(cluster, namespace, "Issuer", name, {"acme": spec})


def _leaf(cluster: Cluster, namespace: str, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(secret_data(cluster, namespace, name)["tls.crt"])


def test_a_certificate_issues_and_renews_against_step_ca(
    cluster: Cluster, step_ca: StepCA, namespace: str, tmp_path: Path
) -> None:
    eventually(
        lambda: condition(issuer(cluster, namespace, "step-ca")).get("status") == "True",
        what="the step-ca Issuer's account to be registered",
    )
    started = time.monotonic()
    create_certificate(cluster, namespace, "web", "step-ca", dnsNames=[f"web.{ZONE}", f"www.{ZONE}"])
    body = wait_ready(cluster, namespace, "web", timeout=60)
    print(f"step-ca: apply to Ready in {time.monotonic() - started:.1f}s")
    leaf = _leaf(cluster, namespace, "web")
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(names.get_values_for_type(x509.DNSName)) == [f"web.{ZONE}", f"www.{ZONE}"]
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert datetime.timedelta(hours=23) < lifetime <= datetime.timedelta(hours=25), "step-ca's default: 24 h"
    message = condition(body)["message"]
    assert "instead of" not in message, f"step-ca's 24 hours are the lifetime it sets, not a cut: {message}"
    (tmp_path / "chain.pem").write_bytes(secret_data(cluster, namespace, "web")["tls.crt"])
    (tmp_path / "root.pem").write_bytes(step_ca.ca_bundle)
    openssl_verify(tmp_path / "root.pem", tmp_path / "chain.pem", "-untrusted", str(tmp_path / "chain.pem"))

    revision = int(body["status"]["revision"])
    code, output = certsmith(cluster, "renew", "web", "-n", namespace, "--wait", "60")
    assert code == 0, output
    assert f"certificate {namespace}/web: renewed (revision {revision + 1}" in output
    renewed = _leaf(cluster, namespace, "web")
    assert renewed.serial_number != leaf.serial_number
    assert wait_ready(cluster, namespace, "web")["status"]["revision"] == revision + 1


def test_a_challenge_step_ca_fails_is_in_the_status_within_a_minute(cluster: Cluster, namespace: str) -> None:
    """step-ca cannot reach a solver for this name: it puts a connection error on the challenge and
    leaves the challenge and its authorization pending. The attempt fails at once with its words."""
    started = time.monotonic()
    create_certificate(cluster, namespace, "lost", "step-ca", dnsNames=[UNREACHABLE])

    def failed() -> dict[str, str] | None:
        found = condition(certificate(cluster, namespace, "lost"))
        return found if found.get("reason") == "ChallengeFailed" else None

    ready = eventually(failed, timeout=60, what="the failed challenge in the Certificate's Ready condition")
    print(f"step-ca: challenge failure shown {time.monotonic() - started:.1f}s after apply")
    assert ready["status"] == "False"
    message = ready["message"]
    assert f"http-01 challenge for {UNREACHABLE} failed" in message, message
    assert "could not connect to validation target" in message, message
    assert "(connection)" in message, message
    reasons = eventually(
        lambda: [r for _, r, m in events(cluster, namespace, "lost") if r == "ChallengeFailed"] or None,
        timeout=10,
        what="a ChallengeFailed Event",
    )
    assert reasons


def test_caa_records_naming_another_ca_are_reported_before_any_order(
    cluster: Cluster, step_ca: StepCA, namespace: str, stepca_operator: OperatorProcess
) -> None:
    """www.forbidden.stepca.test has no CAA records of its own: its parent's name OTHER_CA, not the
    domain step-ca's directory gives. An Issuer whose caaIdentities name OTHER_CA may order."""
    name = f"www.forbidden.{ZONE}"
    create_certificate(cluster, namespace, "refused", "step-ca", dnsNames=[name])

    def refused() -> dict[str, str] | None:
        found = condition(certificate(cluster, namespace, "refused"))
        return found if found.get("reason") == "CAAForbidden" else None

    ready = eventually(refused, what="the CAA refusal in the Certificate's Ready condition")
    assert ready["status"] == "False"
    assert f'forbidden.{ZONE}. CAA 0 issue "{OTHER_CA}"' in ready["message"], ready
    assert f"do not name the CA ({ZONE})" in ready["message"], ready
    assert f"certificate {namespace}/refused: new ACME order" not in stepca_operator.log()

    _acme_issuer(cluster, namespace, step_ca, "named", caaIdentities=[OTHER_CA])
    create_certificate(cluster, namespace, "allowed", "named", dnsNames=[name])
    wait_ready(cluster, namespace, "allowed", timeout=60)
