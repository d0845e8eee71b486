"""Values read from users' Secrets, checked where they are read: a bad one says which field and
Secret, and how to fix it, without repeating the value.

Each check raises `InvalidCredentialError`, an `IssuerNotReadyError`: an issuer whose credentials
are bad is not ready, so no ACME order is made until the Secret changes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certsmith.api.references import SecretKeyRef
from certsmith.issuers import IssuerNotReadyError
from certsmith.pki import PKIError
from certsmith.pki.keys import PrivateKey, load_private_key

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+=*")
_ACME_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_MINIMUM_ACCOUNT_RSA_BITS = 2048


class InvalidCredentialError(IssuerNotReadyError):
    """A Secret's value cannot be what its field needs; the message names the field and the fix."""


def tsig_secret(value: bytes, where: str) -> bytes:
    """An RFC 2136 TSIG secret: base64, as BIND's `tsig-keygen` prints it."""
    text = _ascii(value, where, "InvalidTSIGSecret", "the base64 secret of the TSIG key")
    decoded = b""
    with contextlib.suppress(binascii.Error):
        decoded = base64.b64decode(text, validate=True)
    if not decoded:
        raise InvalidCredentialError(
            "InvalidTSIGSecret",
            f"{where} is not a base64 TSIG secret; put the key's secret there as `tsig-keygen` prints it "
            f'(the value of secret "..." in its key clause)',
        )
    return text.encode()


def eab_mac_key(value: bytes, where: str) -> str:
    """An ACME external account binding MAC key: base64url, as the CA hands it out (RFC 8555 7.3.4)."""
    text = _ascii(value, where, "InvalidEABKey", "the base64url MAC key the CA gave you")
    decoded = b""
    if _BASE64URL.fullmatch(text):
        with contextlib.suppress(binascii.Error):
            decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if not decoded:
        raise InvalidCredentialError(
            "InvalidEABKey",
            f"{where} is not a base64url MAC key; put the HMAC key your CA gave with the key ID there, "
            f"as given",
        )
    return text


def account_key(pem: bytes, where: str) -> PrivateKey:
    """An ACME account key: RSA of 2048 bits or more, or ECDSA (what ACME CAs accept)."""
    fix = "delete the Secret and certsmith creates a new key (a new ACME account), or put a PEM key there"
    try:
        key = load_private_key(pem)
    except PKIError as error:
        raise InvalidCredentialError("InvalidAccountKey", f"{where}: {error}; {fix}") from None
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= _MINIMUM_ACCOUNT_RSA_BITS:
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, _ACME_CURVES):
        return key
    raise InvalidCredentialError(
        "InvalidAccountKey",
        f"{where}: ACME accounts need an RSA key of at least {_MINIMUM_ACCOUNT_RSA_BITS} bits or an ECDSA "
        f"key (P-256, P-384 or P-521); {fix}",
    )


def keystore_password(value: bytes, where: str) -> bytes:
    """A PKCS#12 password: non-empty UTF-8 (PKCS#12 stores it as a BMPString)."""
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        value = b""
    if not value:
        raise InvalidCredentialError(
            "InvalidKeystorePassword",
            f"{where} must hold a non-empty UTF-8 password for keystores.pkcs12; put one there",
        )
    return value


def secret_where(field: str, reference: SecretKeyRef, namespace: str) -> str:
    """How a message names one key of a Secret a field refers to."""
    return f"{field}: key {reference.key} of Secret {namespace}/{reference.name}"


def _ascii(value: bytes, where: str, reason: str, wanted: str) -> str:
    try:
        return value.decode("ascii").strip()
    except UnicodeDecodeError:
        raise InvalidCredentialError(
            reason, f"{where} holds bytes that are not ASCII; put {wanted} there"
        ) from None
