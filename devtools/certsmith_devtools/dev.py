"""`certsmith dev`: a local control plane with the CRDs, the operator and a demo certificate chain."""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client

from certsmith.api import GROUP, VERSION
from certsmith.kube.client import api_client_from_kubeconfig
from certsmith.kube.crds import CRDNotEstablishedError, wait_until_served
from certsmith_devtools.build import ControlPlaneBuildError, print_progress
from certsmith_devtools.controlplane import ControlPlane, ControlPlaneSettings, ControlPlaneStartError
from certsmith_devtools.kit import free_port, not_ready
from certsmith_devtools.paths import INVALID_EXAMPLES, MONITORING_RULES
from certsmith_devtools.pebble import PROFILES, Pebble
from certsmith_devtools.processes import ManagedProcess, stop_signals_raise_keyboard_interrupt
from certsmith_devtools.prometheus import Prometheus, PrometheusNotFoundError
from certsmith_devtools.versions import KUBERNETES_VERSION

_HEALTH_CHECK_INTERVAL = 1.0
_RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Waits before restarting an operator that exited: growing, then every 30 s for as long as it takes."""
_STABLE_AFTER = 60.0
"""An operator that ran this long before exiting starts the back-off afresh."""


@dataclass(frozen=True)
class DevOptions:
    install: Path
    demo: Path
    kubeconfig_out: Path | None = None
    controller_manager: bool = False
    operator: bool = True
    apply_demo: bool = True
    demo_timeout: float = 120.0
    metrics_port: int = 9402
    monitoring: bool = False
    acme: bool = False


def run_dev(options: DevOptions) -> int:
    """Run until Ctrl-C or SIGTERM; everything started is stopped and deleted on the way out."""
    settings = ControlPlaneSettings(controller_manager=options.controller_manager, progress=print_progress)
    try:
        with stop_signals_raise_keyboard_interrupt(), ControlPlane(settings) as cluster:
            api = api_client_from_kubeconfig(cluster.kubeconfig)
            names = _install(cluster, api, options.install)
            print_progress(f"certsmith dev: installed {options.install} ({', '.join(names)} served)")
            kubeconfig = _publish_kubeconfig(cluster.kubeconfig, options.kubeconfig_out)
            monitoring = contextlib.ExitStack()
            pebble = monitoring.enter_context(_pebble(cluster)) if options.acme else None
            arguments = _metrics_arguments(options.metrics_port)
            if pebble is not None:
                arguments += [
                    "--acme-http01-port",
                    str(pebble.http01_port),
                    "--acme-http01-address",
                    "127.0.0.1",
                ]
            operator = _SupervisedOperator(cluster.kubeconfig, arguments) if options.operator else None
            try:
                if pebble is not None:
                    _create_pebble_issuer(api, pebble)
                prometheus = (
                    monitoring.enter_context(_prometheus(cluster, options.metrics_port))
                    if options.monitoring
                    else None
                )
                demo = _apply_demo(cluster, options.demo) if options.apply_demo else []
                if demo and operator is not None:
                    _wait_for_demo(api, demo, options.demo_timeout, cluster, operator)
                print(_instructions(cluster, kubeconfig, options, prometheus, pebble), flush=True)
                while True:
                    cluster.raise_if_crashed()
                    if operator is not None:
                        operator.check()
                    time.sleep(_HEALTH_CHECK_INTERVAL)
            finally:
                if operator is not None:
                    print_progress("certsmith dev: stopping the operator")
                    operator.stop()
                monitoring.close()
                print_progress("certsmith dev: stopping the control plane")
                if options.kubeconfig_out is not None:
                    options.kubeconfig_out.unlink(missing_ok=True)
    except KeyboardInterrupt:
        print_progress("certsmith dev: stopped; every process and file it started is gone")
        return 0
    except (ControlPlaneBuildError, ControlPlaneStartError) as error:
        print(f"certsmith dev: {error}", file=sys.stderr)
        return 1


def _install(cluster: ControlPlane, api: client.ApiClient, manifest: Path) -> list[str]:
    """Install what deploy/ installs, as its users do (`kubectl apply --server-side`, field manager
    kubectl): the CRDs, the approval and CA policies, the namespace, RBAC, and the operator's
    Deployment, which stays inert here (no kubelet; the operator runs as a local process). Then wait
    until the CRDs are served. Returns their names."""
    kubectl = [str(cluster.binaries.kubectl), "--kubeconfig", str(cluster.kubeconfig)]
    applied = subprocess.run(
        [*kubectl, "apply", "--server-side", "-f", str(manifest)], capture_output=True, text=True, check=False
    )
    if applied.returncode != 0:
        raise ControlPlaneStartError(
            f"kubectl apply --server-side -f {manifest} failed: {applied.stderr.strip()}"
        )
    crds = [
        document
        for document in yaml.safe_load_all(manifest.read_text())
        if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition"
    ]
    try:
        return wait_until_served(api, crds)
    except CRDNotEstablishedError as error:
        raise ControlPlaneStartError(str(error)) from None


def _publish_kubeconfig(kubeconfig: Path, out: Path | None) -> Path:
    if out is None:
        return kubeconfig
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kubeconfig, out)
    out.chmod(0o600)
    return out.resolve()


def operator_argv(kubeconfig: Path, *arguments: str) -> list[str]:
    """The command that runs the operator against `kubeconfig` as its own process, without a health,
    metrics or HTTP-01 port (several run at once in the tests) unless `arguments` ask for them."""
    return [
        sys.executable,
        "-m",
        "certsmith.cli",
        "run",
        "--kubeconfig",
        str(kubeconfig),
        "--health-port",
        "0",
        "--metrics-port",
        "0",
        "--acme-http01-port",
        "0",
        *arguments,
    ]


class _SupervisedOperator:
    """The operator as a child process, restarted with a bounded back-off whenever it exits: the
    cluster and its data outlive any crash of the operator."""

    def __init__(self, kubeconfig: Path, arguments: list[str]) -> None:
        self._kubeconfig = kubeconfig
        self._arguments = arguments
        self._restarts = 0
        self._restart_at: float | None = None
        print_progress("certsmith dev: starting the operator (its log follows)")
        self._process = self._start()

    def _start(self) -> ManagedProcess:
        self._started = time.monotonic()
        return ManagedProcess(
            "certsmith-operator", operator_argv(self._kubeconfig, *self._arguments), log_path=None
        )

    def check(self) -> None:
        """Restart the operator if it has exited and its back-off has passed."""
        now = time.monotonic()
        if self._restart_at is None:
            code = self._process.exit_code()
            if code is None:
                return
            if now - self._started >= _STABLE_AFTER:
                self._restarts = 0
            delay = _RESTART_DELAYS[min(self._restarts, len(_RESTART_DELAYS) - 1)]
            self._restarts += 1
            self._restart_at = now + delay
            print_progress(
                f"certsmith dev: the operator exited with code {code} (its log is above); the cluster keeps "
                f"running; restarting the operator in {delay:.0f}s (restart {self._restarts})"
            )
            return
        if now >= self._restart_at:
            self._restart_at = None
            print_progress("certsmith dev: restarting the operator")
            self._process = self._start()

    def stop(self) -> None:
        self._process.stop()


def _metrics_arguments(port: int) -> list[str]:
    return ["--metrics-port", str(port), "--metrics-address", "127.0.0.1"]


def _prometheus(cluster: ControlPlane, metrics_port: int) -> Prometheus:
    """Prometheus on loopback, scraping the operator every 5 s with certsmith's alert rules loaded."""
    if not metrics_port:
        raise ControlPlaneStartError("--monitoring needs the operator's metrics: drop --metrics-port 0")
    try:
        return Prometheus(
            cluster.directory / "prometheus",
            f"127.0.0.1:{metrics_port}",
            MONITORING_RULES,
            interval_seconds=5,
        )
    except PrometheusNotFoundError as error:
        raise ControlPlaneStartError(str(error)) from None


def _pebble(cluster: ControlPlane) -> Pebble:
    """Pebble on loopback with a DNS server answering 127.0.0.1 for every name, so any name validates
    through the operator's HTTP-01 solver."""
    return Pebble(cluster.directory / "pebble", free_port())


def _create_pebble_issuer(api: client.ApiClient, pebble: Pebble) -> None:
    """The ClusterIssuer "pebble": ACME against the local Pebble, HTTP-01."""
    client.CustomObjectsApi(api).create_cluster_custom_object(
        GROUP,
        VERSION,
        "clusterissuers",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ClusterIssuer",
            "metadata": {"name": "pebble"},
            "spec": {
                "acme": {
                    "server": pebble.url,
                    "email": "dev@example.com",
                    "privateKeySecretRef": {"name": "pebble-account"},
                    "caBundle": base64.b64encode(pebble.ca_bundle).decode(),
                    "solvers": [{"http01": {"ingress": {}}}],
                }
            },
        },
    )
    print_progress(f"certsmith dev: created ClusterIssuer pebble (ACME at {pebble.url}, HTTP-01)")


def _apply_demo(cluster: ControlPlane, demo: Path) -> list[tuple[str, str]]:
    """Apply the demo; (namespace, name) of its Certificates. A demo that cannot be applied is
    reported, not fatal: the cluster is what `certsmith dev` is for."""
    applied = subprocess.run(
        [str(cluster.binaries.kubectl), "--kubeconfig", str(cluster.kubeconfig), "apply", "-f", str(demo)],
        capture_output=True,
        text=True,
        check=False,
    )
    if applied.returncode != 0:
        print_progress(
            f"certsmith dev: kubectl apply -f {demo} failed, the demo is skipped: {applied.stderr.strip()}"
        )
        return []
    print_progress(f"certsmith dev: applied the demo ({demo})")
    return demo_certificates(demo.read_text())


def demo_certificates(manifests: str) -> list[tuple[str, str]]:
    """(namespace, name) of each Certificate in a multi-document manifest."""
    return [
        ((document.get("metadata") or {}).get("namespace", "default"), document["metadata"]["name"])
        for document in yaml.safe_load_all(manifests)
        if isinstance(document, dict) and document.get("kind") == "Certificate"
    ]


def _wait_for_demo(
    api: client.ApiClient,
    demo: list[tuple[str, str]],
    timeout: float,
    cluster: ControlPlane,
    operator: _SupervisedOperator,
) -> None:
    """Wait until the demo's own Certificates are Ready; after `timeout` seconds, say which are not
    and why, and carry on: a slow or failing demo never stops the cluster."""
    started = time.monotonic()
    while True:
        waiting = not_ready(api, demo)
        elapsed = time.monotonic() - started
        if not waiting:
            print_progress(f"certsmith dev: all {len(demo)} demo certificates Ready in {elapsed:.1f}s")
            return
        if elapsed > timeout:
            details = "; ".join(f"{name}: {why}" for name, why in waiting.items())
            print_progress(
                f"certsmith dev: demo certificates not Ready after {timeout:.0f}s ({details}); "
                f"the cluster keeps running"
            )
            return
        cluster.raise_if_crashed()
        operator.check()
        time.sleep(0.2)


def _instructions(
    cluster: ControlPlane,
    kubeconfig: Path,
    options: DevOptions,
    prometheus: Prometheus | None,
    pebble: Pebble | None,
) -> str:
    kubectl = cluster.binaries.kubectl
    text = f"""
certsmith dev: kube-apiserver {KUBERNETES_VERSION} is ready at {cluster.server}

  export KUBECONFIG={kubeconfig}
  alias kubectl={kubectl}     # kubectl {KUBERNETES_VERSION}, built with the control plane

Try:
  kubectl get certsmith -A
  certsmith status -A                     # or kubectl certsmith status -A
  kubectl explain certificate.spec.privateKey
  kubectl apply -f {INVALID_EXAMPLES}/   # each rejected, naming the field
"""
    if options.apply_demo:
        text += """  certsmith status server -n demo         # its story, and what the operator would do now
  kubectl -n demo describe certificate server
  kubectl -n demo get secret server-tls -o jsonpath='{.data.ca\\.crt}' | base64 -d > /tmp/demo-ca.crt
  kubectl -n demo get secret server-tls -o jsonpath='{.data.tls\\.crt}' | base64 -d > /tmp/demo-server.crt
  openssl verify -CAfile /tmp/demo-ca.crt -untrusted /tmp/demo-server.crt /tmp/demo-server.crt
"""
    if options.operator and options.metrics_port:
        text += f"""
Metrics: http://127.0.0.1:{options.metrics_port}/metrics
"""
    if prometheus is not None:
        text += f"""Prometheus: {prometheus.url}  (alerts: {prometheus.url}/alerts, try the query
  (certsmith_certificate_not_after_timestamp_seconds - time()) / 86400)
"""
    if pebble is not None:
        text += f"""
ACME: Pebble at {pebble.url}, ClusterIssuer "pebble" (HTTP-01; every name resolves to 127.0.0.1):
  kubectl create namespace acme
  kubectl -n acme apply -f - <<EOF
  {{"apiVersion": "{GROUP}/{VERSION}", "kind": "Certificate", "metadata": {{"name": "any"}},
   "spec": {{"secretName": "any-tls", "dnsNames": ["any.name.you.like"],
            "issuerRef": {{"name": "pebble", "kind": "ClusterIssuer"}}}}}}
  EOF
  kubectl -n acme get certificate any -o yaml     # status.acme.order while the order runs
  Pebble offers the profiles {", ".join(sorted(PROFILES))} and picks one at random for an issuer
  that names none; to order 160-hour certificates:
  kubectl patch clusterissuer pebble --type merge -p '{{"spec": {{"acme": {{"profile": "shortlived"}}}}}}'
"""
    if not options.operator:
        text += f"""
The operator is not running (--no-operator). Run it yourself, e.g.:
  certsmith run --kubeconfig {kubeconfig}
"""
    return text + "\nPress Ctrl-C to stop.\n"
