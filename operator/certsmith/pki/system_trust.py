"""The system's trust store, for Bundles' `useDefaultCAs`: Debian's ca-certificates, as installed in the
operator's image, and its package version (from dpkg's database, which the image keeps), so that a
Bundle's status says which release of the Mozilla roots its targets hold."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from certsmith.pki.trust import parse_certificates

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DPKG_STATUS = Path("/var/lib/dpkg/status")
_PACKAGE = "ca-certificates"


@dataclass(frozen=True)
class SystemTrust:
    certificates: tuple[x509.Certificate, ...]
    version: str


@functools.cache
def system_trust(bundle: Path = CA_BUNDLE, dpkg_status: Path = DPKG_STATUS) -> SystemTrust:
    """Read once per process (the image does not change under it). OSError or BadCertificatesError
    if the file is missing or broken; the version is "unknown" without a dpkg record of the package."""
    with warnings.catch_warnings():  # a Mozilla root or two have a serial number RFC 5280 disallows
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        certificates = parse_certificates(bundle.read_bytes(), str(bundle))
    return SystemTrust(tuple(certificates), _package_version(dpkg_status))


def _package_version(dpkg_status: Path) -> str:
    try:
        text = dpkg_status.read_text(errors="replace")
    except OSError:
        return "unknown"
    for stanza in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" ")
        )
        if fields.get("Package") == _PACKAGE and "installed" in fields.get("Status", ""):
            return fields.get("Version", "unknown")
    return "unknown"
