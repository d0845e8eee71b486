"""What a Certificate needs, and why. Pure: (spec, Secret contents, clock) -> Decision.

This is the one place that answers "why did this certificate re-issue?". The checks run in order and
the first that finds something wins, so each reason is specific: a missing Secret is reported as
such, not as "invalid data". Only when nothing needs a new certificate are the Secret's metadata and
derived data compared, and drift there is repaired without re-issuing.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from certsmith.api.certificate import CertificateSpec, RotationPolicy
from certsmith.pki import PKIError
from certsmith.pki.inspection import CertificateInfo, describe, load_certificates
from certsmith.pki.keys import PrivateKey, encode_private_key, load_private_key, same_public_key
from certsmith.pki.signing import IssuedCertificate
from certsmith.renewal import renewal_time
from certsmith.tls_secret import (
    CA_CERT,
    CERTIFICATE_NAME,
    ISSUER_KIND,
    ISSUER_NAME,
    KEYSTORE,
    OPTIONAL_KEYS,
    RENEW_REQUEST,
    REQUESTED_DURATION,
    REVISION,
    TLS_CERT,
    TLS_KEY,
    TRUSTSTORE,
    SecretContents,
    derived_data,
    desired_metadata,
)


class Action(StrEnum):
    ISSUE = "Issue"
    REPAIR = "Repair"
    BLOCKED = "Blocked"
    NOTHING = "Nothing"


class Reason(StrEnum):
    SECRET_MISSING = "SecretMissing"
    SECRET_IN_USE = "SecretInUse"
    MISSING_DATA = "MissingData"
    INVALID_CERTIFICATE = "InvalidCertificate"
    INVALID_KEY = "InvalidKey"
    KEY_MISMATCH = "KeyMismatch"
    KEY_CHANGED = "KeyChanged"
    KEY_DOES_NOT_MATCH_SPEC = "KeyDoesNotMatchSpec"
    SPEC_CHANGED = "SpecChanged"
    ISSUER_CHANGED = "IssuerChanged"
    DURATION_CHANGED = "DurationChanged"
    EXPIRED = "Expired"
    RENEWAL_DUE = "RenewalDue"
    MANUAL_RENEWAL = "ManualRenewal"
    METADATA_DRIFT = "MetadataDrift"
    UP_TO_DATE = "UpToDate"


@dataclass(frozen=True)
class Stored:
    """What a readable Secret holds: the key, the issued chain, and its facts."""

    key: PrivateKey
    issued: IssuedCertificate
    info: CertificateInfo
    revision: int


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: Reason
    message: str
    stored: Stored | None = None
    """The Secret's current contents when they could be read (a Never-rotation key is reused from here)."""
    renewal_time: datetime.datetime | None = None
    """When the stored certificate is due for renewal, if there is a valid one."""


@dataclass(frozen=True)
class _Inputs:
    spec: CertificateSpec
    certificate_name: str
    secret: SecretContents
    stored: Stored
    now: datetime.datetime
    renew_request: str | None
    renewal_time: datetime.datetime


def decide(
    spec: CertificateSpec,
    certificate_name: str,
    secret: SecretContents | None,
    now: datetime.datetime,
    renew_request: str | None = None,
) -> Decision:
    """What to do for the Certificate `certificate_name` given its Secret (None when it does not exist)."""
    if secret is None:
        return Decision(Action.ISSUE, Reason.SECRET_MISSING, f"Secret {spec.secret_name} does not exist")
    owner = secret.annotations.get(CERTIFICATE_NAME)
    if owner and owner != certificate_name:
        return Decision(
            Action.BLOCKED,
            Reason.SECRET_IN_USE,
            f"Secret {spec.secret_name} belongs to Certificate {owner}; choose another spec.secretName",
        )
    stored = _read(secret)
    if isinstance(stored, Decision):
        return stored
    info = stored.info
    inputs = _Inputs(
        spec,
        certificate_name,
        secret,
        stored,
        now,
        renew_request,
        renewal_time(info.not_before, info.not_after, spec.renew_before, spec.renew_before_percentage),
    )
    for check in _REISSUE_CHECKS:
        decision = check(inputs)
        if decision is not None:
            return decision
    drift = _drift(inputs)
    if drift:
        return Decision(
            Action.REPAIR,
            Reason.METADATA_DRIFT,
            f"repairing {', '.join(drift)} of Secret {spec.secret_name}",
            stored,
            inputs.renewal_time,
        )
    return Decision(
        Action.NOTHING,
        Reason.UP_TO_DATE,
        up_to_date_message(info.not_after),
        stored,
        inputs.renewal_time,
    )


def up_to_date_message(not_after: datetime.datetime) -> str:
    """The Ready message of a good certificate, the same whether just issued or found in place."""
    return f"certificate is up to date and valid until {not_after.isoformat()}"


def _read(secret: SecretContents) -> Stored | Decision:
    missing = [key for key in (TLS_CERT, TLS_KEY, CA_CERT) if not secret.data.get(key)]
    if missing:
        return Decision(Action.ISSUE, Reason.MISSING_DATA, f"the Secret has no {', '.join(missing)}")
    try:
        chain = load_certificates(secret.data[TLS_CERT])
        roots = load_certificates(secret.data[CA_CERT])
        info = describe(chain[0])
    except PKIError as error:
        return Decision(Action.ISSUE, Reason.INVALID_CERTIFICATE, f"tls.crt or ca.crt is unusable: {error}")
    try:
        key = load_private_key(secret.data[TLS_KEY])
    except PKIError as error:
        return Decision(Action.ISSUE, Reason.INVALID_KEY, f"tls.key is unusable: {error}")
    if not same_public_key(key, info.public_key):
        return Decision(
            Action.ISSUE, Reason.KEY_MISMATCH, "tls.key does not belong to the certificate in tls.crt"
        )
    try:
        revision = int(secret.annotations.get(REVISION, "0"))
    except ValueError:
        revision = 0
    return Stored(key, IssuedCertificate(chain[0], tuple(chain[1:]), roots[0]), info, revision)


def _key_spec(inputs: _Inputs) -> Decision | None:
    wanted, found = inputs.spec.private_key.spec, inputs.stored.info.key_spec
    if wanted == found:
        return None
    if inputs.spec.private_key.rotation is RotationPolicy.NEVER:
        return Decision(
            Action.BLOCKED,
            Reason.KEY_DOES_NOT_MATCH_SPEC,
            f"the key in Secret {inputs.spec.secret_name} is {found}, the spec asks for {wanted}, and "
            f"privateKey.rotationPolicy is Never: set rotationPolicy to Always, or delete tls.key "
            f"from the Secret to have a new key made",
            inputs.stored,
        )
    return Decision(
        Action.ISSUE, Reason.KEY_CHANGED, f"the key is {found}, the spec asks for {wanted}", inputs.stored
    )


def _spec_fields(inputs: _Inputs) -> Decision | None:
    request, info = inputs.spec.request, inputs.stored.info
    differing = [
        name
        for name, wanted, found in (
            ("commonName", request.common_name, info.common_name),
            ("dnsNames", frozenset(request.dns_names), info.dns_names),
            ("ipAddresses", frozenset(request.ip_addresses), info.ip_addresses),
            ("uris", frozenset(request.uris), info.uris),
            ("emailAddresses", frozenset(request.email_addresses), info.email_addresses),
            ("subject", request.subject, info.subject),
            ("usages", request.usages, info.usages),
            ("isCA", request.is_ca, info.is_ca),
        )
        if wanted != found
    ]
    if not differing:
        return None
    return Decision(
        Action.ISSUE,
        Reason.SPEC_CHANGED,
        f"the certificate does not match spec.{', spec.'.join(differing)}",
        inputs.stored,
    )


def _issuer(inputs: _Inputs) -> Decision | None:
    reference, annotations = inputs.spec.issuer_ref, inputs.secret.annotations
    issued_by = (annotations.get(ISSUER_KIND), annotations.get(ISSUER_NAME))
    if issued_by == (reference.kind.value, reference.name):
        return None
    previous = "/".join(part for part in issued_by if part) or "an unknown issuer"
    return Decision(
        Action.ISSUE,
        Reason.ISSUER_CHANGED,
        f"issued by {previous}, the spec names {reference}",
        inputs.stored,
    )


def _duration(inputs: _Inputs) -> Decision | None:
    recorded = inputs.secret.annotations.get(REQUESTED_DURATION)
    wanted = str(int(inputs.spec.request.duration.total_seconds()))
    if recorded is None or recorded == wanted:
        return None
    return Decision(
        Action.ISSUE,
        Reason.DURATION_CHANGED,
        f"issued for a duration of {recorded}s, the spec asks for {wanted}s",
        inputs.stored,
    )


def _expiry(inputs: _Inputs) -> Decision | None:
    info = inputs.stored.info
    if inputs.now >= info.not_after:
        return Decision(
            Action.ISSUE, Reason.EXPIRED, f"expired at {info.not_after.isoformat()}", inputs.stored
        )
    if inputs.now >= inputs.renewal_time:
        return Decision(
            Action.ISSUE,
            Reason.RENEWAL_DUE,
            f"renewal was due at {inputs.renewal_time.isoformat()}",
            inputs.stored,
        )
    return None


def _manual_renewal(inputs: _Inputs) -> Decision | None:
    if not inputs.renew_request or inputs.renew_request == inputs.secret.annotations.get(RENEW_REQUEST):
        return None
    return Decision(
        Action.ISSUE, Reason.MANUAL_RENEWAL, f"renewal requested at {inputs.renew_request}", inputs.stored
    )


_REISSUE_CHECKS: tuple[Callable[[_Inputs], Decision | None], ...] = (
    _key_spec,
    _spec_fields,
    _issuer,
    _duration,
    _expiry,
    _manual_renewal,
)


def _drift(inputs: _Inputs) -> list[str]:
    """Names of what differs from the desired Secret, besides the certificate itself."""
    spec, secret, stored = inputs.spec, inputs.secret, inputs.stored
    labels, annotations = desired_metadata(
        spec, inputs.certificate_name, stored.revision, secret.annotations.get(RENEW_REQUEST)
    )
    key_pem = encode_private_key(stored.key, spec.private_key.encoding)
    data = derived_data(spec, stored.key, key_pem, stored.issued)
    drift = [
        *(f"label {name}" for name, value in labels.items() if secret.labels.get(name) != value),
        *(
            f"annotation {name}"
            for name, value in annotations.items()
            if secret.annotations.get(name) != value
        ),
        *(f"data {name}" for name, value in data.items() if secret.data.get(name) != value),
    ]
    wanted_stores = {KEYSTORE, TRUSTSTORE} if spec.pkcs12 else set()
    drift += [f"data {name}" for name in sorted(wanted_stores) if not secret.data.get(name)]
    drift += [
        f"data {name}" for name in sorted(OPTIONAL_KEYS - set(data) - wanted_stores) if name in secret.data
    ]
    return drift
