"""API client construction: the one place that reads kubeconfig files or in-cluster credentials."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client, config


def api_client_from_kubeconfig(path: Path) -> client.ApiClient:
    """An API client for the current context of the kubeconfig at `path`."""
    api: client.ApiClient = config.new_client_from_config(config_file=str(path))  # type: ignore[no-untyped-call]
    return api


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def ambient_api_client() -> client.ApiClient:
    """In a Pod, its ServiceAccount; elsewhere `$KUBECONFIG` or ~/.kube/config, as kubectl would."""
    if in_cluster():
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return client.ApiClient(configuration)
    api: client.ApiClient = config.new_client_from_config()  # type: ignore[no-untyped-call]
    return api
