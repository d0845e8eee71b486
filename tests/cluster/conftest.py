"""Fixtures for tests that need the operator."""

from __future__ import annotations

import pytest

from tests.cluster.support import create, wait_ready
from tests.conftest import Cluster, OperatorProcess


@pytest.fixture
def ca_issuer(cluster: Cluster, operator: OperatorProcess, namespace: str) -> str:
    """A CA Issuer named "ca" in `namespace`, signing with a root made by a self-signed Issuer."""
    create(cluster, namespace, "Issuer", "selfsigned", {"selfSigned": {}})
    create(
        cluster,
        namespace,
        "Certificate",
        "root",
        {
            "secretName": "root",
            "isCA": True,
            "commonName": "test root",
            "privateKey": {"algorithm": "ECDSA"},
            "issuerRef": {"name": "selfsigned"},
        },
    )
    create(cluster, namespace, "Issuer", "ca", {"ca": {"secretName": "root"}})
    wait_ready(cluster, namespace, "root")
    return "ca"
