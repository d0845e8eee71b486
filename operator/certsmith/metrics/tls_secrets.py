"""Facts about every kubernetes.io/tls Secret, managed or not: what the expiry metrics need, and
nothing else. Pure: Secret data in, facts out; a Secret body is never kept."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from certsmith.pki import PKIError
from certsmith.pki.inspection import load_certificates
from certsmith.tls_secret import CA_CERT, TLS_CERT

SCANNED_KEYS = (TLS_CERT, CA_CERT)


@dataclass(frozen=True)
class CertificateFacts:
    key: str
    """The data key the certificate was found in: tls.crt or ca.crt."""
    chain_position: int
    """0 for the first certificate in that key (the leaf in tls.crt), then 1, 2, ..."""
    not_after: datetime.datetime
    subject_cn: str
    issuer_cn: str
    serial: str


@dataclass(frozen=True)
class TLSSecretFacts:
    managed: bool
    certificates: tuple[CertificateFacts, ...]


def tls_secret_facts(data: Mapping[str, bytes], managed: bool) -> TLSSecretFacts:
    """The certificates in a TLS Secret's tls.crt and ca.crt; unreadable keys are skipped."""
    found = []
    for key in SCANNED_KEYS:
        pem = data.get(key)
        if not pem:
            continue
        try:
            chain = load_certificates(pem)
        except PKIError:
            continue
        found += [
            CertificateFacts(
                key,
                position,
                certificate.not_valid_after_utc,
                _common_name(certificate.subject),
                _common_name(certificate.issuer),
                f"{certificate.serial_number:x}",
            )
            for position, certificate in enumerate(chain)
        ]
    return TLSSecretFacts(managed, tuple(found))


def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""
