"""Helpers for tests that drive certsmith through the real API server."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.api import GROUP, VERSION
from certsmith.devcluster.kit import create_object, is_ready
from tests.conftest import Cluster

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.2)


def create(
    cluster: Cluster, namespace: str, kind: str, name: str, spec: dict[str, Any], **metadata: str
) -> None:
    create_object(cluster.api, namespace, kind, name, spec, **metadata)


def create_certificate(cluster: Cluster, namespace: str, name: str, issuer: str, **spec: Any) -> None:
    """A Certificate with an ECDSA key and a Secret named like it, unless `spec` says otherwise."""
    create(
        cluster,
        namespace,
        "Certificate",
        name,
        {
            "secretName": name,
            "privateKey": {"algorithm": "ECDSA"},
            "issuerRef": {"name": issuer},
            **spec,
        },
    )


def patch_spec(cluster: Cluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    client.CustomObjectsApi(cluster.api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "certificates", name, {"spec": spec}
    )


def certificate(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    body = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "certificates", name
    )
    assert isinstance(body, dict)
    return body


def wait_ready(cluster: Cluster, namespace: str, name: str, timeout: float = 30.0) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        body = certificate(cluster, namespace, name)
        return body if is_ready(body) else None

    return eventually(ready, timeout, f"Certificate {namespace}/{name} to be Ready")


def secret(cluster: Cluster, namespace: str, name: str) -> client.V1Secret | None:
    try:
        return client.CoreV1Api(cluster.api).read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def secret_data(cluster: Cluster, namespace: str, name: str) -> dict[str, bytes]:
    found = secret(cluster, namespace, name)
    assert found is not None, f"Secret {namespace}/{name} does not exist"
    return {key: base64.b64decode(value) for key, value in (found.data or {}).items()}


def event_objects(cluster: Cluster, namespace: str, name: str) -> list[client.CoreV1Event]:
    """The Events about the Certificate `name`, oldest first (repeats are counted in one object)."""
    listed = client.CoreV1Api(cluster.api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=Certificate"
    )
    return list(listed.items)


def events(cluster: Cluster, namespace: str, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Events about the Certificate `name`, oldest first."""
    return [(e.type or "", e.reason or "", e.message or "") for e in event_objects(cluster, namespace, name)]


def openssl_verify(ca: Path, certificate: Path, *options: str) -> None:
    """`openssl verify` of `certificate` against the roots in `ca`; fails the test with its output."""
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), *options, str(certificate)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
