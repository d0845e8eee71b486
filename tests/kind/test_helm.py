"""The Helm chart on kind: `helm install` in place of deploy/ creates the operator, whose Pods run and
issue; `helm upgrade --set replicas=3` scales it with one leader; `helm uninstall` removes the operator
and keeps the CRDs, the approval policy and every Secret. deploy/ is applied again afterwards, leaving
the cluster as the other kind tests expect it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from certsmith_devtools.charttools import ensure_helm
from certsmith_devtools.kind import NAMESPACE, KindCluster, wait_ready
from tests.cluster.support import create_certificate, eventually, secret_data
from tests.conftest import REPO, Cluster
from tests.kind.support import leader_pod, operator_pods, ready, selfsigned_issuer

CHART = REPO / "charts" / "certsmith"
INSTALL = REPO / "deploy" / "install.yaml"
RELEASE = "certsmith"


def _helm(kind: KindCluster, *arguments: str) -> str:
    completed = subprocess.run(
        [str(ensure_helm()), "--kubeconfig", str(kind.kubeconfig), "--namespace", NAMESPACE, *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def _replaced_by_the_chart() -> str:
    """What deploy/ installs besides the CRDs and the Namespace: what the chart's templates make (Helm
    does not adopt objects it did not create)."""
    kept = {"CustomResourceDefinition", "Namespace"}
    documents = [d for d in yaml.safe_load_all(INSTALL.read_text()) if d["kind"] not in kept]
    return yaml.safe_dump_all(documents)


@pytest.fixture
def helm_installed(kind: KindCluster) -> Iterator[None]:
    """deploy/'s operator replaced by the chart's release; deploy/ applied again afterwards."""
    kind.kubectl_run("delete", "--wait", "-f", "-", stdin=_replaced_by_the_chart())
    try:
        _helm(kind, "install", RELEASE, str(CHART), "--wait", "--timeout", "5m")
        yield
    finally:
        subprocess.run(
            [str(ensure_helm()), "--kubeconfig", str(kind.kubeconfig), "-n", NAMESPACE, "uninstall", RELEASE],
            capture_output=True,
            check=False,
        )
        kind.kubectl_run("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "deploy"))
        kind.kubectl_run("-n", NAMESPACE, "rollout", "status", "deployment/certsmith", "--timeout=5m")


def test_helm_installs_upgrades_and_uninstalls(
    helm_installed: None, kind: KindCluster, cluster: Cluster, namespace: str
) -> None:
    deployment = json.loads(kind.kubectl_run("-n", NAMESPACE, "get", "deployment", "certsmith", "-o", "json"))
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    pods = operator_pods(kind)
    assert [ready(pod) for pod in pods] == [True, True], [pod["metadata"]["name"] for pod in pods]

    kind.kubectl_run("-n", namespace, "create", "-f", "-", stdin=selfsigned_issuer(namespace))
    create_certificate(cluster, namespace, "from-helm", "selfsigned", dnsNames=["from-helm.example"])
    wait_ready(kind.api(), [(namespace, "from-helm")], timeout=120)

    _helm(
        kind,
        "upgrade",
        RELEASE,
        str(CHART),
        "--reuse-values",
        "--set",
        "replicas=3",
        "--wait",
        "--timeout",
        "5m",
    )
    eventually(
        lambda: len([pod for pod in operator_pods(kind) if ready(pod)]) == 3, 120, "three Ready replicas"
    )
    names = [pod["metadata"]["name"] for pod in operator_pods(kind)]
    leading = [
        name
        for name in names
        if " leads through Lease " in kind.kubectl_run("-n", NAMESPACE, "logs", name, "--all-containers")
    ]
    assert leading == [leader_pod(kind)], f"of {names}, {leading} lead; the Lease names {leader_pod(kind)!r}"
    create_certificate(cluster, namespace, "after-upgrade", "selfsigned", dnsNames=["after-upgrade.example"])
    wait_ready(kind.api(), [(namespace, "after-upgrade")], timeout=120)

    _helm(kind, "uninstall", RELEASE, "--wait", "--timeout", "2m")
    left = kind.kubectl_run(
        "-n", NAMESPACE, "get", "deployments,serviceaccounts,networkpolicies", "-o", "name"
    )
    assert "deployment.apps/certsmith" not in left.split()
    crds = kind.kubectl_run("get", "customresourcedefinitions", "-o", "name").split()
    assert {
        f"customresourcedefinition.apiextensions.k8s.io/{plural}.certsmith.dev"
        for plural in ("certificates", "certificaterequests", "issuers", "clusterissuers")
    } <= set(crds)
    kind.kubectl_run("get", "validatingadmissionpolicy", "certificaterequest-approval.certsmith.dev")
    for name in ("from-helm", "after-upgrade"):
        assert secret_data(cluster, namespace, name)["tls.key"], f"the Secret {name} is gone"
        kind.kubectl_run("-n", namespace, "get", "certificate", name)
