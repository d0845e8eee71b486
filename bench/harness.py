"""Shared pieces of the benchmarks: a control plane, the operator as a process, the API server's counts."""

from __future__ import annotations

import os
import platform
import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

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
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0


@contextmanager
def operator(bench: Cluster, *arguments: str) -> Iterator[Operator]:
    """`certsmith run` as its own process, stopped on exit (and killed by the kernel if the bench dies)."""
    log = bench.control_plane.directory / f"operator-{time.monotonic_ns()}.log"
    process = ManagedProcess(
        "certsmith-operator", operator_argv(bench.control_plane.kubeconfig, *arguments), log
    )
    try:
        yield Operator(process, log)
    finally:
        process.stop()


def create_namespace(bench: Cluster, name: str) -> None:
    client.CoreV1Api(bench.api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))


def create_certificates(
    bench: Cluster, namespace: str, count: int, private_key: dict[str, Any], issuer: str
) -> None:
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

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))


def ready_count(bench: Cluster, namespace: str) -> int:
    listed = client.CustomObjectsApi(bench.api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "certificates"
    )
    if not isinstance(listed, dict):
        raise TypeError(f"unexpected list response {type(listed).__name__}")
    return sum(is_ready(item) for item in listed["items"])


def wait_all_ready(bench: Cluster, namespace: str, count: int, timeout: float) -> float:
    """Seconds until `count` Certificates in `namespace` are Ready."""
    started = time.monotonic()
    while ready_count(bench, namespace) < count:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not all {count} certificates Ready after {timeout:.0f}s")
        time.sleep(0.25)
    return time.monotonic() - started


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
