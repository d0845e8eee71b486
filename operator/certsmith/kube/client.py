"""API client construction: the one place that reads kubeconfig files."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client, config


def api_client_from_kubeconfig(path: Path) -> client.ApiClient:
    """An API client for the current context of the kubeconfig at `path`."""
    api: client.ApiClient = config.new_client_from_config(config_file=str(path))  # type: ignore[no-untyped-call]
    return api
