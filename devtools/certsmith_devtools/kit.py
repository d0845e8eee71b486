"""The testing kit shared by `certsmith dev`, tests/ and bench/: creating certsmith objects and
reading their readiness the one same way. Dev tooling: `certsmith run` never imports it."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.api import CERTIFICATES, GROUP, ISSUERS, VERSION

PLURALS = {"Certificate": CERTIFICATES, "Issuer": ISSUERS}


def create_object(
    api: client.ApiClient, namespace: str, kind: str, name: str, spec: Mapping[str, Any], **metadata: str
) -> None:
    """Create a namespaced Certificate or Issuer."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name, **metadata},
        "spec": dict(spec),
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[kind], body
    )


def create_ca_issuer(api: client.ApiClient, namespace: str, common_name: str) -> str:
    """A CA Issuer named "ca" in `namespace`, signing with an ECDSA root CA Certificate "root" made by a
    self-signed Issuer; returns the Issuer's name (the root is Ready soon after, not yet)."""
    create_object(api, namespace, "Issuer", "selfsigned", {"selfSigned": {}})
    create_object(
        api,
        namespace,
        "Certificate",
        "root",
        {
            "secretName": "root",
            "isCA": True,
            "commonName": common_name,
            "privateKey": {"algorithm": "ECDSA"},
            "issuerRef": {"name": "selfsigned"},
        },
    )
    create_object(api, namespace, "Issuer", "ca", {"ca": {"secretName": "root"}})
    return "ca"


def condition(body: Mapping[str, Any], kind: str = "Ready") -> dict[str, Any]:
    """The condition `kind` of an object's status, {} if it has none."""
    status = body.get("status")
    conditions = status.get("conditions") or [] if isinstance(status, Mapping) else []
    return dict(next((c for c in conditions if c.get("type") == kind), {}))


def is_ready(body: Mapping[str, Any]) -> bool:
    return condition(body).get("status") == "True"


def why_not_ready(body: Mapping[str, Any]) -> str:
    found = condition(body)
    if not found:
        return "no status yet"
    return f"{found.get('reason')}: {found.get('message')}"


def not_ready(api: client.ApiClient, certificates: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Why each of these (namespace, name) Certificates is not Ready, by "namespace/name"."""
    objects = client.CustomObjectsApi(api)
    waiting = {}
    for namespace, name in certificates:
        try:
            body = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, CERTIFICATES, name)
        except ApiException as error:
            waiting[f"{namespace}/{name}"] = f"{error.status} {error.reason}"
            continue
        if not isinstance(body, dict) or not is_ready(body):
            waiting[f"{namespace}/{name}"] = why_not_ready(body if isinstance(body, dict) else {})
    return waiting


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
