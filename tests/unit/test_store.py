"""The store keeps Certificates and their Secrets compactly (a replica holds every Certificate of its
shards, and its Secret)."""

from __future__ import annotations

import base64

from certsmith.kube.secrets import ObservedSecret, observed_secret
from certsmith.reconcile.store import CompactObjects, CompactSecrets, Store
from certsmith.tls_secret import SecretContents


def _certificate(name: str, token: str = "", issuer: str = "ca", owner: str = "") -> dict[str, object]:
    metadata: dict[str, object] = {"name": name, "namespace": "apps"}
    if owner:
        metadata["ownerReferences"] = [{"kind": "Ingress", "name": "site", "uid": owner}]
    order = {
        "authorizations": [
            {"challenge": {"type": "http-01", "token": token}, "presented": True, "state": "pending"}
        ]
    }
    return {
        "metadata": metadata,
        "spec": {"secretName": f"{name}-tls", "issuerRef": {"name": issuer}},
        "status": {"acme": {"order": order}} if token else {},
    }


def test_a_read_is_a_copy_that_cannot_change_what_is_kept() -> None:
    objects = CompactObjects()
    objects[("apps", "web")] = _certificate("web")
    read = objects[("apps", "web")]
    read["spec"]["secretName"] = "changed"
    assert objects[("apps", "web")] == _certificate("web")
    assert ("apps", "web") in objects
    assert len(objects) == 1
    del objects[("apps", "web")]
    assert objects.get(("apps", "web")) is None
    assert not objects


def test_objects_are_found_by_their_issuer_owner_and_presented_token_as_they_are_now() -> None:
    objects = CompactObjects()
    objects[("apps", "web")] = _certificate("web", token="tok-123", owner="uid-1")
    objects[("apps", "api")] = _certificate("api", issuer="acme")
    assert [key for key, _ in objects.snapshot()] == [("apps", "web"), ("apps", "api")]
    web = _certificate("web", token="tok-123", owner="uid-1")
    assert objects.referring("tok-123") == [(("apps", "web"), web)]
    assert [key for key, _ in objects.referring("uid-1")] == [("apps", "web")]
    assert [key for key, _ in objects.referring("ca")] == [("apps", "web")]
    assert [key for key, _ in objects.referring("acme")] == [("apps", "api")]
    assert objects.referring("web-tls") == []  # found by what it is looked up by only
    objects[("apps", "web")] = _certificate("web", issuer="acme")  # the challenge is over, the issuer changed
    assert objects.referring("tok-123") == []
    assert objects.referring("uid-1") == []
    assert objects.referring("ca") == []
    assert sorted(key for key, _ in objects.referring("acme")) == [("apps", "api"), ("apps", "web")]
    del objects[("apps", "api")]
    assert [key for key, _ in objects.referring("acme")] == [("apps", "web")]
    assert objects._referring.keys() == {"acme"}


def test_a_certificate_is_kept_in_about_a_third_of_its_json() -> None:
    body = {
        "apiVersion": "certsmith.dev/v1alpha1",
        "kind": "Certificate",
        "metadata": {
            "creationTimestamp": "2026-12-07T18:24:02Z",
            "generation": 1,
            "name": "cert-00010",
            "namespace": "shards-ab7953",
            "resourceVersion": "283",
            "uid": "5ce8c136-a780-4087-a061-d89736e2eed3",
        },
        "spec": {
            "dnsNames": ["host-10.example.com"],
            "duration": "2160h",
            "issuerRef": {"kind": "Issuer", "name": "ca"},
            "privateKey": {"algorithm": "ECDSA", "encoding": "PKCS1", "size": 256},
            "secretName": "cert-00010",
        },
        "status": {
            "conditions": [
                {
                    "lastTransitionTime": "2026-12-07T18:24:02Z",
                    "message": "certificate is up to date and valid until 2027-03-07T18:24:02+00:00",
                    "observedGeneration": 1,
                    "reason": "Ready",
                    "status": "True",
                    "type": "Ready",
                }
            ],
            "failedIssuanceAttempts": 0,
            "notAfter": "2027-03-07T18:24:02Z",
            "notBefore": "2026-12-07T18:19:02Z",
            "observedGeneration": 1,
            "renewalTime": "2027-02-05T18:22:22Z",
            "revision": 1,
        },
    }
    objects = CompactObjects()
    objects[("shards-ab7953", "cert-00010")] = body
    assert objects[("shards-ab7953", "cert-00010")] == body
    assert len(objects._encoded[("shards-ab7953", "cert-00010")]) < 862 * 0.4  # 862 bytes as compact JSON


def test_secrets_of_one_ca_share_its_certificate() -> None:
    def secret(name: str, leaf: bytes) -> dict[str, object]:
        data = {"tls.crt": leaf, "ca.crt": b"-----BEGIN CERTIFICATE-----\nCA\n"}
        encoded = {key: base64.b64encode(value).decode() for key, value in data.items()}
        return {"metadata": {"name": name, "resourceVersion": "1"}, "data": encoded}

    first = observed_secret(secret("a", b"leaf a")).contents.data
    second = observed_secret(secret("b", b"leaf b")).contents.data
    assert first["ca.crt"] is second["ca.crt"]
    assert first["tls.crt"] == b"leaf a"
    assert second["tls.crt"] == b"leaf b"


def _managed_secret(certificate: str, ca: bytes = b"-----BEGIN CERTIFICATE-----\nCA\n") -> ObservedSecret:
    contents = SecretContents(
        labels={"certsmith.dev/managed": "true"},
        annotations={"certsmith.dev/certificate-name": certificate, "certsmith.dev/revision": "3"},
        data={
            "tls.crt": b"-----BEGIN CERTIFICATE-----\nleaf\n",
            "tls.key": b"-----BEGIN PRIVATE KEY-----\nkey\n",
            "keystore.p12": bytes(range(256)),
            "ca.crt": ca,
        },
    )
    return ObservedSecret(contents, "42")


def test_a_secret_is_read_back_as_it_was_kept_with_its_ca_certificate_shared() -> None:
    secrets = CompactSecrets()
    ca = b"-----BEGIN CERTIFICATE-----\nshared CA\n"
    secrets[("apps", "web-tls")] = _managed_secret("web", ca)
    secrets[("apps", "api-tls")] = _managed_secret("api", ca)
    web = secrets[("apps", "web-tls")]
    assert web == _managed_secret("web", ca)
    assert web.contents.data["ca.crt"] is ca is secrets[("apps", "api-tls")].contents.data["ca.crt"]
    assert secrets.owners() == [(("apps", "web-tls"), "web"), (("apps", "api-tls"), "api")]
    plain = ObservedSecret(SecretContents(data={"tls.crt": b"x"}, type="Opaque"), "7")
    secrets[("apps", "plain")] = plain
    assert secrets[("apps", "plain")] == plain
    assert secrets.owners()[-1] == (("apps", "plain"), None)
    del secrets[("apps", "web-tls")]
    assert ("apps", "web-tls") not in secrets
    assert len(secrets) == 2


def test_the_store_drops_what_certsmith_never_reads() -> None:
    store = Store()
    body = {
        **_certificate("web"),
        "metadata": {
            "name": "web",
            "namespace": "apps",
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "a"},
        },
    }
    store.remember("certificates", ("apps", "web"), body)
    kept = store.certificates[("apps", "web")]
    assert kept["metadata"] == {"name": "web", "namespace": "apps", "annotations": {"team": "a"}}
    assert kept["spec"] == body["spec"]
