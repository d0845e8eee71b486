"""Data safety against the real API server: Secrets certsmith did not make, CA Secrets it does not
manage, a CA about to end, weak or wrong CAs."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client

from certsmith.api import GROUP, VERSION
from certsmith_devtools.kit import condition
from tests.cluster.support import (
    certificate,
    create,
    create_certificate,
    create_secret,
    event_objects,
    eventually,
    key_pair,
    openssl_verify,
    patch_spec,
    secret,
    secret_data,
    wait_ready,
)
from tests.conftest import Cluster, OperatorProcess


def _issuer_condition(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    body = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "issuers", name
    )
    assert isinstance(body, dict)
    return condition(body)


def _reason_becomes(
    cluster: Cluster, namespace: str, name: str, reason: str, timeout: float = 15
) -> dict[str, str]:
    return eventually(
        lambda: (
            found
            if (found := condition(certificate(cluster, namespace, name))).get("reason") == reason
            else None
        ),
        timeout,
        f"Certificate {name} to say {reason}",
    )


def _issuer_reason_becomes(cluster: Cluster, namespace: str, name: str, reason: str) -> dict[str, str]:
    return eventually(
        lambda: (
            found if (found := _issuer_condition(cluster, namespace, name)).get("reason") == reason else None
        ),
        15,
        f"Issuer {name} to say {reason}",
    )


def test_a_ca_key_pair_is_never_overwritten_by_a_certificate_naming_its_secret(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    before = create_secret(
        cluster, namespace, "goodca", key_pair("good CA", True, datetime.timedelta(days=30))
    )
    create(cluster, namespace, "Issuer", "good", {"ca": {"secretName": "goodca"}})
    create_certificate(cluster, namespace, "typo", "good", secretName="goodca", dnsNames=["typo.example.com"])
    ready = _reason_becomes(cluster, namespace, "typo", "SecretNotOwned")
    assert ready["status"] == "False"
    assert "kubectl annotate secret goodca certsmith.dev/certificate-name=typo" in ready["message"]
    time.sleep(2)
    after = secret(cluster, namespace, "goodca")
    assert after is not None
    assert after.metadata is not None
    assert before.metadata is not None
    assert after.metadata.resource_version == before.metadata.resource_version, "the CA Secret was written"
    assert _issuer_condition(cluster, namespace, "good")["status"] == "True"
    eventually(
        lambda: "SecretNotOwned" in [event.reason for event in event_objects(cluster, namespace, "typo")],
        10,
        "the SecretNotOwned Event",
    )


def test_a_certificate_on_a_generic_secret_is_refused_with_a_status_and_an_event(
    cluster: Cluster, namespace: str, ca_issuer: str
) -> None:
    create_secret(cluster, namespace, "app-config", {"a": b"1"}, kind="Opaque")
    create_certificate(
        cluster, namespace, "on-config", ca_issuer, secretName="app-config", dnsNames=["c.example.com"]
    )
    _reason_becomes(cluster, namespace, "on-config", "SecretNotOwned")
    assert secret_data(cluster, namespace, "app-config") == {"a": b"1"}
    eventually(
        lambda: (
            "SecretNotOwned" in [event.reason for event in event_objects(cluster, namespace, "on-config")]
        ),
        10,
        "the SecretNotOwned Event",
    )


def test_a_handed_over_secret_keeps_the_users_data_keys(
    cluster: Cluster, namespace: str, ca_issuer: str
) -> None:
    create_secret(
        cluster,
        namespace,
        "imported",
        {"tls.crt": b"", "tls.key": b"", "app.conf": b"x=1"},
        labels={"certsmith.dev/managed": "true"},
        annotations={"certsmith.dev/certificate-name": "adopted"},
    )
    create_certificate(
        cluster, namespace, "adopted", ca_issuer, secretName="imported", dnsNames=["a.example.com"]
    )
    wait_ready(cluster, namespace, "adopted")
    assert secret_data(cluster, namespace, "imported")["app.conf"] == b"x=1"
    patch_spec(cluster, namespace, "adopted", {"dnsNames": ["b.example.com"]})
    eventually(
        lambda: certificate(cluster, namespace, "adopted")["status"].get("revision") == 2, 15, "re-issue"
    )
    assert secret_data(cluster, namespace, "imported")["app.conf"] == b"x=1"


def test_an_issuer_follows_a_ca_secret_it_does_not_manage(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    create(cluster, namespace, "Issuer", "late", {"ca": {"secretName": "late-ca"}})
    _issuer_reason_becomes(cluster, namespace, "late", "SecretNotFound")
    create_certificate(cluster, namespace, "waits", "late", dnsNames=["w.example.com"])
    _reason_becomes(cluster, namespace, "waits", "IssuerNotReady")
    create_secret(cluster, namespace, "late-ca", key_pair("late CA", True, datetime.timedelta(days=30)))
    _issuer_reason_becomes(cluster, namespace, "late", "KeyPairVerified")
    wait_ready(cluster, namespace, "waits", timeout=15)
    client.CoreV1Api(cluster.api).delete_namespaced_secret("late-ca", namespace)
    _issuer_reason_becomes(cluster, namespace, "late", "SecretNotFound")


def test_a_ca_issuer_on_a_leaf_certificate_says_not_a_ca_end_to_end(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    create_secret(cluster, namespace, "leaf", key_pair("just a leaf", False, datetime.timedelta(days=30)))
    create(cluster, namespace, "Issuer", "leafy", {"ca": {"secretName": "leaf"}})
    assert "not a CA certificate" in _issuer_reason_becomes(cluster, namespace, "leafy", "NotACA")["message"]
    create_certificate(cluster, namespace, "under-leaf", "leafy", dnsNames=["l.example.com"])
    assert "NotACA" not in _reason_becomes(cluster, namespace, "under-leaf", "IssuerNotReady")["reason"]


def test_a_weak_ca_is_ready_but_says_why_clients_may_refuse_it(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 -- on purpose
    create_secret(cluster, namespace, "weak-ca", key_pair("weak CA", True, datetime.timedelta(days=30), weak))
    create(cluster, namespace, "Issuer", "weak", {"ca": {"secretName": "weak-ca"}})
    ready = _issuer_reason_becomes(cluster, namespace, "weak", "KeyPairVerified")
    assert "RSA 1024 bits" in ready["message"]
    events = client.CoreV1Api(cluster.api).list_namespaced_event(
        namespace, field_selector="involvedObject.name=weak,involvedObject.kind=Issuer"
    )
    assert "WeakKeyPair" in [event.reason for event in events.items]


def test_self_signed_with_only_dns_names_verifies_with_openssl(
    cluster: Cluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    create(cluster, namespace, "Issuer", "selfsigned", {"selfSigned": {}})
    create_certificate(cluster, namespace, "names-only", "selfsigned", dnsNames=["only.example.com"])
    wait_ready(cluster, namespace, "names-only")
    data = secret_data(cluster, namespace, "names-only")
    (tmp_path / "tls.crt").write_bytes(data["tls.crt"])
    (tmp_path / "ca.crt").write_bytes(data["ca.crt"])
    openssl_verify(tmp_path / "ca.crt", tmp_path / "tls.crt")


def test_a_secret_in_use_is_taken_over_when_its_certificate_is_deleted(
    cluster: Cluster, namespace: str, ca_issuer: str
) -> None:
    create_certificate(
        cluster, namespace, "twin1", ca_issuer, secretName="shared-tls", dnsNames=["t.example.com"]
    )
    wait_ready(cluster, namespace, "twin1")
    create_certificate(
        cluster, namespace, "twin2", ca_issuer, secretName="shared-tls", dnsNames=["t.example.com"]
    )
    assert (
        "delete Certificate twin1" in _reason_becomes(cluster, namespace, "twin2", "SecretInUse")["message"]
    )
    client.CustomObjectsApi(cluster.api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "certificates", "twin1"
    )
    wait_ready(cluster, namespace, "twin2", timeout=20)
    stored = secret(cluster, namespace, "shared-tls")
    assert stored is not None
    assert stored.metadata is not None
    assert (stored.metadata.annotations or {})["certsmith.dev/certificate-name"] == "twin2"


def test_a_ca_ending_in_minutes_gives_one_shortened_certificate(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    create_secret(cluster, namespace, "brief-ca", key_pair("brief CA", True, datetime.timedelta(minutes=2)))
    create(cluster, namespace, "Issuer", "brief", {"ca": {"secretName": "brief-ca"}})
    create_certificate(cluster, namespace, "brief-leaf", "brief", dnsNames=["b.example.com"])
    body = wait_ready(cluster, namespace, "brief-leaf")
    time.sleep(6)  # the old code re-issued this certificate dozens of times a second from here on
    body = certificate(cluster, namespace, "brief-leaf")
    assert body["status"]["revision"] == 1
    assert "renewalTime" not in body["status"]
    assert "renew that CA" in condition(body)["message"]
    eventually(
        lambda: "Shortened" in [event.reason for event in event_objects(cluster, namespace, "brief-leaf")],
        10,
        "the Shortened Event",
    )


def test_the_issuance_bound_stops_repeated_renewals(
    cluster: Cluster, solo_namespace: str, tmp_path: Path
) -> None:
    solo = OperatorProcess(
        cluster.kubeconfig,
        tmp_path / "solo.log",
        "--namespace",
        solo_namespace,
        "--max-issuances-per-hour",
        "2",
    )
    solo.start()
    try:
        create(cluster, solo_namespace, "Issuer", "selfsigned", {"selfSigned": {}})
        create_certificate(cluster, solo_namespace, "busy", "selfsigned", dnsNames=["busy.example.com"])
        wait_ready(cluster, solo_namespace, "busy")
        objects = client.CustomObjectsApi(cluster.api)
        for attempt in range(3):
            objects.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                solo_namespace,
                "certificates",
                "busy",
                {
                    "metadata": {
                        "annotations": {"certsmith.dev/renew-requested-at": f"2026-11-28T00:00:0{attempt}Z"}
                    }
                },
            )
            time.sleep(1)
        issuing = eventually(
            lambda: (
                found
                if (found := condition(certificate(cluster, solo_namespace, "busy"), "Issuing"))
                else None
            ),
            15,
            "the issuance bound",
        )
        assert issuing["reason"] == "IssuanceLimitReached"
        body = certificate(cluster, solo_namespace, "busy")
        assert body["status"]["revision"] == 2
        assert condition(body)["status"] == "True", "the certificate in place stays Ready"
    finally:
        solo.stop()
