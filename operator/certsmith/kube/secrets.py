"""Reading and writing Secrets. Data crosses this boundary decoded: bytes in, bytes out."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.tls_secret import SECRET_TYPE, SecretContents

HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409


class SecretConflictError(RuntimeError):
    """Someone else changed or created the Secret first; read it again and decide again."""


class SecretAccessError(RuntimeError):
    """The API server refused a Secret read or write. Carries status and reason, never the body,
    which for a Secret could echo its data."""


def contents_of(body: Mapping[str, Any]) -> SecretContents:
    """SecretContents from a Secret as the API serves it (a watch event or a GET, as a dict)."""
    metadata = body.get("metadata") or {}
    return SecretContents(
        labels=dict(metadata.get("labels") or {}),
        annotations=dict(metadata.get("annotations") or {}),
        data=_decoded(body.get("data")),
    )


def read_secret(api: client.ApiClient, namespace: str, name: str) -> tuple[SecretContents, str] | None:
    """The Secret's contents and resourceVersion, or None when it does not exist."""
    try:
        secret = client.CoreV1Api(api).read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == HTTP_NOT_FOUND:
            return None
        raise SecretAccessError(f"reading Secret {namespace}/{name}: {error.status} {error.reason}") from None
    metadata = secret.metadata or client.V1ObjectMeta()
    contents = SecretContents(
        labels=dict(metadata.labels or {}),
        annotations=dict(metadata.annotations or {}),
        data=_decoded(secret.data),
    )
    return contents, metadata.resource_version or ""


def read_secret_value(api: client.ApiClient, namespace: str, name: str, key: str) -> bytes | None:
    found = read_secret(api, namespace, name)
    return found[0].data.get(key) if found else None


def write_secret(
    api: client.ApiClient,
    namespace: str,
    name: str,
    contents: SecretContents,
    resource_version: str | None,
    owner: client.V1OwnerReference | None = None,
) -> SecretContents:
    """Create the Secret (resource_version None) or replace it if unchanged since `resource_version`.

    Raises SecretConflictError when another writer got there first, so that two Certificates naming
    one Secret cannot both take it.
    """
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=name,
            namespace=namespace,
            labels=dict(contents.labels),
            annotations=dict(contents.annotations),
            resource_version=resource_version,
            owner_references=[owner] if owner else None,
        ),
        type=SECRET_TYPE,
        data={key: base64.b64encode(value).decode() for key, value in contents.data.items()},
    )
    core = client.CoreV1Api(api)
    try:
        if resource_version is None:
            core.create_namespaced_secret(namespace, secret)
        else:
            core.replace_namespaced_secret(name, namespace, secret)
    except ApiException as error:
        if error.status == HTTP_CONFLICT:
            raise SecretConflictError(
                f"Secret {namespace}/{name} changed while certsmith was writing it"
            ) from None
        raise SecretAccessError(f"writing Secret {namespace}/{name}: {error.status} {error.reason}") from None
    return contents


def _decoded(data: Mapping[str, bytes | str] | None) -> dict[str, bytes]:
    return {key: base64.b64decode(value) for key, value in (data or {}).items()}
