"""Fixtures for tests that need the operator."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from certsmith_devtools.kit import create_ca_issuer
from tests.cluster.proxy import ApiProxy
from tests.cluster.support import wait_ready
from tests.conftest import Cluster, OperatorProcess


@pytest.fixture
def ca_issuer(cluster: Cluster, operator: OperatorProcess, namespace: str) -> str:
    """A CA Issuer named "ca" in `namespace`, signing with a root made by a self-signed Issuer."""
    issuer = create_ca_issuer(cluster.api, namespace, "test root")
    wait_ready(cluster, namespace, "root")
    return issuer


@pytest.fixture
def proxy(cluster: Cluster) -> Iterator[ApiProxy]:
    """A proxy in front of the API server (see `ApiProxy`)."""
    server = urlparse(cluster.api.configuration.host)
    running = ApiProxy((server.hostname or "127.0.0.1", server.port or 443))
    yield running
    running.close()
