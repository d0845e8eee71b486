"""Private keys: generation from a spec, PEM encodings, loading, and comparison."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from certsmith.pki import PKIError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

RSA_SIZES = (2048, 3072, 4096, 8192)
_CURVES: dict[int, type[ec.EllipticCurve]] = {256: ec.SECP256R1, 384: ec.SECP384R1, 521: ec.SECP521R1}
_DEFAULT_SIZES = {"RSA": 2048, "ECDSA": 256}
_RSA_PUBLIC_EXPONENT = 65537


class KeyAlgorithm(StrEnum):
    RSA = "RSA"
    ECDSA = "ECDSA"
    ED25519 = "Ed25519"


class KeyEncoding(StrEnum):
    PKCS1 = "PKCS1"
    PKCS8 = "PKCS8"


@dataclass(frozen=True)
class KeySpec:
    """Algorithm and size in bits (curve size for ECDSA, None for Ed25519)."""

    algorithm: KeyAlgorithm
    size: int | None

    @classmethod
    def with_default_size(cls, algorithm: KeyAlgorithm, size: int | None) -> KeySpec:
        """The spec a Certificate means when it leaves `size` unset: RSA 2048, ECDSA P-256."""
        if algorithm is KeyAlgorithm.ED25519:
            return cls(algorithm, None)
        return cls(algorithm, size or _DEFAULT_SIZES[algorithm.value])

    def __str__(self) -> str:
        return self.algorithm.value if self.size is None else f"{self.algorithm.value} {self.size}"


def generate_private_key(spec: KeySpec) -> PrivateKey:
    if spec.algorithm is KeyAlgorithm.RSA:
        if spec.size not in RSA_SIZES:
            raise PKIError(f"unsupported RSA key size {spec.size}; use one of {RSA_SIZES}")
        return rsa.generate_private_key(_RSA_PUBLIC_EXPONENT, spec.size)
    if spec.algorithm is KeyAlgorithm.ECDSA:
        curve = _CURVES.get(spec.size or 0)
        if curve is None:
            raise PKIError(f"unsupported ECDSA key size {spec.size}; use one of {tuple(_CURVES)}")
        return ec.generate_private_key(curve())
    return ed25519.Ed25519PrivateKey.generate()


def slow_to_generate(spec: KeySpec) -> bool:
    """Whether making a key of `spec` takes long enough to be worth a thread of its own: RSA's prime
    search takes tens of milliseconds of CPU at 2048 bits and seconds at 8192."""
    return spec.algorithm is KeyAlgorithm.RSA


def spec_of(key: PrivateKey | PublicKey) -> KeySpec:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return KeySpec(KeyAlgorithm.RSA, key.key_size)
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return KeySpec(KeyAlgorithm.ECDSA, key.curve.key_size)
    return KeySpec(KeyAlgorithm.ED25519, None)


class _ValidRSAKeys:
    """The SHA-256 digests of the PEM RSA keys known to be valid (made by certsmith, or loaded and
    validated once), the most recent `bound` of them. Validating an RSA key as it is loaded checks its
    primes: 35 ms of CPU at 2048 bits, about as much as making one, on every reconcile of a Certificate
    whose Secret holds one. Validity is a property of the exact bytes, so a digest seen before needs no
    second check; bytes never seen (another writer's, after a restart) are validated as ever."""

    def __init__(self, bound: int) -> None:
        self._bound = bound
        self._digests: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def known(self, digest: bytes) -> bool:
        with self._lock:
            if digest not in self._digests:
                return False
            self._digests.move_to_end(digest)
            return True

    def add(self, digest: bytes) -> None:
        with self._lock:
            self._digests[digest] = None
            self._digests.move_to_end(digest)
            if len(self._digests) > self._bound:
                self._digests.popitem(last=False)


_VALID_RSA_KEYS = _ValidRSAKeys(20_000)
"""About 2.7 MiB when full."""


def encode_private_key(key: PrivateKey, encoding: KeyEncoding) -> bytes:
    """PEM: PKCS1 means "RSA PRIVATE KEY" for RSA and SEC1 "EC PRIVATE KEY" for ECDSA."""
    if encoding is KeyEncoding.PKCS1:
        if isinstance(key, ed25519.Ed25519PrivateKey):
            raise PKIError("Ed25519 keys can only be encoded as PKCS8")
        private_format = serialization.PrivateFormat.TraditionalOpenSSL
    else:
        private_format = serialization.PrivateFormat.PKCS8
    pem = key.private_bytes(serialization.Encoding.PEM, private_format, serialization.NoEncryption())
    if isinstance(key, rsa.RSAPrivateKey):
        _VALID_RSA_KEYS.add(hashlib.sha256(pem).digest())
    return pem


def load_private_key(pem: bytes) -> PrivateKey:
    """Parse a PEM private key; the error never repeats the input. An RSA key is validated unless
    these exact bytes were known valid (`_ValidRSAKeys`)."""
    digest = hashlib.sha256(pem).digest()
    known = _VALID_RSA_KEYS.known(digest)
    try:
        key = serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=known)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PKIError("not a readable unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise PKIError(f"unsupported private key type {type(key).__name__}; use RSA, ECDSA or Ed25519")
    if isinstance(key, rsa.RSAPrivateKey) and not known:
        _VALID_RSA_KEYS.add(digest)
    return key


def certificate_public_key(certificate: x509.Certificate) -> PublicKey:
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise PKIError(
            f"unsupported public key type {type(key).__name__} in certificate; use RSA, ECDSA or Ed25519"
        )
    return key


def public_key_bytes(key: PrivateKey | PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, PrivateKey) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def same_public_key(a: PrivateKey | PublicKey, b: PrivateKey | PublicKey) -> bool:
    return public_key_bytes(a) == public_key_bytes(b)


SignatureHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512


def signature_hash(signer: PrivateKey) -> SignatureHash | None:
    """SHA-256 for RSA and P-256, SHA-384 for P-384, SHA-512 for P-521, none for Ed25519."""
    if isinstance(signer, ec.EllipticCurvePrivateKey):
        curve_hashes: dict[int, SignatureHash] = {384: hashes.SHA384(), 521: hashes.SHA512()}
        return curve_hashes.get(signer.curve.key_size, hashes.SHA256())
    if isinstance(signer, rsa.RSAPrivateKey):
        return hashes.SHA256()
    return None
