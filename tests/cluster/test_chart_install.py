"""The chart against a real API server: `helm install --dry-run=server` has every object it renders
validated and defaulted by the server (the local control plane has no kubelet; tests/kind installs it
for real)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
import yaml

from certsmith.devcluster.charttools import ensure_helm
from tests.conftest import REPO, Cluster, fresh_namespace

CHART = REPO / "charts" / "certsmith"


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    with fresh_namespace(cluster, "chart") as name:
        yield name


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "namespaced=true,replicas=1"],
    ],
    ids=["cluster-wide", "namespaced"],
)
def test_server_side_dry_run_install(cluster: Cluster, namespace: str, values: list[str]) -> None:
    installed = subprocess.run(
        [
            str(ensure_helm()),
            "install",
            "certsmith",
            str(CHART),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--namespace",
            namespace,
            "--dry-run=server",
            "--take-ownership",  # the session's cluster already holds the approval policy (tests/conftest.py)
            *values,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    manifest = installed.stdout.split("\nMANIFEST:\n", 1)[1].split("\nNOTES:\n", 1)[0]
    kinds = sorted(document["kind"] for document in yaml.safe_load_all(manifest) if document)
    assert "Deployment" in kinds
    assert ("ClusterRole" in kinds) != ("namespaced=true,replicas=1" in values)
