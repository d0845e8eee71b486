"""The Certificate resource's spec, parsed into the types the policy and the issuers work with."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from certsmith.api import SpecError
from certsmith.api.durations import spec_duration
from certsmith.api.references import IssuerRef, SecretKeyRef, parse_issuer_ref
from certsmith.pki.encodings import PKCS12Profile
from certsmith.pki.keys import KeyAlgorithm, KeyEncoding, KeySpec
from certsmith.pki.request import CertificateTemplate, Subject
from certsmith.pki.usages import effective_usages

DEFAULT_DURATION = datetime.timedelta(hours=2160)


class RotationPolicy(StrEnum):
    ALWAYS = "Always"
    NEVER = "Never"


@dataclass(frozen=True)
class PrivateKeyPolicy:
    spec: KeySpec
    encoding: KeyEncoding
    rotation: RotationPolicy


@dataclass(frozen=True)
class PKCS12Keystore:
    password: SecretKeyRef
    profile: PKCS12Profile


@dataclass(frozen=True)
class CertificateSpec:
    secret_name: str
    request: CertificateTemplate
    issuer_ref: IssuerRef
    private_key: PrivateKeyPolicy
    renew_before: datetime.timedelta | None = None
    renew_before_percentage: int | None = None
    secret_labels: Mapping[str, str] = field(default_factory=dict)
    secret_annotations: Mapping[str, str] = field(default_factory=dict)
    der_key: bool = False
    combined_pem: bool = False
    pkcs12: PKCS12Keystore | None = None


def parse_certificate_spec(spec: Mapping[str, Any]) -> CertificateSpec:
    """Parse `spec` of a Certificate body (after API-server defaulting); raises SpecError."""
    key = _private_key(spec.get("privateKey") or {})
    subject = spec.get("subject") or {}
    request = CertificateTemplate(
        common_name=spec.get("commonName"),
        dns_names=tuple(spec.get("dnsNames") or ()),
        ip_addresses=tuple(_ip(address) for address in spec.get("ipAddresses") or ()),
        uris=tuple(spec.get("uris") or ()),
        email_addresses=tuple(spec.get("emailAddresses") or ()),
        subject=Subject(
            organizations=tuple(subject.get("organizations") or ()),
            organizational_units=tuple(subject.get("organizationalUnits") or ()),
            countries=tuple(subject.get("countries") or ()),
            localities=tuple(subject.get("localities") or ()),
            provinces=tuple(subject.get("provinces") or ()),
            street_addresses=tuple(subject.get("streetAddresses") or ()),
            postal_codes=tuple(subject.get("postalCodes") or ()),
            serial_number=subject.get("serialNumber"),
        ),
        usages=effective_usages(
            spec.get("usages") or (), is_ca=bool(spec.get("isCA")), rsa=key.spec.algorithm is KeyAlgorithm.RSA
        ),
        is_ca=bool(spec.get("isCA")),
        duration=spec_duration(spec, "duration") or DEFAULT_DURATION,
    )
    if not (request.common_name or request.alternative_names()):
        raise SpecError("commonName", "set commonName, dnsNames, ipAddresses, uris or emailAddresses")
    formats = {item.get("type") for item in spec.get("additionalOutputFormats") or ()}
    template = spec.get("secretTemplate") or {}
    return CertificateSpec(
        secret_name=_required(spec, "secretName"),
        request=request,
        issuer_ref=parse_issuer_ref(spec.get("issuerRef") or {}),
        private_key=key,
        renew_before=spec_duration(spec, "renewBefore"),
        renew_before_percentage=spec.get("renewBeforePercentage"),
        secret_labels=dict(template.get("labels") or {}),
        secret_annotations=dict(template.get("annotations") or {}),
        der_key="DER" in formats,
        combined_pem="CombinedPEM" in formats,
        pkcs12=_pkcs12((spec.get("keystores") or {}).get("pkcs12")),
    )


def _private_key(private_key: Mapping[str, Any]) -> PrivateKeyPolicy:
    try:
        algorithm = KeyAlgorithm(private_key.get("algorithm", "RSA"))
        encoding = KeyEncoding(private_key.get("encoding", "PKCS1"))
        rotation = RotationPolicy(private_key.get("rotationPolicy", "Always"))
    except ValueError as error:
        raise SpecError("privateKey", str(error)) from None
    if algorithm is KeyAlgorithm.ED25519 and encoding is KeyEncoding.PKCS1:
        raise SpecError("privateKey.encoding", "Ed25519 keys can only be stored as PKCS8")
    return PrivateKeyPolicy(KeySpec.with_default_size(algorithm, private_key.get("size")), encoding, rotation)


def _pkcs12(keystore: Mapping[str, Any] | None) -> PKCS12Keystore | None:
    if not keystore or not keystore.get("create"):
        return None
    reference = keystore.get("passwordSecretRef") or {}
    return PKCS12Keystore(
        SecretKeyRef(
            _required(reference, "name", "keystores.pkcs12.passwordSecretRef."),
            _required(reference, "key", "keystores.pkcs12.passwordSecretRef."),
        ),
        PKCS12Profile(keystore.get("profile", PKCS12Profile.MODERN_2023.value)),
    )


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise SpecError("ipAddresses", f"{text!r} is not an IPv4 or IPv6 address") from None


def _required(mapping: Mapping[str, Any], name: str, prefix: str = "") -> str:
    value = mapping.get(name)
    if not value:
        raise SpecError(f"{prefix}{name}", "is required")
    return str(value)
