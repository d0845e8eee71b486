"""Kubernetes' PodCertificateRequest (certificates.k8s.io/v1, GA in 1.37), as certsmith signs it.

Each CA Issuer and ClusterIssuer is a signer: `clusterissuers.certsmith.dev/<name>` and
`issuers.certsmith.dev/<namespace>.<name>` (a namespace has no dots, so the first dot splits).
The status gets exactly one of the conditions Issued, Denied or Failed, and is immutable after it.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from certsmith.api import SpecError
from certsmith.api.references import IssuerKind, IssuerRef
from certsmith.api.status import timestamp

POD_CERTIFICATE_REQUESTS = "podcertificaterequests"
POD_CERTIFICATES_GROUP = "certificates.k8s.io"
POD_CERTIFICATES_VERSION = "v1"
CLUSTER_ISSUER_SIGNERS = "clusterissuers.certsmith.dev"
ISSUER_SIGNERS = "issuers.certsmith.dev"
ISSUED = "Issued"
DENIED = "Denied"
FAILED = "Failed"
UNSUPPORTED_KEY_TYPE = "UnsupportedKeyType"
INVALID_USER_ANNOTATIONS = "InvalidUnverifiedUserAnnotations"
_TERMINAL = (ISSUED, DENIED, FAILED)


@dataclass(frozen=True)
class PodCertificateRequestSpec:
    signer_name: str
    pod_name: str
    service_account_name: str
    max_expiration_seconds: int
    stub: bytes
    """The kubelet's stub PKCS#10 request, DER."""
    user_annotations: tuple[str, ...]
    """The keys of spec.unverifiedUserAnnotations: certsmith knows none, so any denies the request."""


@dataclass(frozen=True)
class SignerRefusal:
    """A signer name of certsmith's that the request may not use: Denied with this reason."""

    reason: str
    message: str


def signer_issuer(signer_name: str, namespace: str) -> IssuerRef | SignerRefusal | None:
    """The issuer a signer name names for a request in `namespace`, why the request may not use it,
    or None when the name is not certsmith's (another signer answers it)."""
    domain, _, path = signer_name.partition("/")
    if domain == CLUSTER_ISSUER_SIGNERS and path:
        return IssuerRef(path, IssuerKind.CLUSTER_ISSUER)
    if domain != ISSUER_SIGNERS:
        return None
    issuer_namespace, dot, name = path.partition(".")
    if not dot or not issuer_namespace or not name:
        return SignerRefusal(
            "InvalidSignerName",
            f"signer name {signer_name} names no Issuer: use {ISSUER_SIGNERS}/<namespace>.<name>",
        )
    if issuer_namespace != namespace:
        return SignerRefusal(
            "NamespaceNotAllowed",
            f"Issuer {issuer_namespace}/{name} signs only for pods of namespace {issuer_namespace}, not "
            f"{namespace}: use an Issuer of namespace {namespace}, or a ClusterIssuer "
            f"({CLUSTER_ISSUER_SIGNERS}/<name>)",
        )
    return IssuerRef(name, IssuerKind.ISSUER)


def parse_pod_certificate_request_spec(spec: Mapping[str, Any]) -> PodCertificateRequestSpec:
    try:
        stub = base64.b64decode(spec.get("stubPKCS10Request") or "", validate=True)
    except (binascii.Error, ValueError):
        raise SpecError("stubPKCS10Request", "is not base64") from None
    if not stub:
        raise SpecError("stubPKCS10Request", "is empty; certsmith signs only requests with a stub request")
    maximum = spec.get("maxExpirationSeconds")
    if not isinstance(maximum, int):
        raise SpecError("maxExpirationSeconds", "must be set (the API server defaults it to 86400)")
    return PodCertificateRequestSpec(
        signer_name=str(spec.get("signerName") or ""),
        pod_name=str(spec.get("podName") or ""),
        service_account_name=str(spec.get("serviceAccountName") or ""),
        max_expiration_seconds=maximum,
        stub=stub,
        user_annotations=tuple(sorted(spec.get("unverifiedUserAnnotations") or {})),
    )


def is_answered(status: Mapping[str, Any]) -> bool:
    """Whether the request has its one terminal condition: nothing may change any more."""
    return any(item.get("type") in _TERMINAL for item in status.get("conditions") or ())


def answer(kind: str, reason: str, message: str, now: datetime.datetime) -> dict[str, Any]:
    """The status that denies or fails a request (an issued one adds the certificate fields)."""
    return {
        "conditions": [
            {
                "type": kind,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": timestamp(now),
            }
        ]
    }


def issued_status(
    chain_pem: str,
    not_before: datetime.datetime,
    begin_refresh_at: datetime.datetime,
    not_after: datetime.datetime,
    message: str,
    now: datetime.datetime,
) -> dict[str, Any]:
    return {
        **answer(ISSUED, ISSUED, message, now),
        "certificateChain": chain_pem,
        "notBefore": timestamp(not_before),
        "beginRefreshAt": timestamp(begin_refresh_at),
        "notAfter": timestamp(not_after),
    }
