"""cert-manager's usage names, mapped to X.509 key usage bits and extended key usage OIDs."""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

KEY_USAGE_BITS = {
    "digital signature": "digital_signature",
    "content commitment": "content_commitment",
    "key encipherment": "key_encipherment",
    "key agreement": "key_agreement",
    "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign",
    "crl sign": "crl_sign",
    "encipher only": "encipher_only",
    "decipher only": "decipher_only",
}
EXTENDED_KEY_USAGES = {
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec end system": ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec tunnel": ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec user": ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft sgc": ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape sgc": ObjectIdentifier("2.16.840.1.113730.4.1"),
}
_SYNONYMS = {"signing": "digital signature", "s/mime": "email protection"}


_CA_USAGES = frozenset({"cert sign", "crl sign"})


def effective_usages(requested: Iterable[str], *, is_ca: bool, rsa: bool) -> frozenset[str]:
    """The usages a certificate issued for this request carries, in canonical names.

    Unset means "digital signature" and, for RSA keys of end entities only, "key encipherment", and no
    extended key usage, which leaves the certificate good for any purpose (as cert-manager does). An
    extended key usage on a CA would restrict every certificate below it, and a CA key that signs
    certificates should encipher nothing (RFC 3279 2.3.1).
    Synonyms ("signing", "s/mime") become their canonical name; a CA also gets "cert sign" and
    "crl sign"; encipher/decipher-only imply "key agreement", as X.509 requires.
    """
    usages = {_SYNONYMS.get(usage, usage) for usage in requested}
    if not usages:
        usages = {"digital signature"} | ({"key encipherment"} if rsa and not is_ca else set())
    if is_ca:
        usages |= _CA_USAGES
    if usages & {"encipher only", "decipher only"}:
        usages.add("key agreement")
    return frozenset(usages)


def key_usage_extension(usages: frozenset[str]) -> x509.KeyUsage | None:
    bits = {KEY_USAGE_BITS[usage] for usage in usages if usage in KEY_USAGE_BITS}
    if not bits:
        return None
    return x509.KeyUsage(**{name: name in bits for name in KEY_USAGE_BITS.values()})


def extended_key_usage_extension(usages: frozenset[str]) -> x509.ExtendedKeyUsage | None:
    oids = [oid for usage, oid in EXTENDED_KEY_USAGES.items() if usage in usages]
    return x509.ExtendedKeyUsage(oids) if oids else None


def usages_of(certificate: x509.Certificate) -> frozenset[str]:
    """The canonical usage names a certificate carries."""
    names: set[str] = set()
    try:
        key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        pass
    else:
        names.update(usage for usage, bit in KEY_USAGE_BITS.items() if _bit(key_usage, bit))
    try:
        extended = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        pass
    else:
        names.update(usage for usage, oid in EXTENDED_KEY_USAGES.items() if oid in extended)
    return frozenset(names)


def _bit(key_usage: x509.KeyUsage, name: str) -> bool:
    if name in ("encipher_only", "decipher_only") and not key_usage.key_agreement:
        return False  # cryptography raises for these when keyAgreement is clear
    return bool(getattr(key_usage, name))
