"""Helpers for tests that drive certsmith through the real API server."""

from __future__ import annotations

import base64
import datetime
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.api import GROUP, VERSION
from certsmith.pki.encodings import certificates_pem
from certsmith.pki.keys import (
    KeyAlgorithm,
    KeyEncoding,
    KeySpec,
    PrivateKey,
    encode_private_key,
    generate_private_key,
)
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import self_sign
from certsmith_devtools.kit import create_object, is_ready
from tests.conftest import REPO, Cluster

T = TypeVar("T")

HTTP_403 = re.compile(r"\b403\b")
"""A 403 status in a log: not the digits inside a hexadecimal serial number or an order URL."""


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


def key_pair(
    common_name: str, is_ca: bool, duration: datetime.timedelta, key: PrivateKey | None = None
) -> dict[str, bytes]:
    """A self-signed certificate and its key as a TLS Secret's data."""
    key = key or generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    now = datetime.datetime.now(datetime.UTC)
    issued = self_sign(CertificateTemplate(common_name=common_name, is_ca=is_ca, duration=duration), key, now)
    return {
        "tls.crt": certificates_pem([issued.certificate]),
        "tls.key": encode_private_key(key, KeyEncoding.PKCS8),
    }


def create_secret(
    cluster: Cluster,
    namespace: str,
    name: str,
    data: dict[str, bytes],
    kind: str = "kubernetes.io/tls",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> client.V1Secret:
    return client.CoreV1Api(cluster.api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, labels=labels, annotations=annotations),
            type=kind,
            data={key: base64.b64encode(value).decode() for key, value in data.items()},
        ),
    )


def service_account_kubeconfig(
    cluster: Cluster, path: Path, namespace: str = "certsmith", name: str = "certsmith"
) -> Path:
    """A kubeconfig holding only a token for the ServiceAccount `name` of `namespace`, for the admin's
    API server; its context's namespace is `namespace`."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    token = client.CoreV1Api(cluster.api).create_namespaced_service_account_token(name, namespace, request)
    assert token.status is not None
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = {"cluster": "local", "user": name, "namespace": namespace}
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
                "users": [{"name": name, "user": {"token": token.status.token}}],
                "contexts": [{"name": name, "context": context}],
                "current-context": name,
            }
        )
    )
    return path


def ca_secret(cluster: Cluster, namespace: str) -> None:
    """A CA key pair in the Secret rbac-ca, made by the administrator, not by certsmith."""
    create_secret(cluster, namespace, "rbac-ca", key_pair("rbac CA", True, datetime.timedelta(days=30)))


def apply_deploy(cluster: Cluster) -> None:
    applied = subprocess.run(
        [str(cluster.kubectl), "--kubeconfig", str(cluster.kubeconfig), "apply", "-k", str(REPO / "deploy")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr


def http_status(port: int, path: str) -> int:
    """The status of GET http://127.0.0.1:PORT/PATH; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0
