"""What a TLS Secret holds, told for people: each certificate of the chain, whether the key belongs to
it, whether the chain is in order and reaches ca.crt, and what is weak or wrong. Pure; never shows a
private key, only its type and whether it matches."""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from certsmith.pki import PKIError
from certsmith.pki.inspection import is_self_signed, load_certificates, signed_by
from certsmith.pki.keys import (
    KeyAlgorithm,
    certificate_public_key,
    load_private_key,
    same_public_key,
    spec_of,
)
from certsmith.pki.usages import usages_of

_WEAK_RSA_BITS = 2048


@dataclass(frozen=True)
class CertificateFacts:
    subject: str
    issuer: str
    serial: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    names: tuple[str, ...]
    key: str
    usages: tuple[str, ...]
    is_ca: bool
    sha256: str


@dataclass(frozen=True)
class TLSReport:
    chain: tuple[CertificateFacts, ...]
    """tls.crt, leaf first."""
    roots: tuple[CertificateFacts, ...]
    """ca.crt."""
    key: str | None
    """The private key's type and whether it belongs to the leaf; None if there is no tls.key."""
    warnings: tuple[str, ...] = field(default=())


def tls_report(data: Mapping[str, bytes], now: datetime.datetime) -> TLSReport:
    """Raises PKIError when tls.crt is missing or unreadable."""
    if not data.get("tls.crt"):
        raise PKIError("the Secret has no tls.crt")
    chain = load_certificates(data["tls.crt"])
    roots = load_certificates(data["ca.crt"]) if data.get("ca.crt") else []
    warnings = [*_chain_warnings(chain, roots), *_validity_warnings(chain[0], now)]
    for certificate in (*chain, *roots):
        warnings += _weaknesses(certificate)
    key = None
    if data.get("tls.key"):
        try:
            private = load_private_key(data["tls.key"])
        except PKIError as error:
            key, problem = "unreadable", f"tls.key is unreadable: {error}"
            warnings.append(problem)
        else:
            matches = same_public_key(private, certificate_public_key(chain[0]))
            key = f"{spec_of(private)}, {'matches' if matches else 'does NOT match'} the certificate"
            if not matches:
                warnings.append("tls.key does not belong to the certificate in tls.crt")
    else:
        warnings.append("the Secret has no tls.key")
    return TLSReport(
        tuple(map(_facts, chain)), tuple(map(_facts, roots)), key, tuple(dict.fromkeys(warnings))
    )


def _facts(certificate: x509.Certificate) -> CertificateFacts:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        shown = tuple(str(name.value) for name in names)
    except x509.ExtensionNotFound:
        shown = ()
    try:
        is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertificateFacts(
        subject=certificate.subject.rfc4514_string() or "(empty subject)",
        issuer=certificate.issuer.rfc4514_string(),
        serial=f"{certificate.serial_number:x}",
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        names=shown,
        key=str(spec_of(certificate_public_key(certificate))),
        usages=tuple(sorted(usages_of(certificate))),
        is_ca=is_ca,
        sha256=certificate.fingerprint(hashes.SHA256()).hex(":").upper(),
    )


def _chain_warnings(chain: list[x509.Certificate], roots: list[x509.Certificate]) -> list[str]:
    warnings = []
    for position, (child, parent) in enumerate(itertools.pairwise(chain)):
        if not signed_by(child, parent):
            warnings.append(
                f"tls.crt is out of order: certificate {position} ({_cn(child)}) is not signed by "
                f"certificate {position + 1} ({_cn(parent)})"
            )
    top = chain[-1]
    if is_self_signed(top):
        if len(chain) > 1:
            warnings.append("tls.crt includes its root; clients expect it in ca.crt only")
        return warnings
    if not roots:
        warnings.append(
            f"tls.crt ends with {_cn(top)}, issued by {_issuer_cn(top)}, and there is no ca.crt to check "
            f"the chain against"
        )
    elif not any(signed_by(top, root) for root in roots):
        issuers = ", ".join(_cn(root) for root in roots)
        warnings.append(
            f"the chain does not reach ca.crt: {_cn(top)} is issued by {_issuer_cn(top)}, ca.crt holds "
            f"{issuers} (an intermediate may be missing)"
        )
    return warnings


def _validity_warnings(leaf: x509.Certificate, now: datetime.datetime) -> list[str]:
    if now >= leaf.not_valid_after_utc:
        return [f"the certificate expired at {leaf.not_valid_after_utc.isoformat()}"]
    if now < leaf.not_valid_before_utc:
        return [f"the certificate is not valid before {leaf.not_valid_before_utc.isoformat()}"]
    return []


def _weaknesses(certificate: x509.Certificate) -> list[str]:
    weaknesses = []
    spec = spec_of(certificate_public_key(certificate))
    if spec.algorithm is KeyAlgorithm.RSA and (spec.size or 0) < _WEAK_RSA_BITS:
        weaknesses.append(f"{_cn(certificate)} has a weak key: RSA {spec.size} bits (use at least 2048)")
    algorithm = certificate.signature_hash_algorithm
    if isinstance(algorithm, hashes.SHA1 | hashes.MD5):
        weaknesses.append(f"{_cn(certificate)} is signed with {algorithm.name.upper()}, which is broken")
    return weaknesses


def _cn(certificate: x509.Certificate) -> str:
    return _common_name(certificate.subject)


def _issuer_cn(certificate: x509.Certificate) -> str:
    return _common_name(certificate.issuer)


def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"CN={values[0].value!s}" if values else name.rfc4514_string() or "an empty name"
