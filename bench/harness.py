"""Shared pieces of the benchmarks: a control plane, the operator as a process, the API server's counts."""

from __future__ import annotations

import os
import platform
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from certsmith.api import GROUP, VERSION
from certsmith.kube.client import api_client_from_kubeconfig
from certsmith.kube.crds import install_crds, load_crds
from certsmith_devtools.controlplane import ControlPlane
from certsmith_devtools.dev import operator_argv
from certsmith_devtools.kit import create_ca_issuer, create_object, is_ready
from certsmith_devtools.processes import ManagedProcess

REPO = Path(__file__).resolve().parent.parent
_REQUEST_TOTAL = re.compile(
    r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$", re.MULTILINE
)
_LABEL = re.compile(r'(\w+)="([^"]*)"')
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

RequestKey = tuple[str, str, str]
"""(verb, resource, subresource) as the API server counts requests."""


@dataclass
class Cluster:
    control_plane: ControlPlane
    api: client.ApiClient

    def request_counts(self) -> Counter[RequestKey]:
        """apiserver_request_total by verb, resource and subresource, from the API server's /metrics."""
        counts: Counter[RequestKey] = Counter()
        for match in _REQUEST_TOTAL.finditer(self.control_plane.admin_get("/metrics").decode()):
            labels = dict(_LABEL.findall(match["labels"]))
            counts[(labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))] += (
                int(float(match["value"]))
            )
        return counts


@contextmanager
def cluster() -> Iterator[Cluster]:
    with ControlPlane() as control_plane:
        api = api_client_from_kubeconfig(control_plane.kubeconfig)
        install_crds(api, load_crds(REPO / "crds"))
        yield Cluster(control_plane, api)


@dataclass
class Operator:
    process: ManagedProcess
    log: Path

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def peak_rss_mib(self) -> float:
        return self._status_mib("VmHWM")

    def rss_mib(self) -> float:
        return self._status_mib("VmRSS")

    def _status_mib(self, field: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
        return 0.0


@contextmanager
def operator(
    bench: Cluster, *arguments: str, source: Path | None = None, reconciles: Path | None = None
) -> Iterator[Operator]:
    """`certsmith run` as its own process, stopped on exit (and killed by the kernel if the bench dies).
    `source`: run the operator of another source tree (an earlier commit, checked out with `git worktree
    add`), to compare it with this one in the same run. `reconciles`: count reconciles into this file
    (see bench/reconciles.py)."""
    log = bench.control_plane.directory / f"operator-{time.monotonic_ns()}.log"
    argv = operator_argv(bench.control_plane.kubeconfig, *arguments)
    environment = {"PYTHONPATH": str(source / "operator")} if source is not None else {}
    if reconciles is not None:
        if argv[1:3] != ["-m", "certsmith.cli"]:
            raise ValueError(f"operator_argv no longer runs `python -m certsmith.cli`: {argv}")
        argv = [argv[0], str(REPO / "bench" / "reconciles.py"), *argv[3:]]
        environment["CERTSMITH_BENCH_RECONCILES"] = str(reconciles)
    process = ManagedProcess("certsmith-operator", argv, log, environment=environment)
    try:
        yield Operator(process, log)
    finally:
        process.stop()


def create_namespace(bench: Cluster, name: str) -> None:
    client.CoreV1Api(bench.api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))


def create_certificates(
    bench: Cluster,
    namespace: str,
    count: int,
    private_key: dict[str, Any],
    issuer: str,
    first: int = 0,
    then: Callable[[int], object] | None = None,
) -> None:
    """`count` Certificates cert-<first>, cert-<first + 1>, ..., made by 8 threads; `then(index)` right
    after each one is made."""

    def create(index: int) -> None:
        create_object(
            bench.api,
            namespace,
            "Certificate",
            f"cert-{index:05d}",
            {
                "secretName": f"cert-{index:05d}",
                "dnsNames": [f"host-{index}.example.com"],
                "privateKey": private_key,
                "issuerRef": {"name": issuer},
            },
        )
        if then is not None:
            then(index)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(first, first + count)))


def wait_all_ready(bench: Cluster, namespace: str, count: int, timeout: float) -> float:
    """Seconds until `count` Certificates in `namespace` are Ready, learnt by watching them (one
    listing, then only changes), so that waiting costs the API server and this machine next to
    nothing beside what is measured."""
    started = time.monotonic()
    objects = client.CustomObjectsApi(bench.api)
    ready: set[str] = set()
    while len(ready) < count:
        remaining = timeout - (time.monotonic() - started)
        if remaining <= 0:
            raise TimeoutError(f"{len(ready)} of {count} certificates Ready after {timeout:.0f}s")
        ready, resource_version = _ready_now(objects, namespace)
        stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
            objects.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            "certificates",
            resource_version=resource_version,
            timeout_seconds=max(1, int(remaining)),
        )
        for event in stream:
            body = event["raw_object"]
            if event["type"] == "ERROR":
                break  # expired: list again
            name = body["metadata"]["name"]
            if event["type"] != "DELETED" and is_ready(body):
                ready.add(name)
            else:
                ready.discard(name)
            if len(ready) >= count:
                break
    return time.monotonic() - started


def _ready_now(objects: client.CustomObjectsApi, namespace: str) -> tuple[set[str], str]:
    """The Ready Certificates' names and the resourceVersion to watch from, listed a page at a time:
    the API server ends a watch after 30 to 60 minutes, and one listing of 100,000 Certificates in a
    single answer (155 MB) outlasted its request timeout and broke a run."""
    ready: set[str] = set()
    resource_version = ""
    for page in certificate_pages(objects, namespace):
        ready.update(item["metadata"]["name"] for item in page["items"] if is_ready(item))
        resource_version = page["metadata"]["resourceVersion"]
    return ready, resource_version


def certificate_pages(objects: client.CustomObjectsApi, namespace: str) -> Iterator[dict[str, Any]]:
    """The Certificates of `namespace`, each answer of a listing 500 at a time."""
    token = None
    while True:
        listed = objects.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "certificates", limit=500, _continue=token
        )
        if not isinstance(listed, dict):
            raise TypeError(f"unexpected list response {type(listed).__name__}")
        yield listed
        token = listed["metadata"].get("continue")
        if not token:
            return


def ca_issuer(bench: Cluster, namespace: str) -> str:
    """A CA Issuer in `namespace` whose root is Ready."""
    issuer = create_ca_issuer(bench.api, namespace, "bench root")
    wait_all_ready(bench, namespace, 1, 60)
    return issuer


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    return f"{os.cpu_count()} cores ({cpu}), {memory} GiB, Python {platform.python_version()}"


def print_table(rows: list[dict[str, str]]) -> None:
    """A markdown table of `rows`, with every column any row has, in the order they first appear."""
    columns = list(dict.fromkeys(column for row in rows for column in row))
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row.get(column, "") for column in columns) + " |")
    print()
