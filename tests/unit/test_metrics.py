"""The metrics, rendered from reconcile state on the in-memory port: series appear and disappear with
their objects, never-issued certificates have no timestamps, counters count, promtool accepts it all."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from certsmith.kube.watch import Changed, Listed
from certsmith.metrics.collector import CertsmithCollector, TLSSecretCollector
from certsmith.metrics.scanner import TLSSecretScanner
from certsmith.metrics.server import MetricsApp, metrics_registry, serve_metrics
from certsmith.metrics.tls_secrets import TLSSecretFacts, tls_secret_facts
from certsmith.pki.encodings import certificates_pem
from certsmith.pki.keys import KeyAlgorithm, KeyEncoding, KeySpec, encode_private_key, generate_private_key
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import self_sign
from certsmith.settings import OperatorSettings, namespace_filter
from certsmith.tls_secret import SecretContents
from certsmith_devtools.kit import free_port
from tests.unit.test_reconcile import NS, World, _ca_pair, _ca_world


def _samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(registry: CollectorRegistry, metric: str, **labels: str) -> float | None:
    for (sample, found), value in _samples(registry).items():
        if sample == metric and set(labels.items()) <= found:
            return value
    return None


def _scraped(world: World, secrets: dict[tuple[str, str], TLSSecretFacts] | None = None) -> CollectorRegistry:
    registry = world.registry
    registry.register(CertsmithCollector(world.store))
    if secrets is not None:
        registry.register(TLSSecretCollector(secrets))
    return registry


def test_certificate_series_follow_the_status_and_vanish_with_the_certificate() -> None:
    world, issuer = _ca_world()
    world.certificate("web", issuerRef={"name": "ca"})
    world.certificate("never", issuerRef={"name": "missing"})
    world.reconcile("web")
    world.reconcile("never")
    registry = _scraped(world)
    status = world.status("web")
    expected = datetime.datetime.fromisoformat(status["notAfter"].replace("Z", "+00:00")).timestamp()
    labels = {"namespace": NS, "name": "web", "secret": "web", "issuer_name": "ca", "issuer_kind": "Issuer"}
    assert _value(registry, "certsmith_certificate_not_after_timestamp_seconds", **labels) == expected
    assert _value(registry, "certsmith_certificate_renewal_timestamp_seconds", **labels) is not None
    assert _value(registry, "certsmith_certificate_ready_status", **labels, condition="True") == 1.0
    assert _value(registry, "certsmith_certificate_ready_status", **labels, condition="False") == 0.0
    assert _value(registry, "certsmith_certificate_not_after_timestamp_seconds", name="never") is None
    assert _value(registry, "certsmith_certificate_ready_status", name="never", condition="False") == 1.0
    ca_expiry = _value(registry, "certsmith_issuer_ca_not_after_timestamp_seconds", name="ca", kind="Issuer")
    assert ca_expiry is not None
    assert ca_expiry > expected - 1
    assert _value(registry, "certsmith_issuer_ready_status", name="ca", condition="True") == 1.0
    assert _value(registry, "certsmith_issuance_total", issuer_kind="Issuer", result="success") == 1.0
    assert _value(registry, "certsmith_issuance_total", issuer_kind="Issuer", result="failure") == 1.0
    world.delete_certificate("web")
    assert _value(registry, "certsmith_certificate_ready_status", name="web") is None
    del world.store.issuers[issuer.key]
    assert _value(registry, "certsmith_issuer_ready_status", name="ca") is None


def test_a_failed_renewal_is_counted_as_such() -> None:
    world, _issuer = _ca_world()
    world.certificate("web", issuerRef={"name": "ca"})
    world.reconcile("web")
    world.kube.refuse_secret_writes = (403, "Forbidden")
    world.certificate(
        "web", annotations={"certsmith.dev/renew-requested-at": "now"}, issuerRef={"name": "ca"}
    )
    world.reconcile("web")
    registry = _scraped(world)
    assert _value(registry, "certsmith_renewal_failures_total", issuer_kind="Issuer") == 1.0
    assert world.ready("web")["status"] == "True"


def test_tls_secret_facts_list_every_certificate_of_the_chain() -> None:
    ca = _ca_pair().data["tls.crt"]
    facts = tls_secret_facts({"tls.crt": ca + ca, "ca.crt": ca, "tls.key": b"x"}, managed=False)
    assert [(f.key, f.chain_position) for f in facts.certificates] == [
        ("tls.crt", 0),
        ("tls.crt", 1),
        ("ca.crt", 0),
    ]
    assert facts.certificates[0].subject_cn == "test CA"
    assert tls_secret_facts({"tls.crt": b"garbage"}, managed=True).certificates == ()


def test_the_facts_of_a_ca_certificate_are_kept_once_for_all_the_secrets_that_carry_it() -> None:
    ca = _ca_pair().data["tls.crt"]
    first = tls_secret_facts({"tls.crt": ca + ca, "ca.crt": ca}, managed=True).certificates
    second = tls_secret_facts({"tls.crt": ca + ca, "ca.crt": ca}, managed=True).certificates
    assert first[0] == second[0]
    assert first[0] is not second[0], "a leaf's facts are its own"
    assert first[1] is second[1]
    assert first[2] is second[2]


def test_every_tls_secret_is_exported_and_promtool_accepts_the_output() -> None:
    world, _issuer = _ca_world()
    world.certificate("web", issuerRef={"name": "ca"})
    world.reconcile("web")
    secrets = {
        ("other", "imported"): tls_secret_facts(dict(_ca_pair().data), managed=False),
        (NS, "web"): tls_secret_facts(dict(world.secret("web").data), managed=True),
    }
    registry = _scraped(world, secrets)
    assert _value(
        registry,
        "certsmith_tls_secret_not_after_timestamp_seconds",
        namespace="other",
        secret="imported",
        key="tls.crt",
        chain_position="0",
        managed="false",
    )
    assert _value(registry, "certsmith_tls_secret_certificate_info", secret="web", key="ca.crt") == 1.0
    text = generate_latest(registry)
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, check=False)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


def test_namespace_patterns_select_as_kopf_does() -> None:
    assert namespace_filter(())("anything")
    watched = namespace_filter(("team-*", "!team-secret"))
    assert watched("team-a")
    assert not watched("team-secret")
    assert not watched("default")
    assert namespace_filter(("!kube-*",))("default")
    assert not namespace_filter(("!kube-*",))("kube-system")


def test_contents_type_is_irrelevant_to_the_facts() -> None:
    assert tls_secret_facts(dict(SecretContents().data), managed=False).certificates == ()


def test_secrets_of_a_shard_lost_while_their_event_was_on_its_way_are_not_kept() -> None:
    """The watch's thread selects a Secret while its shard is held; the shard is lost and forgotten
    before the Secret arrives: the scanner must not keep it, or two replicas would export it."""
    held = {"mine", "lost"}
    scanner = TLSSecretScanner(client.ApiClient(), ("ns",), holds=lambda key: key[1] in held)
    receive = scanner.watches[0]._deliver  # what the watch's thread calls
    facts = tls_secret_facts(dict(_ca_pair().data), managed=True)
    selected = {("ns", "mine"): facts, ("ns", "lost"): facts}
    held.discard("lost")
    scanner.shards_changed(gained=False)
    receive(Listed(selected))
    receive(Changed(("ns", "lost"), facts))
    assert set(scanner.snapshot()[1]) == {("ns", "mine")}
    receive(Changed(("ns", "mine"), None))
    assert scanner.snapshot()[1] == {}


class _Scanner:
    def __init__(self, facts: dict[tuple[str, str], TLSSecretFacts]) -> None:
        self.version = 1
        self.facts = facts

    def snapshot(self) -> tuple[int, dict[tuple[str, str], TLSSecretFacts]]:
        return self.version, dict(self.facts)


def test_the_metrics_app_serves_both_parts_and_renders_tls_secrets_only_when_they_change() -> None:
    world, _issuer = _ca_world()
    world.certificate("web", issuerRef={"name": "ca"})
    world.reconcile("web")
    world.registry.register(CertsmithCollector(world.store))
    scanner = _Scanner({("legacy", "old"): tls_secret_facts(dict(_ca_pair().data), managed=False)})
    app = MetricsApp(world.registry, scanner)  # type: ignore[arg-type]
    answers: list[tuple[str, dict[str, str]]] = []
    parts = app({"PATH_INFO": "/metrics"}, lambda status, headers: answers.append((status, dict(headers))))
    body = b"".join(parts)
    text = body.decode()
    assert [status for status, _ in answers] == ["200 OK"]
    assert answers[0][1]["Content-Length"] == str(len(body))
    assert list(parts)[-1] is app.tls_secret_series(), "the rendered TLS-Secret series are sent, not copied"
    assert "certsmith_certificate_ready_status{" in text
    assert 'secret="old"' in text
    first = app.tls_secret_series()
    assert app.tls_secret_series() is first, "unchanged facts are not rendered again"
    scanner.facts = {}
    scanner.version = 2
    assert app.tls_secret_series().count(b'secret="old"') == 0
    checked = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, check=False)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


def test_metrics_are_served_over_https_when_given_a_certificate(tmp_path: Path) -> None:
    key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    issued = self_sign(
        CertificateTemplate(ip_addresses=(ipaddress.ip_address("127.0.0.1"),)),
        key,
        datetime.datetime.now(datetime.UTC),
    )
    (tmp_path / "tls.crt").write_bytes(certificates_pem([issued.certificate]))
    (tmp_path / "tls.key").write_bytes(encode_private_key(key, KeyEncoding.PKCS8))
    port = free_port()
    settings = OperatorSettings(
        metrics_port=port,
        metrics_address="127.0.0.1",
        metrics_tls_cert=str(tmp_path / "tls.crt"),
        metrics_tls_key=str(tmp_path / "tls.key"),
    )
    registry = metrics_registry()
    serve_metrics(MetricsApp(registry, None), settings)
    context = ssl.create_default_context(cafile=str(tmp_path / "tls.crt"))
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=context, timeout=5) as response:
        assert b"process_cpu_seconds_total" in response.read()
    with pytest.raises((ConnectionError, urllib.error.URLError)):  # a plain-HTTP client is refused
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
