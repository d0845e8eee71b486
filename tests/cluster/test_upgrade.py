"""An upgrade from the previous release: its CRDs and its operator issue certificates; then this
release's CRDs are applied as the README says and this operator takes over. Nothing is re-issued."""

from __future__ import annotations

import base64
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from certsmith_devtools.kit import create_object
from tests.cluster.support import create_certificate, create_secret, eventually, wait_ready
from tests.conftest import REPO, Cluster, OperatorProcess

pytestmark = pytest.mark.cluster

PREVIOUS_RELEASE = "4138b8f"
"""The first release (0.1.0 as it landed), from this repository's history."""


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's operator/ and crds/, from git (a clone with history is needed)."""
    directory = tmp_path_factory.mktemp("previous-release")
    archive = directory / "release.tar"
    made = subprocess.run(
        ["git", "-C", str(REPO), "archive", "-o", str(archive), PREVIOUS_RELEASE, "operator", "crds"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, (
        f"the upgrade test needs commit {PREVIOUS_RELEASE} in the repository's history "
        f"(a full clone, or git fetch --unshallow): {made.stderr.strip()}"
    )
    with tarfile.open(archive) as release:
        release.extractall(directory, filter="data")
    return directory


@pytest.fixture
def restored_crds(cluster: Cluster) -> Iterator[None]:
    """This release's CRDs are back on the API server after the test, whatever happened in it."""
    yield
    _apply_crds(cluster, REPO / "crds")


def _apply_crds(cluster: Cluster, crds: Path) -> None:
    applied = subprocess.run(
        [
            str(cluster.kubectl),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "apply",
            "--server-side",
            "--force-conflicts",
            "-k",
            str(crds),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr


def test_an_upgrade_from_the_previous_release_reissues_nothing(
    cluster: Cluster, solo_namespace: str, tmp_path: Path, previous_release: Path, restored_crds: None
) -> None:
    namespace = solo_namespace
    _apply_crds(cluster, previous_release / "crds")
    previous = OperatorProcess(
        cluster.kubeconfig, tmp_path / "previous.log", "--namespace", namespace, source=previous_release
    )
    previous.start()
    try:
        create_object(cluster.api, namespace, "Issuer", "selfsigned", {"selfSigned": {}})
        create_certificate(
            cluster, namespace, "root", "selfsigned", isCA=True, commonName="upgrade root", secretName="root"
        )
        create_object(cluster.api, namespace, "Issuer", "ca", {"ca": {"secretName": "root"}})
        create_secret(cluster, namespace, "p12-password", {"password": b"s3cret"}, kind="Opaque")
        certificates: dict[str, dict[str, Any]] = {
            "ecdsa": {"dnsNames": ["ecdsa.example.com"]},
            "rsa": {
                "dnsNames": ["rsa.example.com"],
                "privateKey": {"algorithm": "RSA", "size": 2048},
                "additionalOutputFormats": [{"type": "DER"}, {"type": "CombinedPEM"}],
            },
            "ed25519": {
                "dnsNames": ["ed.example.com"],
                "privateKey": {"algorithm": "Ed25519", "encoding": "PKCS8"},
            },
            "keystore": {
                "dnsNames": ["keystore.example.com"],
                "keystores": {
                    "pkcs12": {
                        "create": True,
                        "passwordSecretRef": {"name": "p12-password", "key": "password"},
                    }
                },
            },
        }
        for name, spec in certificates.items():
            create_certificate(cluster, namespace, name, "ca", **spec)
        for name in ("root", *certificates):
            wait_ready(cluster, namespace, name, timeout=60)
    finally:
        previous.stop()
    before = _secrets(cluster, namespace)
    assert set(before) >= {"root", *certificates}

    _apply_crds(cluster, REPO / "crds")
    current = OperatorProcess(cluster.kubeconfig, tmp_path / "current.log", "--namespace", namespace)
    current.start()
    try:
        eventually(
            lambda: f"caught up: {len(certificates) + 1} certificates reconciled" in current.log(),
            60,
            "this release's operator to catch up",
        )
        time.sleep(3)
        for name in ("root", *certificates):
            wait_ready(cluster, namespace, name)
        after = _secrets(cluster, namespace)
    finally:
        current.stop()
    assert after == before, "a Secret was rewritten by the upgrade"
    assert "Issued" not in current.log()
    assert "Renewed" not in current.log()


def _secrets(cluster: Cluster, namespace: str) -> dict[str, tuple[str | None, str]]:
    """resourceVersion and certificate of each managed Secret."""
    listed = client.CoreV1Api(cluster.api).list_namespaced_secret(
        namespace, label_selector="certsmith.dev/managed=true"
    )
    return {
        str(secret.metadata.name): (
            secret.metadata.resource_version,
            base64.b64decode((secret.data or {}).get("tls.crt", "")).decode()[:200],
        )
        for secret in listed.items
        if secret.metadata
    }
