"""The `certsmith` command."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from certsmith import __version__
from certsmith.devcluster import (
    ETCD_VERSION,
    KUBERNETES_VERSION,
    ControlPlane,
    ControlPlaneBuildError,
    ControlPlaneSettings,
    ControlPlaneStartError,
    sigterm_raises_keyboard_interrupt,
)
from certsmith.kube.client import api_client_from_kubeconfig
from certsmith.kube.crds import install_crds, load_crds

_SOURCE_TREE_CRDS = Path(__file__).resolve().parents[2] / "crds"
_SOURCE_TREE_EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
_HEALTH_CHECK_INTERVAL = 1.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    command: int = arguments.handler(arguments)
    return command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="certsmith", description="Kubernetes certificate operator.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    dev = commands.add_parser(
        "dev",
        help="run a local control plane with certsmith's CRDs installed",
        description=(
            f"Start etcd {ETCD_VERSION} and kube-apiserver {KUBERNETES_VERSION} on loopback (built with Go "
            "on first use and cached), install certsmith's CRDs and wait until Ctrl-C or SIGTERM, "
            "then stop everything and delete its files."
        ),
    )
    dev.add_argument(
        "--kubeconfig-out",
        type=Path,
        metavar="FILE",
        help="also write the admin kubeconfig to FILE (deleted again on exit, as the cluster is gone)",
    )
    dev.add_argument(
        "--crds",
        type=Path,
        default=_SOURCE_TREE_CRDS,
        metavar="DIR",
        help="directory of CRD manifests to install (default: %(default)s)",
    )
    dev.add_argument(
        "--controller-manager",
        action="store_true",
        help="also run kube-controller-manager (garbage collector and namespace controllers)",
    )
    dev.set_defaults(handler=_dev)

    version = commands.add_parser("version", help="print certsmith's version and the control-plane versions")
    version.set_defaults(handler=_version)
    return parser


def _version(arguments: argparse.Namespace) -> int:
    print(
        f"certsmith {__version__} "
        f"(local control plane: kube-apiserver {KUBERNETES_VERSION}, etcd {ETCD_VERSION})"
    )
    return 0


def _dev(arguments: argparse.Namespace) -> int:
    crds_dir: Path = arguments.crds
    if not crds_dir.is_dir():
        print(f"certsmith dev: CRD directory {crds_dir} does not exist; pass --crds DIR", file=sys.stderr)
        return 2
    crds = load_crds(crds_dir)
    settings = ControlPlaneSettings(controller_manager=arguments.controller_manager, progress=_progress)
    kubeconfig_out: Path | None = arguments.kubeconfig_out
    try:
        with sigterm_raises_keyboard_interrupt(), ControlPlane(settings) as cluster:
            started = time.monotonic()
            api = api_client_from_kubeconfig(cluster.kubeconfig)
            names = install_crds(api, crds)
            kubeconfig = cluster.kubeconfig
            if kubeconfig_out is not None:
                kubeconfig_out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cluster.kubeconfig, kubeconfig_out)
                kubeconfig_out.chmod(0o600)
                kubeconfig = kubeconfig_out.resolve()
            _progress(f"certsmith dev: installed {', '.join(names)} in {time.monotonic() - started:.1f}s")
            print(_instructions(cluster, kubeconfig), flush=True)
            try:
                while True:
                    cluster.raise_if_crashed()
                    time.sleep(_HEALTH_CHECK_INTERVAL)
            finally:
                if kubeconfig_out is not None:
                    kubeconfig_out.unlink(missing_ok=True)
    except KeyboardInterrupt:
        _progress("certsmith dev: stopped; every process and file it started is gone")
        return 0
    except (ControlPlaneBuildError, ControlPlaneStartError) as error:
        print(f"certsmith dev: {error}", file=sys.stderr)
        return 1


def _instructions(cluster: ControlPlane, kubeconfig: Path) -> str:
    kubectl = cluster.binaries.kubectl
    return f"""
certsmith dev: kube-apiserver {KUBERNETES_VERSION} is ready at {cluster.server}

  export KUBECONFIG={kubeconfig}
  alias kubectl={kubectl}     # kubectl {KUBERNETES_VERSION}, built with the control plane

Try:
  kubectl get crds
  kubectl explain certificate.spec.privateKey
  kubectl apply -f {_SOURCE_TREE_EXAMPLES}
  kubectl get certificates,issuers,clusterissuers -A
  kubectl apply -f {_SOURCE_TREE_EXAMPLES / "invalid"}/    # each is rejected with the field to fix

Press Ctrl-C to stop.
"""


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
