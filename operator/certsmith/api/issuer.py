"""The Issuer and ClusterIssuer spec: which way of signing, with what."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from certsmith.api import SpecError
from certsmith.api.acme import ACMEIssuerSpec, parse_acme_spec
from certsmith.api.references import IssuerKind, IssuerRef
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
        dns01 = (solver or {}).get("dns01") or {}
        rfc2136 = dns01.get("rfc2136") or {}
        route53 = dns01.get("route53") or {}
        names.add((rfc2136.get("tsigSecretSecretRef") or {}).get("name"))
        names.add((route53.get("accessKeyIDSecretRef") or {}).get("name"))
        names.add((route53.get("secretAccessKeySecretRef") or {}).get("name"))
    return {name for name in names if name}


@dataclass(frozen=True)
class IssuanceRefusal:
    """Why a ClusterIssuer's spec.issuancePolicy refuses a request: a reason for conditions and
    Events, and a message naming the field and how to opt in."""

    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def issuance_refusal(
    reference: IssuerRef, issuer_spec: Mapping[str, Any], namespace: str, is_ca: bool
) -> IssuanceRefusal | None:
    """Whether the issuer `reference` names (its spec: `issuer_spec`) refuses to sign for a Certificate
    or CertificateRequest in `namespace`.

    Only a ClusterIssuer has a policy: an Issuer belongs to its namespace and signs what its namespace
    asks. A ClusterIssuer serves the namespaces its `issuancePolicy.namespaces` name (all when unset),
    and signs a CA certificate only for a namespace its `issuancePolicy.caNamespaces` name (none when
    unset), since a CA certificate lets its holder sign for any name under the ClusterIssuer's trust.
    A selfSigned ClusterIssuer signs each certificate with the requester's own key, which makes
    nothing trusted, so it signs CA certificates for everyone. crds/issuance-policy.yaml has the API
    server check the same when a request is created."""
    if reference.kind is not IssuerKind.CLUSTER_ISSUER:
        return None
    policy = issuer_spec.get("issuancePolicy") or {}
    served = policy.get("namespaces")
    where = f"spec.issuancePolicy of ClusterIssuer {reference.name}"
    if served is not None and not _matches(namespace, served):
        return IssuanceRefusal(
            "NamespaceNotAllowed",
            f"ClusterIssuer {reference.name} does not serve namespace {namespace}: {where} has namespaces "
            f"{list(served)}; to opt in, add {namespace!r} (or a prefix such as 'team-*') there",
        )
    ca_namespaces = policy.get("caNamespaces") or ()
    if is_ca and "selfSigned" not in issuer_spec and not _matches(namespace, ca_namespaces):
        return IssuanceRefusal(
            "CANotAllowed",
            f"ClusterIssuer {reference.name} signs no CA certificate (isCA) for namespace {namespace}: "
            f"{where} must name it in caNamespaces; to opt in, add {namespace!r} (or a pattern such as "
            f"'team-*') to caNamespaces, or sign this CA with an Issuer in namespace {namespace}",
        )
    return None


def _matches(namespace: str, patterns: Iterable[str]) -> bool:
    """A pattern is a name or a prefix ending in "*" (as the admission policy reads them too)."""
    return any(
        namespace == pattern or (pattern.endswith("*") and namespace.startswith(pattern[:-1]))
        for pattern in patterns
    )
