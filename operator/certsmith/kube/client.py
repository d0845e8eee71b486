"""API client construction: the one place that reads kubeconfig files or in-cluster credentials."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client, config

from certsmith.kube.ratelimit import RateLimitedApiClient, TokenBucket


def api_client_from_kubeconfig(
    path: Path | None,
    bucket: TokenBucket | None = None,
    context: str | None = None,
    connections: int | None = None,
) -> client.ApiClient:
    """An API client for `context` (else the current one) of the kubeconfig at `path` (else
    `$KUBECONFIG` or ~/.kube/config, as kubectl finds it), rate-limited by `bucket`, keeping up to
    `connections` connections open (urllib3's default, 10, if None)."""
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(path) if path else None, context=context, client_configuration=configuration
    )
    return _client(configuration, bucket, connections)


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def ambient_api_client(bucket: TokenBucket | None = None, connections: int | None = None) -> client.ApiClient:
    """In a Pod, its ServiceAccount; elsewhere `$KUBECONFIG` or ~/.kube/config, as kubectl would."""
    configuration = client.Configuration()
    if in_cluster():
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return _client(configuration, bucket, connections)


def _client(
    configuration: client.Configuration, bucket: TokenBucket | None, connections: int | None
) -> client.ApiClient:
    if connections is not None:
        configuration.connection_pool_maxsize = connections
    return client.ApiClient(configuration) if bucket is None else RateLimitedApiClient(configuration, bucket)
