"""charts/certsmith: lint-clean, its default rendering is deploy/install.yaml object by object (and its
namespaced and monitoring renderings are deploy/namespaced/ and deploy/monitoring/), its schema refuses
wrong values, and kube-score finds nothing in it or in install.yaml beyond the skips below.

Needs helm, kube-score and kubectl (for `kubectl kustomize`) from the build cache, no cluster.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from certsmith.cli import DEFAULTS, _parser, _settings
from certsmith.settings import OperatorSettings
from certsmith_devtools.build import ensure_binaries
from certsmith_devtools.charttools import ensure_helm, ensure_kube_score
from tests.conftest import REPO

CHART = REPO / "charts" / "certsmith"
INSTALL = REPO / "deploy" / "install.yaml"
KEPT = "helm.sh/resource-policy"

KUBE_SCORE_SKIPS = {
    "container-resources": "it asks for a CPU limit, left out on purpose: a throttled event loop misses "
    "Lease renewals and probe deadlines; the CPU request reserves what the operator needs (memory and "
    "ephemeral storage have both request and limit)",
    "container-image-pull-policy": "IfNotPresent on purpose: the tag names one release, and clusters fed "
    "with `kind load` or a mirror have no registry to pull from on every start",
}
"""kube-score checks skipped, with why (the README repeats these)."""


def _helm(*arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [str(ensure_helm()), *arguments], capture_output=True, text=True, check=False, cwd=REPO
    )
    if check:
        assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed


def _template(*arguments: str) -> list[dict[str, Any]]:
    rendered = _helm("template", "certsmith", str(CHART), "--namespace", "certsmith", *arguments).stdout
    return [document for document in yaml.safe_load_all(rendered) if document]


def _kustomize(directory: str) -> list[dict[str, Any]]:
    kubectl = ensure_binaries().kubectl
    rendered = subprocess.run(
        [str(kubectl), "kustomize", str(REPO / directory)], capture_output=True, text=True, check=True
    ).stdout
    return list(yaml.safe_load_all(rendered))


def _key(document: dict[str, Any]) -> str:
    metadata = document["metadata"]
    return f"{document['kind']} {metadata.get('namespace', '-')}/{metadata['name']}"


def _comparable(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The objects by kind, namespace and name, without the top-level labels (Helm adds its own) and
    the annotation that keeps the approval policy on `helm uninstall`."""
    objects = {}
    for document in documents:
        metadata = dict(document["metadata"])
        metadata.pop("labels", None)
        annotations = {k: v for k, v in metadata.pop("annotations", {}).items() if k != KEPT}
        if annotations:
            metadata["annotations"] = annotations
        comparable = {**document, "metadata": metadata}
        if document["kind"] == "ValidatingAdmissionPolicy":
            comparable["spec"] = _squeezed(document["spec"])
        objects[_key(document)] = comparable
    return objects


def _squeezed(value: Any) -> Any:
    """`value` with each run of whitespace in its strings made one space. kustomize writes a folded CEL
    expression's more-indented line after a blank line, which PyYAML reads with one newline more than
    kubectl's parser does; whitespace means nothing in CEL."""
    if isinstance(value, dict):
        return {key: _squeezed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_squeezed(item) for item in value]
    return " ".join(value.split()) if isinstance(value, str) else value


def _without_namespace_object(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """kustomize's rendering creates the namespace; Helm's convention is `--create-namespace`, and a
    chart owning its release's Namespace would delete it, with every Secret in it, on `helm uninstall`."""
    return [document for document in documents if document["kind"] != "Namespace"]


def _assert_same_objects(chart: list[dict[str, Any]], kustomize: list[dict[str, Any]], source: str) -> None:
    rendered, shipped = _comparable(chart), _comparable(kustomize)
    assert sorted(rendered) == sorted(shipped), f"the chart and {source} install different objects"
    for key, expected in shipped.items():
        assert rendered[key] == expected, f"{key}: the chart renders it otherwise than {source}"


def test_chart_version_and_app_version_are_the_projects() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert chart["version"] == version
    assert chart["appVersion"] == version


def test_copies_in_the_chart_equal_their_sources() -> None:
    checked = subprocess.run(
        [sys.executable, "hack/sync-chart.py", "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "namespaced=true"],
        [
            "--set",
            "monitoring.serviceMonitor.enabled=true,monitoring.prometheusRule.enabled=true",
            "--set",
            "monitoring.dashboard.enabled=true",
        ],
    ],
    ids=["defaults", "namespaced", "monitoring"],
)
def test_helm_lint_strict_is_clean(values: list[str]) -> None:
    linted = _helm("lint", "--strict", str(CHART), "--namespace", "certsmith", *values, check=False)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_default_rendering_is_install_yaml() -> None:
    chart = _template("--include-crds")
    shipped = _without_namespace_object(list(yaml.safe_load_all(INSTALL.read_text())))
    _assert_same_objects(chart, shipped, "deploy/install.yaml")


def test_namespaced_rendering_is_deploy_namespaced() -> None:
    chart = _template("--include-crds", "--set", "namespaced=true")
    _assert_same_objects(
        chart, _without_namespace_object(_kustomize("deploy/namespaced")), "deploy/namespaced/"
    )


def test_monitoring_rendering_is_deploy_monitoring() -> None:
    chart = _template(
        "--show-only",
        "templates/monitoring.yaml",
        "--set",
        "monitoring.serviceMonitor.enabled=true,monitoring.prometheusRule.enabled=true",
        "--set",
        "monitoring.dashboard.enabled=true",
    )
    monitoring = [
        {**document, "metadata": {**document["metadata"], "namespace": "certsmith"}}
        for document in _kustomize("deploy/monitoring")
    ]
    _assert_same_objects(chart, monitoring, "deploy/monitoring/")


def test_values_reach_the_deployment() -> None:
    chart = _template(
        "--namespace",
        "platform",
        "--set",
        "replicas=3,shards=12,image.repository=registry.example/certsmith,image.tag=0.1.0-rc1",
        "--set",
        "settings.workers=8,settings.backoffMax=30m,settings.autoApprove=false",
        "--set",
        "settings.watchNamespaces={team-a,team-b}",
        "--set",
        "extraArgs={--no-tls-secret-metrics}",
        "--set",
        "nodeSelector.pool=system,imagePullSecrets[0].name=regcred",
        "--set-json",
        'tolerations=[{"key":"dedicated","operator":"Exists"}]',
    )
    deployment = next(document for document in chart if document["kind"] == "Deployment")
    assert deployment["metadata"]["namespace"] == "platform"
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example/certsmith:0.1.0-rc1"
    assert container["args"] == [
        "run",
        "--leader-elect",
        "--shards=12",
        "--leader-elect-namespace=platform",
        "--log-format",
        "json",
        "--acme-solver-service",
        "platform/certsmith-acme-solver",
        "--namespace=team-a",
        "--namespace=team-b",
        "--cluster-resource-namespace=platform",
        "--trust-namespace=platform",
        "--no-auto-approve",
        "--backoff-max=30m",
        "--workers=8",
        "--no-tls-secret-metrics",
    ]
    assert pod["nodeSelector"] == {"pool": "system"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    binding = next(document for document in chart if document["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == "platform"


def test_flags_the_operator_accepts() -> None:
    """Every flag the chart can render parses with `certsmith run`'s own argument parser."""
    chart = _template(
        "--namespace",
        "platform",
        "--set",
        "namespaced=true,settings.workers=8,settings.backoffInitial=30s,settings.backoffMax=2h",
        "--set",
        "settings.maxIssuancesPerHour=5,settings.acmeOrdersPerHour=3",
        "--set-json",
        "settings.kubeApiQps=50.5",
        "--set",
        "settings.kubeApiBurst=100,settings.secretOwnerReferences=true,settings.verbose=true",
        "--set",
        "settings.tlsSecretMetrics=false,settings.autoApprove=false,settings.logFormat=plain",
        "--set",
        "settings.clusterResourceNamespace=certsmith",
    )
    deployment = next(document for document in chart if document["kind"] == "Deployment")
    arguments = _parser().parse_args(deployment["spec"]["template"]["spec"]["containers"][0]["args"])
    settings: OperatorSettings = _settings(arguments, DEFAULTS)
    assert settings.namespaced
    assert settings.namespaces == ("platform",)
    assert settings.workers == 8
    assert settings.kube_api_qps == 50.5
    assert settings.kube_api_burst == 100
    assert settings.issuance_limit == 5
    assert settings.lease_namespace == "platform"
    assert settings.cluster_resource_namespace == "certsmith"
    assert not settings.auto_approve


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (["--set", "replicas=two"], "replicas"),
        (["--set", "replica=3"], "replica"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "settings.workers=0"], "workers"),
        (["--set", "settings.backoffMax=ten minutes"], "backoffMax"),
        (["--set", "settings.logFormat=xml"], "logFormat"),
        (["--set", "extraArgs={verbose}"], "extraArgs"),
        (["--set", "monitoring.serviceMonitor.labels.release=1"], "release"),
        (["--set", "networkPolicy.enable=false"], "enable"),
    ],
)
def test_schema_refuses_wrong_values(values: list[str], complaint: str) -> None:
    refused = _helm("template", "certsmith", str(CHART), *values, check=False)
    assert refused.returncode != 0, f"{values} was accepted"
    assert "values don't meet the specifications of the schema" in refused.stderr, refused.stderr
    assert complaint in refused.stderr, refused.stderr


def _kube_score(manifests: str) -> list[str]:
    """kube-score's critical findings and warnings; since `container-resources` is skipped whole, what it
    would check besides the CPU limit is asserted here."""
    for document in yaml.safe_load_all(manifests):
        if document and document["kind"] == "Deployment":
            for container in document["spec"]["template"]["spec"]["containers"]:
                resources = container["resources"]
                assert {"cpu", "memory", "ephemeral-storage"} <= set(resources["requests"]), container["name"]
                assert {"memory", "ephemeral-storage"} <= set(resources["limits"]), container["name"]
    skips = [argument for check in KUBE_SCORE_SKIPS for argument in ("--ignore-test", check)]
    scored = subprocess.run(
        [str(ensure_kube_score()), "score", "--output-format", "ci", *skips, "-"],
        input=manifests,
        capture_output=True,
        text=True,
        check=False,
    )
    assert not scored.stderr, scored.stderr
    return [line for line in scored.stdout.splitlines() if line.startswith(("[CRITICAL]", "[WARNING]"))]


def test_kube_score_finds_nothing_in_install_yaml() -> None:
    assert _kube_score(INSTALL.read_text()) == []


def test_kube_score_finds_nothing_in_the_charts_default_rendering() -> None:
    rendered = _helm("template", "certsmith", str(CHART), "--namespace", "certsmith").stdout
    assert _kube_score(rendered) == []


def test_kube_score_skips_are_real_checks() -> None:
    """A skip of a check kube-score does not have (renamed, mistyped) would silently skip nothing."""
    listed = subprocess.run(
        [str(ensure_kube_score()), "list"], capture_output=True, text=True, check=True
    ).stdout
    names = {line.split(",")[0] for line in listed.splitlines()}
    assert set(KUBE_SCORE_SKIPS) <= names, set(KUBE_SCORE_SKIPS) - names


def _value_lines(lines: list[str]) -> dict[tuple[str, ...], int]:
    """The line number of each key in values.yaml by its path (list items skipped)."""
    found: dict[tuple[str, ...], int] = {}
    path: list[str] = []
    for number, line in enumerate(lines):
        key = re.match(r"^( *)([A-Za-z0-9_.-]+):", line)
        if key:
            depth = len(key[1]) // 2
            path = [*path[:depth], key[2]]
            found[tuple(path)] = number
    return found


def _schema_fields(schema: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The chart's own fields: each property of the schema, down to the ones without properties."""
    fields: list[tuple[str, ...]] = []
    for name, field in schema.get("properties", {}).items():
        fields += _schema_fields(field, (*path, name)) if "properties" in field else [(*path, name)]
    return fields


def test_every_value_is_in_the_schema_and_documented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    keys = _value_lines(lines)
    fields = _schema_fields(json.loads((CHART / "values.schema.json").read_text()))
    missing = [".".join(field) for field in fields if field not in keys]
    assert missing == [], f"values.schema.json has fields values.yaml lacks: {missing}"
    undocumented = [
        ".".join(field) for field in fields if not lines[keys[field] - 1].lstrip().startswith("#")
    ]
    assert undocumented == [], f"values.yaml fields without a comment above them: {undocumented}"
    top_level = {key[0] for key in keys}
    assert top_level == {field[0] for field in fields}, "values.yaml and values.schema.json differ"


def test_values_yaml_validates_against_its_schema() -> None:
    _helm("lint", "--strict", str(CHART), "--values", str(CHART / "values.yaml"))


def test_kube_score_skips_are_explained_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [check for check in KUBE_SCORE_SKIPS if f"`{check}`" not in readme]
    assert missing == [], f"README does not explain the kube-score skips {missing}"


def test_chart_crds_folder_holds_only_crds() -> None:
    for path in sorted((CHART / "crds").iterdir()):
        documents = list(yaml.safe_load_all(path.read_text()))
        assert [document["kind"] for document in documents] == ["CustomResourceDefinition"], path
    assert Path(CHART / "files" / "approval-policy.yaml").is_file()
