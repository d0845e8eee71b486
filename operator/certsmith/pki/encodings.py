"""Extra encodings of an issued key pair: DER, combined PEM, PKCS#12 key and trust stores."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certsmith.pki.keys import PrivateKey

_MODERN_KDF_ROUNDS = 600_000


class PKCS12Profile(StrEnum):
    MODERN_2023 = "Modern2023"
    LEGACY_DES = "LegacyDES"


def certificates_pem(certificates: Sequence[x509.Certificate]) -> bytes:
    return b"".join(certificate.public_bytes(serialization.Encoding.PEM) for certificate in certificates)


def private_key_der(key: PrivateKey) -> bytes:
    """PKCS#8 DER, whatever the PEM encoding (DER has no PKCS1/SEC1 label to tell them apart)."""
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def combined_pem(key_pem: bytes, chain: Sequence[x509.Certificate]) -> bytes:
    """The private key followed by the certificate chain, as HAProxy and others want it."""
    return key_pem.rstrip(b"\n") + b"\n" + certificates_pem(chain)


def pkcs12_keystore(
    key: PrivateKey, chain: Sequence[x509.Certificate], password: bytes, profile: PKCS12Profile, name: str
) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        name.encode(), key, chain[0], list(chain[1:]) or None, _encryption(password, profile)
    )


def keystore_opens(keystore: bytes, password: bytes | None) -> bool:
    """Whether a PKCS#12 key store decrypts with `password`."""
    if password is None:
        return False
    try:
        pkcs12.load_key_and_certificates(keystore, password)
    except ValueError:
        return False
    return True


def pkcs12_truststore(roots: Sequence[x509.Certificate], password: bytes, profile: PKCS12Profile) -> bytes:
    """Certificates only, marked as trusted for Java's key store; an empty password makes a
    passwordless file (neither encrypted nor MACed, as trust-manager's default), which holds nothing
    secret."""
    encryption = _encryption(password, profile) if password else serialization.NoEncryption()
    return pkcs12.serialize_java_truststore(
        [pkcs12.PKCS12Certificate(root, f"ca-{index}".encode()) for index, root in enumerate(roots)],
        encryption,
    )


def _encryption(password: bytes, profile: PKCS12Profile) -> serialization.KeySerializationEncryption:
    builder = serialization.PrivateFormat.PKCS12.encryption_builder()
    if profile is PKCS12Profile.MODERN_2023:
        builder = (
            builder.kdf_rounds(_MODERN_KDF_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
        )
    else:  # LegacyDES, for clients that know nothing newer
        legacy_mac = hashes.SHA1()  # noqa: S303
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(legacy_mac)
    return builder.build(password)
