"""The `certsmith` command."""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
from collections.abc import Sequence
from dataclasses import fields, is_dataclass, replace
from importlib.metadata import entry_points
from pathlib import Path
from types import NoneType
from typing import Any, get_args, get_origin, get_type_hints

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
from certsmith.flags import FLAG, Flag
from certsmith.handlers import NoMemories, operator_registry, operator_settings
from certsmith.health import HealthApp
from certsmith.kube.client import ambient_api_client, api_client_from_kubeconfig
from certsmith.kube.ratelimit import TokenBucket
from certsmith.metrics.collector import CertsmithCollector
from certsmith.metrics.issuance import IssuanceMetrics
from certsmith.metrics.server import MetricsApp, metrics_registry, serve_metrics, serve_wsgi
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
    _setting_flags(run, DEFAULTS)
    run.add_argument("--log-format", choices=["plain", "json"], default="plain", help="log line format")
    run.add_argument("--verbose", action="store_true", help="log kopf's internals too")
    run.set_defaults(handler=_run)

    _people_commands(commands)

    version = commands.add_parser("version", help="print certsmith's version")
    version.set_defaults(handler=_version)
    _plugin_commands(commands)
    return parser


def _plugin_commands(commands: Any) -> None:  # noqa: ANN401 -- argparse's private subparsers action
    """Subcommands other distributions add through the entry point group `certsmith.commands`: each
    is a function given the subparsers (certsmith-devtools adds `certsmith dev` this way)."""
    for entry_point in sorted(entry_points(group="certsmith.commands"), key=lambda point: point.name):
        try:
            add_command = entry_point.load()
        except ImportError as error:  # a broken dev install must not stop `certsmith run`
            print(
                f"certsmith: cannot load the command {entry_point.name!r} ({entry_point.value}): {error}; "
                f"reinstall the distribution that provides it",
                file=sys.stderr,
            )
            continue
        add_command(commands)


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
        help="cert-manager and trust-manager manifests to certsmith's (stdout); what is not carried "
        "over is said (stderr)",
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


def _setting_flags(parser: argparse.ArgumentParser, settings: Any, path: tuple[str, ...] = ()) -> None:  # noqa: ANN401 -- any settings dataclass
    """A flag for each field of the dataclass `settings` with flag metadata (flags.py), defaulting to
    the field's value there; the fields of a nested settings dataclass in turn."""
    types = get_type_hints(type(settings))
    for setting in fields(settings):
        value = getattr(settings, setting.name)
        where = (*path, setting.name)
        if is_dataclass(value):
            _setting_flags(parser, value, where)
        elif FLAG in setting.metadata:
            described: Flag = setting.metadata[FLAG]
            behaviour = _flag_behaviour(described, types[setting.name], value)
            parser.add_argument(*described.names, dest=".".join(where), **behaviour)


def _flag_behaviour(described: Flag, kind: Any, default: Any) -> dict[str, Any]:  # noqa: ANN401 -- a type, a value
    """argparse's arguments for a setting of type `kind`: switches for booleans, a repeatable flag for
    tuples, durations as `1h30m`, and other values parsed by their type."""
    if kind is bool:
        if described.names[-1].startswith("--no-"):
            return {"action": "store_false", "help": described.help}
        if default:
            return {"action": argparse.BooleanOptionalAction, "default": True, "help": described.help}
        return {"action": "store_true", "help": described.help}
    shown = "" if default in (None, "") else " (default: %(default)s)"
    valued = {"metavar": described.metavar, "help": described.help + shown}
    if get_origin(kind) is tuple:
        return {**valued, "action": "append", "default": [], "help": described.help}
    if kind is datetime.timedelta:
        return {**valued, "type": parse_duration, "default": format_duration(default)}
    optional = [argument for argument in get_args(kind) if argument is not NoneType]  # `str | None`: str
    return {**valued, "type": optional[0] if optional else kind, "default": default}


def _settings(arguments: argparse.Namespace, settings: Any, path: tuple[str, ...] = ()) -> Any:  # noqa: ANN401 -- any settings dataclass
    """`settings` with the value of each of its flags from the command line (see `_setting_flags`)."""
    changes: dict[str, Any] = {}
    for setting in fields(settings):
        value = getattr(settings, setting.name)
        where = (*path, setting.name)
        if is_dataclass(value):
            changes[setting.name] = _settings(arguments, value, where)
        elif FLAG in setting.metadata:
            given = getattr(arguments, ".".join(where))
            changes[setting.name] = tuple(given) if isinstance(value, tuple) else given
    return replace(settings, **changes)


def _run(arguments: argparse.Namespace) -> int:
    kubeconfig: Path | None = arguments.kubeconfig
    settings: OperatorSettings = _settings(arguments, DEFAULTS)
    if settings.namespaced and (
        not settings.namespaces or any(map(is_namespace_pattern, settings.namespaces))
    ):
        print("certsmith run: --namespaced needs --namespace with names, not patterns", file=sys.stderr)
        return 2
    if settings.shards < 1 or settings.lease_duration < 3:
        print(
            f"certsmith run: --shards {settings.shards} and --leader-elect-lease-duration "
            f"{settings.lease_duration}: give at least 1 shard and a duration of at least 3 seconds",
            file=sys.stderr,
        )
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
        memories=NoMemories(),
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
    )
    return 0


def _version(arguments: argparse.Namespace) -> int:
    print(f"certsmith {__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
