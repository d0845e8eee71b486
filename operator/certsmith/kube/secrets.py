"""Reading and writing Secrets. Data crosses this boundary decoded: bytes in, bytes out."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certsmith.tls_secret import SECRET_TYPE, SecretContents

HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409


@dataclass(frozen=True)
class ObservedSecret:
    """A Secret's contents and the resourceVersion they were read or written at."""

    contents: SecretContents
    resource_version: str


class SecretConflictError(RuntimeError):
    """The Secret is not as last observed (changed, created or deleted by someone else): read it again."""


class SecretAccessError(RuntimeError):
    """The API server refused a Secret read or write. Carries status and reason, never the body,
    which for a Secret could echo its data."""


def observed_secret(body: Mapping[str, Any]) -> ObservedSecret:
    """A Secret as a watch event delivers it (a dict)."""
    metadata = body.get("metadata") or {}
    contents = SecretContents(
        labels=dict(metadata.get("labels") or {}),
        annotations=dict(metadata.get("annotations") or {}),
        data=_decoded(body.get("data")),
    )
    return ObservedSecret(contents, metadata.get("resourceVersion", ""))


def read_secret(api: client.ApiClient, namespace: str, name: str) -> ObservedSecret | None:
    """The Secret as it is now, or None when it does not exist."""
    try:
        secret = client.CoreV1Api(api).read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == HTTP_NOT_FOUND:
            return None
        raise SecretAccessError(f"reading Secret {namespace}/{name}: {error.status} {error.reason}") from None
    return observed_from_model(secret)


def read_secret_value(api: client.ApiClient, namespace: str, name: str, key: str) -> bytes | None:
    found = read_secret(api, namespace, name)
    return found.contents.data.get(key) if found else None


def write_secret(
    api: client.ApiClient,
    namespace: str,
    name: str,
    contents: SecretContents,
    resource_version: str | None,
    owner: client.V1OwnerReference | None = None,
) -> ObservedSecret:
    """Create the Secret (resource_version None) or replace it if unchanged since `resource_version`.

    Raises SecretConflictError when the Secret is not as observed: created meanwhile (so two
    Certificates naming one Secret cannot both take it), changed, or deleted.
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
            written = core.create_namespaced_secret(namespace, secret)
        else:
            written = core.replace_namespaced_secret(name, namespace, secret)
    except ApiException as error:
        if error.status in (HTTP_CONFLICT, HTTP_NOT_FOUND):
            raise SecretConflictError(
                f"Secret {namespace}/{name} changed while certsmith was writing it"
            ) from None
        raise SecretAccessError(f"writing Secret {namespace}/{name}: {error.status} {error.reason}") from None
    return ObservedSecret(contents, (written.metadata.resource_version if written.metadata else None) or "")


def observed_from_model(secret: client.V1Secret) -> ObservedSecret:
    """A Secret as the client library returns it from a GET or LIST."""
    metadata = secret.metadata or client.V1ObjectMeta()
    contents = SecretContents(
        labels=dict(metadata.labels or {}),
        annotations=dict(metadata.annotations or {}),
        data=_decoded(secret.data),
    )
    return ObservedSecret(contents, metadata.resource_version or "")


def _decoded(data: Mapping[str, bytes | str] | None) -> dict[str, bytes]:
    return {key: base64.b64decode(value) for key, value in (data or {}).items()}
