"""What happens after issuance: renewal, every re-issue reason, repair, back-off, conflicts, restarts."""

from __future__ import annotations

import base64
import datetime
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from kubernetes import client

from certsmith.api import GROUP, VERSION
from certsmith.pki.inspection import describe, load_certificates
from certsmith.pki.keys import KeyAlgorithm, KeyEncoding, KeySpec, encode_private_key, generate_private_key
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import self_sign
from certsmith_devtools.kit import condition, free_port
from tests.cluster.support import (
    certificate,
    create,
    create_certificate,
    event_objects,
    events,
    eventually,
    patch_spec,
    secret,
    secret_data,
    wait_ready,
)
from tests.conftest import Cluster, OperatorProcess


def _serial(cluster: Cluster, namespace: str, name: str) -> int:
    return describe(load_certificates(secret_data(cluster, namespace, name)["tls.crt"])[0]).serial_number


def _revision(cluster: Cluster, namespace: str, name: str) -> int:
    return int(certificate(cluster, namespace, name)["status"].get("revision", 0))


def _reasons(cluster: Cluster, namespace: str, name: str) -> list[str]:
    return [reason for _, reason, _ in events(cluster, namespace, name)]


def _patch_secret_data(cluster: Cluster, namespace: str, name: str, data: dict[str, bytes]) -> None:
    encoded = {key: base64.b64encode(value).decode() for key, value in data.items()}
    client.CoreV1Api(cluster.api).patch_namespaced_secret(name, namespace, {"data": encoded})


@pytest.mark.parametrize("rotation", ["Always", "Never"])
def test_short_renew_before_renews_within_seconds(
    cluster: Cluster, namespace: str, ca_issuer: str, rotation: str
) -> None:
    create(
        cluster,
        namespace,
        "Certificate",
        "short",
        {
            "secretName": "short",
            "dnsNames": ["short.example.com"],
            "duration": "1h",
            "renewBefore": "59m55s",
            "privateKey": {"algorithm": "ECDSA", "rotationPolicy": rotation},
            "issuerRef": {"name": ca_issuer},
        },
    )
    wait_ready(cluster, namespace, "short")
    first = secret_data(cluster, namespace, "short")
    eventually(lambda: _revision(cluster, namespace, "short") >= 2, 20, "a renewal")
    renewed = secret_data(cluster, namespace, "short")
    assert renewed["tls.crt"] != first["tls.crt"]
    assert (renewed["tls.key"] == first["tls.key"]) is (rotation == "Never")
    eventually(lambda: "Renewed" in _reasons(cluster, namespace, "short"), 10, "the Renewed Event")
    status = certificate(cluster, namespace, "short")["status"]
    assert status["renewalTime"] < status["notAfter"]


def test_each_reissue_reason_is_detected_and_repaired(
    cluster: Cluster, namespace: str, ca_issuer: str
) -> None:
    spec = {
        "secretName": "target",
        "dnsNames": ["a.example.com"],
        "privateKey": {"algorithm": "ECDSA"},
        "issuerRef": {"name": ca_issuer},
    }
    create(cluster, namespace, "Certificate", "target", spec)
    wait_ready(cluster, namespace, "target")

    def reissued_because(reason: str, previous_revision: int) -> None:
        eventually(
            lambda: (
                _revision(cluster, namespace, "target") > previous_revision
                and condition(certificate(cluster, namespace, "target")).get("status") == "True"
            ),
            20,
            f"re-issue for {reason}",
        )
        eventually(
            lambda: any(
                f"reason {reason}:" in message for _, _, message in events(cluster, namespace, "target")
            ),
            10,
            f"the Event for {reason}",
        )
        data = secret_data(cluster, namespace, "target")
        assert describe(load_certificates(data["tls.crt"])[0]).dns_names

    core = client.CoreV1Api(cluster.api)
    revision = _revision(cluster, namespace, "target")
    core.delete_namespaced_secret("target", namespace)
    reissued_because("SecretMissing", revision)

    revision = _revision(cluster, namespace, "target")
    _patch_secret_data(cluster, namespace, "target", {"tls.crt": b"-----BEGIN CERTIFICATE-----\ngarbage\n"})
    reissued_because("InvalidCertificate", revision)

    revision = _revision(cluster, namespace, "target")
    foreign = encode_private_key(generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256)), KeyEncoding.PKCS1)
    _patch_secret_data(cluster, namespace, "target", {"tls.key": foreign})
    reissued_because("KeyMismatch", revision)

    revision = _revision(cluster, namespace, "target")
    patch_spec(cluster, namespace, "target", {"dnsNames": ["a.example.com", "b.example.com"]})
    reissued_because("SpecChanged", revision)
    data = secret_data(cluster, namespace, "target")
    assert describe(load_certificates(data["tls.crt"])[0]).dns_names == {"a.example.com", "b.example.com"}

    revision = _revision(cluster, namespace, "target")
    patch_spec(cluster, namespace, "target", {"privateKey": {"algorithm": "RSA", "size": 2048}})
    reissued_because("KeyChanged", revision)

    revision = _revision(cluster, namespace, "target")
    patch_spec(cluster, namespace, "target", {"issuerRef": {"name": "selfsigned"}, "commonName": "target"})
    reissued_because("SpecChanged", revision)
    revision = _revision(cluster, namespace, "target")
    patch_spec(cluster, namespace, "target", {"issuerRef": {"name": ca_issuer}})
    reissued_because("IssuerChanged", revision)

    revision = _revision(cluster, namespace, "target")
    client.CustomObjectsApi(cluster.api).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "certificates",
        "target",
        {"metadata": {"annotations": {"certsmith.dev/renew-requested-at": "2026-11-27T00:00:00Z"}}},
    )
    reissued_because("ManualRenewal", revision)


def test_metadata_drift_is_repaired_without_a_new_certificate(
    cluster: Cluster, namespace: str, ca_issuer: str
) -> None:
    create(
        cluster,
        namespace,
        "Certificate",
        "drift",
        {
            "secretName": "drift",
            "dnsNames": ["drift.example.com"],
            "privateKey": {"algorithm": "ECDSA"},
            "secretTemplate": {"labels": {"team": "web"}},
            "issuerRef": {"name": ca_issuer},
        },
    )
    wait_ready(cluster, namespace, "drift")
    serial = _serial(cluster, namespace, "drift")
    client.CoreV1Api(cluster.api).patch_namespaced_secret(
        "drift",
        namespace,
        {
            "metadata": {
                "labels": {"team": None},
                "annotations": {"certsmith.dev/alt-names": "tampered"},
            }
        },
    )

    def repaired() -> bool:
        found = secret(cluster, namespace, "drift")
        metadata = found.metadata if found else None
        return bool(
            metadata
            and (metadata.labels or {}).get("team") == "web"
            and (metadata.annotations or {}).get("certsmith.dev/alt-names") == "drift.example.com"
        )

    eventually(repaired, 20, "the Secret's metadata to be repaired")
    assert _serial(cluster, namespace, "drift") == serial
    assert _revision(cluster, namespace, "drift") == 1
    eventually(lambda: "Repaired" in _reasons(cluster, namespace, "drift"), 10, "the Repaired Event")


def test_missing_issuer_backs_off_then_issues_once_it_appears(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    create(
        cluster,
        namespace,
        "Certificate",
        "waiting",
        {
            "secretName": "waiting",
            "commonName": "waiting",
            "privateKey": {"algorithm": "ECDSA"},
            "issuerRef": {"name": "later"},
        },
    )
    eventually(
        lambda: condition(certificate(cluster, namespace, "waiting")).get("reason") == "IssuerNotFound",
        10,
        "IssuerNotFound",
    )
    time.sleep(15)
    attempts = int(certificate(cluster, namespace, "waiting")["status"]["failedIssuanceAttempts"])
    # back-off 1s doubling, capped at 8s (OPERATOR_ARGUMENTS): attempts at 0, 1, 3, 7, 15 s
    assert 3 <= attempts <= 5, attempts

    def counted() -> list[client.CoreV1Event] | None:
        """The Warning Events, once they count every attempt so far (the recorder posts them after)."""
        found = [event for event in event_objects(cluster, namespace, "waiting") if event.type == "Warning"]
        return found if found and (found[0].count or 0) >= attempts else None

    warnings = eventually(counted, 10, "the Warning Event to count every attempt")
    attempts_after = int(certificate(cluster, namespace, "waiting")["status"]["failedIssuanceAttempts"])
    assert [event.reason for event in warnings] == ["IssuerNotFound"], "repeats update one Event object"
    assert attempts <= (warnings[0].count or 0) <= attempts_after, "counted once per failed attempt"
    create(cluster, namespace, "Issuer", "later", {"selfSigned": {}})
    body = wait_ready(cluster, namespace, "waiting", timeout=10)
    assert body["status"]["failedIssuanceAttempts"] == 0
    assert "Issuing" not in {c["type"] for c in body["status"]["conditions"]}


def test_second_certificate_for_one_secret_is_refused_without_flip_flop(
    cluster: Cluster, namespace: str, ca_issuer: str
) -> None:
    create_certificate(
        cluster, namespace, "first", ca_issuer, dnsNames=["first.example.com"], secretName="shared"
    )
    wait_ready(cluster, namespace, "first")
    create_certificate(
        cluster, namespace, "second", ca_issuer, dnsNames=["second.example.com"], secretName="shared"
    )
    ready = eventually(lambda: condition(certificate(cluster, namespace, "second")) or None, 10, "a status")
    assert ready["status"] == "False"
    assert ready["reason"] == "SecretInUse"
    assert "belongs to Certificate first" in ready["message"]
    serial = _serial(cluster, namespace, "shared")
    time.sleep(3)
    assert _serial(cluster, namespace, "shared") == serial
    assert _revision(cluster, namespace, "first") == 1


def test_deleting_a_certificate_keeps_its_secret(cluster: Cluster, namespace: str, ca_issuer: str) -> None:
    create_certificate(
        cluster, namespace, "gone", ca_issuer, dnsNames=["kept.example.com"], secretName="kept"
    )
    wait_ready(cluster, namespace, "gone")
    client.CustomObjectsApi(cluster.api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "certificates", "gone"
    )
    time.sleep(3)
    assert secret(cluster, namespace, "kept") is not None


def test_owner_references_opt_in_lets_the_secret_be_collected(
    cluster: Cluster, solo_namespace: str, tmp_path: Path
) -> None:
    solo = OperatorProcess(
        cluster.kubeconfig, tmp_path / "solo.log", "--namespace", solo_namespace, "--secret-owner-references"
    )
    solo.start()
    try:
        create(cluster, solo_namespace, "Issuer", "selfsigned", {"selfSigned": {}})
        create(
            cluster,
            solo_namespace,
            "Certificate",
            "owned",
            {
                "secretName": "owned",
                "commonName": "owned",
                "privateKey": {"algorithm": "ECDSA"},
                "issuerRef": {"name": "selfsigned"},
            },
        )
        wait_ready(cluster, solo_namespace, "owned")
        client.CustomObjectsApi(cluster.api).delete_namespaced_custom_object(
            GROUP, VERSION, solo_namespace, "certificates", "owned"
        )
        eventually(lambda: secret(cluster, solo_namespace, "owned") is None, 30, "garbage collection")
    finally:
        solo.stop()


def test_sigkill_while_issuing_fifty_and_restart(
    cluster: Cluster, solo_namespace: str, tmp_path: Path
) -> None:
    solo = OperatorProcess(cluster.kubeconfig, tmp_path / "solo.log", "--namespace", solo_namespace)
    solo.start()
    try:
        create(cluster, solo_namespace, "Issuer", "selfsigned", {"selfSigned": {}})
        names = [f"c{index:02d}" for index in range(50)]
        for name in names:
            create(
                cluster,
                solo_namespace,
                "Certificate",
                name,
                {
                    "secretName": name,
                    "commonName": name,
                    "privateKey": {"algorithm": "RSA", "size": 2048},
                    "issuerRef": {"name": "selfsigned"},
                },
            )
        core = client.CoreV1Api(cluster.api)
        eventually(
            lambda: len(core.list_namespaced_secret(solo_namespace).items) >= 5, 30, "issuing to start"
        )
        solo.kill()
        issued_before = len(core.list_namespaced_secret(solo_namespace).items)
        assert issued_before < len(names), "killed too late to interrupt anything"
        solo.start()
        for name in names:
            wait_ready(cluster, solo_namespace, name, timeout=60)
    finally:
        solo.stop()
    for name in names:
        stored = secret(cluster, solo_namespace, name)
        assert stored is not None
        assert stored.metadata is not None
        assert (stored.metadata.annotations or {})["certsmith.dev/revision"] == "1", name
        assert _revision(cluster, solo_namespace, name) == 1
        issued = [event for event in event_objects(cluster, solo_namespace, name) if event.reason == "Issued"]
        assert sum(event.count or 1 for event in issued) <= 1, name


def test_restart_with_valid_certificates_writes_nothing(
    cluster: Cluster, solo_namespace: str, tmp_path: Path
) -> None:
    solo = OperatorProcess(cluster.kubeconfig, tmp_path / "solo.log", "--namespace", solo_namespace)
    solo.start()
    objects = client.CustomObjectsApi(cluster.api)
    core = client.CoreV1Api(cluster.api)
    try:
        create(cluster, solo_namespace, "Issuer", "selfsigned", {"selfSigned": {}})
        for index in range(10):
            create(
                cluster,
                solo_namespace,
                "Certificate",
                f"r{index}",
                {
                    "secretName": f"r{index}",
                    "commonName": f"r{index}",
                    "privateKey": {"algorithm": "ECDSA"},
                    "issuerRef": {"name": "selfsigned"},
                },
            )
        for index in range(10):
            wait_ready(cluster, solo_namespace, f"r{index}")
        time.sleep(1)
        solo.stop()

        def versions() -> dict[str, str]:
            certificates = objects.list_namespaced_custom_object(
                GROUP, VERSION, solo_namespace, "certificates"
            )
            assert isinstance(certificates, dict)
            secrets = core.list_namespaced_secret(solo_namespace).items
            found = {
                f"certificate/{c['metadata']['name']}": c["metadata"]["resourceVersion"]
                for c in certificates["items"]
            }
            found |= {f"secret/{s.metadata.name}": s.metadata.resource_version for s in secrets if s.metadata}
            return found

        before = versions()
        solo.start()
        caught_up = "caught up: 10 certificates reconciled"
        eventually(lambda: solo.log().count(caught_up) == 2, 60, "the restarted operator to catch up")
        time.sleep(1)
    finally:
        solo.stop()
    assert versions() == before
    assert "Issued" not in solo.log().split("Initial authentication has finished.")[-1]


def test_a_writer_fighting_over_the_secret_gets_bounded_rewrites(
    cluster: Cluster, namespace: str, ca_issuer: str
) -> None:
    create_certificate(cluster, namespace, "fought", ca_issuer, dnsNames=["fought.example.com"])
    wait_ready(cluster, namespace, "fought")
    corrupt = {"tls.crt": b"-----BEGIN CERTIFICATE-----\nfight\n-----END CERTIFICATE-----\n"}
    for _ in range(8):
        revision = _revision(cluster, namespace, "fought")
        _patch_secret_data(cluster, namespace, "fought", corrupt)
        try:
            eventually(lambda: _revision(cluster, namespace, "fought") > revision, 3, "a re-issue")  # noqa: B023
        except AssertionError:
            break
    time.sleep(2)
    # the first issuance spends one of the 5 rewrites per 10 minutes, so 4 repairs of the fight follow
    assert _revision(cluster, namespace, "fought") == 5
    issuing = condition(certificate(cluster, namespace, "fought"), "Issuing")
    assert issuing["reason"] == "SecretKeepsChanging"
    assert "managedFields" in issuing["message"]


def test_health_endpoint_answers(cluster: Cluster, solo_namespace: str, tmp_path: Path) -> None:
    port = free_port()
    solo = OperatorProcess(
        cluster.kubeconfig, tmp_path / "solo.log", "--namespace", solo_namespace, "--health-port", str(port)
    )
    solo.start()
    try:

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        eventually(healthy, 30, "/healthz to answer 200")
    finally:
        solo.stop()


def test_ca_issuer_is_no_longer_ready_once_its_ca_expires(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    now = datetime.datetime.now(datetime.UTC)
    request = CertificateTemplate(
        common_name="short-lived CA",
        is_ca=True,
        usages=frozenset({"cert sign", "crl sign", "digital signature"}),
        duration=datetime.timedelta(seconds=6),
    )
    ca = self_sign(request, key, now).certificate
    client.CoreV1Api(cluster.api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="short-ca"),
            type="kubernetes.io/tls",
            data={
                "tls.crt": base64.b64encode(ca.public_bytes(Encoding.PEM)).decode(),
                "tls.key": base64.b64encode(encode_private_key(key, KeyEncoding.PKCS8)).decode(),
            },
        ),
    )
    create(cluster, namespace, "Issuer", "short", {"ca": {"secretName": "short-ca"}})

    def issuer_ready() -> dict[str, Any]:
        body = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "issuers", "short"
        )
        assert isinstance(body, dict)
        return condition(body)

    assert eventually(lambda: issuer_ready().get("status") == "True", 5, "the CA issuer to be Ready")
    expired = eventually(
        lambda: issuer_ready() if issuer_ready().get("reason") == "Expired" else None,
        15,
        "the CA issuer to report its CA expired",
    )
    assert expired["status"] == "False"
    assert "expired" in expired["message"]
