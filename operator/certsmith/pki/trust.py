"""Trust bundles: many PEM texts in, one sorted, de-duplicated PEM out, so that targets do not churn
when sources are listed in another order or name a certificate twice."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certsmith.pki.encodings import PKCS12Profile, certificates_pem, pkcs12_truststore

_BEGIN = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class TrustBundle:
    certificates: tuple[x509.Certificate, ...]

    @property
    def pem(self) -> str:
        return certificates_pem(self.certificates).decode()

    def pkcs12(self, password: str) -> bytes:
        """A PKCS#12 trust store (each certificate marked trusted for Java), in the legacy profile that
        every Java and OpenSSL reads, as trust-manager writes it."""
        return pkcs12_truststore(self.certificates, password.encode(), PKCS12Profile.LEGACY_DES)

    def digest(self, *extra: str) -> str:
        """Names the bundle and what it is written with; equal for equal inputs, whatever their order."""
        hashed = hashlib.sha256(self.pem.encode())
        for part in extra:
            hashed.update(b"\0" + part.encode())
        return hashed.hexdigest()


class BadCertificatesError(ValueError):
    """A source's text that is not a PEM list of X.509 certificates; says which source."""


def parse_certificates(pem: bytes | str, where: str) -> list[x509.Certificate]:
    """Every certificate of a PEM text; text between blocks is ignored, as trust-manager does."""
    data = pem.encode() if isinstance(pem, str) else pem
    if _BEGIN not in data:
        raise BadCertificatesError(f"{where}: holds no PEM certificate")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise BadCertificatesError(f"{where}: not a PEM certificate list ({error})") from None


def trust_bundle(certificates: Iterable[x509.Certificate]) -> TrustBundle:
    """Sorted by subject then by DER bytes (stable across runs), each certificate once."""
    unique: dict[bytes, x509.Certificate] = {}
    for certificate in certificates:
        unique.setdefault(certificate.public_bytes(serialization.Encoding.DER), certificate)
    ordered = sorted(unique.items(), key=lambda item: (item[1].subject.rfc4514_string(), item[0]))
    return TrustBundle(tuple(certificate for _, certificate in ordered))


def certificate_authorities(certificates: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """Those with basicConstraints CA:TRUE, the only ones a ClusterTrustBundle accepts."""
    found = []
    for certificate in certificates:
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            continue
        if constraints.ca:
            found.append(certificate)
    return found
