"""`certsmith dev`: a local control plane with the CRDs, the operator and a demo certificate chain."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from certsmith.api import GROUP, VERSION
from certsmith.devcluster.build import ControlPlaneBuildError, print_progress
from certsmith.devcluster.controlplane import ControlPlane, ControlPlaneSettings, ControlPlaneStartError
from certsmith.devcluster.processes import ManagedProcess, stop_signals_raise_keyboard_interrupt
from certsmith.devcluster.versions import KUBERNETES_VERSION
from certsmith.kube.client import api_client_from_kubeconfig
from certsmith.kube.crds import install_crds, load_crds

SOURCE_TREE = Path(__file__).resolve().parents[3]
_HEALTH_CHECK_INTERVAL = 1.0
_DEMO_TIMEOUT = 120.0


class DemoError(RuntimeError):
    """The demo did not become Ready; the message lists what is not."""


@dataclass(frozen=True)
class DevOptions:
    crds: Path
    demo: Path
    kubeconfig_out: Path | None = None
    controller_manager: bool = False
    operator: bool = True
    apply_demo: bool = True


def run_dev(options: DevOptions) -> int:
    """Run until Ctrl-C or SIGTERM; everything started is stopped and deleted on the way out."""
    crds = load_crds(options.crds)
    settings = ControlPlaneSettings(controller_manager=options.controller_manager, progress=print_progress)
    try:
        with stop_signals_raise_keyboard_interrupt(), ControlPlane(settings) as cluster:
            api = api_client_from_kubeconfig(cluster.kubeconfig)
            names = install_crds(api, crds)
            print_progress(f"certsmith dev: installed {', '.join(names)}")
            kubeconfig = _publish_kubeconfig(cluster.kubeconfig, options.kubeconfig_out)
            operator = _start_operator(cluster.kubeconfig) if options.operator else None
            try:
                if options.apply_demo:
                    _apply_demo(cluster, options.demo, api, wait=operator is not None)
                print(_instructions(cluster, kubeconfig, options), flush=True)
                while True:
                    cluster.raise_if_crashed()
                    if operator is not None and operator.exit_code() is not None:
                        raise ControlPlaneStartError(f"the operator exited with code {operator.exit_code()}")
                    time.sleep(_HEALTH_CHECK_INTERVAL)
            finally:
                if operator is not None:
                    print_progress("certsmith dev: stopping the operator")
                    operator.stop()
                print_progress("certsmith dev: stopping the control plane")
                if options.kubeconfig_out is not None:
                    options.kubeconfig_out.unlink(missing_ok=True)
    except KeyboardInterrupt:
        print_progress("certsmith dev: stopped; every process and file it started is gone")
        return 0
    except (ControlPlaneBuildError, ControlPlaneStartError, DemoError) as error:
        print(f"certsmith dev: {error}", file=sys.stderr)
        return 1


def _publish_kubeconfig(kubeconfig: Path, out: Path | None) -> Path:
    if out is None:
        return kubeconfig
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kubeconfig, out)
    out.chmod(0o600)
    return out.resolve()


def operator_argv(kubeconfig: Path, *arguments: str) -> list[str]:
    """The command that runs the operator against `kubeconfig`, without a health port, as its own process."""
    return [
        sys.executable,
        "-m",
        "certsmith.cli",
        "run",
        "--kubeconfig",
        str(kubeconfig),
        "--health-port",
        "0",
        *arguments,
    ]


def _start_operator(kubeconfig: Path) -> ManagedProcess:
    print_progress("certsmith dev: starting the operator (its log follows)")
    return ManagedProcess("certsmith-operator", operator_argv(kubeconfig), log_path=None)


def _apply_demo(cluster: ControlPlane, demo: Path, api: client.ApiClient, wait: bool) -> None:
    applied = subprocess.run(
        [str(cluster.binaries.kubectl), "--kubeconfig", str(cluster.kubeconfig), "apply", "-f", str(demo)],
        capture_output=True,
        text=True,
        check=False,
    )
    if applied.returncode != 0:
        raise DemoError(f"kubectl apply -f {demo} failed: {applied.stderr.strip()}")
    print_progress(f"certsmith dev: applied the demo ({demo})")
    if not wait:
        return
    started = time.monotonic()
    objects = client.CustomObjectsApi(api)
    while True:
        listed = objects.list_cluster_custom_object(GROUP, VERSION, "certificates")
        items: list[dict[str, Any]] = listed["items"] if isinstance(listed, dict) else []
        waiting = [
            f"{item['metadata']['namespace']}/{item['metadata']['name']}"
            for item in items
            if not _ready(item)
        ]
        if items and not waiting:
            elapsed = time.monotonic() - started
            print_progress(f"certsmith dev: all {len(items)} demo certificates Ready in {elapsed:.1f}s")
            return
        if time.monotonic() - started > _DEMO_TIMEOUT:
            raise DemoError(f"demo certificates not Ready after {_DEMO_TIMEOUT:.0f}s: {', '.join(waiting)}")
        time.sleep(0.2)


def _ready(item: dict[str, Any]) -> bool:
    status = item.get("status")
    conditions = status.get("conditions", []) if isinstance(status, dict) else []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _instructions(cluster: ControlPlane, kubeconfig: Path, options: DevOptions) -> str:
    kubectl = cluster.binaries.kubectl
    text = f"""
certsmith dev: kube-apiserver {KUBERNETES_VERSION} is ready at {cluster.server}

  export KUBECONFIG={kubeconfig}
  alias kubectl={kubectl}     # kubectl {KUBERNETES_VERSION}, built with the control plane

Try:
  kubectl get certsmith -A
  kubectl explain certificate.spec.privateKey
  kubectl apply -f {SOURCE_TREE / "docs" / "examples" / "invalid"}/   # each rejected, naming the field
"""
    if options.apply_demo:
        text += """  kubectl -n demo describe certificate server
  kubectl -n demo get secret server-tls -o jsonpath='{.data.ca\\.crt}' | base64 -d > /tmp/demo-ca.crt
  kubectl -n demo get secret server-tls -o jsonpath='{.data.tls\\.crt}' | base64 -d > /tmp/demo-server.crt
  openssl verify -CAfile /tmp/demo-ca.crt -untrusted /tmp/demo-server.crt /tmp/demo-server.crt
"""
    if not options.operator:
        text += f"""
The operator is not running (--no-operator). Run it yourself, e.g.:
  certsmith run --kubeconfig {kubeconfig}
"""
    return text + "\nPress Ctrl-C to stop.\n"
