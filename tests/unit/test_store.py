"""The store keeps Certificates and their Secrets compactly (a replica holds every Certificate of its
shards, and its Secret)."""

from __future__ import annotations

import base64

from certsmith.kube.secrets import ObservedSecret, observed_secret
from certsmith.reconcile.store import CompactObjects, CompactSecrets, Store
from certsmith.tls_secret import SecretContents


def _certificate(name: str, token: str = "") -> dict[str, object]:
    return {
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {"secretName": f"{name}-tls", "issuerRef": {"name": "ca"}},
        "status": {"acme": {"token": token}} if token else {},
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


def test_a_snapshot_decodes_only_the_objects_that_contain_the_needle() -> None:
    objects = CompactObjects()
    objects[("apps", "web")] = _certificate("web", token="tok-123")
    objects[("apps", "api")] = _certificate("api")
    assert [key for key, _ in objects.snapshot()] == [("apps", "web"), ("apps", "api")]
    assert objects.snapshot(containing="tok-123") == [(("apps", "web"), _certificate("web", token="tok-123"))]
    assert objects.snapshot(containing="absent") == []


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
