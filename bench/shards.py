"""Shards: N Certificates issued by 1, 2, 4 ... replicas sharing `--shards S`; then one replica is
SIGKILLed and the survivors take its shards over.

    python bench/shards.py --count 10000 --replicas 1 --replicas 2 --replicas 4
    python bench/shards.py --count 100000 --replicas 1 --replicas 2 --replicas 4 --timeout 7200

Replicas serve metrics, TLS Secret metrics included, as `certsmith run` does by default
(`--no-metrics`: neither). Per replica count, on a fresh control plane: time from the first
Certificate created to all Ready; API writes per issuance (Secret creates and replaces, status
patches, Events, counted by the API server's apiserver_request_total, so nothing is missed), Lease
writes apart; peak RSS (VmHWM) of each replica; double issuances (Certificates whose status revision
is not 1, and issuances beyond one per Certificate in the replicas' own logs). With more than one
replica, one is then SIGKILLed and `--after-kill` new Certificates are created at once: the time
until all of them are Ready is the takeover (the Lease duration, then the survivors list the taken
shards and catch up); reported apart: how long creating the new Certificates took, when the first
survivor logged a shard gained, and the longest listing of taken shards a survivor logged. Last, the
survivors are stopped one after the other (SIGTERM, as in a rolling update): the slowest stop is
reported.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from harness import (
    Cluster,
    Operator,
    RequestKey,
    ca_issuer,
    certificate_pages,
    cluster,
    create_certificates,
    create_namespace,
    machine,
    operator,
    print_table,
    wait_all_ready,
)
from kubernetes import client

from certsmith_devtools.kit import free_port

_KEY = {"algorithm": "ECDSA", "size": 256}
_ISSUANCE_WRITES = {
    ("POST", "secrets", ""),
    ("PUT", "secrets", ""),
    ("PATCH", "certificates", "status"),
    ("POST", "events", ""),
}
_ISSUED = re.compile(r"certificate \S+/(cert-\d+): .*\(revision \d+;")
_LISTED = re.compile(r"shards: listed \d+ objects and \d+ Secrets of shards \[[\d, ]*\] in ([\d.]+)s")
_GAINED = re.compile(rb"shards: holding .* \(gained \[\d")


def _held(bench: Cluster, namespace: str, shards: int) -> Counter[str]:
    """Shard Leases per holder (holders with an empty identity are free Leases)."""
    leases = client.CoordinationV1Api(bench.api).list_namespaced_lease(namespace).items
    return Counter(
        (lease.spec.holder_identity or "") if lease.spec else ""
        for lease in leases
        if lease.metadata and re.fullmatch(rf"certsmith-shard-\d+-of-{shards}", lease.metadata.name or "")
    )


def _wait_shared(bench: Cluster, namespace: str, shards: int, replicas: int, timeout: float) -> float:
    """Seconds until every shard is held and the holders are `replicas` replicas sharing them evenly."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        held = _held(bench, namespace, shards)
        shared = "" not in held and sum(held.values()) == shards and len(held) == replicas
        if shared and max(held.values()) - min(held.values()) <= 1:
            return time.monotonic() - started
        time.sleep(0.5)
    raise TimeoutError(f"shards not shared by {replicas} replicas after {timeout:.0f}s: {dict(held)}")


def _takeover_listing(survivors: list[Operator], offsets: list[int]) -> str:
    """The longest listing of taken shards the survivors logged after the kill (their log from
    `offsets` on); "still running" when none had ended by the time the new Certificates were Ready."""
    seconds = [
        float(found)
        for survivor, offset in zip(survivors, offsets, strict=True)
        for found in _LISTED.findall(Path(survivor.log).read_bytes()[offset:].decode(errors="replace"))
    ]
    return f"{max(seconds):.1f}" if seconds else "still running"


@contextlib.contextmanager
def _first_gain(survivors: list[Operator], offsets: list[int]) -> Iterator[list[float]]:
    """Yields a list that receives the monotonic time at which a survivor first logged a shard gained
    (its log from `offsets` on; the operator's log lines carry no time), looked for every 0.2 s in
    what each log gained since (whole lines only, so a line is never split across two reads)."""
    found: list[float] = []
    stopped = threading.Event()

    def look() -> None:
        read = list(offsets)
        while not found and not stopped.wait(0.2):
            for index, survivor in enumerate(survivors):
                with Path(survivor.log).open("rb") as log:
                    log.seek(read[index])
                    lines = log.read().rpartition(b"\n")[0]
                read[index] += len(lines) + 1 if lines else 0
                if _GAINED.search(lines):
                    found.append(time.monotonic())
                    return

    looking = threading.Thread(target=look, daemon=True)
    looking.start()
    try:
        yield found
    finally:
        stopped.set()
        looking.join()


def _stop_one_by_one(replicas: list[Operator]) -> list[float]:
    """Seconds each replica took to exit after SIGTERM, stopped one after the other as in a rolling
    update (the others take over the shards each one releases)."""
    taken = []
    for replica in replicas:
        started = time.monotonic()
        replica.process.stop()
        taken.append(time.monotonic() - started)
    return taken


def _revisions(bench: Cluster, namespace: str) -> Counter[int]:
    revisions: Counter[int] = Counter()
    for page in certificate_pages(client.CustomObjectsApi(bench.api), namespace):
        revisions.update(int((item.get("status") or {}).get("revision") or 0) for item in page["items"])
    return revisions


def run(
    count: int, replicas: int, shards: int, lease: int, after_kill: int, timeout: float, metrics: bool
) -> dict[str, str]:
    """`metrics`: each replica serves metrics and exports the TLS Secrets of its shards (the default of
    `certsmith run`); else neither, as in the runs before 2026-12-07's fourth session."""
    with cluster() as bench:
        namespace = f"shards-{uuid.uuid4().hex[:6]}"
        create_namespace(bench, namespace)
        flags = [
            *("--namespace", namespace, "--shards", str(shards), "--leader-elect-namespace", namespace),
            *("--leader-elect-lease-duration", str(lease)),
        ]

        def metrics_flags() -> list[str]:
            if not metrics:
                return ["--no-tls-secret-metrics"]
            return ["--metrics-port", str(free_port()), "--metrics-address", "127.0.0.1"]

        with contextlib.ExitStack() as stack:
            running: list[Operator] = [
                stack.enter_context(operator(bench, *flags, *metrics_flags())) for _ in range(replicas)
            ]
            issuer = ca_issuer(bench, namespace)
            _wait_shared(bench, namespace, shards, replicas, 120)
            idle = [replica.rss_mib() for replica in running]
            before = bench.request_counts()
            started = time.monotonic()
            create_certificates(bench, namespace, count, _KEY, issuer)
            wait_all_ready(bench, namespace, count + 1, timeout)
            elapsed = time.monotonic() - started
            time.sleep(2)  # the last Events land
            spent: Counter[RequestKey] = bench.request_counts() - before
            rss = [replica.rss_mib() for replica in running]
            peak = [replica.peak_rss_mib() for replica in running]
            row = {
                "certificates": str(count),
                "replicas": str(replicas),
                "shards": str(shards),
                "all Ready after (s)": f"{elapsed:.1f}",
                "per second": f"{count / elapsed:.1f}",
                "writes / issuance": f"{sum(spent[key] for key in _ISSUANCE_WRITES) / count:.2f}",
                "Lease writes / s": f"{spent[('PUT', 'leases', '')] / elapsed:.1f}",
                "RSS per replica before / all Ready / peak (MiB)": ", ".join(
                    f"{first:.0f} / {last:.0f} / {most:.0f}"
                    for first, last, most in zip(idle, rss, peak, strict=True)
                ),
            }
            takeover, created, gained, listing = "", "", "", ""
            if replicas > 1:
                logged = [Path(replica.log).stat().st_size for replica in running]
                os.kill(running[0].process.pid, signal.SIGKILL)  # no clean-up at all
                killed_at = time.monotonic()
                with _first_gain(running[1:], logged[1:]) as gains:
                    create_certificates(bench, namespace, after_kill, _KEY, issuer, first=count)
                    created = f"{time.monotonic() - killed_at:.1f}"
                    wait_all_ready(bench, namespace, count + after_kill + 1, timeout)
                    takeover = f"{time.monotonic() - killed_at:.1f}"
                gained = f"{gains[0] - killed_at:.1f}" if gains else "none"
                listing = _takeover_listing(running[1:], logged[1:])
            revisions = _revisions(bench, namespace)
            issued = Counter(
                name for replica in running for name in _ISSUED.findall(Path(replica.log).read_text())
            )
            stops = _stop_one_by_one(running[1:] if replicas > 1 else running)
        total = count + (after_kill if replicas > 1 else 0)
        row["takeover: new certs Ready after SIGKILL (s)"] = takeover or "-"
        row["of it creating them (s)"] = created or "-"
        row["first shard gained after (s)"] = gained or "-"
        row["of it listing the taken shards (s)"] = listing or "-"
        row["stop after SIGTERM, slowest (s)"] = f"{max(stops):.1f}"
        row["double issuances"] = str(
            sum(number for revision, number in revisions.items() if revision > 1)
            + sum(times - 1 for times in issued.values())
            + max(0, len(issued) - total)
        )
        return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000, help="certificates (default: %(default)s)")
    parser.add_argument("--replicas", type=int, action="append", help="replicas per run (repeatable)")
    parser.add_argument("--shards", type=int, default=8, help="--shards of every run (default: %(default)s)")
    parser.add_argument("--lease-duration", type=int, default=15, help="seconds (default: %(default)s)")
    parser.add_argument(
        "--after-kill",
        type=int,
        default=100,
        help="certificates created after the SIGKILL (default: %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for all Ready")
    parser.add_argument(
        "--no-metrics",
        action="store_true",
        help="replicas without metrics and TLS Secret metrics (as runs before 2026-12-07, fourth session)",
    )
    arguments = parser.parse_args()
    rows = [
        run(
            arguments.count,
            replicas,
            arguments.shards,
            arguments.lease_duration,
            arguments.after_kill,
            arguments.timeout,
            metrics=not arguments.no_metrics,
        )
        for replicas in arguments.replicas or [1, 2, 4]
    ]
    print(f"Machine: {machine()}\n")
    print_table(rows)


if __name__ == "__main__":
    main()
