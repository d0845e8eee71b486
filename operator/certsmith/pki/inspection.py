"""Reading certificates back: PEM bundles, chains, and what a certificate says."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from certsmith.pki import PKIError
from certsmith.pki.keys import KeySpec, PublicKey, certificate_public_key, spec_of
from certsmith.pki.request import IPAddress, Subject
from certsmith.pki.usages import usages_of

_PEM_CERTIFICATE_MARKER = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class CertificateInfo:
    """The facts about a certificate that decisions are made on."""

    serial_number: int
    common_name: str | None
    subject: Subject
    dns_names: frozenset[str]
    ip_addresses: frozenset[IPAddress]
    uris: frozenset[str]
    email_addresses: frozenset[str]
    usages: frozenset[str]
    is_ca: bool
    not_before: datetime.datetime
    not_after: datetime.datetime
    key_spec: KeySpec
    public_key: PublicKey


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in order; at least one. The error never repeats the input."""
    if _PEM_CERTIFICATE_MARKER not in pem:
        raise PKIError("no PEM certificate found")
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise PKIError("a PEM certificate block could not be parsed") from None
    return certificates


def describe(certificate: x509.Certificate) -> CertificateInfo:
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        alternative = x509.SubjectAlternativeName([])
    try:
        is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    except ValueError:
        raise PKIError("the certificate has malformed extensions") from None
    name = certificate.subject
    public_key = certificate_public_key(certificate)
    return CertificateInfo(
        serial_number=certificate.serial_number,
        common_name=next(iter(_values(name, NameOID.COMMON_NAME)), None),
        subject=Subject(
            organizations=_values(name, NameOID.ORGANIZATION_NAME),
            organizational_units=_values(name, NameOID.ORGANIZATIONAL_UNIT_NAME),
            countries=_values(name, NameOID.COUNTRY_NAME),
            localities=_values(name, NameOID.LOCALITY_NAME),
            provinces=_values(name, NameOID.STATE_OR_PROVINCE_NAME),
            street_addresses=_values(name, NameOID.STREET_ADDRESS),
            postal_codes=_values(name, NameOID.POSTAL_CODE),
            serial_number=next(iter(_values(name, NameOID.SERIAL_NUMBER)), None),
        ),
        dns_names=frozenset(alternative.get_values_for_type(x509.DNSName)),
        ip_addresses=frozenset(
            address
            for address in alternative.get_values_for_type(x509.IPAddress)
            if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address)
        ),
        uris=frozenset(alternative.get_values_for_type(x509.UniformResourceIdentifier)),
        email_addresses=frozenset(alternative.get_values_for_type(x509.RFC822Name)),
        usages=usages_of(certificate),
        is_ca=is_ca,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        key_spec=spec_of(public_key),
        public_key=public_key,
    )


def is_self_signed(certificate: x509.Certificate) -> bool:
    return signed_by(certificate, certificate)


def signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Whether `parent` issued `child`: its name, and a signature that verifies with its key."""
    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _values(name: x509.Name, oid: x509.ObjectIdentifier) -> tuple[str, ...]:
    return tuple(str(attribute.value) for attribute in name.get_attributes_for_oid(oid))
