"""The operator image, built from the Dockerfile here, run as a container the way a cluster runs it:
its ServiceAccount's token only, a read-only root filesystem, a non-root user, no capabilities."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from certsmith_devtools.image import ensure_image
from certsmith_devtools.kit import create_object
from tests.cluster.support import (
    HTTP_403,
    apply_deploy,
    ca_secret,
    create_certificate,
    service_account_kubeconfig,
    wait_ready,
)
from tests.conftest import REPO, Cluster

UID = "65532"


@pytest.fixture(scope="module")
def image() -> str:
    return ensure_image(REPO)


def _docker(*arguments: str) -> str:
    done = subprocess.run(["docker", *arguments], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def container(cluster: Cluster, solo_namespace: str, tmp_path: Path, image: str) -> Iterator[str]:
    apply_deploy(cluster)
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "kubeconfig")
    kubeconfig.chmod(0o644)
    name = f"certsmith-test-{uuid.uuid4().hex[:8]}"
    _docker(
        "run",
        "--detach",
        "--name",
        name,
        "--label",
        "certsmith-test=1",
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/tmp",  # noqa: S108 -- the container's own, as an emptyDir in a Pod
        "--user",
        f"{UID}:{UID}",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--volume",
        f"{kubeconfig}:/etc/certsmith/kubeconfig:ro",
        image,
        "run",
        "--kubeconfig",
        "/etc/certsmith/kubeconfig",
        "--namespace",
        solo_namespace,
        "--health-port",
        "0",
        "--metrics-port",
        "0",
    )
    try:
        yield name
    finally:
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=False)
        print((logs.stdout + logs.stderr)[-3000:])
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, check=False)


def test_the_image_runs_as_its_service_account_read_only_and_unprivileged(
    cluster: Cluster, solo_namespace: str, container: str, image: str
) -> None:
    create_object(cluster.api, solo_namespace, "Issuer", "selfsigned", {"selfSigned": {}})
    create_certificate(cluster, solo_namespace, "from-container", "selfsigned", dnsNames=["c.example.com"])
    ca_secret(cluster, solo_namespace)
    create_object(cluster.api, solo_namespace, "Issuer", "ca", {"ca": {"secretName": "rbac-ca"}})
    create_certificate(cluster, solo_namespace, "ca-leaf", "ca", dnsNames=["l.example.com"])
    wait_ready(cluster, solo_namespace, "from-container", timeout=60)
    wait_ready(cluster, solo_namespace, "ca-leaf", timeout=60)
    time.sleep(1)
    logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True, check=False)
    output = logs.stdout + logs.stderr
    assert "Forbidden" not in output
    assert not HTTP_403.search(output), output[-3000:]
    pid = _docker("inspect", "--format", "{{.State.Pid}}", container)
    status = Path(f"/proc/{pid}/status").read_text()
    assert f"Uid:\t{UID}" in status
    assert "CapEff:\t0000000000000000" in status
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) // 1024
    size = int(_docker("image", "inspect", "--format", "{{.Size}}", image)) // 1_000_000
    print(f"image {image}: {size} MB; the operator's peak RSS in it: {rss} MiB")


def test_the_image_holds_the_operator_and_not_the_dev_tooling(image: str) -> None:
    listed = _docker(
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        "ls /opt/certsmith/lib/python3*/site-packages/certsmith; "
        "ls /opt/certsmith/lib/python3*/site-packages"
        " | grep -ciE '^(pytest|mypy|ruff|hypothesis|pip|certsmith_devtools)' || true; "
        "command -v gcc cc go || true",
    )
    assert "runtime.py" in listed
    assert listed.splitlines()[-1] == "0", "no dev tooling, test tools or installers in the image"


def test_the_image_runs_the_certsmith_command(image: str) -> None:
    """The entrypoint is `certsmith`, with `run` as its default arguments (deploy/ gives `run` and its
    flags); any other command runs in its place."""
    assert _docker("run", "--rm", image, "version") == "certsmith 0.1.0"
    configuration = "{{json .Config.Entrypoint}} {{json .Config.Cmd}}"
    configured = _docker("image", "inspect", "--format", configuration, image)
    assert configured == '["/opt/certsmith/bin/certsmith"] ["run"]'
