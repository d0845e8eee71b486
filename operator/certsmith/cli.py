"""The `certsmith` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kopf
import shtab

from certsmith import __version__
from certsmith.api.durations import format_duration, parse_duration
from certsmith.commands.approval import decide
from certsmith.commands.check import check
from certsmith.commands.common import ExitCode, api_client, context_namespace, run
from certsmith.commands.convert import convert_files
from certsmith.commands.inspect import inspect_secret
from certsmith.commands.migrate import migrate
from certsmith.commands.renew import renew
from certsmith.commands.status import Scope, status
from certsmith.handlers import operator_registry, operator_settings
from certsmith.health import HealthApp
from certsmith.kube.client import ambient_api_client, api_client_from_kubeconfig
from certsmith.kube.ratelimit import TokenBucket
from certsmith.metrics.collector import CertsmithCollector
from certsmith.metrics.issuance import IssuanceMetrics
from certsmith.metrics.server import MetricsApp, metrics_registry, serve_metrics, serve_wsgi
from certsmith.renewal import BackoffSettings
from certsmith.runtime import Runtime
from certsmith.scheduler import utc_now
from certsmith.settings import OperatorSettings, is_namespace_pattern

DEFAULTS = OperatorSettings()
"""`certsmith run`'s flags default to the settings' own defaults."""


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
        help="run a local control plane with certsmith's CRDs, the operator and a demo",
        description=(
            "Start etcd and kube-apiserver on loopback (built with Go "
            "on first use and cached), install certsmith's CRDs, run the operator, apply a demo certificate "
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
        "--crds",
        type=Path,
        metavar="DIR",
        help="directory of CRD manifests to install (default: crds/ of the source tree)",
    )
    dev.add_argument(
        "--demo",
        type=Path,
        metavar="FILE",
        help="manifests applied as the demo (default: docs/demo/chain.yaml of the source tree)",
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
        help="also run Pebble (an ACME CA, Debian's package) and create the ClusterIssuer pebble, HTTP-01 "
        "for any name",
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

    run = commands.add_parser(
        "run",
        help="run the operator",
        description=(
            "Run the certsmith operator against the cluster of $KUBECONFIG (or --kubeconfig, or the "
            "in-cluster ServiceAccount): issue, store and renew the certificates of Certificate objects."
        ),
    )
    run.add_argument(
        "--kubeconfig", type=Path, metavar="FILE", help="kubeconfig to use instead of the ambient one"
    )
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        dest="namespaces",
        metavar="NS",
        help="watch this namespace (repeatable; globs such as 'team-*' and '!kube-*'); default: all",
    )
    run.add_argument(
        "--namespaced",
        action="store_true",
        help="run with rights in the --namespace namespaces only (a Role, no ClusterRole): "
        "no ClusterIssuers, no watching of CRDs and namespaces",
    )
    run.add_argument(
        "--cluster-resource-namespace",
        default=DEFAULTS.cluster_resource_namespace,
        metavar="NS",
        help="namespace of the CA Secrets of ClusterIssuers (default: %(default)s)",
    )
    run.add_argument(
        "--secret-owner-references",
        action="store_true",
        help="make each Certificate own its Secret, so deleting the Certificate deletes the Secret",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=DEFAULTS.workers,
        help="certificates reconciled at once (default: %(default)s)",
    )
    run.add_argument(
        "--backoff-initial",
        type=parse_duration,
        default=format_duration(DEFAULTS.backoff.initial),
        metavar="DURATION",
        help="wait after a first failed issuance, doubled per failure (default: %(default)s)",
    )
    run.add_argument(
        "--backoff-max",
        type=parse_duration,
        default=format_duration(DEFAULTS.backoff.maximum),
        metavar="DURATION",
        help="longest wait between failed issuance attempts (default: %(default)s)",
    )
    run.add_argument(
        "--health-port",
        type=int,
        default=DEFAULTS.health_port,
        metavar="PORT",
        help="serve /healthz (liveness) and /readyz (readiness) on PORT; 0: off (default: %(default)s)",
    )
    run.add_argument(
        "--kube-api-qps",
        type=float,
        default=DEFAULTS.kube_api_qps,
        metavar="QPS",
        help="sustained API requests per second by certsmith's client; 0: no limit (default: %(default)s)",
    )
    run.add_argument(
        "--kube-api-burst",
        type=int,
        default=DEFAULTS.kube_api_burst,
        metavar="N",
        help="API requests allowed at once before --kube-api-qps applies (default: %(default)s)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULTS.metrics_port,
        metavar="PORT",
        help="serve Prometheus metrics at /metrics on PORT; 0 turns them off (default: %(default)s)",
    )
    run.add_argument(
        "--metrics-address",
        default=DEFAULTS.metrics_address,
        metavar="ADDRESS",
        help="address the metrics server listens on (default: %(default)s)",
    )
    run.add_argument(
        "--metrics-tls-cert", metavar="FILE", help="serve metrics over HTTPS with this PEM certificate"
    )
    run.add_argument("--metrics-tls-key", metavar="FILE", help="the private key of --metrics-tls-cert (PEM)")
    run.add_argument(
        "--no-tls-secret-metrics",
        action="store_true",
        help="do not watch every kubernetes.io/tls Secret for the expiry metrics",
    )
    run.add_argument(
        "--leader-elect",
        action="store_true",
        help="act only while holding a Lease, so that of several replicas one acts at a time",
    )
    run.add_argument(
        "--leader-elect-namespace",
        default=DEFAULTS.lease_namespace,
        metavar="NS",
        help="namespace of the leader-election Lease (default: %(default)s)",
    )
    run.add_argument(
        "--leader-elect-lease",
        default=DEFAULTS.lease_name,
        metavar="NAME",
        help="name of the leader-election Lease (default: %(default)s)",
    )
    run.add_argument(
        "--max-issuances-per-hour",
        type=int,
        default=DEFAULTS.issuance_limit,
        metavar="N",
        help="issuances allowed per Certificate in any hour, a bound against loops (default: %(default)s)",
    )
    run.add_argument(
        "--acme-http01-port",
        type=int,
        default=DEFAULTS.acme_http01_port,
        metavar="PORT",
        help="answer ACME HTTP-01 challenges on PORT; 0 turns the solver off (default: %(default)s)",
    )
    run.add_argument(
        "--acme-http01-address",
        default=DEFAULTS.acme_http01_address,
        metavar="ADDRESS",
        help="address the HTTP-01 solver listens on (default: %(default)s)",
    )
    run.add_argument(
        "--acme-solver-service",
        default=DEFAULTS.acme_solver_service,
        metavar="NAMESPACE/NAME",
        help="the Service in front of the HTTP-01 solver: each HTTP-01 challenge then gets an Ingress "
        "routing its path to it (in a cluster: certsmith/certsmith-acme-solver)",
    )
    run.add_argument(
        "--acme-orders-per-hour",
        type=int,
        default=DEFAULTS.acme_orders_per_hour,
        metavar="N",
        help="new ACME orders allowed per Certificate in any hour (default: %(default)s)",
    )
    run.add_argument(
        "--auto-approve",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.auto_approve,
        help="approve every CertificateRequest; with --no-auto-approve each waits for `certsmith approve` "
        "by someone allowed the verb approve on signers.certsmith.dev (default: %(default)s)",
    )
    run.add_argument("--log-format", choices=["plain", "json"], default="plain", help="log line format")
    run.add_argument("--verbose", action="store_true", help="log kopf's internals too")
    run.set_defaults(handler=_run)

    _people_commands(commands)

    version = commands.add_parser("version", help="print certsmith's version and the control-plane versions")
    version.set_defaults(handler=_version)
    return parser


def _people_commands(commands: Any) -> None:  # noqa: ANN401 -- argparse's private subparsers action
    """status, renew and inspect: for people (and scripts) at a terminal, also as `kubectl certsmith`."""
    cluster = argparse.ArgumentParser(add_help=False)
    cluster.add_argument(
        "--kubeconfig", type=Path, metavar="FILE", help="kubeconfig (default: as kubectl finds it)"
    )
    cluster.add_argument("--context", metavar="NAME", help="kubeconfig context (default: the current one)")
    cluster.add_argument(
        "-n", "--namespace", metavar="NS", help="namespace (default: the context's, else default)"
    )
    cluster.add_argument(
        "--cluster-resource-namespace",
        default=DEFAULTS.cluster_resource_namespace,
        metavar="NS",
        help="where the operator keeps ClusterIssuers' Secrets (default: %(default)s)",
    )
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("-o", "--output", choices=["json", "yaml"], help="print data for scripts")

    def people_command(
        name: str,
        help: str,
        parents: Sequence[argparse.ArgumentParser] = (),
    ) -> argparse.ArgumentParser:
        """A subcommand whose help ends with the exit codes."""
        parser: argparse.ArgumentParser = commands.add_parser(
            name,
            parents=list(parents),
            help=help,
            epilog=_EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        return parser

    status = people_command(
        "status",
        parents=[cluster, output],
        help="Certificates at a glance, or one Certificate's story and what the operator would do now",
    )
    status.add_argument("-A", "--all-namespaces", action="store_true", help="Certificates of every namespace")
    status.add_argument("name", nargs="?", help="one Certificate: its whole story")
    status.set_defaults(handler=_status)

    renew = people_command(
        "renew",
        parents=[cluster],
        help="renew Certificates now (the operator does it; --wait reports when they are Ready again)",
    )
    renew.add_argument("names", nargs="*", metavar="NAME", help="Certificates to renew")
    renew.add_argument("--all", action="store_true", help="every Certificate in the namespace (or with -A)")
    renew.add_argument("-l", "--selector", help="with --all: only Certificates with these labels")
    renew.add_argument("-A", "--all-namespaces", action="store_true", help="with --all: every namespace")
    renew.add_argument(
        "--wait",
        type=float,
        nargs="?",
        const=300.0,
        metavar="SECONDS",
        help="wait until renewed (default 300 s)",
    )
    renew.set_defaults(handler=_renew)

    for verb, approving in (("approve", True), ("deny", False)):
        decide = people_command(
            verb,
            parents=[cluster],
            help=f"{verb} a CertificateRequest (needs the verb approve on signers.certsmith.dev)",
        )
        decide.add_argument("name", metavar="NAME", help="the CertificateRequest")
        decide.add_argument(
            "--reason",
            default="ManuallyApproved" if approving else "ManuallyDenied",
            help="the condition's reason, a CamelCase word (default: %(default)s)",
        )
        decide.add_argument(
            "--message", default=f"{'approved' if approving else 'denied'} with certsmith {verb}", help="why"
        )
        decide.set_defaults(handler=_decide, approve=approving)

    inspect = people_command(
        "inspect",
        parents=[cluster, output],
        help="decode a TLS Secret (managed or not): chain, key match, validity, warnings",
    )
    inspect.add_argument("kind", choices=["secret"], help="what to inspect")
    inspect.add_argument("name", help="the Secret's name")
    inspect.set_defaults(handler=_inspect)

    check = people_command(
        "check",
        parents=[cluster],
        help="are the CRDs served, is an operator leading, may you do what these commands do",
    )
    check.add_argument(
        "--lease-namespace",
        default=DEFAULTS.lease_namespace,
        metavar="NS",
        help="the operator's Lease namespace",
    )
    check.add_argument(
        "--lease", default=DEFAULTS.lease_name, metavar="NAME", help="the operator's Lease name"
    )
    check.set_defaults(handler=_check)

    convert = people_command(
        "convert",
        help="cert-manager manifests to certsmith's (stdout); every field not carried over is said (stderr)",
    )
    convert.add_argument(
        "files", nargs="*", type=Path, default=[Path("-")], metavar="FILE", help="default: stdin"
    )
    convert.set_defaults(handler=_convert)

    migrate = people_command(
        "migrate",
        parents=[cluster],
        help="hand Secrets cert-manager issued to the certsmith Certificates replacing its own, as they are",
    )
    migrate.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    migrate.add_argument("--dry-run", action="store_true", help="say what would be adopted, change nothing")
    migrate.set_defaults(handler=_migrate)

    completion = commands.add_parser("completion", help="print a shell completion script")
    completion.add_argument("shell", choices=["bash", "zsh"])
    completion.set_defaults(handler=_completion)


_EXIT_CODES = """exit codes: 0 done (status NAME: Ready; check: all well); 1 could not do it (no cluster,
no CRDs, Forbidden; check: a problem); 2 wrong usage; 3 not found; 4 not Ready (status NAME), or not
renewed in time (renew --wait); 5 convert: something could not be converted"""


def _scope(arguments: argparse.Namespace) -> Scope:
    namespace = arguments.namespace or context_namespace(arguments.kubeconfig, arguments.context)
    return Scope(namespace, bool(getattr(arguments, "all_namespaces", False)))


def _status(arguments: argparse.Namespace) -> int:
    def command() -> int:
        api = api_client(arguments.kubeconfig, arguments.context)
        crn = arguments.cluster_resource_namespace
        return status(api, _scope(arguments), arguments.name, arguments.output, crn)

    return run(command)


def _renew(arguments: argparse.Namespace) -> int:
    if bool(arguments.names) == arguments.all:
        print("certsmith renew: name Certificates, or give --all (not both)", file=sys.stderr)
        return ExitCode.USAGE
    if (arguments.selector or arguments.all_namespaces) and not arguments.all:
        print("certsmith renew: -l and -A go with --all", file=sys.stderr)
        return ExitCode.USAGE

    def command() -> int:
        api = api_client(arguments.kubeconfig, arguments.context)
        return renew(api, _scope(arguments), arguments.names, arguments.selector, arguments.wait)

    return run(command)


def _decide(arguments: argparse.Namespace) -> int:
    def command() -> int:
        api = api_client(arguments.kubeconfig, arguments.context)
        namespace = _scope(arguments).namespace
        return decide(api, namespace, arguments.name, arguments.approve, arguments.reason, arguments.message)

    return run(command)


def _inspect(arguments: argparse.Namespace) -> int:
    def command() -> int:
        api = api_client(arguments.kubeconfig, arguments.context)
        return inspect_secret(api, _scope(arguments).namespace, arguments.name, arguments.output)

    return run(command)


def _check(arguments: argparse.Namespace) -> int:
    def command() -> int:
        api = api_client(arguments.kubeconfig, arguments.context)
        return check(api, _scope(arguments).namespace, arguments.lease_namespace, arguments.lease)

    return run(command)


def _convert(arguments: argparse.Namespace) -> int:
    return run(convert_files, arguments.files)


def _migrate(arguments: argparse.Namespace) -> int:
    def command() -> int:
        return migrate(
            api_client(arguments.kubeconfig, arguments.context), _scope(arguments), arguments.dry_run
        )

    return run(command)


def _completion(arguments: argparse.Namespace) -> int:
    print(shtab.complete(_parser(), shell=arguments.shell))
    return ExitCode.OK


def _run(arguments: argparse.Namespace) -> int:
    kubeconfig: Path | None = arguments.kubeconfig
    settings = OperatorSettings(
        namespaces=tuple(arguments.namespaces),
        namespaced=arguments.namespaced,
        cluster_resource_namespace=arguments.cluster_resource_namespace,
        secret_owner_references=arguments.secret_owner_references,
        backoff=BackoffSettings(arguments.backoff_initial, arguments.backoff_max),
        workers=arguments.workers,
        issuance_limit=arguments.max_issuances_per_hour,
        kube_api_qps=arguments.kube_api_qps,
        kube_api_burst=arguments.kube_api_burst,
        health_port=arguments.health_port,
        metrics_port=arguments.metrics_port,
        metrics_address=arguments.metrics_address,
        metrics_tls_cert=arguments.metrics_tls_cert,
        metrics_tls_key=arguments.metrics_tls_key,
        scan_tls_secrets=not arguments.no_tls_secret_metrics,
        leader_election=arguments.leader_elect,
        lease_namespace=arguments.leader_elect_namespace,
        lease_name=arguments.leader_elect_lease,
        acme_http01_port=arguments.acme_http01_port,
        acme_http01_address=arguments.acme_http01_address,
        acme_solver_service=arguments.acme_solver_service,
        acme_orders_per_hour=arguments.acme_orders_per_hour,
        auto_approve=arguments.auto_approve,
    )
    if settings.namespaced and (
        not settings.namespaces or any(map(is_namespace_pattern, settings.namespaces))
    ):
        print("certsmith run: --namespaced needs --namespace with names, not patterns", file=sys.stderr)
        return 2
    kopf.configure(
        verbose=arguments.verbose,
        log_format=kopf.LogFormat.JSON if arguments.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    if not arguments.verbose:  # one line per handled watch event says nothing certsmith's own lines don't
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    bucket = (
        TokenBucket(settings.kube_api_qps, settings.kube_api_burst) if settings.kube_api_qps > 0 else None
    )
    api = (
        api_client_from_kubeconfig(kubeconfig, bucket, connections=settings.threads)
        if kubeconfig
        else ambient_api_client(bucket, settings.threads)
    )
    registry = metrics_registry()
    runtime = Runtime(api, settings, utc_now, IssuanceMetrics(registry))
    registry.register(CertsmithCollector(runtime.store))
    serve_metrics(MetricsApp(registry, runtime.tls_secrets), settings)
    if settings.health_port:
        health = HealthApp(lambda: runtime.last_tick, lambda: runtime.not_ready, runtime.liveness_problem)
        serve_wsgi(health, "0.0.0.0", settings.health_port, "health probes")  # noqa: S104 -- the kubelet probes
    if settings.acme_http01_port:
        address, port = settings.acme_http01_address, settings.acme_http01_port
        serve_wsgi(runtime.acme.http01, address, port, "ACME HTTP-01 solver")
    kopf.run(
        registry=operator_registry(runtime),
        settings=operator_settings(settings.namespaced),
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
    )
    return 0


def _version(arguments: argparse.Namespace) -> int:
    from certsmith.devcluster.versions import ETCD_VERSION, KUBERNETES_VERSION  # noqa: PLC0415 -- dev tooling

    print(
        f"certsmith {__version__} "
        f"(local control plane: kube-apiserver {KUBERNETES_VERSION}, etcd {ETCD_VERSION})"
    )
    return 0


def _dev(arguments: argparse.Namespace) -> int:
    """The local control plane is dev tooling: imported only here, never by `certsmith run`."""
    from certsmith.devcluster.dev import SOURCE_TREE, DevOptions, run_dev  # noqa: PLC0415

    return run_dev(
        DevOptions(
            crds=arguments.crds or SOURCE_TREE / "crds",
            demo=arguments.demo or SOURCE_TREE / "docs" / "demo" / "chain.yaml",
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


if __name__ == "__main__":
    sys.exit(main())
