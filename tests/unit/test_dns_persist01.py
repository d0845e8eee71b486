"""dns-persist-01: the record certsmith asks for, and whether a record authorises the account (pure)."""

from __future__ import annotations

import time

import pytest

from certsmith.api.acme import parse_acme_spec, solver_for
from certsmith.issuers.acme.dns_persist01 import (
    authorizes,
    certificate_records,
    issuer_status,
    record_name,
    record_value,
)

CA = ("pebble.letsencrypt.org",)
ACCOUNT = "https://ca.test/my-account/7"


def test_the_record_certsmith_asks_for_authorises_the_account() -> None:
    assert record_name("*.example.com") == "_validation-persist.example.com."
    value = record_value(CA[0], ACCOUNT)
    assert value == f"pebble.letsencrypt.org; accounturi={ACCOUNT}"
    assert authorizes(value, CA, ACCOUNT, wildcard=False)
    assert not authorizes(value, CA, ACCOUNT, wildcard=True), "a wildcard needs policy=wildcard"
    assert authorizes(record_value(CA[0], ACCOUNT, wildcard=True), CA, ACCOUNT, wildcard=True)
    shown = issuer_status(CA, ACCOUNT)
    assert shown == {
        "name": "_validation-persist.<DNS name>",
        "value": value,
        "wildcardValue": f"{value}; policy=wildcard",
    }
    assert issuer_status((), ACCOUNT) is None


@pytest.mark.parametrize(
    "value",
    [
        f"other-ca.example; accounturi={ACCOUNT}",
        "pebble.letsencrypt.org; accounturi=https://ca.test/my-account/8",
        "pebble.letsencrypt.org",
        f"pebble.letsencrypt.org; accounturi={ACCOUNT}; accounturi={ACCOUNT}",
        f"pebble.letsencrypt.org; accounturi={ACCOUNT};",
        f"pebble.letsencrypt.org; accounturi={ACCOUNT}; persistUntil={int(time.time()) - 60}",
    ],
)
def test_records_that_do_not_authorise_the_account(value: str) -> None:
    assert not authorizes(value, CA, ACCOUNT, wildcard=False)


def test_tags_are_case_insensitive_and_a_future_persist_until_holds() -> None:
    value = f" Pebble.LetsEncrypt.org ;AccountURI={ACCOUNT} ; persistUntil={int(time.time()) + 3600}"
    assert authorizes(value, CA, ACCOUNT, wildcard=False)


def test_a_dns_persist01_solver_is_chosen_for_wildcards_and_not_for_addresses() -> None:
    spec = parse_acme_spec(
        {
            "server": "https://ca.test/dir",
            "privateKeySecretRef": {"name": "k"},
            "solvers": [{"dnsPersist01": {}}],
        }
    )
    solver = solver_for(spec.solvers, "*.example.com", {})
    assert solver is not None
    assert solver.challenge_type == "dns-persist-01"
    assert solver_for(spec.solvers, "192.0.2.1", {}) is None


def test_a_certificate_needs_one_record_per_name_its_dns_persist01_solver_proves() -> None:
    spec = parse_acme_spec(
        {
            "server": "https://ca.test/dir",
            "privateKeySecretRef": {"name": "k"},
            "solvers": [
                {"http01": {"ingress": {}}},
                {"dnsPersist01": {}, "selector": {"dnsZones": ["example.com"]}},
            ],
        }
    )
    shown = issuer_status(CA, ACCOUNT)
    assert shown is not None
    records = certificate_records(
        ["Example.com", "*.example.com", "other.test", "example.com"], spec.solvers, {}, shown
    )
    assert records == [
        f'_validation-persist.example.com. TXT "{shown["value"]}"',
        f'_validation-persist.example.com. TXT "{shown["wildcardValue"]}"',
    ]
