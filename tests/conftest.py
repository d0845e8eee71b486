"""Fixtures shared by all tests.

Tests under tests/cluster/ get a real API server: by default the local control plane (etcd and
kube-apiserver, built once and cached), or the cluster that `CERTSMITH_TEST_KUBECONFIG` points at
(kind, for example). The CRDs from crds/ are installed before the first test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from certsmith.devcluster import ControlPlane, ControlPlaneSettings, sigterm_raises_keyboard_interrupt
from certsmith.kube.client import api_client_from_kubeconfig
from certsmith.kube.crds import install_crds, load_crds

REPO = Path(__file__).resolve().parent.parent
EXTERNAL_KUBECONFIG = os.environ.get("CERTSMITH_TEST_KUBECONFIG")


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    api: client.ApiClient
    kubectl: Path


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    with sigterm_raises_keyboard_interrupt():
        if EXTERNAL_KUBECONFIG:
            kubectl = shutil.which("kubectl")
            assert kubectl, "CERTSMITH_TEST_KUBECONFIG is set: put kubectl on PATH"
            yield _prepared(Path(EXTERNAL_KUBECONFIG), Path(kubectl))
            return
        with ControlPlane(ControlPlaneSettings(progress=print)) as control_plane:
            yield _prepared(control_plane.kubeconfig, control_plane.binaries.kubectl)


def _prepared(kubeconfig: Path, kubectl: Path) -> Cluster:
    api = api_client_from_kubeconfig(kubeconfig)
    install_crds(api, load_crds(REPO / "crds"))
    return Cluster(kubeconfig, api, kubectl)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(cluster.api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
