"""cert-manager's Issuer and ClusterIssuer specs in certsmith's terms: self-signed, a CA in a Secret,
or ACME answered by HTTP-01 through an Ingress or DNS-01 through RFC 2136 or Route53 (following a CNAME
at `_acme-challenge` when cnameStrategy is Follow). cert-manager's defaults
are pinned where certsmith's differ; for a solver certsmith lacks, the note says what works instead.
Pure."""

from __future__ import annotations

from typing import Any

from certsmith.api.acme import TSIGAlgorithm
from certsmith.api.cert_manager_fields import Fields, Notes, Refused, put

CERT_MANAGER_TSIG_ALGORITHM = TSIGAlgorithm.HMACMD5
"""What cert-manager signs RFC 2136 updates with when `tsigAlgorithm` is unset (certsmith's own default
is HMACSHA256, so a converted solver names it, or existing TSIG keys would stop working)."""

DNS01_PROVIDERS = {
    "acmeDNS": "acme-dns",
    "akamai": "Akamai",
    "azureDNS": "Azure DNS",
    "cloudDNS": "Google Cloud DNS",
    "cloudflare": "Cloudflare",
    "digitalocean": "DigitalOcean",
    "webhook": "webhook",
}
"""cert-manager's DNS-01 providers that certsmith does not have in-tree (its own are rfc2136 and route53)."""

DNS01_MIGRATION = (
    "the ways over: CNAME delegation (a CNAME from each _acme-challenge.<name> to a name in a zone "
    "certsmith updates through dns01.rfc2136 or dns01.route53, with cnameStrategy: Follow); a provider "
    "package registering in the certsmith.dns01_providers entry point group, named in dns01.provider "
    "(README: DNS-01 providers); HTTP-01 for names that are not wildcards; or dns-persist-01 once certsmith "
    "and the CA support it"
)

ISSUANCE_POLICY = (
    "a CA ClusterIssuer signs CA certificates (isCA) for namespaced Certificates and CertificateRequests "
    "only when its spec.issuancePolicy allows it; cert-manager had no such opt-in and none is granted "
    'here (README: "CA certificates from ClusterIssuers (issuancePolicy)")'
)

_KINDS = ("selfSigned", "ca", "acme", "vault", "venafi")


def convert_issuer(spec: Fields, notes: Notes, *, cluster: bool) -> dict[str, Any]:
    kinds = [name for name in _KINDS if name in spec]
    if len(kinds) != 1:
        raise Refused(
            spec.path, f"set exactly one of {', '.join(_KINDS)} (given: {', '.join(kinds) or 'none'})"
        )
    kind = kinds[0]
    if kind in ("vault", "venafi"):
        raise Refused(
            spec.at(kind),
            f"certsmith signs self-signed, with a CA kept in a Secret, or by ACME; a {kind} issuer has no "
            f"certsmith equivalent: keep it (and the Certificates naming it) on cert-manager",
        )
    body = Fields(spec.take(kind), spec.at(kind))
    converted: dict[str, Any]
    if kind == "selfSigned":
        converted = {"selfSigned": _self_signed(body, notes)}
    elif kind == "ca":
        converted = {"ca": _ca(body, notes)}
    else:
        converted = {"acme": _acme(body, notes, cluster=cluster)}
    notes.leftovers(spec)
    if cluster and kind == "ca":
        notes.note(spec.path, ISSUANCE_POLICY)
    return converted


def _self_signed(self_signed: Fields, notes: Notes) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    put(converted, "crlDistributionPoints", self_signed.texts("crlDistributionPoints"))
    notes.leftovers(self_signed)
    return converted


def _ca(ca: Fields, notes: Notes) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    put(converted, "secretName", ca.text("secretName"))
    for name in ("crlDistributionPoints", "ocspServers", "issuingCertificateURLs"):
        put(converted, name, ca.texts(name))
    notes.leftovers(ca)
    return converted


def secret_key_ref(reference: Fields, notes: Notes) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    put(converted, "name", reference.text("name"))
    put(converted, "key", reference.text("key"))
    notes.leftovers(reference)
    return converted


def _acme(acme: Fields, notes: Notes, *, cluster: bool) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    for name in ("server", "email", "preferredChain", "caBundle", "profile"):
        put(converted, name, acme.text(name))
    put(converted, "skipTLSVerify", acme.flag("skipTLSVerify"))
    key = acme.fields("privateKeySecretRef", "a mapping (name, key)")
    if key is not None:
        converted["privateKeySecretRef"] = secret_key_ref(key, notes)
    binding = acme.fields("externalAccountBinding", "a mapping (keyID, keySecretRef)")
    if binding is not None:
        converted["externalAccountBinding"] = _external_account_binding(binding, notes)
    _acme_behaviour(acme, notes)
    solvers: list[dict[str, Any]] = []
    dropped_dns = False
    for solver in acme.items("solvers", "a solver (selector, http01 or dns01)"):
        taken = _solver(solver, notes, cluster=cluster)
        if taken is None:
            dropped_dns = dropped_dns or "dns01" in solver
        else:
            solvers.append(taken)
    if not solvers:
        raise Refused(
            acme.at("solvers"),
            "no solver that certsmith can run is left, so this issuer could never prove a name and issue"
            + (
                f"; {DNS01_MIGRATION}"
                if dropped_dns
                else "; add an http01.ingress, dns01.rfc2136 or dns01.route53 solver"
            ),
        )
    converted["solvers"] = solvers
    notes.leftovers(acme)
    return converted


def _external_account_binding(binding: Fields, notes: Notes) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    put(converted, "keyID", binding.text("keyID"))
    reference = binding.fields("keySecretRef", "a mapping (name, key)")
    if reference is not None:
        converted["keySecretRef"] = secret_key_ref(reference, notes)
    if binding.text("keyAlgorithm") is not None:
        notes.note(
            binding.at("keyAlgorithm"),
            "deprecated, and ignored by cert-manager: the binding is signed with HS256, as certsmith does; "
            "left out",
        )
    notes.leftovers(binding)
    if "keyID" not in converted or set(converted.get("keySecretRef") or {}) != {"name", "key"}:
        raise Refused(binding.path, "needs keyID and keySecretRef (name and key) of the MAC key's Secret")
    return converted


def _acme_behaviour(acme: Fields, notes: Notes) -> None:
    """The ACME issuer's switches: carried over where certsmith behaves alike, else said."""
    if acme.flag("disableAccountKeyGeneration"):
        notes.drop(
            acme.at("disableAccountKeyGeneration"),
            "certsmith registers a new ACME account when privateKeySecretRef's Secret holds no key; make "
            "sure it holds the existing account key before the operator starts",
        )
    if acme.flag("enableDurationFeature"):
        notes.drop(
            acme.at("enableDurationFeature"),
            "certsmith does not ask the ACME server for a notAfter: certificates get the CA's own lifetime, "
            "not the Certificate's duration",
        )
    if acme.text("renewalInformationSource") != "None":
        notes.note(
            acme.at("renewalInformationSource"),
            "cert-manager renews within the window the CA suggests (ARI, its default); certsmith renews at "
            "the Certificate's own renewal time (renewBefore, or 2/3 of the lifetime)",
        )


def _solver(solver: Fields, notes: Notes, *, cluster: bool) -> dict[str, Any] | None:
    converted: dict[str, Any] = {}
    selector = solver.fields("selector", "a mapping (dnsNames, dnsZones, matchLabels)")
    if selector is not None:
        taken: dict[str, Any] = {}
        put(taken, "dnsNames", selector.texts("dnsNames"))
        put(taken, "dnsZones", selector.texts("dnsZones"))
        put(taken, "matchLabels", selector.labels("matchLabels"))
        notes.leftovers(selector)
        converted["selector"] = taken
    if solver.text("waitInsteadOfSelfCheck") is not None:
        notes.drop(
            solver.at("waitInsteadOfSelfCheck"),
            "certsmith has no such setting; the fixed wait is not carried over (for DNS-01, certsmith waits "
            "until the solver's nameserver answers the record)",
        )
    if ("http01" in solver) == ("dns01" in solver):
        solver.take("http01")
        solver.take("dns01")
        notes.drop(solver.path, "a solver needs exactly one of http01 and dns01; this solver is dropped")
        return None
    if "http01" in solver:
        method = _http01(Fields(solver.take("http01"), solver.at("http01"), "a mapping (ingress)"), notes)
    else:
        method = _dns01(
            Fields(solver.take("dns01"), solver.at("dns01"), "a mapping (one DNS provider)"),
            notes,
            cluster=cluster,
        )
    notes.leftovers(solver)
    if method is None:
        return None
    converted.update(method)
    return converted


def _http01(http01: Fields, notes: Notes) -> dict[str, Any] | None:
    ingress = http01.fields("ingress", "a mapping (ingressClassName, class, ingressTemplate, ...)")
    if ingress is None:
        reason = (
            "certsmith answers HTTP-01 through an Ingress, not an HTTPRoute"
            if "gatewayHTTPRoute" in http01
            else "an http01 solver needs ingress"
        )
        notes.drop(http01.path, f"{reason}; this solver is dropped: use http01.ingress, or DNS-01")
        return None
    converted: dict[str, Any] = {}
    put(converted, "ingressClassName", ingress.text("ingressClassName"))
    put(converted, "class", ingress.text("class"))
    if ingress.text("name") is not None:
        notes.drop(
            ingress.at("name"),
            "certsmith makes its own Ingress per challenge and never edits an existing one (with an ingress "
            "controller that gives each Ingress its own address, the challenge fails: use DNS-01 there)",
        )
    if ingress.text("serviceType") is not None:
        notes.drop(
            ingress.at("serviceType"),
            "the challenge Ingress routes through an ExternalName Service to the operator's solver Service "
            "(README: ACME); an ingress controller that needs a NodePort backend cannot serve it: use DNS-01 "
            "there",
        )
    if ingress.take("podTemplate") is not None:
        notes.note(
            ingress.at("podTemplate"), "certsmith runs no solver Pod per challenge; nothing to carry over"
        )
    template = ingress.fields("ingressTemplate", "a mapping (metadata)")
    if template is not None:
        metadata = template.fields("metadata", "a mapping (annotations, labels)")
        if metadata is not None:
            put(converted, "annotations", metadata.labels("annotations"))
            if metadata.labels("labels"):
                notes.drop(
                    metadata.at("labels"),
                    "certsmith's challenge Ingress carries the annotations only, not these labels (an "
                    "ingress controller that selects Ingresses by label will not serve it)",
                )
            notes.leftovers(metadata)
        notes.leftovers(template)
    notes.leftovers(ingress)
    notes.leftovers(http01)
    return {"http01": {"ingress": converted}}


def _dns01(dns01: Fields, notes: Notes, *, cluster: bool) -> dict[str, Any] | None:
    converted = _dns01_provider(dns01, notes, cluster=cluster)
    strategy = dns01.text("cnameStrategy")
    if strategy not in (None, "None", "Follow"):
        notes.drop(dns01.at("cnameStrategy"), f"is None or Follow, not {strategy!r}; CNAMEs are not followed")
    elif converted is not None and strategy == "Follow":
        converted["dns01"]["cnameStrategy"] = "Follow"
    notes.leftovers(dns01)
    return converted


def _dns01_provider(dns01: Fields, notes: Notes, *, cluster: bool) -> dict[str, Any] | None:
    providers = [name for name in (*DNS01_PROVIDERS, "rfc2136", "route53") if name in dns01]
    if len(providers) != 1:
        for name in providers:
            dns01.take(name)
        notes.drop(
            dns01.path,
            f"a dns01 solver needs exactly one DNS provider (given: {', '.join(providers) or 'none'}); "
            "this solver is dropped",
        )
        return None
    provider = providers[0]
    if provider in DNS01_PROVIDERS:
        dns01.take(provider)
        notes.drop(
            dns01.at(provider),
            f"certsmith has no {DNS01_PROVIDERS[provider]} DNS-01 provider in-tree; this solver is dropped; "
            f"{DNS01_MIGRATION}",
        )
        return None
    if dns01.texts("nameservers") is not None:
        notes.drop(
            dns01.at("nameservers"),
            "certsmith checks the record with the solver's own DNS provider (the RFC 2136 nameserver, or "
            "Route53's API); these nameservers for the propagation check are not carried over",
        )
    if provider == "route53":
        route53 = Fields(dns01.take("route53"), dns01.at("route53"), "a mapping (region, hostedZoneID, ...)")
        taken = _route53(route53, notes, cluster=cluster)
        return None if taken is None else {"dns01": {"route53": taken}}
    rfc2136 = Fields(dns01.take("rfc2136"), dns01.at("rfc2136"), "a mapping (nameserver, tsigKeyName, ...)")
    converted = _rfc2136(rfc2136, notes)
    return None if converted is None else {"dns01": {"rfc2136": converted}}


def _route53(route53: Fields, notes: Notes, *, cluster: bool) -> dict[str, Any] | None:
    converted: dict[str, Any] = {}
    for name in ("region", "hostedZoneID", "accessKeyID", "role"):
        put(converted, name, route53.text(name))
    for name in ("accessKeyIDSecretRef", "secretAccessKeySecretRef"):
        reference = route53.fields(name, "a mapping (name, key)")
        if reference is not None:
            converted[name] = secret_key_ref(reference, notes)
            if set(converted[name]) != {"name", "key"}:
                raise Refused(reference.path, "needs name and key: the Secret and its key")
    auth = route53.take("auth")
    notes.leftovers(route53)
    if auth is not None:
        notes.drop(
            route53.at("auth"),
            "certsmith does not request ServiceAccount tokens for AWS web identity per issuer; this solver "
            "is dropped; use an access key in a Secret (accessKeyID or accessKeyIDSecretRef with "
            "secretAccessKeySecretRef), or a ClusterIssuer with the operator's own (ambient) credentials",
        )
        return None
    if "secretAccessKeySecretRef" not in converted and not cluster:
        notes.drop(
            route53.path,
            "without secretAccessKeySecretRef this solver uses the operator's ambient AWS credentials, "
            "which certsmith allows a ClusterIssuer only (as cert-manager does by default); this solver is "
            "dropped; put an access key in a Secret, or move the solver to a ClusterIssuer",
        )
        return None
    return converted


def _rfc2136(rfc2136: Fields, notes: Notes) -> dict[str, Any] | None:
    converted: dict[str, Any] = {}
    put(converted, "nameserver", rfc2136.text("nameserver"))
    put(converted, "tsigKeyName", rfc2136.text("tsigKeyName"))
    algorithm = (rfc2136.text("tsigAlgorithm") or CERT_MANAGER_TSIG_ALGORITHM).upper()
    secret = rfc2136.fields("tsigSecretSecretRef", "a mapping (name, key)")
    if secret is not None:
        converted["tsigSecretSecretRef"] = secret_key_ref(secret, notes)
        if set(converted["tsigSecretSecretRef"]) != {"name", "key"}:
            raise Refused(secret.path, "needs name and key: the Secret and its key holding the TSIG secret")
    if rfc2136.text("protocol") != "TCP":
        notes.note(
            rfc2136.at("protocol"),
            "cert-manager sends the updates over UDP (its default); certsmith sends them over TCP, which the "
            "nameserver must accept (DNS servers do unless told not to)",
        )
    notes.leftovers(rfc2136)
    if algorithm not in {known.value for known in TSIGAlgorithm}:
        notes.drop(
            rfc2136.at("tsigAlgorithm"),
            f"certsmith signs updates with {', '.join(TSIGAlgorithm)}, not {algorithm}; this solver is "
            "dropped",
        )
        return None
    converted["tsigAlgorithm"] = algorithm
    return converted
