"""The scrape-time collector: every series is rendered from in-memory state when Prometheus asks, so
a deleted Certificate or Secret has no series at the next scrape, and a scrape makes no API call."""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from certsmith import __version__
from certsmith.api.status import parse_timestamp
from certsmith.metrics.tls_secrets import TLSSecretFacts

Key = tuple[str, str]
CONDITIONS = ("True", "False", "Unknown")
_CERTIFICATE_LABELS = ["namespace", "name", "secret", "issuer_name", "issuer_kind"]


class Snapshots(Protocol):
    def snapshot(self) -> list[tuple[Key, Mapping[str, Any]]]: ...


class ObservedState(Protocol):
    """What the operator holds: its store, as the collector reads it (never writes)."""

    @property
    def certificates(self) -> Snapshots: ...
    issuers: dict[Key, Mapping[str, Any]]
    cluster_issuers: dict[Key, Mapping[str, Any]]

    def ca_not_after(self, plural: str, key: Key) -> datetime.datetime | None: ...


class CertsmithCollector(Collector):
    """certsmith's Certificates and issuers, as the store holds them."""

    def __init__(self, state: ObservedState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        yield from self._certificates()
        yield from self._issuers()
        build = InfoMetricFamily("certsmith_build", "certsmith's version.")
        build.add_metric([], {"version": __version__})
        yield build

    def _certificates(self) -> Iterator[Metric]:
        not_after = GaugeMetricFamily(
            "certsmith_certificate_not_after_timestamp_seconds",
            "When the certificate in the Certificate's Secret expires (Unix time).",
            labels=_CERTIFICATE_LABELS,
        )
        not_before = GaugeMetricFamily(
            "certsmith_certificate_not_before_timestamp_seconds",
            "When the certificate in the Certificate's Secret became valid (Unix time).",
            labels=_CERTIFICATE_LABELS,
        )
        renewal = GaugeMetricFamily(
            "certsmith_certificate_renewal_timestamp_seconds",
            "When certsmith will renew the certificate (Unix time); absent while none is planned.",
            labels=_CERTIFICATE_LABELS,
        )
        ready = GaugeMetricFamily(
            "certsmith_certificate_ready_status",
            "The Certificate's Ready condition: 1 for the current value of `condition`, 0 for the others.",
            labels=[*_CERTIFICATE_LABELS, "condition"],
        )
        for (namespace, name), body in self._state.certificates.snapshot():
            spec, status = body.get("spec") or {}, body.get("status") or {}
            reference = spec.get("issuerRef") or {}
            labels = [
                namespace,
                name,
                str(spec.get("secretName", "")),
                str(reference.get("name", "")),
                str(reference.get("kind", "Issuer")),
            ]
            for family, field in (
                (not_after, "notAfter"),
                (not_before, "notBefore"),
                (renewal, "renewalTime"),
            ):
                moment = parse_timestamp(status.get(field))
                if moment is not None:
                    family.add_metric(labels, moment.timestamp())
            current = _ready(status)
            for value in CONDITIONS:
                ready.add_metric([*labels, value], 1.0 if value == current else 0.0)
        yield from (not_after, not_before, renewal, ready)

    def _issuers(self) -> Iterator[Metric]:
        ready = GaugeMetricFamily(
            "certsmith_issuer_ready_status",
            "The issuer's Ready condition: 1 for the current value of `condition`, 0 for the others.",
            labels=["namespace", "name", "kind", "condition"],
        )
        ca_not_after = GaugeMetricFamily(
            "certsmith_issuer_ca_not_after_timestamp_seconds",
            "When the CA certificate a CA issuer signs with expires (Unix time).",
            labels=["namespace", "name", "kind"],
        )
        for plural, kind, objects in (
            ("issuers", "Issuer", self._state.issuers),
            ("clusterissuers", "ClusterIssuer", self._state.cluster_issuers),
        ):
            for key, body in list(objects.items()):
                labels = [key[0], key[1], kind]
                current = _ready(body.get("status") or {})
                for value in CONDITIONS:
                    ready.add_metric([*labels, value], 1.0 if value == current else 0.0)
                expires = self._state.ca_not_after(plural, key)
                if expires is not None:
                    ca_not_after.add_metric(labels, expires.timestamp())
        yield from (ready, ca_not_after)


def _ready(status: Mapping[str, Any]) -> str:
    condition = next((c for c in status.get("conditions") or () if c.get("type") == "Ready"), None)
    value = condition.get("status") if condition else None
    return value if value in CONDITIONS else "Unknown"


class TLSSecretCollector(Collector):
    """Every certificate in the kubernetes.io/tls Secrets the scanner has seen."""

    def __init__(self, secrets: Mapping[Key, TLSSecretFacts]) -> None:
        self._secrets = secrets

    def collect(self) -> Iterator[Metric]:
        labels = ["namespace", "secret", "key", "chain_position", "managed"]
        not_after = GaugeMetricFamily(
            "certsmith_tls_secret_not_after_timestamp_seconds",
            "When each certificate in a kubernetes.io/tls Secret expires (Unix time), managed by certsmith "
            "or not.",
            labels=labels,
        )
        info = InfoMetricFamily(
            "certsmith_tls_secret_certificate",
            "Subject and issuer common names and serial of each certificate in a kubernetes.io/tls Secret.",
            labels=labels,
        )
        for (namespace, name), facts in list(self._secrets.items()):
            for found in facts.certificates:
                values = [namespace, name, found.key, str(found.chain_position), str(facts.managed).lower()]
                not_after.add_metric(values, found.not_after.timestamp())
                info.add_metric(
                    values,
                    {"subject_cn": found.subject_cn, "issuer_cn": found.issuer_cn, "serial": found.serial},
                )
        yield from (not_after, info)
