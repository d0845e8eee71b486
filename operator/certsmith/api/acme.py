"""The `acme` issuer spec (cert-manager's shape) and which solver answers for a name."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from certsmith.api import SpecError
from certsmith.api.references import SecretKeyRef


@dataclass(frozen=True)
class ExternalAccountBinding:
    key_id: str
    key_secret: SecretKeyRef


@dataclass(frozen=True)
class SolverSelector:
    dns_names: tuple[str, ...] = ()
    dns_zones: tuple[str, ...] = ()
    match_labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HTTP01Solver:
    """The Ingress made per challenge in a cluster: its class (spec.ingressClassName, or the legacy
    annotation) and extra annotations."""

    ingress_class_name: str | None = None
    ingress_class: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()


class TSIGAlgorithm(StrEnum):
    HMACMD5 = "HMACMD5"
    HMACSHA1 = "HMACSHA1"
    HMACSHA256 = "HMACSHA256"
    HMACSHA512 = "HMACSHA512"


@dataclass(frozen=True)
class RFC2136Solver:
    nameserver: str
    tsig_key_name: str | None = None
    tsig_algorithm: TSIGAlgorithm = TSIGAlgorithm.HMACSHA256
    tsig_secret: SecretKeyRef | None = None


@dataclass(frozen=True)
class Solver:
    selector: SolverSelector
    http01: HTTP01Solver | None = None
    dns01: RFC2136Solver | None = None

    @property
    def challenge_type(self) -> str:
        return "http-01" if self.http01 is not None else "dns-01"


@dataclass(frozen=True)
class ACMEIssuerSpec:
    server: str
    private_key: SecretKeyRef
    email: str | None = None
    ca_bundle: bytes | None = None
    """PEM certificates to trust for the server's TLS certificate instead of the system roots."""
    skip_tls_verify: bool = False
    external_account_binding: ExternalAccountBinding | None = None
    preferred_chain: str | None = None
    solvers: tuple[Solver, ...] = field(default=())


def parse_acme_spec(acme: Mapping[str, Any]) -> ACMEIssuerSpec:
    server = acme.get("server") or ""
    if not server.startswith("https://"):
        raise SpecError("acme.server", "must be an https:// URL of an ACME directory")
    key_ref = acme.get("privateKeySecretRef") or {}
    if not key_ref.get("name"):
        raise SpecError("acme.privateKeySecretRef.name", "is required: the Secret for the account key")
    bundle = acme.get("caBundle")
    ca_bundle = None
    if bundle:
        try:
            ca_bundle = base64.b64decode(bundle, validate=True)
        except (binascii.Error, ValueError):
            raise SpecError("acme.caBundle", "must be base64-encoded PEM certificates") from None
    binding = acme.get("externalAccountBinding")
    eab = None
    if binding:
        eab_secret = binding.get("keySecretRef") or {}
        eab = ExternalAccountBinding(
            binding["keyID"], SecretKeyRef(eab_secret.get("name", ""), eab_secret.get("key", ""))
        )
    return ACMEIssuerSpec(
        server=server,
        private_key=SecretKeyRef(key_ref["name"], key_ref.get("key") or "tls.key"),
        email=acme.get("email") or None,
        ca_bundle=ca_bundle,
        skip_tls_verify=bool(acme.get("skipTLSVerify")),
        external_account_binding=eab,
        preferred_chain=acme.get("preferredChain") or None,
        solvers=tuple(_solver(index, item) for index, item in enumerate(acme.get("solvers") or ())),
    )


def _solver(index: int, item: Mapping[str, Any]) -> Solver:
    selector = item.get("selector") or {}
    parsed = SolverSelector(
        tuple(name.lower().rstrip(".") for name in selector.get("dnsNames") or ()),
        tuple(zone.lower().strip(".") for zone in selector.get("dnsZones") or ()),
        tuple(sorted((selector.get("matchLabels") or {}).items())),
    )
    if item.get("http01") is not None:
        ingress = (item["http01"] or {}).get("ingress") or {}
        return Solver(
            parsed,
            http01=HTTP01Solver(
                ingress.get("ingressClassName"),
                ingress.get("class"),
                tuple(sorted((ingress.get("annotations") or {}).items())),
            ),
        )
    rfc2136 = (item.get("dns01") or {}).get("rfc2136")
    if not rfc2136 or not rfc2136.get("nameserver"):
        raise SpecError(f"acme.solvers[{index}]", "needs http01, or dns01.rfc2136 with a nameserver")
    secret = rfc2136.get("tsigSecretSecretRef")
    return Solver(
        parsed,
        dns01=RFC2136Solver(
            rfc2136["nameserver"],
            rfc2136.get("tsigKeyName") or None,
            TSIGAlgorithm(rfc2136.get("tsigAlgorithm") or TSIGAlgorithm.HMACSHA256),
            SecretKeyRef(secret["name"], secret["key"]) if secret else None,
        ),
    )


def solver_for(solvers: tuple[Solver, ...], identifier: str, labels: Mapping[str, str]) -> Solver | None:
    """The solver for a DNS identifier: the most specific match, as in cert-manager — an exact
    dnsNames match beats the longest matching dnsZones, which beats a selector of labels only, which
    beats no selector; more matching labels win a tie. A wildcard ("*.example.com") can only be proven
    with DNS-01; its zone match is on "example.com"."""
    identifier = identifier.lower().rstrip(".")
    wildcard = identifier.startswith("*.")
    name = identifier.removeprefix("*.")
    best: tuple[tuple[int, int, int], Solver] | None = None
    for solver in solvers:
        if wildcard and solver.dns01 is None:
            continue
        selector = solver.selector
        if any(labels.get(key) != value for key, value in selector.match_labels):
            continue
        if selector.dns_names:
            if identifier not in selector.dns_names:
                continue
            rank = (2, 0, len(selector.match_labels))
        elif selector.dns_zones:
            zones = [zone for zone in selector.dns_zones if name == zone or name.endswith(f".{zone}")]
            if not zones:
                continue
            rank = (1, max(len(zone) for zone in zones), len(selector.match_labels))
        else:
            rank = (0, 0, len(selector.match_labels))
        if best is None or rank > best[0]:
            best = (rank, solver)
    return best[1] if best else None
