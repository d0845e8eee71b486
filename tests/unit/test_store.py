"""The store keeps Certificates compactly (a replica holds every Certificate of its shards)."""

from __future__ import annotations

import base64

from certsmith.kube.secrets import observed_secret
from certsmith.reconcile.store import CompactObjects


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
