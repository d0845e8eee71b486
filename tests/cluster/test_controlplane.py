"""The local control plane: starts fast from the cache, serves, and never leaves a process or file behind.

These tests start control planes of their own (besides the session's), so they always exercise the
local one, also when CERTSMITH_TEST_KUBECONFIG points the other tests at an external cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from certsmith.kube.client import api_client_from_kubeconfig
from certsmith_devtools.build import ensure_binaries
from certsmith_devtools.controlplane import ControlPlane, ControlPlaneSettings
from certsmith_devtools.versions import KUBERNETES_VERSION
from tests.conftest import REPO

WARM_START_BUDGET_SECONDS = 15.0

_OWNER_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from certsmith_devtools.controlplane import ControlPlane
    from certsmith_devtools.processes import stop_signals_raise_keyboard_interrupt
    try:
        with stop_signals_raise_keyboard_interrupt(), ControlPlane() as cp:
            print(json.dumps({"pids": cp.pids, "directory": str(cp.directory)}), flush=True)
            time.sleep(600)
    except KeyboardInterrupt:
        sys.exit(0)
""")


def _running(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped by init) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [pid for pid in pids if _running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


@pytest.fixture
def owner_process() -> Iterator[tuple[subprocess.Popen[str], list[int], Path]]:
    """A separate Python process running a control plane: yields it, the component pids, its directory."""
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER_SCRIPT],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert owner.stdout is not None
    started = json.loads(owner.stdout.readline())
    yield owner, started["pids"], Path(started["directory"])
    owner.kill()
    owner.wait()


def test_warm_start_serves_quickly_and_stop_leaves_nothing() -> None:
    ensure_binaries()
    began = time.monotonic()
    with ControlPlane() as control_plane:
        ready_after = time.monotonic() - began
        pids, directory = control_plane.pids, control_plane.directory
        version = client.VersionApi(api_client_from_kubeconfig(control_plane.kubeconfig)).get_code()
        assert version.git_version == KUBERNETES_VERSION
        assert len(pids) == 2
        assert all(_running(pid) for pid in pids)
    print(f"warm start to /readyz: {ready_after:.1f}s")
    assert ready_after < WARM_START_BUDGET_SECONDS
    assert not [pid for pid in pids if _running(pid)]
    assert not directory.exists()


def test_sigterm_to_the_owner_stops_every_component(
    owner_process: tuple[subprocess.Popen[str], list[int], Path],
) -> None:
    owner, pids, directory = owner_process
    owner.send_signal(signal.SIGTERM)
    assert owner.wait(timeout=30) == 0
    assert _wait_gone(pids, timeout=1) == []
    assert not directory.exists()


def test_sigkill_of_the_owner_still_kills_every_component(
    owner_process: tuple[subprocess.Popen[str], list[int], Path],
) -> None:
    owner, pids, directory = owner_process
    owner.send_signal(signal.SIGKILL)
    owner.wait(timeout=30)
    assert _wait_gone(pids) == []
    assert directory.exists(), "nobody was left to delete it"
    with ControlPlane():
        assert not directory.exists(), "the next control plane removes an abandoned directory"


def test_controller_manager_collects_owned_objects() -> None:
    with ControlPlane(ControlPlaneSettings(controller_manager=True)) as control_plane:
        assert len(control_plane.pids) == 3
        core = client.CoreV1Api(api_client_from_kubeconfig(control_plane.kubeconfig))
        owner = core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
        )
        assert owner.metadata
        assert owner.metadata.uid
        reference = client.V1OwnerReference(
            api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
        )
        core.create_namespaced_config_map(
            "default",
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dependent", owner_references=[reference])),
        )
        core.delete_namespaced_config_map("owner", "default")
        deadline = time.monotonic() + 60
        while "dependent" in {
            c.metadata and c.metadata.name for c in core.list_namespaced_config_map("default").items
        }:
            assert time.monotonic() < deadline, "the garbage collector did not delete the dependent"
            time.sleep(0.2)


def test_certsmith_dev_serves_the_crds_until_interrupted(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "dev.kubeconfig"
    dev = subprocess.Popen(
        [sys.executable, "-m", "certsmith.cli", "dev", "--kubeconfig-out", str(kubeconfig)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "operator")},
    )
    try:
        assert dev.stdout is not None
        output = []
        for line in dev.stdout:
            output.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        assert f"export KUBECONFIG={kubeconfig}" in "".join(output)
        extensions = client.ApiextensionsV1Api(api_client_from_kubeconfig(kubeconfig))
        names = {
            crd.metadata and crd.metadata.name for crd in extensions.list_custom_resource_definition().items
        }
        assert {
            "certificates.certsmith.dev",
            "issuers.certsmith.dev",
            "clusterissuers.certsmith.dev",
        } <= names
        dev.send_signal(signal.SIGINT)
        try:
            remaining, _ = dev.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            dev.kill()
            remaining, _ = dev.communicate()
            pytest.fail(
                f"certsmith dev did not stop within 60s of SIGINT; its output ends:\n{remaining[-3000:]}"
            )
        assert dev.returncode == 0, remaining
        assert "every process and file it started is gone" in remaining
        assert not kubeconfig.exists()
    finally:
        if dev.poll() is None:  # a failed assertion must not leave it running; its children die with it
            dev.kill()
            dev.wait()
