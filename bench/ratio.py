"""certsmith against the floor, in one run: N Certificates applied at once to one CA Issuer, issued by
this tree's operator, by an earlier tree's (--before), and by hand with the same client (the floor,
bench/floor.py). Each case gets a control plane of its own. Prints a markdown table.

    git worktree add /tmp/before 07df759
    python bench/ratio.py --count 1000 --count 10000 --before /tmp/before
    python bench/ratio.py --count 1000 --flags '--workers 4' --flags '--workers 8'   # defaults' choice

Both floors of bench/floor.py are run: from creation (timed as certsmith is, from the first Certificate
made) and issuing only (the Certificates made before the timing); a floor's "operator CPU" is its
issuing process's. Requests are counted by the API server (apiserver_request_total); reconciles by
wrapping the runtime's reconcile (bench/reconciles.py), the same way for both trees.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import Counter
from pathlib import Path

from floor import KEYS, floor
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

_WORKER_WRITES = {("POST", "secrets", ""), ("PUT", "secrets", ""), ("PATCH", "certificates", "status")}
_EVENTS = {("POST", "events", ""), ("PATCH", "events", "")}


def certsmith(count: int, key: str, flags: list[str], source: Path | None) -> dict[str, str]:
    with cluster() as bench:
        namespace = f"ratio-{uuid.uuid4().hex[:6]}"
        create_namespace(bench, namespace)
        reconciles = bench.control_plane.directory / "reconciles.json"
        with operator(
            bench, "--namespace", namespace, *flags, source=source, reconciles=reconciles
        ) as running:
            issuer = ca_issuer(bench, namespace)
            time.sleep(1)
            counted_before = Counter(json.loads(reconciles.read_text()))
            requests_before = bench.request_counts()
            cpu_before = running.cpu_seconds()
            started = time.monotonic()
            create_certificates(bench, namespace, count, {"algorithm": KEYS[key].algorithm.value}, issuer)
            wait_all_ready(bench, namespace, count + 1, timeout=max(300.0, count * 0.5))
            elapsed = time.monotonic() - started
            time.sleep(2)  # the last Events and no-op reconciles
            spent: Counter[RequestKey] = bench.request_counts() - requests_before
            cpu = running.cpu_seconds() - cpu_before
            counted = Counter(json.loads(reconciles.read_text())) - counted_before
    return {
        "certificates": f"{count} {key}",
        "operator": f"{source or 'this tree'} {' '.join(flags)}".strip(),
        "all Ready after (s)": f"{elapsed:.1f}",
        "reconciles / cert": f"{counted['certificates'] / count:.2f}",
        "worker writes / cert": f"{sum(spent[request] for request in _WORKER_WRITES) / count:.2f}",
        "Events / cert": f"{sum(spent[request] for request in _EVENTS) / count:.2f}",
        "operator CPU (s)": f"{cpu:.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, action="append", help="certificates per run (repeatable)")
    parser.add_argument("--key", choices=sorted(KEYS), default="ecdsa")
    parser.add_argument("--before", type=Path, help="an earlier source tree to compare (git worktree add)")
    parser.add_argument(
        "--flags",
        action="append",
        default=[],
        metavar="'FLAGS'",
        help="run this tree's operator once more with these `certsmith run` flags (repeatable)",
    )
    arguments = parser.parse_args()
    rows = []
    for count in arguments.count or [1000]:
        floors = {
            "floor": floor(count, arguments.key, from_creation=True),
            "floor, issuing only": floor(count, arguments.key, from_creation=False),
        }
        rows += [
            {
                "certificates": f"{count} {arguments.key}",
                "operator": name,
                "all Ready after (s)": f"{run.seconds:.1f}",
                "operator CPU (s)": f"{run.cpu_seconds:.1f}",
            }
            for name, run in floors.items()
        ]
        cases = [([], None), *((flags.split(), None) for flags in arguments.flags)]
        cases += [([], arguments.before)] if arguments.before else []
        for flags, source in cases:
            row = certsmith(count, arguments.key, flags, source)
            for name, run in floors.items():
                row[f"ratio to the {name}"] = f"{float(row['all Ready after (s)']) / run.seconds:.2f}"
            rows.append(row)
    print(f"Machine: {machine()}\n")
    print_table(rows)


if __name__ == "__main__":
    main()
