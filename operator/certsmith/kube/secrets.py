"""Secrets as certsmith sees them: decoded contents and the resourceVersion they were observed at."""

from __future__ import annotations

import base64
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from certsmith.tls_secret import SecretContents


@dataclass(frozen=True)
class ObservedSecret:
    """A Secret's contents and the resourceVersion they were read or written at."""

    contents: SecretContents
    resource_version: str


def observed_secret(body: Mapping[str, Any]) -> ObservedSecret:
    """A Secret as the API server answers it (JSON)."""
    metadata = body.get("metadata") or {}
    contents = SecretContents(
        labels=_interned(metadata.get("labels")),
        annotations=_interned(metadata.get("annotations")),
        data=_decoded(body.get("data")),
        type=body.get("type") or "Opaque",
    )
    return ObservedSecret(contents, metadata.get("resourceVersion", ""))


def secret_body(
    namespace: str,
    name: str,
    contents: SecretContents,
    resource_version: str | None,
    owner: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The JSON of a Secret to write; `owner`: an ownerReference (see `owner_reference`)."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": dict(contents.labels),
        "annotations": dict(contents.annotations),
    }
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": contents.type,
        "data": {key: base64.b64encode(value).decode() for key, value in contents.data.items()},
    }


def _interned(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Labels or annotations, their names shared by every Secret (the store keeps one per Certificate)."""
    return {sys.intern(name): value for name, value in (metadata or {}).items()}


def _decoded(data: Mapping[str, bytes | str] | None) -> dict[str, bytes]:
    return {sys.intern(key): _shared(key, base64.b64decode(value)) for key, value in (data or {}).items()}


_CA_CERTIFICATES: dict[bytes, bytes] = {}


def _shared(key: str, value: bytes) -> bytes:
    """One copy of each issuing CA's certificate (`ca.crt`) for all the Secrets that carry it. Bounded:
    it starts afresh past 256 different CAs."""
    if key != "ca.crt":
        return value
    if len(_CA_CERTIFICATES) >= 256 and value not in _CA_CERTIFICATES:
        _CA_CERTIFICATES.clear()
    return _CA_CERTIFICATES.setdefault(value, value)
