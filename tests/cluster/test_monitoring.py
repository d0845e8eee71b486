"""A real Prometheus scrapes the operator running against the real API server: every dashboard query
evaluates, the main panels show the values of the certificates made here, alerts load, and a deleted
Certificate's series are gone by the next scrape."""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from certsmith.api import GROUP, VERSION
from certsmith_devtools.kit import create_ca_issuer, free_port
from certsmith_devtools.prometheus import Prometheus
from tests.cluster.support import create_certificate, create_secret, eventually, key_pair, wait_ready
from tests.conftest import REPO, Cluster, OperatorProcess

MONITORING = REPO / "deploy" / "monitoring"
DAY = 86400


def _panel_queries() -> dict[str, list[str]]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    return {panel["title"]: [target["expr"] for target in panel["targets"]] for panel in dashboard["panels"]}


def _expand(expr: str, namespace: str) -> str:
    return expr.replace("$namespace", namespace).replace("$issuer", ".*").replace("$__rate_interval", "1m")


def _scalar(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


@pytest.fixture
def monitored(cluster: Cluster, solo_namespace: str, tmp_path: Path) -> Any:
    port = free_port()
    solo = OperatorProcess(
        cluster.kubeconfig,
        tmp_path / "solo.log",
        "--namespace",
        solo_namespace,
        "--metrics-port",
        str(port),
        "--metrics-address",
        "127.0.0.1",
    )
    solo.start()
    try:
        with Prometheus(
            tmp_path / "prometheus", f"127.0.0.1:{port}", MONITORING / "rules.yaml"
        ) as prometheus:
            yield prometheus
    finally:
        solo.stop()


def test_prometheus_scrapes_what_the_dashboard_shows(
    cluster: Cluster, solo_namespace: str, monitored: Prometheus
) -> None:
    namespace = solo_namespace
    issuer = create_ca_issuer(cluster.api, namespace, "monitored root")
    create_certificate(cluster, namespace, "web", issuer, dnsNames=["web.example.com"], duration="720h")
    create_certificate(cluster, namespace, "api", issuer, dnsNames=["api.example.com"], duration="2160h")
    create_certificate(cluster, namespace, "orphan", "no-such-issuer", dnsNames=["o.example.com"])
    create_secret(cluster, namespace, "legacy-tls", key_pair("legacy", False, datetime.timedelta(days=10)))
    for name in ("root", "web", "api"):
        wait_ready(cluster, namespace, name)

    def scraped(expr: str, value: float) -> bool:
        result = monitored.query(_expand(expr, namespace))
        return len(result) == 1 and float(result[0]["value"][1]) == value

    queries = _panel_queries()
    eventually(lambda: scraped(queries["Certificates Ready"][0], 3), 30, "3 Ready certificates in Prometheus")
    eventually(lambda: scraped(queries["Certificates not Ready"][0], 1), 30, "the orphan not Ready")
    for expressions in queries.values():
        for expr in expressions:
            monitored.query(_expand(expr, namespace))  # every panel query is valid PromQL
    assert _scalar(monitored.query(_expand(queries["Expiring soon"][0], namespace))) == 0
    assert _scalar(monitored.query(_expand(queries["Past their renewal time"][0], namespace))) == 0
    eventually(
        lambda: scraped(queries["Unmanaged TLS Secrets expiring within 28 days"][0], 1),
        30,
        "the unmanaged Secret",
    )
    days_left = {
        row["metric"]["name"]: float(row["value"][1])
        for row in monitored.query(_expand(queries["Certificates"][0], namespace))
    }
    assert 29.9 < days_left["web"] <= 30.01
    assert 89.9 < days_left["api"] <= 90.01
    assert "orphan" not in days_left, "a never-issued certificate has no expiry series"
    renewals = monitored.query(_expand(queries["Certificates"][1], namespace))
    assert {row["metric"]["name"] for row in renewals} == {"root", "web", "api"}
    lifetime_left = monitored.query(_expand(queries["Certificates"][2], namespace))
    assert {row["metric"]["name"] for row in lifetime_left} == {"root", "web", "api"}
    assert all(0.99 < float(row["value"][1]) <= 1.0 for row in lifetime_left), lifetime_left
    ca_days = [
        row
        for row in monitored.query(_expand(queries["CA expiry (days left)"][0], namespace))
        if row["metric"].get("namespace") == namespace
    ]
    assert [row["metric"]["name"] for row in ca_days] == ["ca"]
    assert 89.9 < float(ca_days[0]["value"][1]) <= 90.01
    legacy = monitored.query(_expand(queries["Unmanaged TLS Secrets"][0], namespace))
    assert [row["metric"]["secret"] for row in legacy] == ["legacy-tls"]
    assert 9.9 < float(legacy[0]["value"][1]) <= 10.01
    eventually(
        lambda: (
            monitored.query('sum(certsmith_issuance_total{result="success"})')
            and _scalar(monitored.query('sum(certsmith_issuance_total{result="success"})')) == 3
        ),
        30,
        "3 successful issuances counted",
    )

    client.CustomObjectsApi(cluster.api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "certificates", "web"
    )
    eventually(
        lambda: (
            not monitored.query(f'certsmith_certificate_ready_status{{namespace="{namespace}", name="web"}}')
        ),
        15,
        "the deleted Certificate's series to go",
    )
    rules = {rule["name"] for group in _rule_groups(monitored) for rule in group["rules"]}
    assert {"CertsmithCertificateNotReady", "CertsmithTLSSecretExpiringSoon"} <= rules
    pending = eventually(
        lambda: {alert["labels"]["alertname"] for alert in monitored.alerts()} or None,
        30,
        "pending alerts",
    )
    assert {"CertsmithCertificateNotReady", "CertsmithTLSSecretExpiringSoon"} <= pending


def _rule_groups(prometheus: Prometheus) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=10) as response:  # noqa: S310
        groups: list[dict[str, Any]] = json.load(response)["data"]["groups"]
    return groups


def test_the_monitoring_kustomization_builds_and_takes_a_release_label(
    cluster: Cluster, tmp_path: Path
) -> None:
    shutil.copytree(MONITORING, tmp_path / "monitoring")  # kustomize takes relative paths only
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "resources: [../monitoring]\nlabels:\n  - pairs: {release: kube-prometheus-stack}\n"
    )
    built = subprocess.run(
        [str(cluster.kubectl), "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    objects = list(yaml.safe_load_all(built.stdout))
    assert sorted(o["kind"] for o in objects) == ["ConfigMap", "PrometheusRule", "Service", "ServiceMonitor"]
    assert all(o["metadata"]["labels"]["release"] == "kube-prometheus-stack" for o in objects)
