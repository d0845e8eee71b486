"""PKCS#10 requests made elsewhere (a CertificateRequest): what they ask for, and whether certsmith
may sign it. Each refusal is a `RequestRefusedError` with a reason word and a message naming the fix."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from certsmith.pki import PKIError
from certsmith.pki.keys import PublicKey
from certsmith.pki.request import CertificateTemplate, Subject
from certsmith.pki.signing import MINIMUM_RSA_BITS
from certsmith.pki.usages import effective_usages

ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_SUBJECT_FIELDS = {
    NameOID.COMMON_NAME: "commonName",
    NameOID.COUNTRY_NAME: "countries",
    NameOID.STATE_OR_PROVINCE_NAME: "provinces",
    NameOID.LOCALITY_NAME: "localities",
    NameOID.STREET_ADDRESS: "streetAddresses",
    NameOID.POSTAL_CODE: "postalCodes",
    NameOID.ORGANIZATION_NAME: "organizations",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "organizationalUnits",
    NameOID.SERIAL_NUMBER: "serialNumber",
}


class RequestRefusedError(PKIError):
    """The request will not be signed: `reason` is a CamelCase word for the status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def load_csr(pem: bytes) -> x509.CertificateSigningRequest:
    """The request in `pem`, its signature checked (proof that its maker holds the private key)."""
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError:
        raise RequestRefusedError(
            "InvalidCSR",
            'spec.request is not a PEM certificate signing request ("-----BEGIN CERTIFICATE REQUEST-----"); '
            "make one with `openssl req -new -key KEY -subj /CN=NAME -out req.csr` and set spec.request to "
            "`base64 -w0 req.csr`",
        ) from None
    if not csr.is_signature_valid:
        raise RequestRefusedError(
            "InvalidSignature",
            "the CSR's signature does not verify against its own public key: it was altered after signing, "
            "or signed with another key; make it again with the key it names",
        )
    key = csr.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise RequestRefusedError(
            "UnsupportedKey",
            f"the CSR's key is {type(key).__name__.removeprefix('_')}; certsmith signs RSA "
            f"(≥ {MINIMUM_RSA_BITS} bits), ECDSA (P-256, P-384, P-521) and Ed25519 keys",
        )
    _check_key_strength(key)
    return csr


def request_template(
    csr: x509.CertificateSigningRequest, *, is_ca: bool, usages: frozenset[str], duration: datetime.timedelta
) -> CertificateTemplate:
    """What the certificate says: the CSR's subject and subject alternative names, with the usages,
    CA flag and lifetime of the CertificateRequest's spec (the CSR's own extensions are not trusted)."""
    values: dict[str, list[str]] = {}
    for attribute in csr.subject:
        field = _SUBJECT_FIELDS.get(attribute.oid)
        if field is None:
            raise RequestRefusedError(
                "UnsupportedSubject",
                f"the CSR's subject has {attribute.oid._name or attribute.oid.dotted_string}, which "
                f"certsmith does not put in certificates; use only CN, C, ST, L, street, postalCode, O, "
                f"OU and serialNumber (and subjectAltName for names)",
            )
        values.setdefault(field, []).append(str(attribute.value))
    if len(values.get("commonName", [])) > 1 or len(values.get("serialNumber", [])) > 1:
        raise RequestRefusedError(
            "UnsupportedSubject", "the CSR's subject has more than one CN or serialNumber"
        )
    try:
        names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = x509.SubjectAlternativeName([])
    common_name = next(iter(values.get("commonName", [])), None)
    template = CertificateTemplate(
        common_name=common_name,
        dns_names=tuple(names.get_values_for_type(x509.DNSName)),
        ip_addresses=tuple(names.get_values_for_type(x509.IPAddress)),  # type: ignore[arg-type]
        uris=tuple(names.get_values_for_type(x509.UniformResourceIdentifier)),
        email_addresses=tuple(names.get_values_for_type(x509.RFC822Name)),
        subject=Subject(
            organizations=tuple(values.get("organizations", ())),
            organizational_units=tuple(values.get("organizationalUnits", ())),
            countries=tuple(values.get("countries", ())),
            localities=tuple(values.get("localities", ())),
            provinces=tuple(values.get("provinces", ())),
            street_addresses=tuple(values.get("streetAddresses", ())),
            postal_codes=tuple(values.get("postalCodes", ())),
            serial_number=next(iter(values.get("serialNumber", [])), None),
        ),
        usages=effective_usages(usages, is_ca=is_ca, rsa=isinstance(csr.public_key(), rsa.RSAPublicKey)),
        is_ca=is_ca,
        duration=duration,
    )
    if not (template.common_name or template.alternative_names()):
        raise RequestRefusedError(
            "NoIdentity",
            "the CSR names nobody: give it a subject CN (-subj /CN=NAME) or subject alternative names "
            "(-addext subjectAltName=DNS:NAME)",
        )
    return template


def _check_key_strength(key: PublicKey) -> None:
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MINIMUM_RSA_BITS:
        raise RequestRefusedError(
            "WeakKey",
            f"the CSR's key is RSA {key.key_size} bits; certsmith signs RSA keys of at least "
            f"{MINIMUM_RSA_BITS} bits (openssl genrsa -out KEY {MINIMUM_RSA_BITS}), or ECDSA and Ed25519",
        )
    if isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key.curve, ALLOWED_CURVES):
        raise RequestRefusedError(
            "WeakKey",
            f"the CSR's key is on curve {key.curve.name}; certsmith signs ECDSA keys on P-256, P-384 "
            f"and P-521",
        )
