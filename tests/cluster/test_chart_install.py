"""The chart against a real API server (the local control plane, no kubelet: tests/kind runs its Pods):
`helm install --dry-run=server` has every object it renders validated by the server, and in namespaced
mode (nothing cluster-scoped to share with the other tests) a real install, upgrade and uninstall."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from certsmith_devtools.charttools import ensure_helm
from tests.cluster.support import create_secret, secret_data
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
    installed = _helm(
        cluster,
        namespace,
        "install",
        "certsmith",
        str(CHART),
        "--dry-run=server",
        "--take-ownership",  # the session's cluster already holds the approval policy (tests/conftest.py)
        *values,
    )
    manifest = installed.split("\nMANIFEST:\n", 1)[1].split("\nNOTES:\n", 1)[0]
    kinds = sorted(document["kind"] for document in yaml.safe_load_all(manifest) if document)
    assert "Deployment" in kinds
    assert ("ClusterRole" in kinds) != ("namespaced=true,replicas=1" in values)


def test_install_upgrade_uninstall_namespaced(cluster: Cluster, namespace: str) -> None:
    """The approval policy is left out: the session's cluster has its own (tests/conftest.py)."""
    apps = client.AppsV1Api(cluster.api)
    _helm(
        cluster,
        namespace,
        "install",
        "certsmith",
        str(CHART),
        "--set",
        "namespaced=true,approvalPolicy.enabled=false,issuancePolicy.enabled=false",
    )
    deployment = _deployment(cluster, namespace)
    assert deployment["spec"]["replicas"] == 2
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--namespace={namespace}" in args
    assert f"--leader-elect-namespace={namespace}" in args
    create_secret(cluster, namespace, "kept-tls", {"tls.crt": b"crt", "tls.key": b"key"})

    _helm(cluster, namespace, "upgrade", "certsmith", str(CHART), "--reuse-values", "--set", "replicas=3")
    assert _deployment(cluster, namespace)["spec"]["replicas"] == 3

    _helm(cluster, namespace, "uninstall", "certsmith", "--wait")
    assert not apps.list_namespaced_deployment(namespace).items
    assert not client.RbacAuthorizationV1Api(cluster.api).list_namespaced_role(namespace).items
    assert secret_data(cluster, namespace, "kept-tls")["tls.key"] == b"key"
    extensions = client.ApiextensionsV1Api(cluster.api)
    for crd in ("certificates.certsmith.dev", "issuers.certsmith.dev"):
        extensions.read_custom_resource_definition(crd)


def _deployment(cluster: Cluster, namespace: str) -> dict[str, Any]:
    kubectl = [str(cluster.kubectl), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace]
    read = subprocess.run(
        [*kubectl, "get", "deployment", "certsmith", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    deployment: dict[str, Any] = json.loads(read.stdout)
    return deployment


def _helm(cluster: Cluster, namespace: str, *arguments: str) -> str:
    completed = subprocess.run(
        [str(ensure_helm()), "--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace, *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout
