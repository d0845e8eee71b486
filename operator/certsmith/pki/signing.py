"""Signing certificates: self-signed, or by a CA key pair."""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID

from certsmith.pki import PKIError
from certsmith.pki.keys import PrivateKey, PublicKey, certificate_public_key, same_public_key, signature_hash
from certsmith.pki.request import CertificateTemplate

MINIMUM_RSA_BITS = 2048
CLOCK_SKEW_ALLOWANCE = datetime.timedelta(minutes=5)
"""notBefore lies this far in the past, so that clients with a slow clock accept a fresh certificate."""


class AuthorityError(PKIError):
    """A key pair that cannot sign; `problem` is KeyMismatch, NotACA, Expired or NotYetValid."""

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem = problem


@dataclass(frozen=True)
class IssuerURLs:
    """URLs a CA writes into what it signs."""

    crl_distribution_points: tuple[str, ...] = ()
    ocsp_servers: tuple[str, ...] = ()
    issuing_certificate_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class SigningAuthority:
    """A CA certificate and its key, plus the chain above it (excluding the root) and the root."""

    certificate: x509.Certificate
    key: PrivateKey
    intermediates: tuple[x509.Certificate, ...]
    root: x509.Certificate
    urls: IssuerURLs = IssuerURLs()


@dataclass(frozen=True)
class IssuedCertificate:
    """The signed leaf, the intermediates to send with it, and the root a client should trust, when
    known (an ACME CA's chain need not include its root)."""

    certificate: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]
    root: x509.Certificate | None


def self_sign(
    request: CertificateTemplate, key: PrivateKey, now: datetime.datetime, urls: IssuerURLs = IssuerURLs()
) -> IssuedCertificate:
    request = request.self_signed()
    certificate = _sign(request, key.public_key(), _Signer(request.name(), key, key.public_key(), urls), now)
    return IssuedCertificate(certificate, (), certificate)


def sign_with_authority(
    request: CertificateTemplate,
    public_key: PublicKey,
    authority: SigningAuthority,
    now: datetime.datetime,
    backdate: datetime.timedelta = CLOCK_SKEW_ALLOWANCE,
) -> IssuedCertificate:
    """Sign for `public_key`, valid from `backdate` before now; the certificate never outlives the
    CA's own."""
    ca = authority.certificate
    signer = _Signer(ca.subject, authority.key, certificate_public_key(ca), authority.urls)
    not_after = min(_truncated(now) + request.duration, ca.not_valid_after_utc)
    certificate = _sign(request, public_key, signer, now, not_after, backdate)
    chain = (authority.certificate, *authority.intermediates)
    intermediates = tuple(cert for cert in chain if cert != authority.root)
    return IssuedCertificate(certificate, intermediates, authority.root)


def verify_authority(authority: SigningAuthority, now: datetime.datetime) -> None:
    """Raise AuthorityError unless the key pair can sign: a CA certificate, matching key, currently valid."""
    certificate = authority.certificate
    if not same_public_key(authority.key, certificate_public_key(certificate)):
        raise AuthorityError("KeyMismatch", "tls.key does not belong to the certificate in tls.crt")
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise AuthorityError(
            "NotACA",
            "the certificate in tls.crt is not a CA certificate (basicConstraints CA:TRUE is missing)",
        )
    try:
        key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        key_usage = None
    if key_usage is not None and not key_usage.key_cert_sign:
        raise AuthorityError("NotACA", "the CA certificate's key usage does not allow signing certificates")
    if now >= certificate.not_valid_after_utc:
        raise AuthorityError(
            "Expired", f"the CA certificate expired at {certificate.not_valid_after_utc.isoformat()}"
        )
    if now < certificate.not_valid_before_utc:
        raise AuthorityError(
            "NotYetValid",
            f"the CA certificate is not valid before {certificate.not_valid_before_utc.isoformat()}",
        )


def authority_weaknesses(authority: SigningAuthority) -> list[str]:
    """What makes certificates signed by `authority` likely to be refused by clients."""
    weaknesses = []
    key = authority.key
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < MINIMUM_RSA_BITS:
        weaknesses.append(f"its key is RSA {key.key_size} bits (clients expect at least {MINIMUM_RSA_BITS})")
    algorithm = authority.certificate.signature_hash_algorithm
    if algorithm is not None and algorithm.name in ("sha1", "md5"):
        weaknesses.append(f"its certificate is signed with {algorithm.name.upper()}, which clients refuse")
    return weaknesses


@dataclass(frozen=True)
class _Signer:
    name: x509.Name
    key: PrivateKey
    public_key: PublicKey
    urls: IssuerURLs


def _sign(
    request: CertificateTemplate,
    public_key: PublicKey,
    signer: _Signer,
    now: datetime.datetime,
    not_after: datetime.datetime | None = None,
    backdate: datetime.timedelta = CLOCK_SKEW_ALLOWANCE,
) -> x509.Certificate:
    start = _truncated(now)
    builder = (
        x509.CertificateBuilder()
        .subject_name(request.name())
        .issuer_name(signer.name)
        .public_key(public_key)
        .serial_number(_serial_number())
        .not_valid_before(start - backdate)
        .not_valid_after(not_after or start + request.duration)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key), critical=False)
    )
    for extension, critical in request.extensions():
        builder = builder.add_extension(extension, critical)
    urls = signer.urls
    if urls.crl_distribution_points:
        points = [
            x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)
            for url in urls.crl_distribution_points
        ]
        builder = builder.add_extension(x509.CRLDistributionPoints(points), critical=False)
    access = [
        *(
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url))
            for url in urls.ocsp_servers
        ),
        *(
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(url)
            )
            for url in urls.issuing_certificate_urls
        ),
    ]
    if access:
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    return builder.sign(signer.key, signature_hash(signer.key))


def _serial_number() -> int:
    """A random positive 128-bit serial (CA/Browser Forum: at least 64 bits of randomness)."""
    return (1 << 127) | secrets.randbits(127)


def _truncated(now: datetime.datetime) -> datetime.datetime:
    return now.replace(microsecond=0)
