"""The pure PKI core: keys, signing, inspection, encodings."""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from certsmith.pki import PKIError
from certsmith.pki.encodings import PKCS12Profile, pkcs12_keystore
from certsmith.pki.inspection import describe, is_self_signed, load_certificates
from certsmith.pki.keys import (
    KeyAlgorithm,
    KeyEncoding,
    KeySpec,
    encode_private_key,
    generate_private_key,
    load_private_key,
    spec_of,
)
from certsmith.pki.request import CertificateTemplate, Subject, build_csr
from certsmith.pki.signing import (
    CLOCK_SKEW_ALLOWANCE,
    IssuerURLs,
    SigningAuthority,
    self_sign,
    sign_with_authority,
)
from certsmith.pki.usages import effective_usages

NOW = datetime.datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=datetime.UTC)
ECDSA_256 = KeySpec(KeyAlgorithm.ECDSA, 256)


def _ca(now: datetime.datetime = NOW) -> SigningAuthority:
    key = generate_private_key(ECDSA_256)
    request = CertificateTemplate(
        common_name="test root",
        usages=effective_usages((), is_ca=True, rsa=False),
        is_ca=True,
        duration=datetime.timedelta(days=365),
    )
    issued = self_sign(request, key, now)
    return SigningAuthority(
        issued.certificate,
        key,
        (),
        issued.certificate,
        IssuerURLs(
            crl_distribution_points=("http://pki.example/crl",),
            ocsp_servers=("http://ocsp.example",),
            issuing_certificate_urls=("http://pki.example/ca.crt",),
        ),
    )


@pytest.mark.parametrize(
    ("spec", "encoding", "marker", "hash_name"),
    [
        (KeySpec(KeyAlgorithm.RSA, 2048), KeyEncoding.PKCS1, b"BEGIN RSA PRIVATE KEY", "sha256"),
        (KeySpec(KeyAlgorithm.RSA, 3072), KeyEncoding.PKCS8, b"BEGIN PRIVATE KEY", "sha256"),
        (ECDSA_256, KeyEncoding.PKCS1, b"BEGIN EC PRIVATE KEY", "sha256"),
        (KeySpec(KeyAlgorithm.ECDSA, 384), KeyEncoding.PKCS8, b"BEGIN PRIVATE KEY", "sha384"),
        (KeySpec(KeyAlgorithm.ECDSA, 521), KeyEncoding.PKCS1, b"BEGIN EC PRIVATE KEY", "sha512"),
        (KeySpec(KeyAlgorithm.ED25519, None), KeyEncoding.PKCS8, b"BEGIN PRIVATE KEY", None),
    ],
    ids=str,
)
def test_each_key_type_round_trips_and_signs_with_the_right_hash(
    spec: KeySpec, encoding: KeyEncoding, marker: bytes, hash_name: str | None
) -> None:
    key = generate_private_key(spec)
    pem = encode_private_key(key, encoding)
    assert marker in pem
    assert spec_of(load_private_key(pem)) == spec
    issued = self_sign(
        CertificateTemplate(common_name="k", usages=frozenset({"digital signature"})), key, NOW
    )
    algorithm = issued.certificate.signature_hash_algorithm
    assert (algorithm.name if algorithm else None) == hash_name
    assert not isinstance(algorithm, hashes.MD5 | hashes.SHA1)


def test_ed25519_cannot_be_pkcs1() -> None:
    with pytest.raises(PKIError, match="PKCS8"):
        encode_private_key(generate_private_key(KeySpec(KeyAlgorithm.ED25519, None)), KeyEncoding.PKCS1)


@pytest.mark.parametrize(
    "garbage", [b"", b"hello", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_garbage_key_gives_an_error_that_does_not_repeat_it(garbage: bytes) -> None:
    with pytest.raises(PKIError) as error:
        load_private_key(garbage)
    assert "AAAA" not in str(error.value)


def _inconsistent_rsa_key() -> bytes:
    """An RSA key whose private exponent does not match its primes."""
    numbers = cast(rsa.RSAPrivateKey, generate_private_key(KeySpec(KeyAlgorithm.RSA, 2048))).private_numbers()
    broken = rsa.RSAPrivateNumbers(
        numbers.p, numbers.q, numbers.d + 2, numbers.dmp1, numbers.dmq1, numbers.iqmp, numbers.public_numbers
    )
    return broken.private_key(unsafe_skip_rsa_key_validation=True).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_an_inconsistent_rsa_key_is_refused_on_every_load() -> None:
    broken = _inconsistent_rsa_key()
    for _ in range(2):
        with pytest.raises(PKIError):
            load_private_key(broken)


def test_an_rsa_key_is_validated_once_per_content(monkeypatch: pytest.MonkeyPatch) -> None:
    """Made by certsmith or validated once: the same bytes load again without the 35 ms check."""
    validated: list[bool] = []
    load = serialization.load_pem_private_key

    def recording(data: bytes, password: None, unsafe_skip_rsa_key_validation: bool) -> Any:
        validated.append(not unsafe_skip_rsa_key_validation)
        return load(data, password, unsafe_skip_rsa_key_validation=unsafe_skip_rsa_key_validation)

    monkeypatch.setattr(serialization, "load_pem_private_key", recording)
    made = encode_private_key(generate_private_key(KeySpec(KeyAlgorithm.RSA, 2048)), KeyEncoding.PKCS1)
    load_private_key(made)
    elsewhere = cast(rsa.RSAPrivateKey, load(made, None)).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    load_private_key(elsewhere)
    load_private_key(elsewhere)
    assert validated == [False, True, False]


def test_ca_signed_leaf_carries_everything_requested() -> None:
    authority = _ca()
    key = generate_private_key(KeySpec(KeyAlgorithm.RSA, 2048))
    request = CertificateTemplate(
        common_name="web",
        dns_names=("web.example.com", "*.web.example.com"),
        ip_addresses=(ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("fd00::1")),
        uris=("spiffe://cluster.local/ns/default/sa/web",),
        email_addresses=("ops@example.com",),
        subject=Subject(organizations=("Example",), countries=("DE",), serial_number="42"),
        usages=effective_usages(("server auth", "client auth"), is_ca=False, rsa=True),
        duration=datetime.timedelta(hours=1),
    )
    issued = sign_with_authority(request, key.public_key(), authority, NOW)
    info = describe(issued.certificate)
    assert info.common_name == "web"
    assert info.dns_names == {"web.example.com", "*.web.example.com"}
    assert info.ip_addresses == set(request.ip_addresses)
    assert info.uris == {"spiffe://cluster.local/ns/default/sa/web"}
    assert info.email_addresses == {"ops@example.com"}
    assert info.subject == request.subject
    assert info.usages == request.usages == {"server auth", "client auth"}
    assert not info.is_ca
    assert info.not_after == NOW.replace(microsecond=0) + datetime.timedelta(hours=1)
    assert info.not_before == NOW.replace(microsecond=0) - CLOCK_SKEW_ALLOWANCE
    assert 2**127 <= info.serial_number < 2**128
    issued.certificate.verify_directly_issued_by(authority.certificate)
    assert issued.root == authority.certificate
    assert issued.intermediates == ()
    extensions = issued.certificate.extensions
    aia = extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert {d.access_location.value for d in aia} == {"http://ocsp.example", "http://pki.example/ca.crt"}
    assert extensions.get_extension_for_class(x509.CRLDistributionPoints)
    ski = authority.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest


def test_intermediate_chain_and_ca_lifetime_cap() -> None:
    root = _ca()
    intermediate_key = generate_private_key(ECDSA_256)
    intermediate_request = CertificateTemplate(
        common_name="intermediate",
        usages=effective_usages((), is_ca=True, rsa=False),
        is_ca=True,
        duration=datetime.timedelta(days=3650),
    )
    intermediate = sign_with_authority(intermediate_request, intermediate_key.public_key(), root, NOW)
    assert intermediate.certificate.not_valid_after_utc == root.certificate.not_valid_after_utc
    authority = SigningAuthority(
        intermediate.certificate, intermediate_key, intermediate.intermediates, root.root
    )
    leaf_key = generate_private_key(ECDSA_256)
    leaf = sign_with_authority(
        CertificateTemplate(dns_names=("a.example",)), leaf_key.public_key(), authority, NOW
    )
    assert leaf.intermediates == (intermediate.certificate,)
    assert leaf.root == root.certificate
    assert is_self_signed(leaf.root)
    assert not is_self_signed(intermediate.certificate)


@pytest.mark.parametrize(
    ("template", "issuer"),
    [
        (CertificateTemplate(dns_names=("a.example",)), "CN=a.example"),
        (CertificateTemplate(uris=("spiffe://example/app",)), "CN=spiffe://example/app"),
        (CertificateTemplate(dns_names=(f"{'a' * 60}.example",)), "CN=certsmith self-signed"),
    ],
)
def test_self_signed_with_only_alternative_names_has_a_non_empty_issuer(
    template: CertificateTemplate, issuer: str
) -> None:
    """RFC 5280 4.1.2.4: the issuer field MUST be non-empty; a self-signed certificate's is its subject."""
    certificate = self_sign(template, generate_private_key(ECDSA_256), NOW).certificate
    assert certificate.issuer.rfc4514_string() == issuer
    assert certificate.issuer == certificate.subject
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not names.critical, "critical only with an empty subject"
    assert is_self_signed(certificate)


def test_csr_is_signed_and_carries_the_names() -> None:
    key = generate_private_key(ECDSA_256)
    csr = build_csr(CertificateTemplate(dns_names=("a.example", "b.example")), key)
    assert csr.is_signature_valid
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["a.example", "b.example"]
    assert csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_load_certificates_rejects_garbage_without_echoing_it() -> None:
    with pytest.raises(PKIError, match="no PEM certificate"):
        load_certificates(b"secret-looking bytes")
    with pytest.raises(PKIError):
        load_certificates(b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")


@pytest.mark.parametrize("profile", list(PKCS12Profile))
def test_pkcs12_keystore_opens_with_its_password(profile: PKCS12Profile) -> None:
    authority = _ca()
    key = generate_private_key(ECDSA_256)
    leaf = sign_with_authority(
        CertificateTemplate(dns_names=("a.example",)), key.public_key(), authority, NOW
    )
    store = pkcs12_keystore(key, (leaf.certificate,), b"pw", profile, "a")
    loaded = pkcs12.load_pkcs12(store, b"pw")
    assert loaded.cert is not None
    assert loaded.cert.certificate == leaf.certificate
    with pytest.raises(ValueError, match="Invalid password"):
        pkcs12.load_pkcs12(store, b"wrong")
