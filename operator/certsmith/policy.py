"""What a Certificate needs, and why. Pure: (what was observed, the clock) -> Decision.

This is the one place that answers "why did, or didn't, this certificate re-issue now?". Two chains
run in order:

1. The **trigger chain** looks at the Secret: may certsmith write it at all (ownership, type), can it
   be read, does it match the spec, is it due. The first check that finds something wins, so each
   reason is specific: a missing Secret is reported as such, not as "invalid data". Only when nothing
   needs a new certificate are the Secret's metadata and derived data compared; drift there is
   repaired without re-issuing.
2. The **gate chain** decides whether acting now is allowed: the back-off after failures, the rewrite
   budget against another writer, and the hard bound on issuances per hour that no bug can get past.

Readiness — what the Ready condition says after each outcome — is decided here too (`ready_*`).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from cryptography import x509

from certsmith.api.acme import is_ip_address
from certsmith.api.certificate import CertificateSpec, RotationPolicy
from certsmith.api.durations import format_duration
from certsmith.api.status import timestamp
from certsmith.pki import PKIError
from certsmith.pki.encodings import keystore_opens
from certsmith.pki.inspection import CertificateInfo, describe, load_certificates
from certsmith.pki.keys import PrivateKey, encode_private_key, load_private_key, same_public_key, spec_of
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import CLOCK_SKEW_ALLOWANCE, IssuedCertificate
from certsmith.renewal import BackoffSettings, renewal_time
from certsmith.renewal_info import RenewalInfo, cert_id, describe_window
from certsmith.tls_secret import (
    CA_CERT,
    CERTIFICATE_NAME,
    ISSUER_KIND,
    ISSUER_NAME,
    KEYSTORE,
    KEYSTORE_PASSWORD_VERSION,
    MANAGED_LABEL,
    OPTIONAL_KEYS,
    RENEW_REQUEST,
    REQUESTED_DURATION,
    REVISION,
    SECRET_TYPE,
    TLS_CERT,
    TLS_KEY,
    TRUSTSTORE,
    SecretContents,
    derived_data,
    desired_metadata,
)


class Action(StrEnum):
    ISSUE = "Issue"
    """Make a certificate (and a key unless one is reused) and write the Secret."""
    REPAIR = "Repair"
    """Rewrite the Secret's metadata or derived data around the certificate it holds."""
    BLOCKED = "Blocked"
    """Nothing can be done until the user changes something; reported like a failed attempt."""
    WAIT = "Wait"
    """Backing off after a failure: look again at `Decision.not_before`, write nothing."""
    HOLD = "Hold"
    """A budget is spent: say so in the status and look again at `Decision.not_before`."""
    NOTHING = "Nothing"


class Reason(StrEnum):
    SECRET_MISSING = "SecretMissing"
    """The Secret does not exist: issue and create it."""
    SECRET_NOT_OWNED = "SecretNotOwned"
    """A Secret of that name exists and certsmith did not make it for this Certificate: never touched."""
    SECRET_IN_USE = "SecretInUse"
    """The Secret belongs to another Certificate that still exists."""
    SECRET_TYPE_MISMATCH = "SecretTypeMismatch"
    """Handed over, but not of type kubernetes.io/tls, which Kubernetes cannot change in place."""
    MISSING_DATA = "MissingData"
    """tls.crt, tls.key or ca.crt is empty or absent."""
    INVALID_CERTIFICATE = "InvalidCertificate"
    INVALID_KEY = "InvalidKey"
    KEY_MISMATCH = "KeyMismatch"
    """tls.key does not belong to the certificate in tls.crt."""
    KEY_CHANGED = "KeyChanged"
    """privateKey asks for another algorithm or size."""
    KEY_DOES_NOT_MATCH_SPEC = "KeyDoesNotMatchSpec"
    """As KeyChanged, but rotationPolicy Never forbids a new key."""
    SPEC_CHANGED = "SpecChanged"
    """A name, subject, usage or isCA differs from the certificate."""
    ISSUER_CHANGED = "IssuerChanged"
    DURATION_CHANGED = "DurationChanged"
    EXPIRED = "Expired"
    RENEWAL_DUE = "RenewalDue"
    CA_REQUESTED_RENEWAL = "CARequestedRenewal"
    """The time chosen inside the CA's suggested renewal window (ACME ARI, RFC 9773) has come."""
    MANUAL_RENEWAL = "ManualRenewal"
    """`certsmith.dev/renew-requested-at` on the Certificate has a value not yet honoured."""
    METADATA_DRIFT = "MetadataDrift"
    """Labels, annotations or derived data differ: repaired without a new certificate."""
    UP_TO_DATE = "UpToDate"
    CA_EXPIRES_FIRST = "CAExpiresFirst"
    """Due, but it was shortened to its CA's end and that CA is unchanged: a new one could not live
    longer, so certsmith waits for the CA to be renewed instead of re-issuing in a loop."""
    BACKING_OFF = "BackingOff"
    CA_ASKED_TO_WAIT = "CAAskedToWait"
    """The CA refused with a Retry-After (rate limited) that has not passed yet."""
    SECRET_KEEPS_CHANGING = "SecretKeepsChanging"
    """The rewrite budget is spent: something else keeps changing the Secret."""
    ISSUANCE_LIMIT = "IssuanceLimitReached"
    """The hard bound on issuances per Certificate per hour is reached."""


CHANGED_BY_OTHERS = frozenset(
    {
        Reason.SECRET_MISSING,
        Reason.MISSING_DATA,
        Reason.INVALID_CERTIFICATE,
        Reason.INVALID_KEY,
        Reason.KEY_MISMATCH,
        Reason.ISSUER_CHANGED,
        Reason.DURATION_CHANGED,
        Reason.METADATA_DRIFT,
    }
)
"""Reasons that a change to the Secret, not to the Certificate or the clock, can cause: writes for
these spend the rewrite budget."""

RENEWALS = frozenset({Reason.RENEWAL_DUE, Reason.CA_REQUESTED_RENEWAL, Reason.MANUAL_RENEWAL})
SHORTENED_FRACTION = 0.1
"""A certificate shortened by more than this fraction of its requested duration is reported."""


@dataclass(frozen=True)
class StoredCertificate:
    """What a readable Secret holds: the key, the issued chain, and its facts."""

    key: PrivateKey
    issued: IssuedCertificate
    info: CertificateInfo
    revision: int


@dataclass(frozen=True)
class Gates:
    """What the gate chain needs besides the Secret: failure history and budgets."""

    failures: int = 0
    last_failure: datetime.datetime | None = None
    spec_changed_since_failure: bool = False
    issuer_ready_since: datetime.datetime | None = None
    """When the issuer last turned Ready; an issuer that became Ready releases its waiting
    certificates at once instead of after their back-off."""
    failed_for_issuer: bool = False
    """The last attempt failed because the issuer was not ready or not there: a Ready issuer releases
    it whenever it turned Ready. A Certificate can see its CA Secret missing from a staler view than
    the one its issuer's reconcile was found ready from, so that failure may come after the issuer's
    ready time (a CI run saw one wait its whole back-off)."""
    rewrite_allowed_at: datetime.datetime | None = None
    """None if the rewrite budget allows a write now."""
    issuance_allowed_at: datetime.datetime | None = None
    """None if the issuance bound allows an issuance now."""
    ca_retry_after: datetime.datetime | None = None
    """The CA's Retry-After of its last refusal (an ACME 429): no attempt before then, whatever else."""


@dataclass(frozen=True)
class Observation:
    """Everything the decision is made on, gathered by the reconciler."""

    spec: CertificateSpec
    certificate_name: str
    secret: SecretContents | None
    now: datetime.datetime
    renew_request: str | None = None
    owner_exists: bool = True
    """Whether the Certificate named in the Secret's certificate-name annotation exists."""
    issuer_ca: x509.Certificate | None = None
    """The issuer's current CA certificate, if it has one and it is usable."""
    issuer_sets_profile: bool = False
    """The issuer, not the spec, decides the subject, usages and lifetime (ACME: the CA ignores all
    but the names of a CSR), so only the names are compared."""
    issuer_root: x509.Certificate | None = None
    """The root of the issuer's chain, when the issuer knows it (CA issuers), so a deleted ca.crt is
    repaired rather than left missing."""
    keystore_password_version: str | None = None
    """The resourceVersion of the keystore password Secret, when known."""
    keystore_password: bytes | None = field(default=None, repr=False)
    """The keystore password, to tell a changed password from a password Secret merely rewritten (or
    a keystore written before certsmith recorded the password's version)."""
    gates: Gates = Gates()
    renewal_info: RenewalInfo | None = None
    """What the CA last said about renewing the certificate it names (ARI); used only while that
    certificate is the one in the Secret."""


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: Reason
    message: str
    stored: StoredCertificate | None = None
    """The Secret's current contents when they could be read."""
    renewal_time: datetime.datetime | None = None
    """When the stored certificate is due for renewal, if there is a valid one and it will renew."""
    not_before: datetime.datetime | None = None
    """For WAIT and HOLD: when to look again."""

    @property
    def renewing(self) -> bool:
        """The decision renews a certificate (due, or asked for by hand)."""
        return self.reason in RENEWALS

    @property
    def rewrite(self) -> bool:
        """A write for this decision spends the rewrite budget."""
        return self.reason in CHANGED_BY_OTHERS


def decide(observation: Observation, backoff: BackoffSettings) -> Decision:
    """The trigger chain, then the gate chain."""
    decision = _trigger(observation)
    if decision.action is Action.NOTHING:
        return decision
    return _gate(observation, decision, backoff)


def _trigger(observation: Observation) -> Decision:
    spec, secret = observation.spec, observation.secret
    if secret is None:
        return Decision(Action.ISSUE, Reason.SECRET_MISSING, f"Secret {spec.secret_name} does not exist")
    ownership = _ownership(observation, secret)
    if ownership is not None:
        return ownership
    stored = _read(secret, observation.issuer_root)
    if isinstance(stored, Decision):
        return stored
    info = stored.info
    own = renewal_time(info.not_before, info.not_after, spec.renew_before, spec.renew_before_percentage)
    ari = applicable_renewal_info(stored.issued.certificate, observation.renewal_info)
    inputs = _Inputs(observation, secret, stored, own, ari)
    for check in _REISSUE_CHECKS:
        decision = check(inputs)
        if decision is not None:
            return decision
    renewal = planned_renewal(spec, stored.issued, observation.issuer_ca, observation.now, ari)
    drift = _drift(inputs)
    if drift:
        return Decision(
            Action.REPAIR,
            Reason.METADATA_DRIFT,
            f"repairing {', '.join(drift)} of Secret {spec.secret_name}",
            stored,
            renewal,
        )
    return Decision(
        Action.NOTHING,
        Reason.UP_TO_DATE if renewal else Reason.CA_EXPIRES_FIRST,
        up_to_date_message(spec, info, observation.issuer_sets_profile),
        stored,
        renewal,
    )


def _gate(observation: Observation, decision: Decision, backoff: BackoffSettings) -> Decision:
    gates, now = observation.gates, observation.now
    if decision.action is Action.ISSUE and gates.ca_retry_after is not None and now < gates.ca_retry_after:
        return replace(
            decision,
            action=Action.WAIT,
            reason=Reason.CA_ASKED_TO_WAIT,
            message=f"the CA asked to wait until {timestamp(gates.ca_retry_after)} (Retry-After)",
            not_before=gates.ca_retry_after,
        )
    if gates.failures and gates.last_failure and not gates.spec_changed_since_failure:
        ready_since = gates.issuer_ready_since
        released = ready_since is not None and (gates.failed_for_issuer or ready_since >= gates.last_failure)
        next_attempt = gates.last_failure + backoff.delay(gates.failures)
        if not released and now < next_attempt:
            return replace(
                decision,
                action=Action.WAIT,
                reason=Reason.BACKING_OFF,
                message=f"backing off after {gates.failures} failed attempts until {timestamp(next_attempt)}",
                not_before=next_attempt,
            )
    if decision.action is Action.BLOCKED:
        return decision
    if decision.rewrite and gates.rewrite_allowed_at is not None:
        return replace(
            decision,
            action=Action.HOLD,
            reason=Reason.SECRET_KEEPS_CHANGING,
            message=(
                f"Secret {observation.spec.secret_name} was changed by something other than certsmith "
                f"too often ({decision.message}); certsmith waits until "
                f"{timestamp(gates.rewrite_allowed_at)} before writing it again; find the other writer "
                f"in the Secret's managedFields"
            ),
            not_before=gates.rewrite_allowed_at,
        )
    if decision.action is Action.ISSUE and gates.issuance_allowed_at is not None:
        return replace(
            decision,
            action=Action.HOLD,
            reason=Reason.ISSUANCE_LIMIT,
            message=(
                f"too many issuances within an hour ({decision.reason.value}: {decision.message}); "
                f"the next is allowed at {timestamp(gates.issuance_allowed_at)}. This bound stops a loop: "
                f"look at the Certificate's Events for what keeps asking for a new certificate"
            ),
            not_before=gates.issuance_allowed_at,
        )
    return decision


def up_to_date_message(spec: CertificateSpec, info: CertificateInfo, issuer_sets_profile: bool) -> str:
    """The Ready message of a good certificate, the same whether just issued or found in place. Where
    the issuer sets the lifetime (an ACME CA's profile), that lifetime is the certificate's own, not
    one cut short."""
    message = f"certificate is up to date and valid until {info.not_after.isoformat()}"
    warning = None if issuer_sets_profile else shortened_warning(spec, info)
    return f"{message}; {warning}" if warning else message


def planned_renewal(
    spec: CertificateSpec,
    issued: IssuedCertificate,
    issuer_ca: x509.Certificate | None,
    now: datetime.datetime,
    renewal_info: RenewalInfo | None = None,
) -> datetime.datetime | None:
    """When to renew `issued`. None once that time has come while the certificate still ends when its
    issuer's current CA does: no new certificate could live longer, so it is renewed when the CA
    changes, or when it expires, instead of again and again."""
    certificate = issued.certificate
    own = renewal_time(
        certificate.not_valid_before_utc,
        certificate.not_valid_after_utc,
        spec.renew_before,
        spec.renew_before_percentage,
    )
    renewal = effective_renewal(spec, certificate, own, applicable_renewal_info(certificate, renewal_info))
    if now >= renewal and ends_with_ca(certificate, issuer_ca):
        return None
    return renewal


def applicable_renewal_info(
    certificate: x509.Certificate, renewal_info: RenewalInfo | None
) -> RenewalInfo | None:
    """`renewal_info` if it is about `certificate` and holds a window."""
    if renewal_info is None or renewal_info.window is None or renewal_info.cert_id != cert_id(certificate):
        return None
    return renewal_info


def effective_renewal(
    spec: CertificateSpec,
    certificate: x509.Certificate,
    own: datetime.datetime,
    renewal_info: RenewalInfo | None,
) -> datetime.datetime:
    """The renewal time: the one chosen inside the CA's ARI window when the CA gave one, else
    certsmith's own (`own`, from renewBefore or 2/3 of the lifetime).

    The CA's window replaces the default 2/3, which is only a guess at what the CA wants; a
    renewBefore or renewBeforePercentage the user set still applies when it comes earlier. A window
    that ends after the certificate expires is not followed past its expiry: then `own` applies.
    """
    chosen = renewal_info.renewal_time() if renewal_info else None
    if chosen is None or chosen >= certificate.not_valid_after_utc:
        return own
    explicit = spec.renew_before is not None or spec.renew_before_percentage is not None
    return min(chosen, own) if explicit else chosen


def ends_with_ca(certificate: x509.Certificate, issuer_ca: x509.Certificate | None) -> bool:
    """True if `certificate` was signed by `issuer_ca` and ends when it does."""
    return (
        issuer_ca is not None
        and certificate.issuer == issuer_ca.subject
        and certificate.not_valid_after_utc >= issuer_ca.not_valid_after_utc
    )


def shortened_warning(spec: CertificateSpec, info: CertificateInfo) -> str | None:
    """Why the certificate is much shorter than asked for, if it is (its issuer's CA ends earlier).
    A CA and its certificates asked for the same duration differ by seconds: not worth a word."""
    lifetime = info.not_after - info.not_before - CLOCK_SKEW_ALLOWANCE
    requested = spec.request.duration
    if lifetime >= requested * (1 - SHORTENED_FRACTION):
        return None
    return (
        f"issued for {format_duration(max(lifetime, datetime.timedelta(0)))} instead of "
        f"{format_duration(requested)} because its issuer's CA certificate expires at "
        f"{info.not_after.isoformat()}; renew that CA to get full-length certificates"
    )


def ready_after_failure(decision: Decision, reason: str, message: str) -> tuple[bool, str, str]:
    """(status, reason, message) of Ready after a failed attempt: still True while the stored
    certificate is valid and only its renewal failed."""
    if decision.stored is not None and decision.renewing:
        return True, "Ready", f"the current certificate is still valid, but renewing it failed: {message}"
    return False, reason, message


def ready_when_held(
    spec: CertificateSpec, decision: Decision, now: datetime.datetime, issuer_sets_profile: bool
) -> tuple[bool, str, str]:
    """(status, reason, message) of Ready while a budget holds the next write: True as long as the
    Secret holds a valid certificate."""
    stored = decision.stored
    if stored is not None and now < stored.info.not_after:
        return True, "Ready", up_to_date_message(spec, stored.info, issuer_sets_profile)
    return False, decision.reason.value, decision.message


def reusable_key(
    spec: CertificateSpec, decision: Decision, secret: SecretContents | None
) -> PrivateKey | None:
    """The key to keep under rotationPolicy Never: the stored one, or a readable tls.key of the
    requested type; None means a new key is made."""
    if spec.private_key.rotation is not RotationPolicy.NEVER:
        return None
    if decision.stored is not None:
        return decision.stored.key
    existing = secret.data.get(TLS_KEY) if secret else None
    if not existing:
        return None
    try:
        key = load_private_key(existing)
    except PKIError:
        return None
    return key if spec_of(key) == spec.private_key.spec else None


def _takeover_instructions(secret_name: str, certificate_name: str) -> str:
    return (
        f"to hand it over, delete it, or run: kubectl label secret {secret_name} {MANAGED_LABEL}=true "
        f"&& kubectl annotate secret {secret_name} {CERTIFICATE_NAME}={certificate_name}"
    )


@dataclass(frozen=True)
class _Inputs:
    observation: Observation
    secret: SecretContents
    stored: StoredCertificate
    own_renewal_time: datetime.datetime
    """From the spec's renewBefore (or the default fraction) alone."""
    renewal_info: RenewalInfo | None
    """The CA's ARI window for the stored certificate, if it gave one."""

    @property
    def renewal_time(self) -> datetime.datetime:
        spec, certificate = self.observation.spec, self.stored.issued.certificate
        return effective_renewal(spec, certificate, self.own_renewal_time, self.renewal_info)


def _ownership(observation: Observation, secret: SecretContents) -> Decision | None:
    """certsmith writes only Secrets it made for this Certificate, or ones handed over to it."""
    spec, name = observation.spec, observation.certificate_name
    owner = secret.annotations.get(CERTIFICATE_NAME)
    if not owner:
        return Decision(
            Action.BLOCKED,
            Reason.SECRET_NOT_OWNED,
            f"Secret {spec.secret_name} exists and was not created by certsmith for this Certificate, "
            f"so certsmith leaves it untouched; choose another spec.secretName, or, "
            f"{_takeover_instructions(spec.secret_name, name)}",
        )
    if owner != name and observation.owner_exists:
        return Decision(
            Action.BLOCKED,
            Reason.SECRET_IN_USE,
            f"Secret {spec.secret_name} belongs to Certificate {owner}; choose another spec.secretName, "
            f"or delete Certificate {owner} to let this one take the Secret over",
        )
    if secret.type != SECRET_TYPE:
        return Decision(
            Action.BLOCKED,
            Reason.SECRET_TYPE_MISMATCH,
            f"Secret {spec.secret_name} is of type {secret.type}, not {SECRET_TYPE}, and Kubernetes "
            f"cannot change a Secret's type: delete it to have it made anew, or choose another "
            f"spec.secretName",
        )
    if owner != name:
        return Decision(
            Action.ISSUE,
            Reason.SECRET_IN_USE,
            f"Secret {spec.secret_name} was made for Certificate {owner}, which no longer exists; "
            f"taking it over",
        )
    return None


def _read(secret: SecretContents, issuer_root: x509.Certificate | None) -> StoredCertificate | Decision:
    """The stored certificate; without ca.crt, its root is the leaf itself when self-signed, else the
    issuer's root when the issuer signed it (ACME chains may have no root: then there is none)."""
    missing = [key for key in (TLS_CERT, TLS_KEY) if not secret.data.get(key)]
    if missing:
        return Decision(Action.ISSUE, Reason.MISSING_DATA, f"the Secret has no {', '.join(missing)}")
    try:
        chain = load_certificates(secret.data[TLS_CERT])
        roots = load_certificates(secret.data[CA_CERT]) if secret.data.get(CA_CERT) else []
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
    leaf = chain[0]
    root = roots[0] if roots else _implied_root(leaf, tuple(chain[1:]), issuer_root)
    return StoredCertificate(key, IssuedCertificate(leaf, tuple(chain[1:]), root), info, revision)


def _implied_root(
    leaf: x509.Certificate, intermediates: tuple[x509.Certificate, ...], issuer_root: x509.Certificate | None
) -> x509.Certificate | None:
    if leaf.issuer == leaf.subject:
        return leaf
    top = intermediates[-1] if intermediates else leaf
    if issuer_root is not None and top.issuer == issuer_root.subject:
        return issuer_root
    return None


def _key_spec(inputs: _Inputs) -> Decision | None:
    spec = inputs.observation.spec
    wanted, found = spec.private_key.spec, inputs.stored.info.key_spec
    if wanted == found:
        return None
    if spec.private_key.rotation is RotationPolicy.NEVER:
        return Decision(
            Action.BLOCKED,
            Reason.KEY_DOES_NOT_MATCH_SPEC,
            f"the key in Secret {spec.secret_name} is {found}, the spec asks for {wanted}, and "
            f"privateKey.rotationPolicy is Never: set rotationPolicy to Always, or delete tls.key "
            f"from the Secret to have a new key made",
            inputs.stored,
        )
    return Decision(
        Action.ISSUE, Reason.KEY_CHANGED, f"the key is {found}, the spec asks for {wanted}", inputs.stored
    )


def _spec_fields(inputs: _Inputs) -> Decision | None:
    request, info = inputs.observation.spec.request, inputs.stored.info
    leaf = inputs.stored.issued.certificate
    if leaf.subject.rdns and leaf.issuer == leaf.subject:
        request = request.self_signed()  # as it was signed (one with an empty subject stays as it is)
    compared: tuple[tuple[str, object, object], ...] = (
        ("dnsNames", frozenset(request.dns_names), info.dns_names),
        ("ipAddresses", frozenset(request.ip_addresses), info.ip_addresses),
        ("uris", frozenset(request.uris), info.uris),
        ("emailAddresses", frozenset(request.email_addresses), info.email_addresses),
    )
    if inputs.observation.issuer_sets_profile:
        compared = _acme_names(request, info)
    else:
        compared = (
            ("commonName", request.common_name, info.common_name),
            *compared,
            ("subject", request.subject, info.subject),
            ("usages", request.usages, info.usages),
            ("isCA", request.is_ca, info.is_ca),
        )
    differing = [
        name
        for name, wanted, found in compared
        if wanted != found and not (name == "usages" and _earlier_rsa_ca_default(request, info))
    ]
    if not differing:
        return None
    return Decision(
        Action.ISSUE,
        Reason.SPEC_CHANGED,
        f"the certificate does not match spec.{', spec.'.join(differing)}",
        inputs.stored,
    )


def _acme_names(
    request: CertificateTemplate, info: CertificateInfo
) -> tuple[tuple[str, object, object], ...]:
    """What an ACME CA certifies: the names, the common name being one more (a DNS name or an IP
    address, as the order's identifiers are)."""
    dns_names, addresses = set(request.dns_names), set(request.ip_addresses)
    if request.common_name and is_ip_address(request.common_name):
        addresses.add(ipaddress.ip_address(request.common_name))
    elif request.common_name:
        dns_names.add(request.common_name)
    return (
        ("dnsNames", frozenset(dns_names), info.dns_names),
        ("ipAddresses", frozenset(addresses), info.ip_addresses),
    )


def _earlier_rsa_ca_default(request: CertificateTemplate, info: CertificateInfo) -> bool:
    """An RSA CA certificate made when a CA's default usages still had key encipherment: it is kept
    until it is renewed for another reason (re-issuing every CA at once would be an outage's risk)."""
    return request.is_ca and info.usages == request.usages | {"key encipherment"}


def _issuer(inputs: _Inputs) -> Decision | None:
    reference, annotations = inputs.observation.spec.issuer_ref, inputs.secret.annotations
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
    if inputs.observation.issuer_sets_profile:
        return None
    recorded = inputs.secret.annotations.get(REQUESTED_DURATION)
    wanted = str(int(inputs.observation.spec.request.duration.total_seconds()))
    if recorded is None or recorded == wanted:
        return None
    return Decision(
        Action.ISSUE,
        Reason.DURATION_CHANGED,
        f"issued for a duration of {recorded}s, the spec asks for {wanted}s",
        inputs.stored,
    )


def _expiry(inputs: _Inputs) -> Decision | None:
    info, now = inputs.stored.info, inputs.observation.now
    if now >= info.not_after:
        return Decision(
            Action.ISSUE, Reason.EXPIRED, f"expired at {info.not_after.isoformat()}", inputs.stored
        )
    if (
        now < inputs.renewal_time
        or inputs.renewal_time != inputs.own_renewal_time
        or ends_with_ca(inputs.stored.issued.certificate, inputs.observation.issuer_ca)
    ):
        return None
    return Decision(
        Action.ISSUE,
        Reason.RENEWAL_DUE,
        f"renewal was due at {inputs.renewal_time.isoformat()}",
        inputs.stored,
    )


def _ca_requested_renewal(inputs: _Inputs) -> Decision | None:
    """The time chosen inside the CA's ARI window has come (a window already past: at once)."""
    info, when = inputs.renewal_info, inputs.renewal_time
    if info is None or when == inputs.own_renewal_time or inputs.observation.now < when:
        return None
    return Decision(
        Action.ISSUE,
        Reason.CA_REQUESTED_RENEWAL,
        f"CA asked for renewal (ARI {describe_window(info)}; chosen time {timestamp(when)})",
        inputs.stored,
    )


def _manual_renewal(inputs: _Inputs) -> Decision | None:
    request = inputs.observation.renew_request
    if not request or request == inputs.secret.annotations.get(RENEW_REQUEST):
        return None
    return Decision(Action.ISSUE, Reason.MANUAL_RENEWAL, f"renewal requested at {request}", inputs.stored)


_REISSUE_CHECKS: tuple[Callable[[_Inputs], Decision | None], ...] = (
    _key_spec,
    _spec_fields,
    _issuer,
    _duration,
    _expiry,
    _ca_requested_renewal,
    _manual_renewal,
)


def _drift(inputs: _Inputs) -> list[str]:
    """Names of what differs from the desired Secret, besides the certificate itself."""
    spec, secret, stored = inputs.observation.spec, inputs.secret, inputs.stored
    labels, annotations = desired_metadata(
        spec,
        inputs.observation.certificate_name,
        stored.revision,
        secret.annotations.get(RENEW_REQUEST),
        secret.annotations.get(KEYSTORE_PASSWORD_VERSION),
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
    wanted_stores = set()
    if spec.pkcs12:
        wanted_stores = {KEYSTORE, TRUSTSTORE} if stored.issued.root is not None else {KEYSTORE}
    drift += [f"data {name}" for name in sorted(wanted_stores) if not secret.data.get(name)]
    drift += [
        f"data {name}" for name in sorted(OPTIONAL_KEYS - set(data) - wanted_stores) if name in secret.data
    ]
    password_version = inputs.observation.keystore_password_version
    if (
        spec.pkcs12
        and password_version is not None
        and secret.annotations.get(KEYSTORE_PASSWORD_VERSION) != password_version
        and not any(item.startswith("data keystore") for item in drift)
        and not keystore_opens(secret.data[KEYSTORE], inputs.observation.keystore_password)
    ):
        drift.append("keystores (their password Secret changed)")
    return drift
