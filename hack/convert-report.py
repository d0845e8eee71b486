#!/usr/bin/env python3
"""How much of a folder of cert-manager manifests `certsmith convert` turns into working objects.

    .venv/bin/python hack/convert-report.py DIR_OR_FILE...
    .venv/bin/python hack/convert-report.py --kubeconfig KUBECONFIG [--kubectl PATH] [--namespace NS] DIR...
    .venv/bin/python hack/convert-report.py --json DIR...

Reads every *.yaml and *.yml file (folders recursively; `kind: List` items one by one), converts each
cert-manager Certificate, CertificateRequest, Issuer and ClusterIssuer as `certsmith convert` does, and
counts them: faithful (converted, at most notes to know), converted with something dropped (each
named), refused (not emitted: it would not work), skipped (a CertificateRequest cert-manager made for
one of its Certificates: the converted Certificate needs none). With --kubeconfig, each emitted object
is also applied with a server-side dry run (certsmith's CRDs must be installed there): one the API
server rejects does not count as working. "Working" is faithful plus dropped, minus rejected. The
reasons are counted by the field's path (list indexes left out), most frequent first.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from certsmith.api.cert_manager import Converted, convert_all, is_cert_manager
from certsmith.api.cert_manager_fields import Severity
from certsmith.commands.convert import read_documents

_INDEX = re.compile(r"\[[0-9]+\]")
OUTCOMES = {
    (True, True): "faithful",
    (True, False): "dropped",
    (False, False): "refused",
    (False, True): "skipped",
}
"""By (emitted, faithful)."""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="DIR_OR_FILE")
    parser.add_argument("--kubeconfig", type=Path, help="apply each result with a server-side dry run there")
    parser.add_argument("--kubectl", default="kubectl", help="the kubectl to apply with (default: on PATH)")
    parser.add_argument(
        "--namespace", default="default", help="for objects that name none (default: default)"
    )
    parser.add_argument("--json", action="store_true", help="the counts as JSON")
    arguments = parser.parse_args()
    documents = [document for path in _files(arguments.paths) for document in _documents(path)]
    results = convert_all(documents)
    rejected: dict[str, str] = {}
    if arguments.kubeconfig:
        for document, result in zip(documents, results, strict=True):
            if result.manifest is not None:
                problem = _dry_run(
                    result.manifest, arguments.kubectl, arguments.kubeconfig, arguments.namespace
                )
                if problem:
                    rejected[_name(document)] = problem
    report = _report(documents, results, rejected, applied=arguments.kubeconfig is not None)
    if arguments.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        _print(report)
    return 0


def _files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(item for item in path.rglob("*") if item.suffix in (".yaml", ".yml")))
        else:
            files.append(path)
    return files


def _documents(path: Path) -> list[dict[str, Any]]:
    return [
        document.body
        for document in read_documents(path)
        if isinstance(document.body, dict) and is_cert_manager(document.body)
    ]


def _name(document: dict[str, Any]) -> str:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return f"{document.get('kind')} {name}"


def _dry_run(manifest: dict[str, Any], kubectl: str, kubeconfig: Path, namespace: str) -> str:
    """The API server's objection to `manifest`, or "" when it accepts it."""
    done = subprocess.run(
        [kubectl, "--kubeconfig", str(kubeconfig), "apply", "--dry-run=server", "-n", namespace, "-f", "-"],
        input=yaml.safe_dump(manifest),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return "" if done.returncode == 0 else done.stderr.strip()


def _report(
    documents: list[dict[str, Any]], results: list[Converted], rejected: dict[str, str], *, applied: bool
) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = {str(Severity.DROPPED): Counter(), str(Severity.REFUSED): Counter()}
    for result in results:
        outcomes[OUTCOMES[(result.manifest is not None, result.faithful)]] += 1
        for note in result.notes:
            if note.severity is not Severity.NOTE:
                reasons[str(note.severity)][_INDEX.sub("[]", note.path)] += 1
    working = outcomes["faithful"] + outcomes["dropped"] - len(rejected)
    return {
        "objects": len(documents),
        "kinds": dict(Counter(str(document.get("kind")) for document in documents).most_common()),
        "faithful": outcomes["faithful"],
        "converted, something dropped": outcomes["dropped"],
        "refused": outcomes["refused"],
        "skipped": outcomes["skipped"],
        "applied with a server-side dry run": applied,
        "rejected by the API server": rejected,
        "working": working,
        "reasons": {severity: dict(counts.most_common()) for severity, counts in reasons.items()},
    }


def _print(report: dict[str, Any]) -> None:
    kinds = ", ".join(f"{count} {kind}" for kind, count in report["kinds"].items())
    print(f"objects: {report['objects']} ({kinds})")
    for key in ("faithful", "converted, something dropped", "refused", "skipped"):
        print(f"  {key}: {report[key]}")
    checked = (
        "accepted by the API server (dry run)"
        if report["applied with a server-side dry run"]
        else "not applied"
    )
    print(f"working objects: {report['working']} ({checked})")
    for name, problem in report["rejected by the API server"].items():
        print(f"  rejected: {name}: {problem}")
    for severity, counts in report["reasons"].items():
        print(f"{severity}, by field:")
        for path, count in counts.items():
            print(f"  {count:3d}  {path}")


if __name__ == "__main__":
    sys.exit(main())
