"""Burst: N Certificates applied at once to one CA Issuer; time until all are Ready, and what it cost.

    python bench/burst.py --count 100 --count 1000 --key ecdsa --key rsa

Requests are counted by the API server itself (apiserver_request_total, before and after), so
nothing the operator forgets to count is missed. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections import Counter

from harness import (
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

KEYS = {"ecdsa": {"algorithm": "ECDSA", "size": 256}, "rsa": {"algorithm": "RSA", "size": 2048}}
_OPERATOR_WRITES = {
    ("POST", "secrets", ""),
    ("PUT", "secrets", ""),
    ("PATCH", "certificates", "status"),
    ("POST", "events", ""),
}
_OPERATOR_READS = {("GET", "secrets", "")}


def burst(count: int, key: str, operator_arguments: list[str]) -> dict[str, str]:
    with cluster() as bench:
        namespace = f"burst-{uuid.uuid4().hex[:6]}"
        create_namespace(bench, namespace)
        with operator(bench, "--namespace", namespace, *operator_arguments) as running:
            issuer = ca_issuer(bench, namespace)
            before = bench.request_counts()
            cpu_before = running.cpu_seconds()
            started = time.monotonic()
            create_certificates(bench, namespace, count, KEYS[key], issuer)
            wait_all_ready(bench, namespace, count + 1, timeout=max(120.0, count * 1.0))
            elapsed = time.monotonic() - started
            time.sleep(1)  # let the last Events land
            spent: Counter[RequestKey] = bench.request_counts() - before
            cpu = running.cpu_seconds() - cpu_before
            rss = running.peak_rss_mib()
    writes = sum(spent[request] for request in _OPERATOR_WRITES)
    reads = sum(spent[request] for request in _OPERATOR_READS)
    detail = ", ".join(
        f"{verb} {resource}{'/' + sub if sub else ''} {spent[(verb, resource, sub)] / count:.2f}"
        for verb, resource, sub in sorted(_OPERATOR_WRITES | _OPERATOR_READS)
    )
    return {
        "certificates": f"{count} {key}",
        "operator flags": " ".join(operator_arguments) or "defaults",
        "all Ready after (s)": f"{elapsed:.1f}",
        "per second": f"{count / elapsed:.1f}",
        "operator CPU (s)": f"{cpu:.1f}",
        "peak RSS (MiB)": f"{rss:.0f}",
        "writes / cert": f"{writes / count:.2f}",
        "reads / cert": f"{reads / count:.2f}",
        "by request, per cert": detail,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, action="append", help="certificates per run (repeatable)")
    parser.add_argument("--key", choices=sorted(KEYS), action="append", help="key type (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case (default: %(default)s)")
    parser.add_argument("operator_arguments", nargs="*", help="passed to `certsmith run` (after --)")
    arguments = parser.parse_args()
    rows = [
        burst(count, key, arguments.operator_arguments)
        for key in arguments.key or ["ecdsa"]
        for count in arguments.count or [100]
        for _ in range(arguments.repeat)
    ]
    print(f"Machine: {machine()}\n")
    print_table(rows)


if __name__ == "__main__":
    main()
