"""The CertificateRequest: a CSR made elsewhere, to be signed once it is approved."""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from certsmith.api import SpecError
from certsmith.api.durations import spec_duration
from certsmith.api.references import IssuerRef, parse_issuer_ref

PRIVATE_KEY_SECRET_ANNOTATION = "certsmith.dev/private-key-secret-name"
"""On a CertificateRequest to a SelfSigned issuer: the Secret (key tls.key) holding the CSR's private
key, which self-signing needs; no other issuer reads a private key."""
DEFAULT_DURATION = datetime.timedelta(days=90)
APPROVED, DENIED = "Approved", "Denied"
TERMINAL_REASONS = frozenset({"Denied", "InvalidRequest", "Failed"})
"""Ready=False reasons after which certsmith never acts on the request again."""


class Decision(StrEnum):
    APPROVED = APPROVED
    DENIED = DENIED
    UNDECIDED = "Undecided"


@dataclass(frozen=True)
class CertificateRequestSpec:
    request: bytes
    """The CSR, PEM."""
    issuer_ref: IssuerRef
    duration: datetime.timedelta
    is_ca: bool
    usages: frozenset[str]


def parse_certificate_request_spec(spec: Mapping[str, Any]) -> CertificateRequestSpec:
    encoded = spec.get("request")
    if not encoded:
        raise SpecError("request", "is required: the PEM CSR, base64-encoded (base64 -w0 req.csr)")
    try:
        request = base64.b64decode(str(encoded), validate=True)
    except binascii.Error:
        raise SpecError("request", "is not base64: set it to `base64 -w0 req.csr`") from None
    return CertificateRequestSpec(
        request=request,
        issuer_ref=parse_issuer_ref(spec.get("issuerRef") or {}),
        duration=spec_duration(spec, "duration") or DEFAULT_DURATION,
        is_ca=bool(spec.get("isCA")),
        usages=frozenset(spec.get("usages") or ()),
    )


def decision_of(status: Mapping[str, Any]) -> Decision:
    """Approved or Denied, as an approver (or certsmith's auto-approval) set it."""
    for item in status.get("conditions") or []:
        if item.get("type") in (APPROVED, DENIED) and item.get("status") == "True":
            return Decision(item["type"])
    return Decision.UNDECIDED


def is_finished(status: Mapping[str, Any]) -> bool:
    """Signed, or failed for good: a CertificateRequest is acted on once."""
    if status.get("certificate"):
        return True
    ready: Mapping[str, Any] = next(
        (item for item in status.get("conditions") or [] if item.get("type") == "Ready"), {}
    )
    return ready.get("status") == "False" and ready.get("reason") in TERMINAL_REASONS
