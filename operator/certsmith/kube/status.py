"""Status patches for certsmith's resources (the status subresource, one merge patch each)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client

from certsmith.api import GROUP, VERSION


def patch_status(
    api: client.ApiClient, plural: str, namespace: str | None, name: str, status: Mapping[str, Any]
) -> None:
    """Merge `status` into the object's status; `namespace` None for cluster-scoped objects."""
    objects = client.CustomObjectsApi(api)
    body = {"status": dict(status)}
    if namespace is None:
        objects.patch_cluster_custom_object_status(GROUP, VERSION, plural, name, body)
    else:
        objects.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name, body)
