"""Looking at the operator's Pods and its Lease in the kind cluster."""

from __future__ import annotations

import json
from typing import Any

from certsmith_devtools.kind import NAMESPACE, KindCluster


def selfsigned_issuer(namespace: str) -> str:
    return (
        "apiVersion: certsmith.dev/v1alpha1\nkind: Issuer\n"
        f"metadata: {{name: selfsigned, namespace: {namespace}}}\nspec: {{selfSigned: {{}}}}\n"
    )


def operator_pods(kind: KindCluster) -> list[dict[str, Any]]:
    listed = json.loads(
        kind.kubectl_run(
            "-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/name=certsmith", "-o", "json"
        )
    )
    return [pod for pod in listed["items"] if not pod["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def leader_pod(kind: KindCluster) -> str:
    """The Pod holding the leader Lease (its identity starts with the Pod's host name, its name)."""
    lease = json.loads(kind.kubectl_run("-n", NAMESPACE, "get", "lease", "certsmith", "-o", "json"))
    holder = str(lease["spec"].get("holderIdentity") or "")
    names = [pod["metadata"]["name"] for pod in operator_pods(kind)]
    return next((name for name in names if holder.startswith(f"{name}_")), "")
