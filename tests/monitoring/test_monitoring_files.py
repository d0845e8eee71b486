"""The shipped rules, dashboard and manifests: promtool accepts and tests the rules, every alert has a
firing test and a runbook section, the dashboard is what its generator makes and uses only metrics
that certsmith exports, through the ${datasource} variable."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from certsmith.metrics.collector import CertsmithCollector, TLSSecretCollector
from certsmith.metrics.issuance import IssuanceMetrics
from certsmith.reconcile.store import Store
from tests.conftest import REPO

MONITORING = REPO / "deploy" / "monitoring"
RULES = yaml.safe_load((MONITORING / "rules.yaml").read_text())
ALERTS = [rule["alert"] for group in RULES["groups"] for rule in group["rules"]]
DASHBOARD: dict[str, Any] = json.loads((MONITORING / "dashboard.json").read_text())


def _promtool(*arguments: str) -> None:
    checked = subprocess.run(["promtool", *arguments], capture_output=True, text=True, check=False, cwd=REPO)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_accepts_the_rules() -> None:
    _promtool("check", "rules", "deploy/monitoring/rules.yaml")


def test_promtool_rule_tests_pass() -> None:
    _promtool("test", "rules", "deploy/monitoring/tests/rules_test.yaml")


def test_every_alert_has_a_firing_test_and_a_runbook_section() -> None:
    tests = yaml.safe_load((MONITORING / "tests" / "rules_test.yaml").read_text())["tests"]
    fired = {
        case["alertname"] for test in tests for case in test["alert_rule_test"] if case.get("exp_alerts")
    }
    silent = {
        case["alertname"] for test in tests for case in test["alert_rule_test"] if not case.get("exp_alerts")
    }
    assert set(ALERTS) <= fired
    assert set(ALERTS) <= silent | {"CertsmithCertificateExpiryCritical", "CertsmithTLSSecretExpiryCritical"}
    runbook = (REPO / "docs" / "runbook.md").read_text()
    for group in RULES["groups"]:
        for rule in group["rules"]:
            anchor = rule["annotations"]["runbook"].split("#", 1)[1].split()[0]
            assert f"\n## {anchor}\n" in runbook.lower(), anchor


def test_generated_files_are_what_the_generator_makes() -> None:
    rendered = subprocess.run(
        [sys.executable, "hack/render-monitoring.py", "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    rule = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"] == RULES


def _exported_names() -> set[str]:
    registry = CollectorRegistry()
    IssuanceMetrics(registry)
    registry.register(CertsmithCollector(Store()))
    registry.register(TLSSecretCollector({}))
    names = set()
    for family in registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "info": ["_info"]}
        names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
    return names


def test_the_dashboard_uses_only_exported_metrics_through_the_datasource_variable() -> None:
    exported = _exported_names()
    variables = {variable["name"] for variable in DASHBOARD["templating"]["list"]}
    assert {"datasource", "namespace", "issuer"} <= variables
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            used = set(re.findall(r"certsmith_[a-z_]+", target["expr"]))
            assert used, target["expr"]
            assert used <= exported, f"{panel['title']}: {used - exported} not exported"


def test_the_dashboard_configmap_holds_the_dashboard_for_grafanas_sidecar() -> None:
    configmap = yaml.safe_load((MONITORING / "dashboard-configmap.yaml").read_text())
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["certsmith.json"]) == DASHBOARD
