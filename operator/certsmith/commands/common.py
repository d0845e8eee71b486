"""What every subcommand shares: the API client, exit codes, errors that say what to do, output."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from certsmith.kube.client import api_client_from_kubeconfig
from certsmith.kube.port import HTTP_FORBIDDEN, HTTP_NOT_FOUND


class ExitCode(IntEnum):
    """What a script can tell from certsmith's exit status."""

    OK = 0
    FAILED = 1
    """The command could not do its job: no cluster, no CRDs, Forbidden, another API error."""
    USAGE = 2
    NOT_FOUND = 3
    NOT_READY = 4
    """`status NAME`: the Certificate is not Ready; `renew --wait`: not Ready again in time."""
    INCOMPLETE = 5
    """`convert`: something could not be converted (each said on stderr)."""


class CommandError(Exception):
    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def context_namespace(kubeconfig: Path | None, context: str | None) -> str:
    """The namespace of the kubeconfig's context, as kubectl uses it without -n; else "default"."""
    try:
        contexts, current = config.list_kube_config_contexts(str(kubeconfig) if kubeconfig else None)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError):
        return "default"
    chosen = next((item for item in contexts if item.get("name") == context), current) if context else current
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def api_client(kubeconfig: Path | None, context: str | None) -> client.ApiClient:
    try:
        return api_client_from_kubeconfig(kubeconfig, context=context)
    except (ConfigException, OSError) as error:
        raise CommandError(ExitCode.FAILED, f"no cluster to talk to: {error}") from None


@contextmanager
def talking(action: str) -> Iterator[None]:
    """Turn the API server's refusals into errors that say which verb on which resource."""
    try:
        yield
    except ApiException as error:
        if error.status == HTTP_FORBIDDEN:
            raise CommandError(
                ExitCode.FAILED, f"Forbidden: you may not {action} (ask for that verb on that resource)"
            ) from None
        if error.status == HTTP_NOT_FOUND:
            raise CommandError(ExitCode.NOT_FOUND, f"not found: {action}") from None
        raise CommandError(
            ExitCode.FAILED, f"{action}: the API server answered {error.status} {error.reason}"
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise CommandError(
            ExitCode.FAILED, f"{action}: cannot reach the API server ({type(error).__name__})"
        ) from None


def body_of(answer: object) -> dict[str, Any]:
    """An object as the custom-objects API returns it (typed `object` by the client)."""
    if not isinstance(answer, dict):
        raise CommandError(
            ExitCode.FAILED, f"the API server answered a {type(answer).__name__}, not an object"
        )
    return answer


@contextmanager
def listing(action: str) -> Iterator[None]:
    """`talking`, for a list: a list that is not found means the resource is not served."""
    try:
        with talking(action):
            yield
    except CommandError as error:
        if error.code is ExitCode.NOT_FOUND:
            raise CommandError(
                ExitCode.FAILED, f"{action}: not served; are certsmith's CRDs installed? (certsmith check)"
            ) from None
        raise


def run(command: Callable[..., int], *arguments: object) -> int:
    """Run a subcommand; print a CommandError to stderr and return its code."""
    try:
        code: int = command(*arguments)
    except CommandError as error:
        print(f"certsmith: {error}", file=sys.stderr)
        return int(error.code)
    except BrokenPipeError:  # `certsmith status | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    return code


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns as kubectl prints them: upper-case headers, left-aligned, three spaces apart."""
    widths = [max(len(str(row[index])) for row in [headers, *rows]) for index in range(len(headers))]
    for row in [headers, *rows]:
        print("   ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def print_structured(data: Mapping[str, Any] | Sequence[Any], output: str) -> None:
    if output == "json":
        print(json.dumps(data, indent=2, default=str))
    else:
        print(yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False), end="")
