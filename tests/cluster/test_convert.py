"""`certsmith convert` against the real API server: every object it emits from the corpora of
cert-manager manifests is accepted by a server-side dry run (certsmith's CRDs and admission policies
installed), what it refuses is said and not emitted, and hack/convert-report.py counts the same."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, Cluster

pytestmark = pytest.mark.cluster

CORPUS = REPO / "tests" / "fixtures" / "cert-manager"


def _convert(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "certsmith.cli", "convert", str(CORPUS / name)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=120,
    )


@pytest.mark.parametrize(("name", "code"), [("faithful.yaml", 0), ("documented.yaml", 5)])
def test_every_converted_object_is_accepted_by_the_api_server(
    cluster: Cluster, namespace: str, name: str, code: int
) -> None:
    converted = _convert(name)
    assert converted.returncode == code, converted.stderr
    assert "Traceback" not in converted.stderr
    assert "cert-manager.io/" not in converted.stdout
    emitted = [document for document in yaml.safe_load_all(converted.stdout) if document]
    assert emitted
    applied = subprocess.run(
        [
            str(cluster.kubectl),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "apply",
            "-n",
            namespace,
            "--dry-run=server",
            "-f",
            "-",
        ],
        input=converted.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("(server dry run)") == len(emitted)


def test_malformed_manifests_are_refused_one_line_each_and_nothing_is_emitted() -> None:
    converted = _convert("malformed.yaml")
    assert converted.returncode == 5
    assert "Traceback" not in converted.stderr
    assert converted.stdout.strip() == ""
    documents = [
        document for document in yaml.safe_load_all((CORPUS / "malformed.yaml").read_text()) if document
    ]
    refusals = [line for line in converted.stderr.splitlines() if ": refused: " in line]
    assert len(refusals) == len(documents)


def _report(*arguments: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(REPO / "hack" / "convert-report.py"), "--json", *arguments, str(CORPUS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_the_report_counts_working_objects_with_the_api_servers_word(
    cluster: Cluster, namespace: str
) -> None:
    applied = _report(
        "--kubeconfig", str(cluster.kubeconfig), "--kubectl", str(cluster.kubectl), "--namespace", namespace
    )
    assert applied["applied with a server-side dry run"]
    assert applied["rejected by the API server"] == {}
    assert applied["objects"] == applied["working"] + applied["refused"] + applied["skipped"]
    converted = _report()
    assert not converted["applied with a server-side dry run"]
    assert {**applied, "applied with a server-side dry run": False} == converted
