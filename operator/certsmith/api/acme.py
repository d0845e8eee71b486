"""The `acme` issuer spec (cert-manager's shape) and which solver answers for a name."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
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
class Route53Solver:
    """cert-manager's `dns01.route53`. Without an access key, the credentials are the operator's own
    (ambient: its environment, web identity or instance role), which only a ClusterIssuer may use."""

    region: str = "us-east-1"
    hosted_zone_id: str | None = None
    access_key_id: str | None = None
    access_key_id_secret: SecretKeyRef | None = None
    secret_access_key: SecretKeyRef | None = None
    role: str | None = None

    @property
    def ambient(self) -> bool:
        return self.secret_access_key is None


@dataclass(frozen=True)
class ExternalSolver:
    """`dns01.provider`: a provider installed as its own package, found by `name` in the
    `certsmith.dns01_providers` entry point group; `config` is its settings as JSON text."""

    name: str
    config: str = "{}"

    def settings(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.config)
        return loaded


class CNAMEStrategy(StrEnum):
    NONE = "None"
    FOLLOW = "Follow"


@dataclass(frozen=True)
class DNS01Solver:
    """Where the TXT record is published (exactly one provider), and whether a CNAME at
    `_acme-challenge.<name>` is followed to the name that is updated instead."""

    provider: RFC2136Solver | Route53Solver | ExternalSolver
    cname_strategy: CNAMEStrategy = CNAMEStrategy.NONE

    @property
    def provider_name(self) -> str:
        match self.provider:
            case RFC2136Solver():
                return "rfc2136"
            case Route53Solver():
                return "route53"
            case ExternalSolver(name=name):
                return name

    @property
    def where(self) -> str:
        """Who answers for the records, for messages."""
        match self.provider:
            case RFC2136Solver(nameserver=nameserver):
                return nameserver
            case Route53Solver(hosted_zone_id=zone):
                return f"Route53 (hosted zone {zone})" if zone else "Route53"
            case ExternalSolver(name=name):
                return f"the {name} DNS provider"


@dataclass(frozen=True)
class DNSPersist01Solver:
    """dns-persist-01: a TXT record the user creates once; nothing to configure."""


@dataclass(frozen=True)
class Solver:
    selector: SolverSelector
    http01: HTTP01Solver | None = None
    dns01: DNS01Solver | None = None
    dns_persist01: DNSPersist01Solver | None = None

    @property
    def challenge_type(self) -> str:
        if self.http01 is not None:
            return "http-01"
        return "dns-persist-01" if self.dns_persist01 is not None else "dns-01"


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
    profile: str | None = None
    """The certificate profile to ask for in each order (the ACME profiles draft); None: the CA's
    choice."""
    solvers: tuple[Solver, ...] = field(default=())
    caa_identities: tuple[str, ...] = ()
    """The CA's domains as CAA records name it; () for those its directory gives."""


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
        profile=acme.get("profile") or None,
        solvers=tuple(_solver(index, item) for index, item in enumerate(acme.get("solvers") or ())),
        caa_identities=tuple(str(domain) for domain in acme.get("caaIdentities") or ()),
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
    if item.get("dnsPersist01") is not None:
        return Solver(parsed, dns_persist01=DNSPersist01Solver())
    dns01 = item.get("dns01")
    if not isinstance(dns01, Mapping):
        raise SpecError(
            f"acme.solvers[{index}]", "needs http01, dnsPersist01, or dns01 with one DNS provider"
        )
    return Solver(parsed, dns01=parse_dns01(f"acme.solvers[{index}].dns01", dns01))


def parse_dns01(path: str, dns01: Mapping[str, Any]) -> DNS01Solver:
    given = [name for name in ("rfc2136", "route53", "provider") if dns01.get(name) is not None]
    if len(given) != 1:
        raise SpecError(
            path, f"needs exactly one of rfc2136, route53 or provider (given: {', '.join(given) or 'none'})"
        )
    strategy = dns01.get("cnameStrategy") or CNAMEStrategy.NONE
    if strategy not in tuple(CNAMEStrategy):
        raise SpecError(f"{path}.cnameStrategy", "must be None or Follow")
    provider: RFC2136Solver | Route53Solver | ExternalSolver
    if "rfc2136" in given:
        provider = _rfc2136(f"{path}.rfc2136", dns01["rfc2136"] or {})
    elif "route53" in given:
        provider = _route53(f"{path}.route53", dns01["route53"])
    else:
        external = dns01["provider"]
        if not external.get("name"):
            raise SpecError(f"{path}.provider.name", "is required: the provider package's entry point name")
        provider = ExternalSolver(external["name"], json.dumps(external.get("config") or {}, sort_keys=True))
    return DNS01Solver(provider, CNAMEStrategy(strategy))


def _rfc2136(path: str, rfc2136: Mapping[str, Any]) -> RFC2136Solver:
    if not rfc2136.get("nameserver"):
        raise SpecError(f"{path}.nameserver", "is required: the authoritative server, host[:port]")
    secret = rfc2136.get("tsigSecretSecretRef")
    return RFC2136Solver(
        rfc2136["nameserver"],
        rfc2136.get("tsigKeyName") or None,
        TSIGAlgorithm(rfc2136.get("tsigAlgorithm") or TSIGAlgorithm.HMACSHA256),
        SecretKeyRef(secret["name"], secret["key"]) if secret else None,
    )


def _route53(path: str, route53: Mapping[str, Any]) -> Route53Solver:
    key_id_ref = _secret_ref(route53.get("accessKeyIDSecretRef"))
    key_ref = _secret_ref(route53.get("secretAccessKeySecretRef"))
    key_id = route53.get("accessKeyID") or None
    if key_id and key_id_ref:
        raise SpecError(f"{path}.accessKeyID", "and accessKeyIDSecretRef are exclusive; keep one")
    if bool(key_id or key_id_ref) != bool(key_ref):
        raise SpecError(
            f"{path}.secretAccessKeySecretRef",
            "and an access key ID (accessKeyID or accessKeyIDSecretRef) go together; set both, or "
            "neither for the operator's ambient credentials",
        )
    return Route53Solver(
        route53.get("region") or "us-east-1",
        route53.get("hostedZoneID") or None,
        key_id,
        key_id_ref,
        key_ref,
        route53.get("role") or None,
    )


def _secret_ref(reference: Mapping[str, Any] | None) -> SecretKeyRef | None:
    if not reference or not reference.get("name"):
        return None
    return SecretKeyRef(reference["name"], reference.get("key") or "")


def solver_for(solvers: tuple[Solver, ...], identifier: str, labels: Mapping[str, str]) -> Solver | None:
    """The solver for a DNS identifier: the most specific match, as in cert-manager — an exact
    dnsNames match beats the longest matching dnsZones, which beats a selector of labels only, which
    beats no selector; more matching labels win a tie. A wildcard ("*.example.com") can only be proven
    through DNS (dns-01, dns-persist-01); its zone match is on "example.com". An IP address only with
    HTTP-01 (RFC 8738)."""
    identifier = identifier.lower().rstrip(".")
    wildcard = identifier.startswith("*.")
    name = identifier.removeprefix("*.")
    address = is_ip_address(identifier)
    best: tuple[tuple[int, int, int], Solver] | None = None
    for solver in solvers:
        if (wildcard and solver.http01 is not None) or (address and solver.http01 is None):
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


def is_ip_address(identifier: str) -> bool:
    try:
        ipaddress.ip_address(identifier)
    except ValueError:
        return False
    return True
