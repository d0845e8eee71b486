"""Fixtures shared by all tests.

Tests under tests/cluster/ get a real API server: by default the local control plane (etcd and
kube-apiserver, built once and cached), or the cluster that `CERTSMITH_TEST_KUBECONFIG` points at
(kind, for example). The CRDs from crds/ are installed before the first test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from certsmith.kube.client import api_client_from_kubeconfig
from certsmith.kube.crds import install_admission_policies, install_crds, load_admission_policies, load_crds
from certsmith_devtools.controlplane import ControlPlane, ControlPlaneSettings
from certsmith_devtools.dev import operator_argv
from certsmith_devtools.gatewayapi import gateway_api_crds
from certsmith_devtools.processes import stop_signals_raise_keyboard_interrupt

REPO = Path(__file__).resolve().parent.parent
EXTERNAL_KUBECONFIG = os.environ.get("CERTSMITH_TEST_KUBECONFIG")


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    api: client.ApiClient
    kubectl: Path


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    with stop_signals_raise_keyboard_interrupt():
        if EXTERNAL_KUBECONFIG:
            kubectl = shutil.which("kubectl")
            assert kubectl, "CERTSMITH_TEST_KUBECONFIG is set: put kubectl on PATH"
            yield _prepared(Path(EXTERNAL_KUBECONFIG), Path(kubectl))
            return
        settings = ControlPlaneSettings(controller_manager=True, progress=print)
        with ControlPlane(settings) as control_plane:
            yield _prepared(control_plane.kubeconfig, control_plane.binaries.kubectl)


def _prepared(kubeconfig: Path, kubectl: Path) -> Cluster:
    api = api_client_from_kubeconfig(kubeconfig)
    install_crds(api, load_crds(REPO / "crds"))
    install_crds(api, gateway_api_crds())  # before the operator: kopf then watches Gateways from its start
    install_admission_policies(api, load_admission_policies(REPO / "crds"))
    return Cluster(kubeconfig, api, kubectl)


class OperatorProcess:
    """`certsmith run` as a separate process, as in production: killable, restartable, logging to a file."""

    def __init__(self, kubeconfig: Path, log_path: Path, *arguments: str, source: Path | None = None) -> None:
        """`source`: run the operator of another source tree (an earlier release: its operator/ first on
        the path, and only the flags it knew, so no metrics or HTTP-01 flags are added)."""
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.arguments = arguments
        self.source = source
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        argv, environment = operator_argv(self.kubeconfig, *self.arguments), None
        if self.source is not None:
            argv = [sys.executable, "-m", "certsmith.cli", "run", "--kubeconfig", str(self.kubeconfig)]
            argv += ["--health-port", "0", *self.arguments]
            environment = {**os.environ, "PYTHONPATH": str(self.source / "operator")}
        self._process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.source or REPO,
            env=environment,
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self._process is not None, "not running"
        return self._process.pid

    @property
    def exit_code(self) -> int | None:
        """None while it runs (or was never started)."""
        return None if self._process is None else self._process.poll()

    def kill(self) -> None:
        """SIGKILL: no clean-up, no last writes."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


OPERATOR_ARGUMENTS = ("--backoff-initial", "1s", "--backoff-max", "8s", "--namespace", "!solo-*")
"""The shared operator retries quickly, so tests of back-off take seconds; `solo-*` namespaces are
left to operators that tests start themselves."""


@pytest.fixture(scope="session")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        cluster.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log", *OPERATOR_ARGUMENTS
    )
    process.start()
    yield process
    process.stop()
    print(f"operator log: {process.log_path}")
    assert_no_key_material(process.log(), "the operator's log")
    events = client.CoreV1Api(cluster.api).list_event_for_all_namespaces().items
    assert_no_key_material("\n".join(event.message or "" for event in events), "Events")


def assert_no_key_material(text: str, where: str) -> None:
    """Private keys are never logged or posted: no PEM block of any kind, no `tls.key` data."""
    assert "-----BEGIN" not in text, f"PEM material in {where}"
    assert "PRIVATE KEY" not in text, f"private key material in {where}"


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    with fresh_namespace(cluster, "test") as name:
        yield name


@pytest.fixture
def solo_namespace(cluster: Cluster) -> Iterator[str]:
    """A namespace the shared operator ignores, for tests that run an operator of their own."""
    with fresh_namespace(cluster, "solo") as name:
        yield name


@contextlib.contextmanager
def fresh_namespace(cluster: Cluster, prefix: str) -> Iterator[str]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(cluster.api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
