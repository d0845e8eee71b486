"""certsmith running as a Pod: a kind cluster from the offline node image, the operator image loaded,
`kubectl apply -k deploy/`, and issuance through the Deployment under its own ServiceAccount.

The cluster (tests/kind/conftest.py) is shared with the Helm tests beside this file.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from certsmith_devtools.kind import NAMESPACE, KindCluster, apply_demo, wait_ready
from tests.cluster.support import create_certificate, eventually, openssl_verify, secret_data
from tests.conftest import Cluster, assert_no_key_material
from tests.kind.support import leader_pod, operator_pods, ready, selfsigned_issuer


def test_demo_chain_is_issued_by_the_operator_pod(
    kind: KindCluster, cluster: Cluster, tmp_path: Path
) -> None:
    apply_demo(kind)
    data = secret_data(cluster, "demo", "server-tls")
    (tmp_path / "ca.crt").write_bytes(data["ca.crt"])
    (tmp_path / "tls.crt").write_bytes(data["tls.crt"])
    openssl_verify(tmp_path / "ca.crt", tmp_path / "tls.crt", "-untrusted", str(tmp_path / "tls.crt"))
    names = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(tmp_path / "tls.crt")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:server.demo.svc" in names


def test_kubelet_runs_the_probes_and_the_pods_stay_up(kind: KindCluster) -> None:
    pods = operator_pods(kind)
    assert len(pods) == 2, [pod["metadata"]["name"] for pod in pods]
    for pod in pods:
        statuses = pod["status"].get("containerStatuses") or []
        assert statuses, pod["status"]
        assert all(status["ready"] for status in statuses), pod["status"]
        assert all(status["restartCount"] == 0 for status in statuses), "an operator container restarted"
    node = pods[0]["spec"]["nodeName"]

    def both_probed(probe: str) -> bool:
        """The kubelet counted at least one successful `probe` of each of the two Pods."""
        metrics = kind.kubectl_run("get", "--raw", f"/api/v1/nodes/{node}/proxy/metrics/probes")
        counts = [
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if f'namespace="{NAMESPACE}"' in line
            and f'probe_type="{probe}"' in line
            and 'result="successful"' in line
        ]
        return len(counts) == 2 and min(counts) >= 1

    eventually(lambda: both_probed("Readiness"), 60, "successful readiness probes of both Pods")
    eventually(lambda: both_probed("Liveness"), 60, "successful liveness probes of both Pods")


def test_a_deleted_leader_pod_is_replaced_and_the_work_finished(
    cluster: Cluster, kind: KindCluster, namespace: str
) -> None:
    kind.kubectl_run("-n", namespace, "create", "-f", "-", stdin=selfsigned_issuer(namespace))
    names = [f"burst-{index}" for index in range(20)]
    for name in names:
        create_certificate(cluster, namespace, name, "selfsigned", dnsNames=[f"{name}.example"])
    leader = leader_pod(kind)
    kind.kubectl_run("-n", NAMESPACE, "delete", "pod", leader, "--grace-period=0", "--force", "--wait=false")
    wait_ready(kind.api(), [(namespace, name) for name in names], timeout=120)
    eventually(lambda: leader_pod(kind) not in ("", leader), 60, "another Pod to lead")
    eventually(
        lambda: len([p for p in operator_pods(kind) if ready(p)]) == 2, 120, "two Ready replicas again"
    )


def test_operator_logs_hold_no_key_material(cluster: Cluster, kind: KindCluster, namespace: str) -> None:
    kind.kubectl_run("-n", namespace, "create", "-f", "-", stdin=selfsigned_issuer(namespace))
    create_certificate(cluster, namespace, "logged", "selfsigned", dnsNames=["logged.example"])
    wait_ready(kind.api(), [(namespace, "logged")], timeout=60)
    key = secret_data(cluster, namespace, "logged")
    body = b"".join(line for line in key["tls.key"].splitlines() if not line.startswith(b"-----"))
    logs = "\n".join(
        kind.kubectl_run("-n", NAMESPACE, "logs", pod["metadata"]["name"], "--all-containers")
        for pod in operator_pods(kind)
    )
    assert namespace in logs, "the operator logged nothing about the issuance"
    assert_no_key_material(logs, "the operator Pods' logs")
    assert body.decode()[:40] not in logs
    assert base64.b64encode(key["tls.key"]).decode()[:40] not in logs
