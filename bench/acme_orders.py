"""ACME against a real Pebble (PEBBLE_VA_NOSLEEP=1): one HTTP-01 certificate, one DNS-01 wildcard +
apex certificate through a real BIND, and a burst of N HTTP-01 certificates at once.

    python bench/acme_orders.py --count 100

For each: time from apply to Ready, new orders per certificate (Pebble's own log), requests to the
CA per certificate (Pebble's log), writes to the API server per certificate (its own counters), and
the operator's CPU and peak RSS. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import base64
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from harness import (
    Cluster,
    RequestKey,
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
from certsmith_devtools.bind import TSIG_KEY_NAME, Bind
from certsmith_devtools.kit import create_object, free_port, is_ready, why_not_ready
from certsmith_devtools.pebble import Pebble

_WRITES = {
    ("POST", "secrets", ""),
    ("PUT", "secrets", ""),
    ("PATCH", "certificates", "status"),
    ("POST", "events", ""),
    ("PATCH", "events", ""),
}


def _issuer(bench: Cluster, namespace: str, pebble: Pebble, solver: dict[str, Any]) -> None:
    acme = {
        "server": pebble.url,
        "privateKeySecretRef": {"name": "pebble-account"},
        "caBundle": base64.b64encode(pebble.ca_bundle).decode(),
        "solvers": [solver],
    }
    create_object(bench.api, namespace, "Issuer", "pebble", {"acme": acme})
    objects = client.CustomObjectsApi(bench.api)
    deadline = time.monotonic() + 60
    while True:
        body = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "issuers", "pebble")
        if isinstance(body, dict) and is_ready(body):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the ACME Issuer is not Ready: {why_not_ready(body if isinstance(body, dict) else {})}"
            )
        time.sleep(0.2)


def run(kind: str, count: int, work: Path) -> dict[str, str]:
    port = free_port()
    with cluster() as bench, Bind(work / f"bind-{kind}", "example.test") as bind:
        namespace = f"acme-{uuid.uuid4().hex[:6]}"
        create_namespace(bench, namespace)
        pebble_dir = work / f"pebble-{kind}"
        dns_server = bind.address if kind == "dns-01" else None
        with (
            Pebble(pebble_dir, port, dns_server=dns_server) as pebble,
            operator(bench, "--namespace", namespace, "--acme-http01-port", str(port)) as running,
        ):
            if kind == "dns-01":
                secret = client.V1Secret(
                    metadata=client.V1ObjectMeta(name="tsig"), string_data={"secret": bind.tsig_secret}
                )
                client.CoreV1Api(bench.api).create_namespaced_secret(namespace, secret)
                rfc2136 = {
                    "nameserver": bind.address,
                    "tsigKeyName": TSIG_KEY_NAME,
                    "tsigSecretSecretRef": {"name": "tsig", "key": "secret"},
                }
                _issuer(bench, namespace, pebble, {"dns01": {"rfc2136": rfc2136}})
            else:
                _issuer(bench, namespace, pebble, {"http01": {"ingress": {}}})
            ca_before = pebble.log()
            before = bench.request_counts()
            cpu_before = running.cpu_seconds()
            started = time.monotonic()
            if kind == "dns-01":
                spec = {
                    "secretName": "wild",
                    "dnsNames": ["example.test", "*.example.test"],
                    "privateKey": {"algorithm": "ECDSA"},
                    "issuerRef": {"name": "pebble"},
                }
                create_object(bench.api, namespace, "Certificate", "wild", spec)
            else:
                create_certificates(bench, namespace, count, {"algorithm": "ECDSA"}, "pebble")
            wait_all_ready(bench, namespace, count, timeout=max(120.0, count * 2.0))
            elapsed = time.monotonic() - started
            time.sleep(1)
            spent: Counter[RequestKey] = bench.request_counts() - before
            cpu = running.cpu_seconds() - cpu_before
            rss = running.peak_rss_mib()
            ca = pebble.log()[len(ca_before) :]
    writes = sum(spent[request] for request in _WRITES)
    return {
        "case": f"{count} x {kind}" + (" (wildcard + apex)" if kind == "dns-01" else ""),
        "all Ready after (s)": f"{elapsed:.2f}",
        "orders / cert": f"{ca.count('Added order') / count:.2f}",
        "CA requests / cert": f"{ca.count('-> calling handler()') / count:.1f}",
        "API writes / cert": f"{writes / count:.2f}",
        "operator CPU (s)": f"{cpu:.1f}",
        "peak RSS (MiB)": f"{rss:.0f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100, help="certificates at once (default: %(default)s)")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a new temporary one)")
    arguments = parser.parse_args()
    arguments.work = arguments.work or Path(tempfile.mkdtemp(prefix="certsmith-bench-acme-"))
    arguments.work.mkdir(parents=True, exist_ok=True)
    rows = [
        run("http-01", 1, arguments.work),
        run("dns-01", 1, arguments.work),
        run("http-01", arguments.count, arguments.work),
    ]
    print(f"Machine: {machine()}\n")
    print_table(rows)


if __name__ == "__main__":
    main()
