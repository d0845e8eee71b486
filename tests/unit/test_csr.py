"""Requests made elsewhere: what a CSR asks for and why certsmith refuses to sign some."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from certsmith.pki.csr import RequestRefusedError, load_csr, request_template

DAY = datetime.timedelta(days=1)


def _csr(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
    *attributes: x509.NameAttribute[str],
    names: list[x509.GeneralName] | None = None,
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(list(attributes)))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


def test_subject_names_and_spec_make_the_template() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _csr(
        key,
        x509.NameAttribute(NameOID.COMMON_NAME, "app"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
        names=[x509.DNSName("app.example"), x509.IPAddress(ipaddress.ip_address("10.0.0.1"))],
    )
    template = request_template(load_csr(pem), is_ca=False, usages=frozenset({"server auth"}), duration=DAY)
    assert template.common_name == "app"
    assert template.subject.organizations == ("Example",)
    assert template.dns_names == ("app.example",)
    assert template.ip_addresses == (ipaddress.ip_address("10.0.0.1"),)
    assert template.usages == frozenset({"server auth"})
    assert template.duration == DAY


def test_rsa_requests_get_key_encipherment_by_default() -> None:
    pem = _csr(rsa.generate_private_key(65537, 2048), x509.NameAttribute(NameOID.COMMON_NAME, "app"))
    template = request_template(load_csr(pem), is_ca=False, usages=frozenset(), duration=DAY)
    assert template.usages == frozenset({"digital signature", "key encipherment"})


def test_ed25519_is_signed() -> None:
    pem = _csr(ed25519.Ed25519PrivateKey.generate(), names=[x509.DNSName("ed.example")])
    assert request_template(load_csr(pem), is_ca=True, usages=frozenset(), duration=DAY).is_ca


@pytest.mark.parametrize(
    ("pem", "reason"),
    [
        (b"not a request", "InvalidCSR"),
        (
            _csr(rsa.generate_private_key(65537, 1024), x509.NameAttribute(NameOID.COMMON_NAME, "weak")),  # noqa: S505 -- a weak key to refuse
            "WeakKey",
        ),
        (
            _csr(ec.generate_private_key(ec.SECP256K1()), x509.NameAttribute(NameOID.COMMON_NAME, "k1")),
            "WeakKey",
        ),
    ],
)
def test_refusals_name_their_reason(pem: bytes, reason: str) -> None:
    with pytest.raises(RequestRefusedError) as refused:
        load_csr(pem)
    assert refused.value.reason == reason


def test_a_tampered_request_fails_its_signature() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.load_pem_x509_csr(_csr(key, x509.NameAttribute(NameOID.COMMON_NAME, "app")))
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(RequestRefusedError, match="does not verify") as refused:
        load_csr(tampered)
    assert refused.value.reason == "InvalidSignature"


def test_a_request_naming_nobody_or_with_unknown_subject_fields_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(RequestRefusedError, match="names nobody"):
        request_template(load_csr(_csr(key)), is_ca=False, usages=frozenset(), duration=DAY)
    email = x509.NameAttribute(NameOID.EMAIL_ADDRESS, "me@example.com")
    with pytest.raises(RequestRefusedError, match="emailAddress") as refused:
        request_template(load_csr(_csr(key, email)), is_ca=False, usages=frozenset(), duration=DAY)
    assert refused.value.reason == "UnsupportedSubject"
