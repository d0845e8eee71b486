"""`certsmith dev`, added to the `certsmith` command through the entry point group `certsmith.commands`.

This module is loaded whenever `certsmith` builds its parser, so it imports nothing heavier than
argparse: the control plane and the harness load only when `certsmith dev` runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_dev_command(commands: Any) -> None:  # noqa: ANN401 -- argparse's private subparsers action
    dev: argparse.ArgumentParser = commands.add_parser(
        "dev",
        help="run a local control plane with certsmith's CRDs, the operator and a demo",
        description=(
            "Start etcd and kube-apiserver on loopback (built with Go "
            "on first use and cached), install deploy/install.yaml as users do (kubectl apply "
            "--server-side), run the operator, apply a demo certificate "
            "chain and wait until Ctrl-C or SIGTERM; then stop everything and delete its files."
        ),
    )
    dev.add_argument(
        "--kubeconfig-out",
        type=Path,
        metavar="FILE",
        help="also write the admin kubeconfig to FILE (deleted again on exit, as the cluster is gone)",
    )
    dev.add_argument(
        "--install",
        type=Path,
        metavar="FILE",
        help="manifests applied with kubectl apply --server-side before anything else, as users install "
        "certsmith (default: deploy/install.yaml, shipped with this certsmith-devtools)",
    )
    dev.add_argument(
        "--demo",
        type=Path,
        metavar="FILE",
        help="manifests applied as the demo (default: the demo chain of this certsmith-devtools)",
    )
    dev.add_argument(
        "--no-operator", action="store_true", help="start only the control plane, not the operator"
    )
    dev.add_argument("--no-demo", action="store_true", help="do not apply the demo")
    dev.add_argument(
        "--metrics-port",
        type=int,
        default=9402,
        metavar="PORT",
        help="the operator serves metrics on 127.0.0.1:PORT; 0 turns them off (default: %(default)s)",
    )
    dev.add_argument(
        "--monitoring",
        action="store_true",
        help="also run Prometheus (Debian's package) on loopback, scraping the operator with the alert rules",
    )
    dev.add_argument(
        "--acme",
        action="store_true",
        help="also run Pebble (an ACME CA, built from its Go module once) and create the ClusterIssuer "
        "pebble, HTTP-01 for any name",
    )
    dev.add_argument(
        "--demo-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait for the demo to be Ready before saying what is not (default: %(default)s)",
    )
    dev.add_argument(
        "--controller-manager",
        action="store_true",
        help="also run kube-controller-manager (garbage collector and namespace controllers)",
    )
    dev.set_defaults(handler=_dev)


def _dev(arguments: argparse.Namespace) -> int:
    from certsmith_devtools.dev import DevOptions, run_dev  # noqa: PLC0415 -- see the module's docstring
    from certsmith_devtools.paths import DEMO, INSTALL  # noqa: PLC0415

    return run_dev(
        DevOptions(
            install=arguments.install or INSTALL,
            demo=arguments.demo or DEMO,
            kubeconfig_out=arguments.kubeconfig_out,
            controller_manager=arguments.controller_manager,
            operator=not arguments.no_operator,
            apply_demo=not arguments.no_demo,
            demo_timeout=arguments.demo_timeout,
            metrics_port=arguments.metrics_port,
            monitoring=arguments.monitoring,
            acme=arguments.acme,
        )
    )
