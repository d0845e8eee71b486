"""Scale scenarios on a fresh local control plane, printing markdown tables.

    python bench/scale.py bystanders     # start-up and RSS with 50,000 unrelated Secrets + 5,000 ConfigMaps
    python bench/scale.py idle-restart   # 10,000 issued certificates: idle CPU and requests, then a restart
    python bench/scale.py storm          # 1,000 certificates due for renewal at the same moment
    python bench/scale.py mixed          # RSA and ECDSA applied together: ECDSA is not held up by RSA

Requests are counted by the API server (apiserver_request_total), not by the operator.
"""

from __future__ import annotations

import argparse
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from harness import (
    Cluster,
    Operator,
    RequestKey,
    ca_issuer,
    cluster,
    create_certificates,
    create_namespace,
    machine,
    operator,
    print_table,
    wait_all_ready,
)
from kubernetes import client

from certsmith.api import GROUP, VERSION
from certsmith_devtools.kit import create_object

ECDSA = {"algorithm": "ECDSA", "size": 256}
RSA = {"algorithm": "RSA", "size": 2048}
_WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE"}
_WATCH_VERBS = {"WATCH"}
_OPERATOR_RESOURCES = {
    "secrets",
    "events",
    "certificates",
    "issuers",
    "clusterissuers",
    "namespaces",
    "customresourcedefinitions",
}
"""What certsmith (and kopf inside it) asks for. The rest in this cluster without kubelets or
controllers is the API server's own housekeeping: leases, endpoints, /openapi/v3."""
_CAUGHT_UP = re.compile(r"caught up: (\d+) certificates reconciled ([0-9.]+)s after start")

Row = dict[str, str]


def bystanders(secrets: int, configmaps: int, certificates: int) -> list[Row]:
    return [
        _startup(0, 0, certificates),
        _startup(secrets, configmaps, certificates),
    ]


def _startup(secrets: int, configmaps: int, certificates: int) -> Row:
    with cluster() as bench:
        if secrets or configmaps:
            _create_bystanders(bench, secrets, configmaps)
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        create_namespace(bench, namespace)
        with operator(bench, "--namespace", namespace) as running:
            issuer = ca_issuer(bench, namespace)
        create_certificates(bench, namespace, certificates, ECDSA, issuer)
        started = time.monotonic()
        with operator(bench, "--namespace", namespace) as running:
            wait_all_ready(bench, namespace, 2, timeout=300)  # the root, and a first new one
            first = time.monotonic() - started
            wait_all_ready(bench, namespace, certificates + 1, timeout=300)
            everything = time.monotonic() - started
            rss = running.peak_rss_mib()
    return {
        "bystanders": f"{secrets} Secrets, {configmaps} ConfigMaps",
        "certificates": str(certificates),
        "first Ready after start (s)": f"{first:.1f}",
        "all Ready after start (s)": f"{everything:.1f}",
        "peak RSS (MiB)": f"{rss:.0f}",
    }


def _create_bystanders(bench: Cluster, secrets: int, configmaps: int) -> None:
    core = client.CoreV1Api(bench.api)
    namespaces = [f"bystanders-{index}" for index in range(10)]
    for name in namespaces:
        create_namespace(bench, name)
    rng = random.Random(7)  # noqa: S311 -- sizes for a benchmark, not secrets
    sizes = [
        100 * 1024 if rng.random() < 0.01 else 10 * 1024 if rng.random() < 0.1 else 1024
        for _ in range(secrets)
    ]

    def secret(index: int) -> None:
        core.create_namespaced_secret(
            namespaces[index % 10],
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=f"bystander-{index}", labels={"app": "unrelated"}),
                string_data={"blob": "x" * sizes[index]},
            ),
        )

    def config_map(index: int) -> None:
        core.create_namespaced_config_map(
            namespaces[index % 10],
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=f"bystander-{index}"),
                data={"config": "y" * 2048},
            ),
        )

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(secret, range(secrets)))
        list(pool.map(config_map, range(configmaps)))
    print(
        f"created {secrets} Secrets and {configmaps} ConfigMaps in {time.monotonic() - started:.0f}s",
        flush=True,
    )


def idle_restart(certificates: int, idle: float) -> list[Row]:
    with cluster() as bench:
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        create_namespace(bench, namespace)
        with operator(bench, "--namespace", namespace) as running:
            issuer = ca_issuer(bench, namespace)
            started = time.monotonic()
            create_certificates(bench, namespace, certificates, ECDSA, issuer)
            wait_all_ready(bench, namespace, certificates + 1, timeout=certificates * 0.1 + 120)
            issued_in = time.monotonic() - started
            time.sleep(5)
            idle_row = _measure(bench, running, idle, lambda: time.sleep(idle))
            idle_row |= {"scenario": f"idle, {certificates} issued (issued in {issued_in:.0f}s)"}
            print(f"measured: {idle_row}", flush=True)
        before = bench.request_counts()
        with operator(bench, "--namespace", namespace) as restarted:
            caught_up = _wait_caught_up(restarted, timeout=300)
            time.sleep(5)
            spent = bench.request_counts() - before
            restart_row = {
                "scenario": f"restart with {certificates} valid",
                "caught up after (s)": f"{caught_up:.1f}",
                "writes": str(_writes(spent)),
                "requests besides watches": _describe(spent),
                "peak RSS (MiB)": f"{restarted.peak_rss_mib():.0f}",
            }
    return [idle_row, restart_row]


def _measure(bench: Cluster, running: Operator, seconds: float, wait: Callable[[], None]) -> Row:
    before, cpu = bench.request_counts(), running.cpu_seconds()
    wait()
    spent = bench.request_counts() - before
    used = running.cpu_seconds() - cpu
    return {
        "window (s)": f"{seconds:.0f}",
        "operator CPU": f"{used:.2f}s = {100 * used / seconds:.2f}%",
        "writes": str(_writes(spent)),
        "requests besides watches": _describe(spent),
        "RSS (MiB)": f"{running.peak_rss_mib():.0f}",
    }


def storm(certificates: int) -> list[Row]:
    with cluster() as bench:
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        create_namespace(bench, namespace)
        with operator(bench, "--namespace", namespace):
            issuer = ca_issuer(bench, namespace)
            for index in range(certificates):
                create_object(
                    bench.api,
                    namespace,
                    "Certificate",
                    f"storm-{index:05d}",
                    {
                        "secretName": f"storm-{index:05d}",
                        "dnsNames": [f"storm-{index}.example.com"],
                        "duration": "1h",
                        "renewBefore": "59m30s",
                        "privateKey": ECDSA,
                        "issuerRef": {"name": issuer},
                    },
                )
            wait_all_ready(bench, namespace, certificates + 1, timeout=300)
        time.sleep(35)  # every certificate's renewal time (issuance + 30 s) passes while no operator runs
        before = bench.request_counts()
        started = time.monotonic()
        with operator(bench, "--namespace", namespace) as running:
            _wait_renewed(bench, namespace, certificates, timeout=300)
            elapsed = time.monotonic() - started
            cpu = running.cpu_seconds()
        spent = bench.request_counts() - before
    return [
        {
            "scenario": f"{certificates} due at once (operator started after all were due)",
            "all renewed after start (s)": f"{elapsed:.1f}",
            "per second": f"{certificates / elapsed:.0f}",
            "operator CPU (s)": f"{cpu:.1f}",
            "writes / renewal": f"{_writes(spent) / certificates:.2f}",
        }
    ]


def _wait_renewed(bench: Cluster, namespace: str, count: int, timeout: float) -> None:
    objects = client.CustomObjectsApi(bench.api)
    deadline = time.monotonic() + timeout
    while True:
        listed = objects.list_namespaced_custom_object(GROUP, VERSION, namespace, "certificates")
        if not isinstance(listed, dict):
            raise TypeError("unexpected list response")
        renewed = sum((item.get("status") or {}).get("revision", 0) >= 2 for item in listed["items"])
        if renewed >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{renewed} of {count} renewed after {timeout:.0f}s")
        time.sleep(0.5)


def mixed(certificates: int) -> list[Row]:
    rows = []
    for label, keys in (("ECDSA only", [ECDSA]), ("RSA and ECDSA interleaved", [RSA, ECDSA])):
        with cluster() as bench:
            namespace = f"bench-{uuid.uuid4().hex[:6]}"
            create_namespace(bench, namespace)
            with operator(bench, "--namespace", namespace):
                issuer = ca_issuer(bench, namespace)
                started = time.monotonic()
                for index in range(certificates):
                    key = keys[index % len(keys)]
                    create_object(
                        bench.api,
                        namespace,
                        "Certificate",
                        f"{str(key['algorithm']).lower()}-{index:05d}",
                        {
                            "secretName": f"s-{index:05d}",
                            "dnsNames": [f"m-{index}.example.com"],
                            "privateKey": key,
                            "issuerRef": {"name": issuer},
                        },
                    )
                done = _ready_times_by_algorithm(bench, namespace, started, certificates + 1)
        rows.append(
            {
                "burst": f"{certificates} certificates, {label}",
                **{mark: f"{seconds:.1f}" for mark, seconds in sorted(done.items())},
            }
        )
    return rows


def _ready_times_by_algorithm(bench: Cluster, namespace: str, started: float, total: int) -> dict[str, float]:
    """Seconds after `started` at which half and all of each algorithm's Certificates were Ready."""
    objects = client.CustomObjectsApi(bench.api)
    marks: dict[str, float] = {}
    while True:
        listed = objects.list_namespaced_custom_object(GROUP, VERSION, namespace, "certificates")
        if not isinstance(listed, dict):
            raise TypeError("unexpected list response")
        ready: Counter[str] = Counter()
        present: Counter[str] = Counter()
        for item in listed["items"]:
            algorithm = item["metadata"]["name"].split("-")[0].upper()
            if algorithm not in ("RSA", "ECDSA"):
                continue
            present[algorithm] += 1
            ready[algorithm] += any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (item.get("status") or {}).get("conditions", [])
            )
        now = time.monotonic() - started
        if len(listed["items"]) >= total:
            for algorithm, count in present.items():
                if ready[algorithm] * 2 >= count:
                    marks.setdefault(f"half {algorithm} Ready (s)", now)
                if ready[algorithm] == count:
                    marks.setdefault(f"all {algorithm} Ready (s)", now)
            if ready == present:
                return marks
        time.sleep(0.2)


def _wait_caught_up(running: Operator, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _CAUGHT_UP.search(running.log.read_text(errors="replace"))
        if found:
            return float(found[2])
        time.sleep(0.5)
    tail = "\n".join(running.log.read_text(errors="replace").splitlines()[-20:])
    raise TimeoutError(f"the operator did not log that it caught up; its log ends:\n{tail}")


def _writes(spent: Counter[RequestKey]) -> int:
    return sum(
        count
        for (verb, resource, _), count in spent.items()
        if verb in _WRITE_VERBS and resource in _OPERATOR_RESOURCES
    )


def _describe(spent: Counter[RequestKey]) -> str:
    requests = {
        key: count
        for key, count in spent.items()
        if key[0] not in _WATCH_VERBS and key[1] in _OPERATOR_RESOURCES and count
    }
    return (
        ", ".join(
            f"{verb} {resource}{'/' + sub if sub else ''} {count}"
            for (verb, resource, sub), count in sorted(requests.items())
        )
        or "none"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenario", choices=["bystanders", "idle-restart", "storm", "mixed"])
    parser.add_argument("--certificates", type=int, help="certificates (scenario default otherwise)")
    parser.add_argument(
        "--secrets", type=int, default=50_000, help="bystander Secrets (default: %(default)s)"
    )
    parser.add_argument(
        "--configmaps", type=int, default=5_000, help="bystander ConfigMaps (default: %(default)s)"
    )
    parser.add_argument(
        "--idle", type=float, default=60.0, help="idle window in seconds (default: %(default)s)"
    )
    arguments = parser.parse_args()
    print(f"Machine: {machine()}\n", flush=True)
    if arguments.scenario == "bystanders":
        print_table(bystanders(arguments.secrets, arguments.configmaps, arguments.certificates or 1000))
    elif arguments.scenario == "idle-restart":
        print_table(idle_restart(arguments.certificates or 10_000, arguments.idle))
    elif arguments.scenario == "storm":
        print_table(storm(arguments.certificates or 1000))
    else:
        print_table(mixed(arguments.certificates or 1000))


if __name__ == "__main__":
    main()
