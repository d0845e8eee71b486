"""What a certificate should say: the pure description that signing and the policy both work from."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field, replace

from cryptography import x509
from cryptography.x509.oid import NameOID

from certsmith.pki.keys import PrivateKey, signature_hash
from certsmith.pki.usages import extended_key_usage_extension, key_usage_extension

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SELF_SIGNED_NAME = "certsmith self-signed"
"""The common name of a self-signed certificate whose spec names no subject and whose first alternative
name does not fit in a common name."""
_MAX_COMMON_NAME = 64
"""RFC 5280's upper bound on a common name (ub-common-name)."""


@dataclass(frozen=True)
class Subject:
    """Distinguished-name attributes besides the common name."""

    organizations: tuple[str, ...] = ()
    organizational_units: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    localities: tuple[str, ...] = ()
    provinces: tuple[str, ...] = ()
    street_addresses: tuple[str, ...] = ()
    postal_codes: tuple[str, ...] = ()
    serial_number: str | None = None


@dataclass(frozen=True)
class CertificateTemplate:
    """Identity and constraints of a certificate to issue; `usages` are canonical (see `usages`)."""

    common_name: str | None = None
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[IPAddress, ...] = ()
    uris: tuple[str, ...] = ()
    email_addresses: tuple[str, ...] = ()
    subject: Subject = field(default_factory=Subject)
    usages: frozenset[str] = frozenset()
    is_ca: bool = False
    duration: datetime.timedelta = datetime.timedelta(days=90)

    def name(self) -> x509.Name:
        attributes = [
            *(_attributes(NameOID.COUNTRY_NAME, self.subject.countries)),
            *(_attributes(NameOID.STATE_OR_PROVINCE_NAME, self.subject.provinces)),
            *(_attributes(NameOID.LOCALITY_NAME, self.subject.localities)),
            *(_attributes(NameOID.STREET_ADDRESS, self.subject.street_addresses)),
            *(_attributes(NameOID.POSTAL_CODE, self.subject.postal_codes)),
            *(_attributes(NameOID.ORGANIZATION_NAME, self.subject.organizations)),
            *(_attributes(NameOID.ORGANIZATIONAL_UNIT_NAME, self.subject.organizational_units)),
            *(
                _attributes(
                    NameOID.SERIAL_NUMBER, (self.subject.serial_number,) if self.subject.serial_number else ()
                )
            ),
            *(_attributes(NameOID.COMMON_NAME, (self.common_name,) if self.common_name else ())),
        ]
        return x509.Name(attributes)

    def self_signed(self) -> CertificateTemplate:
        """The template a self-signed certificate is made from. Its issuer is its subject, and RFC 5280
        4.1.2.4 forbids an empty issuer: a template with only alternative names gets the first of them
        as common name (a fixed one when that is longer than a common name may be)."""
        if self.name().rdns:
            return self
        names = [*self.dns_names, *map(str, self.ip_addresses), *self.uris, *self.email_addresses]
        first = names[0] if names else ""
        return replace(self, common_name=first if 0 < len(first) <= _MAX_COMMON_NAME else SELF_SIGNED_NAME)

    def alternative_names(self) -> list[x509.GeneralName]:
        return [
            *(x509.DNSName(name) for name in self.dns_names),
            *(x509.IPAddress(address) for address in self.ip_addresses),
            *(x509.UniformResourceIdentifier(uri) for uri in self.uris),
            *(x509.RFC822Name(email) for email in self.email_addresses),
        ]

    def extensions(self) -> list[tuple[x509.ExtensionType, bool]]:
        """(extension, critical) pairs describing the request itself, as in a CSR or a certificate."""
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=self.is_ca, path_length=None), True)
        ]
        key_usage = key_usage_extension(self.usages)
        if key_usage is not None:
            extensions.append((key_usage, True))
        extended = extended_key_usage_extension(self.usages)
        if extended is not None:
            extensions.append((extended, False))
        alternative_names = self.alternative_names()
        if alternative_names:
            # RFC 5280 4.2.1.6: critical when the subject is empty
            extensions.append((x509.SubjectAlternativeName(alternative_names), not self.name().rdns))
        return extensions


def build_csr(request: CertificateTemplate, key: PrivateKey) -> x509.CertificateSigningRequest:
    """A PKCS#10 request for `request`, signed by `key` (for issuers that take CSRs, such as ACME)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(request.name())
    for extension, critical in request.extensions():
        builder = builder.add_extension(extension, critical)
    return builder.sign(key, signature_hash(key))


def _attributes(oid: x509.ObjectIdentifier, values: tuple[str, ...]) -> list[x509.NameAttribute[str]]:
    return [x509.NameAttribute(oid, value) for value in values]
