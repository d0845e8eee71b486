"""Pod certificates (Kubernetes PodCertificateRequests): the key the kubelet sent, the identity the
certificate names, and its validity window, as the API server checks them when the signer writes
the status.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from certsmith.pki import PKIError
from certsmith.pki.keys import PublicKey
from certsmith.pki.request import CertificateTemplate

SUPPORTED_KEYS = "RSA 3072 or 4096, ECDSA P-256, P-384 or P-521, or Ed25519"
"""The keys the API server lets a kubelet ask for (Kubernetes 1.37), all of which certsmith signs."""
_RSA_SIZES = (3072, 4096)
MINIMUM_LIFETIME = datetime.timedelta(hours=1)
"""The API server refuses an issued pod certificate valid for less than an hour."""
_USAGES = frozenset({"digital signature", "server auth", "client auth"})
"""Pods use their certificate as server and as client of mutual TLS."""


class UnsupportedKeyError(PKIError):
    """The stub request's key is not one certsmith signs: the request is Denied (UnsupportedKeyType)."""


class BadStubError(PKIError):
    """The stub request is not a PKCS#10 request at all: the request has Failed."""


@dataclass(frozen=True)
class Validity:
    not_before: datetime.datetime
    not_after: datetime.datetime

    @property
    def lifetime(self) -> datetime.timedelta:
        return self.not_after - self.not_before

    @property
    def begin_refresh_at(self) -> datetime.datetime:
        """Half-life: the kubelet renews with half the lifetime left, time enough to retry."""
        return self.not_before + self.lifetime / 2


def stub_public_key(stub: bytes) -> PublicKey:
    """The public key of the kubelet's stub PKCS#10 request (DER). Its signature was checked by the API
    server on creation; the errors never repeat the input."""
    try:
        request = x509.load_der_x509_csr(stub)
    except ValueError:
        raise BadStubError("spec.stubPKCS10Request is not a DER-encoded PKCS#10 request") from None
    try:
        key = request.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise UnsupportedKeyError(f"the key type is not supported; use {SUPPORTED_KEYS}") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size in _RSA_SIZES:
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in (
        "secp256r1",
        "secp384r1",
        "secp521r1",
    ):
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise UnsupportedKeyError(f"{_describe(key)} is not supported; use {SUPPORTED_KEYS}")


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    """The pod's identity in the form SPIFFE's Kubernetes workload attestors use."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def pod_validity(
    now: datetime.datetime, max_expiration_seconds: int, ca_not_after: datetime.datetime
) -> Validity:
    """From now (to the second: the API server compares notBefore with the leaf's) for the request's
    maxExpirationSeconds, never past the CA's own expiry. Not backdated: the API server wants notBefore
    within 5 minutes of its clock and the whole window within maxExpirationSeconds."""
    start = now.replace(microsecond=0)
    end = min(start + datetime.timedelta(seconds=max_expiration_seconds), ca_not_after.replace(microsecond=0))
    if end - start < MINIMUM_LIFETIME:
        raise PKIError(
            f"the CA certificate expires at {ca_not_after.isoformat()}, less than an hour from now, and a "
            f"pod certificate must be valid for at least an hour: renew the issuer's CA"
        )
    return Validity(start, end)


def pod_template(uri: str, lifetime: datetime.timedelta) -> CertificateTemplate:
    """A leaf naming only the pod's SPIFFE ID (its subject is empty, so the SAN is critical)."""
    return CertificateTemplate(uris=(uri,), usages=_USAGES, duration=lifetime)


def _describe(key: object) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    return type(key).__name__
