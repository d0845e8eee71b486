"""Kubernetes Events on certsmith's objects: what `kubectl describe` shows an operator on call."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from certsmith.api import API_VERSION

COMPONENT = "certsmith"
_CLUSTER_SCOPED_EVENT_NAMESPACE = "default"
_MAX_MESSAGE = 1024


def post_event(
    api: client.ApiClient, body: Mapping[str, Any], kind: str, warning: bool, reason: str, message: str
) -> None:
    """Record an Event about the object `body` (a Certificate, Issuer or ClusterIssuer)."""
    metadata = body["metadata"]
    namespace = metadata.get("namespace") or _CLUSTER_SCOPED_EVENT_NAMESPACE
    now = datetime.datetime.now(datetime.UTC)
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{metadata['name']}.", namespace=namespace),
        involved_object=client.V1ObjectReference(
            api_version=API_VERSION,
            kind=kind,
            name=metadata["name"],
            namespace=metadata.get("namespace"),
            uid=metadata.get("uid"),
            resource_version=metadata.get("resourceVersion"),
        ),
        reason=reason,
        message=message[:_MAX_MESSAGE],
        type="Warning" if warning else "Normal",
        first_timestamp=now,
        last_timestamp=now,
        count=1,
        source=client.V1EventSource(component=COMPONENT),
        reporting_component=COMPONENT,
    )
    client.CoreV1Api(api).create_namespaced_event(namespace, event)
