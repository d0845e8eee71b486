"""Facts about every kubernetes.io/tls Secret, managed or not: what the expiry metrics need, and
nothing else. Pure: Secret data in, facts out; a Secret body is never kept."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from certsmith.pki import PKIError
from certsmith.pki.inspection import load_certificates
from certsmith.tls_secret import CA_CERT, TLS_CERT

SCANNED_KEYS = (TLS_CERT, CA_CERT)


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    key: str
    """The data key the certificate was found in: tls.crt or ca.crt."""
    chain_position: int
    """0 for the first certificate in that key (the leaf in tls.crt), then 1, 2, ..."""
    not_after: datetime.datetime
    subject_cn: str
    issuer_cn: str
    serial: str


@dataclass(frozen=True, slots=True)
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
        for position, certificate in enumerate(chain):
            facts = CertificateFacts(
                key,
                position,
                certificate.not_valid_after_utc,
                _common_name(certificate.subject),
                sys.intern(_common_name(certificate.issuer)),
                f"{certificate.serial_number:x}",
            )
            found.append(facts if key == TLS_CERT and position == 0 else _shared(facts))
    return TLSSecretFacts(managed, tuple(found))


_CA_FACTS: dict[CertificateFacts, CertificateFacts] = {}


def _shared(facts: CertificateFacts) -> CertificateFacts:
    """One copy of the facts of each CA certificate (ca.crt, or a chain's intermediates) for all the
    Secrets that carry it: the scanner keeps the facts of every TLS Secret it holds. Bounded: it starts
    afresh past 256 different certificates."""
    if len(_CA_FACTS) >= 256 and facts not in _CA_FACTS:
        _CA_FACTS.clear()
    return _CA_FACTS.setdefault(facts, facts)


def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""
