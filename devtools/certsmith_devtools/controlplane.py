"""A real, throw-away Kubernetes control plane on loopback: etcd + kube-apiserver (+ controller-manager).

The same approach as controller-runtime's envtest: no nodes, no kubelet, just the API machinery an
operator talks to, with RBAC on so that permissions are tested for real.
"""

from __future__ import annotations

import base64
import http.client
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import yaml

from certsmith_devtools.build import Binaries, Progress, ensure_binaries
from certsmith_devtools.credentials import CredentialFiles, write_credentials
from certsmith_devtools.kit import free_port
from certsmith_devtools.processes import ManagedProcess

_POLL_INTERVAL = 0.1
_DIRECTORY_PREFIX = "certsmith-controlplane-"
_OWNER_FILE = "owner.pid"
CONTEXT_NAME = "certsmith-dev"


class ControlPlaneStartError(RuntimeError):
    """A component did not come up; the message carries the tail of its log."""


@dataclass(frozen=True)
class ControlPlaneSettings:
    """How to run the local control plane.

    cache_dir: where built binaries are kept (default: see `build.default_cache_dir`).
    controller_manager: also run kube-controller-manager with only the garbage-collector and
        namespace controllers, for ownerReference clean-up and namespace deletion.
    ready_timeout: seconds to wait for each component to report ready.
    progress: receives one-line progress messages (building, starting...).
    """

    cache_dir: Path | None = None
    controller_manager: bool = False
    ready_timeout: float = 60.0
    progress: Progress | None = field(default=None, compare=False)


class ControlPlane:
    """Start with `with ControlPlane() as cp:`; `cp.kubeconfig` is an admin kubeconfig for it.

    Everything it starts is stopped and its directory removed on exit, whatever the reason.
    """

    def __init__(self, settings: ControlPlaneSettings | None = None) -> None:
        self.settings = settings or ControlPlaneSettings()
        self._processes: list[ManagedProcess] = []
        self._directory: Path | None = None
        self._server: str | None = None
        self._binaries: Binaries | None = None
        self._admin_context: ssl.SSLContext | None = None
        self._port = 0

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def directory(self) -> Path:
        """The private directory holding credentials, data and logs."""
        if self._directory is None:
            raise RuntimeError("the control plane is not running")
        return self._directory

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def server(self) -> str:
        if self._server is None:
            raise RuntimeError("the control plane is not running")
        return self._server

    @property
    def binaries(self) -> Binaries:
        if self._binaries is None:
            raise RuntimeError("the control plane has not been started")
        return self._binaries

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes]

    def admin_get(self, path: str) -> bytes:
        """GET `path` from the API server as the admin (for /metrics, /readyz and such)."""
        if self._admin_context is None:
            raise RuntimeError("the control plane is not running")
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self._port, context=self._admin_context, timeout=30
        )
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
            return body
        finally:
            connection.close()

    def raise_if_crashed(self) -> None:
        """Raise ControlPlaneStartError if a component has exited since it started."""
        for process in self._processes:
            code = process.exit_code()
            if code is not None:
                raise ControlPlaneStartError(
                    f"{process.name} exited with code {code}. Last lines of its log:\n{process.log_tail()}"
                )

    def start(self) -> None:
        binaries = self._binaries = ensure_binaries(self.settings.cache_dir, self.settings.progress)
        started = time.monotonic()
        _remove_abandoned_directories()
        self._directory = Path(tempfile.mkdtemp(prefix=_DIRECTORY_PREFIX))
        (self._directory / _OWNER_FILE).write_text(str(os.getpid()))
        try:
            credentials = write_credentials(self.directory)
            etcd_url = self._start_etcd(binaries)
            self._server = self._start_apiserver(binaries, credentials, etcd_url)
            write_kubeconfig(self.kubeconfig, self.server, credentials)
            if self.settings.controller_manager:
                self._start_controller_manager(binaries)
        except BaseException:
            self.stop()
            raise
        if self.settings.progress:
            self.settings.progress(f"certsmith: control plane ready in {time.monotonic() - started:.1f}s")

    def stop(self) -> None:
        """Stop components in reverse start order and delete the directory. Safe to call twice."""
        while self._processes:
            self._processes.pop().stop()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
            self._server = None
            self._admin_context = None

    def _start_etcd(self, binaries: Binaries) -> str:
        client_port, peer_port = free_port(), free_port()
        client_url, peer_url = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
        etcd = self._launch(
            "etcd",
            [
                str(binaries.etcd),
                "--name=default",
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=8589934592",  # room for 100,000 Certificates, Secrets and Events
                "--log-level=warn",
            ],
        )
        self._wait_until(
            etcd, lambda: _http_ok(http.client.HTTPConnection("127.0.0.1", client_port), "/health")
        )
        return client_url

    def _start_apiserver(self, binaries: Binaries, credentials: CredentialFiles, etcd_url: str) -> str:
        port = free_port()
        server = f"https://127.0.0.1:{port}"
        apiserver = self._launch(
            "kube-apiserver",
            [
                str(binaries.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # Kubernetes 1.37 refuses a loopback address for the `kubernetes` Service's endpoints; no
                # Pod runs here to use that Service, so nothing maintains its endpoints.
                "--endpoint-reconciler-type=none",
                f"--secure-port={port}",
                f"--cert-dir={self.directory / 'apiserver-certs'}",
                f"--tls-cert-file={credentials.serving_cert}",
                f"--tls-private-key-file={credentials.serving_key}",
                f"--client-ca-file={credentials.ca_cert}",
                f"--service-account-issuer={server}",
                f"--service-account-key-file={credentials.service_account_public_key}",
                f"--service-account-signing-key-file={credentials.service_account_key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                "--v=0",
            ],
        )
        context = ssl.create_default_context(cafile=str(credentials.ca_cert))
        context.load_cert_chain(str(credentials.admin_cert), str(credentials.admin_key))
        self._admin_context, self._port = context, port
        self._wait_until(
            apiserver,
            lambda: _http_ok(http.client.HTTPSConnection("127.0.0.1", port, context=context), "/readyz"),
        )
        return server

    def _start_controller_manager(self, binaries: Binaries) -> None:
        self._launch(
            "kube-controller-manager",
            [
                str(binaries.kube_controller_manager),
                f"--kubeconfig={self.kubeconfig}",
                "--controllers=garbage-collector-controller,namespace-controller",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=0",
            ],
        )

    def _launch(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.directory / f"{name}.log")
        self._processes.append(process)
        return process

    def _wait_until(self, process: ManagedProcess, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.settings.ready_timeout
        while not ready():
            code = process.exit_code()
            if code is not None:
                raise ControlPlaneStartError(
                    f"{process.name} exited with code {code} while starting. "
                    f"Last lines of its log:\n{process.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ControlPlaneStartError(
                    f"{process.name} was not ready after {self.settings.ready_timeout:.0f}s. "
                    f"Last lines of its log:\n{process.log_tail()}"
                )
            time.sleep(_POLL_INTERVAL)


def write_kubeconfig(path: Path, server: str, credentials: CredentialFiles) -> None:
    """A self-contained admin kubeconfig (certificates embedded), readable only by the current user."""

    def embedded(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT_NAME,
                "cluster": {"server": server, "certificate-authority-data": embedded(credentials.ca_cert)},
            }
        ],
        "users": [
            {
                "name": f"{CONTEXT_NAME}-admin",
                "user": {
                    "client-certificate-data": embedded(credentials.admin_cert),
                    "client-key-data": embedded(credentials.admin_key),
                },
            }
        ],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {"cluster": CONTEXT_NAME, "user": f"{CONTEXT_NAME}-admin", "namespace": "default"},
            }
        ],
        "current-context": CONTEXT_NAME,
    }
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _remove_abandoned_directories() -> None:
    """Delete the directories of control planes whose owner was SIGKILLed (the kernel stopped the
    components, see `processes`, but nobody was left to delete the files)."""
    for directory in Path(tempfile.gettempdir()).glob(f"{_DIRECTORY_PREFIX}*"):
        try:
            owner = int((directory / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not Path(f"/proc/{owner}").exists():
            shutil.rmtree(directory, ignore_errors=True)


def _http_ok(connection: http.client.HTTPConnection, path: str) -> bool:
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()
