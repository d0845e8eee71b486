"""The Issuer and ClusterIssuer spec: which way of signing, with what."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from certsmith.api import SpecError
from certsmith.api.acme import ACMEIssuerSpec, parse_acme_spec
from certsmith.pki.signing import IssuerURLs


class IssuerType(StrEnum):
    SELF_SIGNED = "SelfSigned"
    CA = "CA"
    ACME = "ACME"


@dataclass(frozen=True)
class SelfSignedIssuerSpec:
    urls: IssuerURLs


@dataclass(frozen=True)
class CAIssuerSpec:
    secret_name: str
    urls: IssuerURLs


IssuerSpec = SelfSignedIssuerSpec | CAIssuerSpec | ACMEIssuerSpec


def issuer_type(spec: IssuerSpec) -> IssuerType:
    if isinstance(spec, SelfSignedIssuerSpec):
        return IssuerType.SELF_SIGNED
    if isinstance(spec, CAIssuerSpec):
        return IssuerType.CA
    return IssuerType.ACME


def parse_issuer_spec(spec: Mapping[str, Any]) -> IssuerSpec:
    kinds = [name for name in ("selfSigned", "ca", "acme") if spec.get(name) is not None]
    if len(kinds) != 1:
        raise SpecError("selfSigned", "exactly one of selfSigned, ca or acme must be set")
    if "selfSigned" in kinds:
        self_signed = spec["selfSigned"]
        return SelfSignedIssuerSpec(IssuerURLs(tuple(self_signed.get("crlDistributionPoints") or ())))
    if "ca" in kinds:
        ca = spec["ca"]
        if not ca.get("secretName"):
            raise SpecError("ca.secretName", "is required")
        return CAIssuerSpec(
            ca["secretName"],
            IssuerURLs(
                crl_distribution_points=tuple(ca.get("crlDistributionPoints") or ()),
                ocsp_servers=tuple(ca.get("ocspServers") or ()),
                issuing_certificate_urls=tuple(ca.get("issuingCertificateURLs") or ()),
            ),
        )
    return parse_acme_spec(spec["acme"])


def issuer_secret_names(spec: Mapping[str, Any]) -> set[str]:
    """The Secrets an issuer's spec names: a CA's key pair; an ACME account key, EAB and TSIG keys."""
    names = {(spec.get("ca") or {}).get("secretName")}
    acme = spec.get("acme") or {}
    names.add((acme.get("privateKeySecretRef") or {}).get("name"))
    names.add(((acme.get("externalAccountBinding") or {}).get("keySecretRef") or {}).get("name"))
    for solver in acme.get("solvers") or ():
        rfc2136 = ((solver or {}).get("dns01") or {}).get("rfc2136") or {}
        names.add((rfc2136.get("tsigSecretSecretRef") or {}).get("name"))
    return {name for name in names if name}
