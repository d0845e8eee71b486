"""One kind cluster for every test under tests/kind: made from the offline node image with the
operator image loaded and deploy/ applied, deleted afterwards, leaving no container or network (the
node and operator images stay: they are the cache). With `CERTSMITH_KIND_CLUSTER=NAME` (what `make
kind-test` sets) the tests run against that existing cluster instead and leave it running."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from certsmith_devtools.kind import KindCluster, down, existing, up
from tests.conftest import REPO, Cluster, fresh_namespace

EXISTING = os.environ.get("CERTSMITH_KIND_CLUSTER")
_LABEL = "io.x-k8s.kind.cluster"


@pytest.fixture(scope="package")
def kind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KindCluster]:
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    if EXISTING:
        yield existing(EXISTING, kubeconfig)
        return
    name = f"certsmith-test-{uuid.uuid4().hex[:6]}"
    try:
        yield up(name, offline=True, kubeconfig=kubeconfig, source=REPO, network=name)
    finally:
        down(name, network=name)
        left = _docker("ps", "--all", "--quiet", "--filter", f"label={_LABEL}={name}")
        assert not left, f"kind left containers behind: {left}"
        assert name not in _docker("network", "ls", "--format", "{{.Name}}").split(), "network left behind"


@pytest.fixture(scope="package")
def cluster(kind: KindCluster) -> Cluster:
    """The kind cluster in the shape the other tests' helpers take."""
    return Cluster(kind.kubeconfig, kind.api(), kind.kubectl)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    with fresh_namespace(cluster, "kind") as name:
        yield name


def _docker(*arguments: str) -> str:
    return subprocess.run(["docker", *arguments], capture_output=True, text=True, check=True).stdout.strip()
