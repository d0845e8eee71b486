"""One-off LISTs that fill certsmith's store before its watch streams have caught up."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client

from certsmith.api import GROUP, VERSION
from certsmith.kube.secrets import ObservedSecret, observed_from_model


def list_secrets(
    api: client.ApiClient, namespace: str | None, label_selector: str
) -> list[tuple[tuple[str, str], ObservedSecret]]:
    """((namespace, name), Secret) of those matching `label_selector`, in `namespace` or all if None."""
    core = client.CoreV1Api(api)
    listed = (
        core.list_secret_for_all_namespaces(label_selector=label_selector)
        if namespace is None
        else core.list_namespaced_secret(namespace, label_selector=label_selector)
    )
    return [
        ((secret.metadata.namespace or "", secret.metadata.name or ""), observed_from_model(secret))
        for secret in listed.items
        if secret.metadata is not None
    ]


def list_custom_objects(api: client.ApiClient, plural: str, namespace: str | None) -> list[Mapping[str, Any]]:
    """Objects of certsmith's `plural`, in `namespace` (all, or cluster-scoped, if None)."""
    objects = client.CustomObjectsApi(api)
    listed = (
        objects.list_cluster_custom_object(GROUP, VERSION, plural)
        if namespace is None
        else objects.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
    )
    if not isinstance(listed, dict):
        raise TypeError(f"listing {plural} returned {type(listed).__name__}, not an object")
    items: list[Mapping[str, Any]] = listed["items"]
    return items
