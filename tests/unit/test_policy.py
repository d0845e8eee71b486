"""The decision function: each reason from a constructed Secret, with a fixed clock; garbage never crashes."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certsmith.api.certificate import CertificateSpec, parse_certificate_spec
from certsmith.pki.inspection import load_certificates
from certsmith.pki.keys import KeyAlgorithm, KeySpec, encode_private_key, generate_private_key
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import IssuedCertificate, SigningAuthority, self_sign, sign_with_authority
from certsmith.policy import Action, Decision, Gates, Observation, Reason, decide
from certsmith.renewal import BackoffSettings
from certsmith.renewal_info import RenewalInfo, SuggestedWindow, cert_id
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
    keystores,
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


def _decide(
    spec: CertificateSpec,
    name: str,
    secret: SecretContents | None,
    now: datetime.datetime,
    renew_request: str | None = None,
    **observed: Any,
) -> Decision:
    observation = Observation(spec, name, secret, now, renew_request, **observed)
    return decide(observation, BackoffSettings())


def _with(secret: SecretContents, **changes: Any) -> SecretContents:
    return dataclasses.replace(secret, **changes)


def test_fresh_secret_is_up_to_date_with_renewal_at_two_thirds() -> None:
    spec = _spec()
    decision = _decide(spec, "web", _issued_secret(spec), NOW)
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
    assert _decide(spec, "web", mutate(_issued_secret(spec)), NOW).reason is reason


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
    decision = _decide(_spec(**changes), "web", secret, NOW)
    assert (decision.reason, decision.action) == (reason, action)


def test_renewal_and_expiry_follow_the_clock() -> None:
    spec = _spec(renewBefore="2h")
    secret = _issued_secret(spec)
    not_after = NOW + datetime.timedelta(hours=24)
    assert (
        _decide(spec, "web", secret, not_after - datetime.timedelta(hours=2, seconds=1)).reason
        is Reason.UP_TO_DATE
    )
    assert _decide(spec, "web", secret, not_after - datetime.timedelta(hours=2)).reason is Reason.RENEWAL_DUE
    assert _decide(spec, "web", secret, not_after).reason is Reason.EXPIRED


def test_manual_renewal_is_honoured_once() -> None:
    spec = _spec()
    secret = _issued_secret(spec)
    assert _decide(spec, "web", secret, NOW, renew_request="t1").reason is Reason.MANUAL_RENEWAL
    handled = _with(secret, annotations={**secret.annotations, RENEW_REQUEST: "t1"})
    assert _decide(spec, "web", handled, NOW, renew_request="t1").reason is Reason.UP_TO_DATE


def test_a_secret_certsmith_did_not_make_is_never_touched() -> None:
    spec = _spec()
    for foreign in (
        _with(_issued_secret(spec), annotations={}, labels={}),
        SecretContents(data={"a": b"1"}, type="Opaque"),
    ):
        decision = _decide(spec, "web", foreign, NOW)
        assert (decision.action, decision.reason) == (Action.BLOCKED, Reason.SECRET_NOT_OWNED)
        assert "leaves it untouched" in decision.message
        assert "kubectl annotate secret web-tls certsmith.dev/certificate-name=web" in decision.message


def test_a_handed_over_secret_is_used_if_it_can_be() -> None:
    spec = _spec()
    handed_over = {CERTIFICATE_NAME: "web"}
    imported = SecretContents({}, handed_over, {"tls.key": b"y"})
    assert _decide(spec, "web", imported, NOW).reason is Reason.MISSING_DATA
    unreadable = SecretContents({}, handed_over, {"tls.crt": b"x", "tls.key": b"y"})
    assert _decide(spec, "web", unreadable, NOW).reason is Reason.INVALID_CERTIFICATE
    opaque = SecretContents({}, handed_over, {"a": b"1"}, type="Opaque")
    decision = _decide(spec, "web", opaque, NOW)
    assert (decision.action, decision.reason) == (Action.BLOCKED, Reason.SECRET_TYPE_MISMATCH)
    assert "type Opaque" in decision.message


def test_a_secret_of_another_certificate_is_taken_over_only_when_that_one_is_gone() -> None:
    spec = _spec()
    theirs = _issued_secret(spec)
    theirs = _with(theirs, annotations={**theirs.annotations, CERTIFICATE_NAME: "twin1"})
    blocked = _decide(spec, "twin2", theirs, NOW, owner_exists=True)
    assert (blocked.action, blocked.reason) == (Action.BLOCKED, Reason.SECRET_IN_USE)
    assert "delete Certificate twin1" in blocked.message
    taken = _decide(spec, "twin2", theirs, NOW, owner_exists=False)
    assert (taken.action, taken.reason) == (Action.ISSUE, Reason.SECRET_IN_USE)
    assert "no longer exists" in taken.message


def test_messages_never_contain_key_material() -> None:
    spec = _spec()
    secret = _issued_secret(spec)
    key = secret.data[TLS_KEY]
    for data in ({**secret.data, TLS_KEY: key[:60]}, {**secret.data, TLS_CERT: key}):
        decision = _decide(spec, "web", _with(secret, data=data), NOW)
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
    decision = _decide(_spec(), "web", secret, NOW)
    assert decision.action in (Action.ISSUE, Action.BLOCKED)
    assert isinstance(decision.reason, Reason)
    assert decision.message


@settings(max_examples=40, deadline=None)
@given(elapsed=st.timedeltas(min_value=datetime.timedelta(0), max_value=datetime.timedelta(hours=30)))
def test_a_valid_secret_is_reissued_only_when_renewal_is_due(elapsed: datetime.timedelta) -> None:
    spec = _spec()
    decision = _decide(spec, "web", _VALID, NOW + elapsed)
    due = NOW + elapsed >= _VALID_RENEWAL
    assert (decision.action is Action.ISSUE) is due
    assert decision.reason in ((Reason.RENEWAL_DUE, Reason.EXPIRED) if due else (Reason.UP_TO_DATE,))


_VALID = _issued_secret(_spec())
_VALID_RENEWAL = _decide(_spec(), "web", _VALID, NOW).renewal_time or NOW


def _ca(not_after: datetime.datetime) -> SigningAuthority:
    key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    template = CertificateTemplate(common_name="ca", is_ca=True, duration=not_after - NOW)
    root = self_sign(template, key, NOW)
    return SigningAuthority(root.certificate, key, (), root.certificate)


def _signed_secret(spec: CertificateSpec, authority: SigningAuthority) -> SecretContents:
    key = generate_private_key(spec.private_key.spec)
    issued = sign_with_authority(spec.request, key.public_key(), authority, NOW)
    labels, annotations = desired_metadata(spec, "web", 1, None)
    return SecretContents(
        labels,
        annotations,
        derived_data(spec, key, encode_private_key(key, spec.private_key.encoding), issued),
    )


def test_a_certificate_shortened_to_its_ca_is_not_renewed_until_the_ca_changes() -> None:
    spec = _spec(duration="2160h")
    authority = _ca(NOW + datetime.timedelta(minutes=4))
    secret = _signed_secret(spec, authority)
    fresh = _decide(spec, "web", secret, NOW, issuer_ca=authority.certificate)
    assert (fresh.action, fresh.reason) == (Action.NOTHING, Reason.UP_TO_DATE)
    assert fresh.renewal_time == NOW + datetime.timedelta(minutes=1)
    for later in (datetime.timedelta(minutes=1), datetime.timedelta(minutes=3)):
        decision = _decide(spec, "web", secret, NOW + later, issuer_ca=authority.certificate)
        assert (decision.action, decision.reason) == (Action.NOTHING, Reason.CA_EXPIRES_FIRST)
        assert decision.renewal_time is None
        assert "instead of 2160h" in decision.message
        assert "renew that CA" in decision.message
    renewed_ca = _ca(NOW + datetime.timedelta(days=365))
    decision = _decide(
        spec, "web", secret, NOW + datetime.timedelta(minutes=3), issuer_ca=renewed_ca.certificate
    )
    assert decision.reason is Reason.RENEWAL_DUE
    expired = _decide(
        spec, "web", secret, NOW + datetime.timedelta(minutes=4), issuer_ca=authority.certificate
    )
    assert expired.reason is Reason.EXPIRED


FAILED_AT = NOW - datetime.timedelta(seconds=30)


@pytest.mark.parametrize(
    ("gates", "action", "reason"),
    [
        (Gates(failures=1, last_failure=FAILED_AT), Action.WAIT, Reason.BACKING_OFF),
        (
            Gates(failures=1, last_failure=NOW - datetime.timedelta(minutes=2)),
            Action.ISSUE,
            Reason.SECRET_MISSING,
        ),
        (
            Gates(failures=1, last_failure=FAILED_AT, spec_changed_since_failure=True),
            Action.ISSUE,
            Reason.SECRET_MISSING,
        ),
        (
            Gates(failures=1, last_failure=FAILED_AT, issuer_ready_since=NOW),
            Action.ISSUE,
            Reason.SECRET_MISSING,
        ),
        (  # an issuer ready before the failure does not release its back-off, however close
            Gates(
                failures=1,
                last_failure=FAILED_AT,
                issuer_ready_since=FAILED_AT - datetime.timedelta(milliseconds=1),
            ),
            Action.WAIT,
            Reason.BACKING_OFF,
        ),
        (  # unless it failed for the issuer: a staler view of the CA Secret than the issuer's own
            Gates(
                failures=1,
                last_failure=FAILED_AT,
                issuer_ready_since=FAILED_AT - datetime.timedelta(seconds=1),
                failed_for_issuer=True,
            ),
            Action.ISSUE,
            Reason.SECRET_MISSING,
        ),
        (  # and not while the issuer is not ready
            Gates(failures=1, last_failure=FAILED_AT, failed_for_issuer=True),
            Action.WAIT,
            Reason.BACKING_OFF,
        ),
        (
            Gates(rewrite_allowed_at=NOW + datetime.timedelta(minutes=5)),
            Action.HOLD,
            Reason.SECRET_KEEPS_CHANGING,
        ),
        (Gates(issuance_allowed_at=NOW + datetime.timedelta(minutes=5)), Action.HOLD, Reason.ISSUANCE_LIMIT),
        (Gates(ca_retry_after=NOW + datetime.timedelta(minutes=5)), Action.WAIT, Reason.CA_ASKED_TO_WAIT),
        (Gates(ca_retry_after=NOW - datetime.timedelta(seconds=1)), Action.ISSUE, Reason.SECRET_MISSING),
    ],
)
def test_gates(gates: Gates, action: Action, reason: Reason) -> None:
    decision = _decide(_spec(), "web", None, NOW, gates=gates)
    assert (decision.action, decision.reason) == (action, reason)
    if action in (Action.WAIT, Action.HOLD):
        assert decision.not_before is not None
        assert decision.not_before > NOW


def test_a_manual_renewal_is_bounded_by_the_issuance_limit_but_not_by_the_rewrite_budget() -> None:
    spec = _spec()
    secret = _issued_secret(spec)
    later = NOW + datetime.timedelta(minutes=5)
    assert (
        _decide(spec, "web", secret, NOW, "t1", gates=Gates(rewrite_allowed_at=later)).action is Action.ISSUE
    )
    held = _decide(spec, "web", secret, NOW, "t1", gates=Gates(issuance_allowed_at=later))
    assert (held.action, held.reason) == (Action.HOLD, Reason.ISSUANCE_LIMIT)


def test_a_certificate_a_few_seconds_shorter_than_asked_is_not_reported() -> None:
    spec = _spec(duration="2160h")
    authority = _ca(NOW + datetime.timedelta(hours=2160) - datetime.timedelta(seconds=30))
    decision = _decide(spec, "web", _signed_secret(spec, authority), NOW, issuer_ca=authority.certificate)
    assert decision.reason is Reason.UP_TO_DATE
    assert "instead of" not in decision.message
    assert decision.renewal_time is not None


def test_a_deleted_ca_crt_is_repaired_not_reissued() -> None:
    spec = _spec()
    secret = _issued_secret(spec)
    without = _with(secret, data={k: v for k, v in secret.data.items() if k != "ca.crt"})
    decision = _decide(spec, "web", without, NOW)
    assert (decision.action, decision.message) == (Action.REPAIR, "repairing data ca.crt of Secret web-tls")


def test_a_chain_without_its_root_is_up_to_date_without_ca_crt() -> None:
    """ACME CAs may return a chain without the root: ca.crt is then absent, and that is no reason to
    issue or repair."""
    spec = _spec()
    ca_key = generate_private_key(spec.private_key.spec)
    earlier = NOW - datetime.timedelta(hours=1)
    root = self_sign(CertificateTemplate(common_name="root", is_ca=True), ca_key, earlier)
    authority = SigningAuthority(root.certificate, ca_key, (), root.certificate)
    key = generate_private_key(spec.private_key.spec)
    issued = sign_with_authority(spec.request, key.public_key(), authority, earlier)
    chainless = IssuedCertificate(issued.certificate, issued.intermediates, None)
    labels, annotations = desired_metadata(spec, "web", 1, None)
    data = derived_data(spec, key, encode_private_key(key, spec.private_key.encoding), chainless)
    assert "ca.crt" not in data
    decision = _decide(spec, "web", SecretContents(labels, annotations, data), NOW)
    assert decision.action is Action.NOTHING, decision.message


def test_a_keystore_of_a_chain_without_its_root_has_no_truststore_and_is_up_to_date() -> None:
    """No root, no truststore.p12: its absence is no drift to repair (else a repair loop)."""
    spec = _spec(
        keystores={"pkcs12": {"create": True, "passwordSecretRef": {"name": "pw", "key": "password"}}}
    )
    key = generate_private_key(spec.private_key.spec)
    ca_key = generate_private_key(spec.private_key.spec)
    earlier = NOW - datetime.timedelta(hours=1)
    root = self_sign(CertificateTemplate(common_name="root", is_ca=True), ca_key, earlier)
    issued = sign_with_authority(
        spec.request,
        key.public_key(),
        SigningAuthority(root.certificate, ca_key, (), root.certificate),
        earlier,
    )
    chainless = IssuedCertificate(issued.certificate, issued.intermediates, None)
    labels, annotations = desired_metadata(spec, "web", 1, None, "7")
    data = derived_data(spec, key, encode_private_key(key, spec.private_key.encoding), chainless)
    data |= keystores(spec, key, chainless, b"secret")
    assert "truststore.p12" not in data
    secret = SecretContents(labels, annotations, data)
    decision = _decide(spec, "web", secret, NOW, keystore_password_version="7", keystore_password=b"secret")
    assert decision.action is Action.NOTHING, decision.message


def test_when_the_issuer_sets_the_profile_only_the_names_are_compared() -> None:
    """An ACME CA chooses subject, usages and lifetime itself: a certificate that differs from the spec
    in those is up to date (no re-issue loop); one that lacks a name is not."""
    spec = _spec(commonName="web.example.com", usages=["server auth"], duration="2160h")
    issued_for = _spec(usages=["digital signature"], duration="24h")
    labels, annotations = desired_metadata(spec, "web", 1, None)
    key = generate_private_key(issued_for.private_key.spec)
    issued = self_sign(issued_for.request, key, NOW)
    data = derived_data(spec, key, encode_private_key(key, spec.private_key.encoding), issued)
    secret = SecretContents(labels, annotations, data)
    assert _decide(spec, "web", secret, NOW).reason is Reason.SPEC_CHANGED
    assert _decide(spec, "web", secret, NOW, issuer_sets_profile=True).action is Action.NOTHING
    more = _spec(commonName="web.example.com", dnsNames=["web.example.com", "new.example.com"])
    assert _decide(more, "web", secret, NOW, issuer_sets_profile=True).reason is Reason.SPEC_CHANGED
    with_ip = _spec(commonName="web.example.com", ipAddresses=["192.0.2.7"])
    assert _decide(with_ip, "web", secret, NOW, issuer_sets_profile=True).reason is Reason.SPEC_CHANGED


def test_an_acme_certificate_for_an_ip_common_name_is_up_to_date() -> None:
    """The order certifies a common name that is an IP address as an IP address (no re-issue loop)."""
    spec = _spec(commonName="192.0.2.7", ipAddresses=["192.0.2.7"])
    issued_for = _spec(ipAddresses=["192.0.2.7"], duration="160h")
    labels, annotations = desired_metadata(spec, "web", 1, None)
    key = generate_private_key(issued_for.private_key.spec)
    issued = self_sign(issued_for.request, key, NOW)
    data = derived_data(spec, key, encode_private_key(key, spec.private_key.encoding), issued)
    secret = SecretContents(labels, annotations, data)
    assert _decide(spec, "web", secret, NOW, issuer_sets_profile=True).action is Action.NOTHING


def test_a_lifetime_the_acme_profile_set_is_not_reported_as_cut_short() -> None:
    """A 160-hour certificate from an ACME CA's shortlived profile is the CA's lifetime, not one its CA
    certificate cut short; it renews at 2/3 of that lifetime."""
    spec = _spec(commonName="web.example.com", duration="2160h")
    issued_for = _spec(commonName="web.example.com", duration="160h")
    labels, annotations = desired_metadata(spec, "web", 1, None)
    key = generate_private_key(issued_for.private_key.spec)
    issued = self_sign(issued_for.request, key, NOW)
    data = derived_data(spec, key, encode_private_key(key, spec.private_key.encoding), issued)
    secret = SecretContents(labels, annotations, data)
    decision = _decide(spec, "web", secret, NOW, issuer_sets_profile=True)
    assert (decision.action, decision.reason) == (Action.NOTHING, Reason.UP_TO_DATE)
    assert "instead of" not in decision.message
    assert "CA certificate" not in decision.message
    not_before = issued.certificate.not_valid_before_utc
    assert decision.renewal_time == not_before + (issued.certificate.not_valid_after_utc - not_before) * 2 / 3


def _ari(secret: SecretContents, start: datetime.timedelta, end: datetime.timedelta) -> RenewalInfo:
    """What a CA's ARI answer says of the certificate in `secret`: a window from NOW + start to NOW + end."""
    leaf = load_certificates(secret.data[TLS_CERT])[0]
    cert = cert_id(leaf)
    assert cert is not None
    return RenewalInfo(
        cert, NOW + datetime.timedelta(hours=6), SuggestedWindow(NOW + start, NOW + end), None, NOW
    )


def test_the_cas_renewal_window_sets_the_renewal_time_and_its_arrival_is_a_named_reason() -> None:
    spec = _spec(duration="2160h")
    secret = _signed_secret(spec, _ca(NOW + datetime.timedelta(days=365)))
    info = _ari(secret, datetime.timedelta(days=70), datetime.timedelta(days=72))
    fresh = _decide(spec, "web", secret, NOW, renewal_info=info)
    assert fresh.reason is Reason.UP_TO_DATE
    assert fresh.renewal_time == info.renewal_time()
    assert fresh.renewal_time is not None
    assert info.window is not None
    assert info.window.start <= fresh.renewal_time < info.window.end
    own = _decide(spec, "web", secret, NOW + datetime.timedelta(days=61), renewal_info=info)
    assert own.action is Action.NOTHING, "the default 2/3 gives way to the CA's later window"
    due = _decide(spec, "web", secret, fresh.renewal_time, renewal_info=info)
    assert (due.action, due.reason) == (Action.ISSUE, Reason.CA_REQUESTED_RENEWAL)
    assert due.message.startswith("CA asked for renewal (ARI window ")
    assert due.renewing


def test_a_window_in_the_past_renews_at_once_and_one_for_another_certificate_is_ignored() -> None:
    spec = _spec(duration="2160h")
    authority = _ca(NOW + datetime.timedelta(days=365))
    secret = _signed_secret(spec, authority)
    past = _ari(
        secret, -datetime.timedelta(hours=1), -datetime.timedelta(hours=1) + datetime.timedelta(seconds=1)
    )
    assert _decide(spec, "web", secret, NOW, renewal_info=past).reason is Reason.CA_REQUESTED_RENEWAL
    other = _ari(_signed_secret(spec, authority), -datetime.timedelta(hours=1), datetime.timedelta(hours=1))
    assert _decide(spec, "web", secret, NOW, renewal_info=other).reason is Reason.UP_TO_DATE


def test_a_renew_before_set_by_the_user_still_applies_when_it_comes_before_the_window() -> None:
    spec = _spec(duration="2160h", renewBefore="720h")
    secret = _signed_secret(spec, _ca(NOW + datetime.timedelta(days=365)))
    info = _ari(secret, datetime.timedelta(days=70), datetime.timedelta(days=72))
    decision = _decide(spec, "web", secret, NOW + datetime.timedelta(days=60, minutes=1), renewal_info=info)
    assert (decision.action, decision.reason) == (Action.ISSUE, Reason.RENEWAL_DUE)
