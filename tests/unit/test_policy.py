"""The decision function: each reason from a constructed Secret, with a fixed clock; garbage never crashes."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certsmith.api.certificate import CertificateSpec, parse_certificate_spec
from certsmith.pki.keys import encode_private_key, generate_private_key
from certsmith.pki.signing import self_sign
from certsmith.policy import Action, Reason, decide
from certsmith.tls_secret import (
    ALT_NAMES,
    CERTIFICATE_NAME,
    MANAGED_LABEL,
    RENEW_REQUEST,
    REQUESTED_DURATION,
    TLS_CERT,
    TLS_KEY,
    SecretContents,
    derived_data,
    desired_metadata,
)

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)
SPEC: dict[str, Any] = {
    "secretName": "web-tls",
    "commonName": "web",
    "dnsNames": ["web.example.com"],
    "duration": "24h",
    "privateKey": {"algorithm": "ECDSA", "encoding": "PKCS1", "rotationPolicy": "Always"},
    "issuerRef": {"name": "selfsigned", "kind": "Issuer"},
}


def _spec(**changes: Any) -> CertificateSpec:
    return parse_certificate_spec({**SPEC, **changes})


def _issued_secret(spec: CertificateSpec, at: datetime.datetime = NOW, revision: int = 1) -> SecretContents:
    """The Secret certsmith itself would have written for `spec` at `at`."""
    key = generate_private_key(spec.private_key.spec)
    issued = self_sign(spec.request, key, at)
    labels, annotations = desired_metadata(spec, "web", revision, None)
    data = derived_data(spec, key, encode_private_key(key, spec.private_key.encoding), issued)
    return SecretContents(labels, annotations, data)


def _with(secret: SecretContents, **changes: Any) -> SecretContents:
    return dataclasses.replace(secret, **changes)


def test_fresh_secret_is_up_to_date_with_renewal_at_two_thirds() -> None:
    spec = _spec()
    decision = decide(spec, "web", _issued_secret(spec), NOW)
    assert (decision.action, decision.reason) == (Action.NOTHING, Reason.UP_TO_DATE)
    lifetime = datetime.timedelta(hours=24, minutes=5)
    assert decision.renewal_time == NOW - datetime.timedelta(minutes=5) + lifetime * 2 / 3


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda s: None, Reason.SECRET_MISSING),
        (lambda s: _with(s, data={**s.data, TLS_CERT: b""}), Reason.MISSING_DATA),
        (
            lambda s: _with(s, data={**s.data, TLS_CERT: b"-----BEGIN CERTIFICATE-----\nxx\n"}),
            Reason.INVALID_CERTIFICATE,
        ),
        (lambda s: _with(s, data={**s.data, TLS_KEY: b"not a key"}), Reason.INVALID_KEY),
        (
            lambda s: _with(s, data={**s.data, TLS_KEY: _issued_secret(_spec()).data[TLS_KEY]}),
            Reason.KEY_MISMATCH,
        ),
        (lambda s: _with(s, annotations={**s.annotations, CERTIFICATE_NAME: "other"}), Reason.SECRET_IN_USE),
        (
            lambda s: _with(s, annotations={**s.annotations, REQUESTED_DURATION: "3600"}),
            Reason.DURATION_CHANGED,
        ),
        (lambda s: _with(s, labels={}), Reason.METADATA_DRIFT),
        (lambda s: _with(s, annotations={**s.annotations, ALT_NAMES: "x"}), Reason.METADATA_DRIFT),
        (lambda s: _with(s, data={**s.data, "key.der": b"stale"}), Reason.METADATA_DRIFT),
    ],
    ids=lambda value: value.value if isinstance(value, Reason) else "",
)
def test_each_problem_with_the_secret_has_its_reason(mutate: Any, reason: Reason) -> None:
    spec = _spec()
    assert decide(spec, "web", mutate(_issued_secret(spec)), NOW).reason is reason


@pytest.mark.parametrize(
    ("changes", "reason", "action"),
    [
        ({"dnsNames": ["other.example.com"]}, Reason.SPEC_CHANGED, Action.ISSUE),
        ({"usages": ["digital signature", "client auth"]}, Reason.SPEC_CHANGED, Action.ISSUE),
        ({"subject": {"organizations": ["Example"]}}, Reason.SPEC_CHANGED, Action.ISSUE),
        ({"isCA": True}, Reason.SPEC_CHANGED, Action.ISSUE),
        ({"issuerRef": {"name": "other", "kind": "Issuer"}}, Reason.ISSUER_CHANGED, Action.ISSUE),
        ({"privateKey": {"algorithm": "RSA", "size": 2048}}, Reason.KEY_CHANGED, Action.ISSUE),
        (
            {"privateKey": {"algorithm": "ECDSA", "size": 384, "rotationPolicy": "Never"}},
            Reason.KEY_DOES_NOT_MATCH_SPEC,
            Action.BLOCKED,
        ),
        ({"privateKey": {"algorithm": "ECDSA", "encoding": "PKCS8"}}, Reason.METADATA_DRIFT, Action.REPAIR),
        ({"secretTemplate": {"labels": {"team": "web"}}}, Reason.METADATA_DRIFT, Action.REPAIR),
        ({"additionalOutputFormats": [{"type": "DER"}]}, Reason.METADATA_DRIFT, Action.REPAIR),
        ({"renewBefore": "1h"}, Reason.UP_TO_DATE, Action.NOTHING),
    ],
)
def test_each_spec_change_has_its_reason(changes: dict[str, Any], reason: Reason, action: Action) -> None:
    secret = _issued_secret(_spec())
    decision = decide(_spec(**changes), "web", secret, NOW)
    assert (decision.reason, decision.action) == (reason, action)


def test_renewal_and_expiry_follow_the_clock() -> None:
    spec = _spec(renewBefore="2h")
    secret = _issued_secret(spec)
    not_after = NOW + datetime.timedelta(hours=24)
    assert (
        decide(spec, "web", secret, not_after - datetime.timedelta(hours=2, seconds=1)).reason
        is Reason.UP_TO_DATE
    )
    assert decide(spec, "web", secret, not_after - datetime.timedelta(hours=2)).reason is Reason.RENEWAL_DUE
    assert decide(spec, "web", secret, not_after).reason is Reason.EXPIRED


def test_manual_renewal_is_honoured_once() -> None:
    spec = _spec()
    secret = _issued_secret(spec)
    assert decide(spec, "web", secret, NOW, renew_request="t1").reason is Reason.MANUAL_RENEWAL
    handled = _with(secret, annotations={**secret.annotations, RENEW_REQUEST: "t1"})
    assert decide(spec, "web", handled, NOW, renew_request="t1").reason is Reason.UP_TO_DATE


def test_foreign_secret_without_annotations_is_taken_over() -> None:
    spec = _spec()
    secret = _issued_secret(spec)
    decision = decide(spec, "web", _with(secret, annotations={}, labels={}), NOW)
    assert decision.reason is Reason.ISSUER_CHANGED


def test_messages_never_contain_key_material() -> None:
    spec = _spec()
    secret = _issued_secret(spec)
    key = secret.data[TLS_KEY]
    for data in ({**secret.data, TLS_KEY: key[:60]}, {**secret.data, TLS_CERT: key}):
        decision = decide(spec, "web", _with(secret, data=data), NOW)
        assert key[30:60].decode() not in decision.message


_PEMISH = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda body: b"-----BEGIN CERTIFICATE-----\n" + body + b"\n-----END CERTIFICATE-----\n",
        st.binary(max_size=200),
    ),
    st.builds(
        lambda body: b"-----BEGIN PRIVATE KEY-----\n" + body + b"\n-----END PRIVATE KEY-----\n",
        st.binary(max_size=200),
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    crt=_PEMISH,
    key=_PEMISH,
    ca=_PEMISH,
    annotations=st.dictionaries(
        st.sampled_from([CERTIFICATE_NAME, REQUESTED_DURATION, "certsmith.dev/revision"]),
        st.text(max_size=10),
    ),
)
def test_garbage_secret_gives_a_reason_never_a_crash(
    crt: bytes, key: bytes, ca: bytes, annotations: dict[str, str]
) -> None:
    secret = SecretContents(
        {MANAGED_LABEL: "true"}, annotations, {"tls.crt": crt, "tls.key": key, "ca.crt": ca}
    )
    decision = decide(_spec(), "web", secret, NOW)
    assert decision.action in (Action.ISSUE, Action.BLOCKED)
    assert isinstance(decision.reason, Reason)
    assert decision.message


@settings(max_examples=40, deadline=None)
@given(elapsed=st.timedeltas(min_value=datetime.timedelta(0), max_value=datetime.timedelta(hours=30)))
def test_a_valid_secret_is_reissued_only_when_renewal_is_due(elapsed: datetime.timedelta) -> None:
    spec = _spec()
    decision = decide(spec, "web", _VALID, NOW + elapsed)
    due = NOW + elapsed >= _VALID_RENEWAL
    assert (decision.action is Action.ISSUE) is due
    assert decision.reason in ((Reason.RENEWAL_DUE, Reason.EXPIRED) if due else (Reason.UP_TO_DATE,))


_VALID = _issued_secret(_spec())
_VALID_RENEWAL = decide(_spec(), "web", _VALID, NOW).renewal_time or NOW
