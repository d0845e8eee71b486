"""The CA issuer: sign with a CA key pair held in a Secret (tls.crt, tls.key, optional ca.crt)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from certsmith.issuers import IssuerNotReadyError, SigningRequest
from certsmith.pki import PKIError
from certsmith.pki.inspection import is_self_signed, load_certificates
from certsmith.pki.keys import load_private_key
from certsmith.pki.signing import (
    AuthorityError,
    IssuedCertificate,
    IssuerURLs,
    SigningAuthority,
    sign_with_authority,
    verify_authority,
)
from certsmith.tls_secret import CA_CERT, TLS_CERT, TLS_KEY, SecretContents


@dataclass(frozen=True)
class CASigner:
    authority: SigningAuthority

    def sign(self, request: SigningRequest) -> IssuedCertificate:
        return sign_with_authority(request.template, request.public_key(), self.authority, request.now)


def load_authority(
    secret_name: str, secret: SecretContents | None, urls: IssuerURLs, now: datetime.datetime
) -> SigningAuthority:
    """The signing authority in a CA Secret, verified; IssuerNotReadyError says what is wrong with it."""
    if secret is None:
        raise IssuerNotReadyError("SecretNotFound", f"CA Secret {secret_name} does not exist")
    missing = [key for key in (TLS_CERT, TLS_KEY) if not secret.data.get(key)]
    if missing:
        raise IssuerNotReadyError("InvalidKeyPair", f"CA Secret {secret_name} has no {' or '.join(missing)}")
    try:
        chain = load_certificates(secret.data[TLS_CERT])
        key = load_private_key(secret.data[TLS_KEY])
        roots = load_certificates(secret.data[CA_CERT]) if secret.data.get(CA_CERT) else []
    except PKIError as error:
        raise IssuerNotReadyError("InvalidKeyPair", f"CA Secret {secret_name}: {error}") from None
    certificate = chain[0]
    root = (
        roots[0] if roots else next((cert for cert in reversed(chain) if is_self_signed(cert)), certificate)
    )
    authority = SigningAuthority(certificate, key, tuple(chain[1:]), root, urls)
    try:
        verify_authority(authority, now)
    except AuthorityError as error:
        raise IssuerNotReadyError(error.problem, f"CA Secret {secret_name}: {error}") from None
    return authority
