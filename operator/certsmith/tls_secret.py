"""The Secret contract: which keys, labels and annotations a certificate's Secret carries. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from certsmith.api.certificate import CertificateSpec
from certsmith.pki.encodings import (
    certificates_pem,
    combined_pem,
    pkcs12_keystore,
    pkcs12_truststore,
    private_key_der,
)
from certsmith.pki.keys import PrivateKey
from certsmith.pki.signing import IssuedCertificate

SECRET_TYPE = "kubernetes.io/tls"
PREFIX = "certsmith.dev/"
MANAGED_LABEL = f"{PREFIX}managed"
CERTIFICATE_NAME = f"{PREFIX}certificate-name"
ISSUER_NAME = f"{PREFIX}issuer-name"
ISSUER_KIND = f"{PREFIX}issuer-kind"
COMMON_NAME = f"{PREFIX}common-name"
ALT_NAMES = f"{PREFIX}alt-names"
IP_SANS = f"{PREFIX}ip-sans"
URI_SANS = f"{PREFIX}uri-sans"
REVISION = f"{PREFIX}revision"
REQUESTED_DURATION = f"{PREFIX}requested-duration"
RENEW_REQUEST = f"{PREFIX}renew-requested-at"
"""On a Certificate: a manual renewal request (any new value). On its Secret: the last one honoured."""
KEYSTORE_PASSWORD_VERSION = f"{PREFIX}keystore-password-version"
"""The resourceVersion of the password Secret the PKCS#12 stores were written with."""

TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"
CA_CERT = "ca.crt"
DER_KEY = "key.der"
COMBINED_PEM = "tls-combined.pem"
KEYSTORE = "keystore.p12"
TRUSTSTORE = "truststore.p12"


@dataclass(frozen=True)
class SecretContents:
    """A Secret's labels, annotations and decoded data; the part of a Secret certsmith reads and writes."""

    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, bytes] = field(default_factory=dict)
    type: str = SECRET_TYPE


def desired_metadata(
    spec: CertificateSpec,
    certificate_name: str,
    revision: int,
    renew_request: str | None,
    keystore_password_version: str | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """(labels, annotations) the Secret must carry; other labels and annotations are left alone."""
    request = spec.request
    labels = {**spec.secret_labels, MANAGED_LABEL: "true"}
    annotations = {
        **spec.secret_annotations,
        CERTIFICATE_NAME: certificate_name,
        ISSUER_NAME: spec.issuer_ref.name,
        ISSUER_KIND: spec.issuer_ref.kind.value,
        COMMON_NAME: request.common_name or "",
        ALT_NAMES: ",".join(request.dns_names),
        IP_SANS: ",".join(str(address) for address in request.ip_addresses),
        URI_SANS: ",".join(request.uris),
        REVISION: str(revision),
        REQUESTED_DURATION: str(int(request.duration.total_seconds())),
    }
    if renew_request:
        annotations[RENEW_REQUEST] = renew_request
    if spec.pkcs12 and keystore_password_version:
        annotations[KEYSTORE_PASSWORD_VERSION] = keystore_password_version
    return labels, annotations


def derived_data(
    spec: CertificateSpec, key: PrivateKey, key_pem: bytes, issued: IssuedCertificate
) -> dict[str, bytes]:
    """The deterministic data keys: PEM files and the optional DER and combined formats.

    PKCS#12 stores are salted, so they are not derived here: see `keystores`.
    """
    chain = (issued.certificate, *issued.intermediates)
    data = {TLS_CERT: certificates_pem(chain), TLS_KEY: key_pem}
    if issued.root is not None:
        data[CA_CERT] = certificates_pem([issued.root])
    if spec.der_key:
        data[DER_KEY] = private_key_der(key)
    if spec.combined_pem:
        data[COMBINED_PEM] = combined_pem(key_pem, chain)
    return data


def keystores(
    spec: CertificateSpec, key: PrivateKey, issued: IssuedCertificate, password: bytes
) -> dict[str, bytes]:
    if spec.pkcs12 is None:
        return {}
    chain = (issued.certificate, *issued.intermediates)
    stores = {KEYSTORE: pkcs12_keystore(key, chain, password, spec.pkcs12.profile, spec.secret_name)}
    if issued.root is not None:
        stores[TRUSTSTORE] = pkcs12_truststore([issued.root], password, spec.pkcs12.profile)
    return stores


OPTIONAL_KEYS = frozenset({CA_CERT, DER_KEY, COMBINED_PEM, KEYSTORE, TRUSTSTORE})
"""Data keys certsmith writes only when it knows them (ca.crt) or the spec asks for them."""


def merged_contents(
    current: SecretContents | None,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    data: Mapping[str, bytes],
) -> SecretContents:
    """The whole Secret to write: certsmith's labels, annotations and data over what others put there.
    Data keys of others are kept (an app's own config beside the certificate survives re-issuance);
    optional formats that the spec no longer asks for are dropped."""
    current = current or SecretContents()
    kept = {name: value for name, value in current.data.items() if name not in OPTIONAL_KEYS}
    return SecretContents(
        labels={**current.labels, **labels},
        annotations={**current.annotations, **annotations},
        data={**kept, **data},
    )
