"""DNS-01 solver specs, the provider registry and the CNAME chain (pure; Route53 itself is tested
against moto's server in tests/cluster/test_dns01.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from certsmith.api import SpecError
from certsmith.api.acme import (
    CNAMEStrategy,
    ExternalSolver,
    Route53Solver,
    parse_acme_spec,
)
from certsmith.api.issuer import issuer_secret_names
from certsmith.api.references import SecretKeyRef
from certsmith.issuers.acme.dns01 import DNSProviderError, ProviderContext, _entry_points, provider_factory
from certsmith.issuers.acme.dns01_cname import CNAMEFollowing
from certsmith.issuers.acme.dns01_rfc2136 import rfc2136_provider
from certsmith.issuers.acme.dns01_route53 import route53_provider


def _dns01(dns01: dict[str, Any]) -> Any:
    spec = parse_acme_spec(
        {"server": "https://ca.test/dir", "privateKeySecretRef": {"name": "a"}, "solvers": [{"dns01": dns01}]}
    )
    return spec.solvers[0].dns01


def test_route53_takes_cert_managers_fields() -> None:
    solver = _dns01(
        {
            "cnameStrategy": "Follow",
            "route53": {
                "region": "eu-west-1",
                "hostedZoneID": "Z1",
                "accessKeyIDSecretRef": {"name": "aws", "key": "id"},
                "secretAccessKeySecretRef": {"name": "aws", "key": "secret"},
                "role": "arn:aws:iam::1:role/dns",
            },
        }
    )
    assert solver.cname_strategy is CNAMEStrategy.FOLLOW
    assert solver.provider == Route53Solver(
        "eu-west-1",
        "Z1",
        None,
        SecretKeyRef("aws", "id"),
        SecretKeyRef("aws", "secret"),
        "arn:aws:iam::1:role/dns",
    )
    assert solver.provider_name == "route53"
    assert not solver.provider.ambient
    ambient = _dns01({"route53": {}})
    assert ambient.provider == Route53Solver()
    assert ambient.provider.ambient
    assert ambient.cname_strategy is CNAMEStrategy.NONE


@pytest.mark.parametrize(
    ("dns01", "field"),
    [
        ({}, "acme.solvers[0].dns01"),
        ({"rfc2136": {"nameserver": "ns"}, "route53": {}}, "acme.solvers[0].dns01"),
        ({"rfc2136": {"tsigKeyName": "k"}}, "acme.solvers[0].dns01.rfc2136.nameserver"),
        (
            {"route53": {"accessKeyID": "AKIA", "accessKeyIDSecretRef": {"name": "a", "key": "b"}}},
            "acme.solvers[0].dns01.route53.accessKeyID",
        ),
        ({"route53": {"accessKeyID": "AKIA"}}, "acme.solvers[0].dns01.route53.secretAccessKeySecretRef"),
        ({"provider": {"config": {}}}, "acme.solvers[0].dns01.provider.name"),
        ({"route53": {}, "cnameStrategy": "Always"}, "acme.solvers[0].dns01.cnameStrategy"),
    ],
)
def test_a_bad_dns01_solver_names_its_field(dns01: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as refused:
        _dns01(dns01)
    assert refused.value.field == field


def test_a_provider_package_gets_its_config() -> None:
    solver = _dns01({"provider": {"name": "cloudflare", "config": {"zone": "example.com", "ttl": 60}}})
    assert solver.provider == ExternalSolver("cloudflare", '{"ttl": 60, "zone": "example.com"}')
    assert solver.provider.settings() == {"ttl": 60, "zone": "example.com"}
    assert solver.where == "the cloudflare DNS provider"


def test_the_route53_secrets_are_watched() -> None:
    spec = {
        "acme": {
            "solvers": [
                {
                    "dns01": {
                        "route53": {
                            "accessKeyIDSecretRef": {"name": "key-id", "key": "id"},
                            "secretAccessKeySecretRef": {"name": "key", "key": "secret"},
                        }
                    }
                }
            ]
        }
    }
    assert issuer_secret_names(spec) == {"key-id", "key"}


def test_the_in_tree_providers_are_found_through_the_entry_point_group() -> None:
    assert provider_factory("rfc2136") is rfc2136_provider
    assert provider_factory("route53") is route53_provider
    with pytest.raises(DNSProviderError) as missing:
        provider_factory("cloudflare")
    assert "installed: rfc2136, route53" in str(missing.value)
    assert "certsmith.dns01_providers" in str(missing.value)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def present(self, fqdn: str, value: str) -> None:
        self.calls.append(("present", fqdn))

    def visible(self, fqdn: str, value: str) -> bool:
        self.calls.append(("visible", fqdn))
        return True

    def cleanup(self, fqdn: str, value: str) -> None:
        self.calls.append(("cleanup", fqdn))


def test_cname_chains_are_followed_to_their_end() -> None:
    chain = {
        "_acme-challenge.www.example.com.": "www.acme.example.net.",
        "www.acme.example.net.": "final.acme.example.org.",
    }
    recorder = Recorder()
    following = CNAMEFollowing(recorder, chain.get)
    following.present("_acme-challenge.www.example.com.", "v")
    assert following.visible("_acme-challenge.www.example.com.", "v")
    following.cleanup("_acme-challenge.www.example.com.", "v")
    following.present("_acme-challenge.other.example.com.", "v")
    assert recorder.calls == [
        ("present", "final.acme.example.org."),
        ("visible", "final.acme.example.org."),
        ("cleanup", "final.acme.example.org."),
        ("present", "_acme-challenge.other.example.com."),
    ]


def test_a_cname_loop_or_a_long_chain_is_refused() -> None:
    loop = {"a.": "b.", "b.": "a."}
    with pytest.raises(DNSProviderError, match=r"loops at a\."):
        CNAMEFollowing(Recorder(), loop.get).target("a.")
    long = {f"n{index}.": f"n{index + 1}." for index in range(20)}
    with pytest.raises(DNSProviderError, match="longer than 8 names"):
        CNAMEFollowing(Recorder(), long.get).target("n0.")


PLUGIN = """
from certsmith.issuers.acme.dns01 import DNSProviderError


class MemoryProvider:
    def __init__(self, zone):
        self.zone = zone
        self.records = set()

    def present(self, fqdn, value):
        if not fqdn.endswith(self.zone):
            raise DNSProviderError(f"{fqdn} is not in {self.zone}")
        self.records.add((fqdn, value))

    def visible(self, fqdn, value):
        return (fqdn, value) in self.records

    def cleanup(self, fqdn, value):
        self.records.discard((fqdn, value))


def memory_provider(solver, context):
    return MemoryProvider(solver.provider.settings()["zone"])
"""


def test_a_provider_shipped_as_its_own_package_is_found_by_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed distribution (its dist-info on the path, as pip leaves it) registering a factory in
    certsmith.dns01_providers is what a dns01.provider solver names."""
    (tmp_path / "certsmith_memory_dns.py").write_text(PLUGIN)
    info = tmp_path / "certsmith_memory_dns-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: certsmith-memory-dns\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[certsmith.dns01_providers]\nmemory = certsmith_memory_dns:memory_provider\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _entry_points.cache_clear()
    try:
        solver = _dns01({"provider": {"name": "memory", "config": {"zone": "example.test."}}})
        context = ProviderContext(lambda reference, field: b"", ambient_credentials=False)
        provider = provider_factory("memory")(solver, context)
        provider.present("_acme-challenge.www.example.test.", "value")
        assert provider.visible("_acme-challenge.www.example.test.", "value")
        provider.cleanup("_acme-challenge.www.example.test.", "value")
        assert not provider.visible("_acme-challenge.www.example.test.", "value")
        with pytest.raises(DNSProviderError, match=r"not in example\.test"):
            provider.present("_acme-challenge.www.other.test.", "value")
    finally:
        _entry_points.cache_clear()
