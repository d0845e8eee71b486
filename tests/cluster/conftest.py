"""Fixtures for tests that need the operator."""

from __future__ import annotations

import pytest

from certsmith_devtools.kit import create_ca_issuer
from tests.cluster.support import wait_ready
from tests.conftest import Cluster, OperatorProcess


@pytest.fixture
def ca_issuer(cluster: Cluster, operator: OperatorProcess, namespace: str) -> str:
    """A CA Issuer named "ca" in `namespace`, signing with a root made by a self-signed Issuer."""
    issuer = create_ca_issuer(cluster.api, namespace, "test root")
    wait_ready(cluster, namespace, "root")
    return issuer
