"""cert-manager's objects in certsmith's terms: its Certificate, Issuer and ClusterIssuer manifests
converted field by field, with a note for every field certsmith does not take (nothing dropped
silently), and the layout of the Secrets it issued (for adopting them without re-issuing). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from certsmith.api import API_VERSION

CERT_MANAGER_GROUP = "cert-manager.io"
CERT_MANAGER_CERTIFICATE_NAME = "cert-manager.io/certificate-name"
"""The annotation cert-manager puts on every Secret it issues into."""

CERTIFICATE_FIELDS = frozenset(
    {
        "secretName",
        "commonName",
        "dnsNames",
        "ipAddresses",
        "uris",
        "emailAddresses",
        "duration",
        "renewBefore",
        "renewBeforePercentage",
        "usages",
        "isCA",
        "secretTemplate",
        "additionalOutputFormats",
    }
)
_SUBJECT_FIELDS = frozenset(
    {
        "organizations",
        "countries",
        "organizationalUnits",
        "localities",
        "provinces",
        "streetAddresses",
        "postalCodes",
        "serialNumber",
    }
)
_PRIVATE_KEY_FIELDS = frozenset({"algorithm", "size", "encoding", "rotationPolicy"})
_PKCS12_PROFILES = frozenset({"LegacyDES", "Modern2023"})
_CA_FIELDS = frozenset({"secretName", "crlDistributionPoints", "ocspServers", "issuingCertificateURLs"})
_ACME_FIELDS = frozenset(
    {"server", "email", "privateKeySecretRef", "caBundle", "skipTLSVerify", "preferredChain"}
)
_RFC2136_FIELDS = frozenset({"nameserver", "tsigKeyName", "tsigAlgorithm", "tsigSecretSecretRef"})
_KINDS = frozenset({"Certificate", "Issuer", "ClusterIssuer"})


@dataclass
class Converted:
    """One document: the certsmith manifest (None if it cannot be converted at all), and notes."""

    manifest: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)


def is_cert_manager(document: Mapping[str, Any]) -> bool:
    return (
        str(document.get("apiVersion", "")).startswith(f"{CERT_MANAGER_GROUP}/")
        and document.get("kind") in _KINDS
    )


def convert(document: Mapping[str, Any]) -> Converted:
    """A cert-manager Certificate, Issuer or ClusterIssuer as certsmith's, with a note for each field
    that is not carried over and why."""
    kind = str(document.get("kind"))
    metadata = {
        key: value
        for key, value in (document.get("metadata") or {}).items()
        if key in ("name", "namespace", "labels", "annotations")
    }
    spec = dict(document.get("spec") or {})
    notes: list[str] = []
    if kind == "Certificate":
        converted: dict[str, Any] | None = _certificate(spec, notes)
    else:
        converted = _issuer(spec, notes)
    if converted is None:
        return Converted(None, notes)
    return Converted(
        {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": converted}, notes
    )


CERT_MANAGER_DEFAULT_USAGES = ("digital signature", "key encipherment")
"""What cert-manager puts in a certificate whose spec names no usages, whatever the key type; certsmith
leaves key encipherment out for ECDSA and Ed25519, so a converted spec names them, or every migrated
ECDSA certificate would differ from its spec and be re-issued."""


def _certificate(spec: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    converted = {key: value for key, value in spec.items() if key in CERTIFICATE_FIELDS}
    converted.setdefault("usages", list(CERT_MANAGER_DEFAULT_USAGES))
    if "subject" in spec:
        subject = spec["subject"] or {}
        converted["subject"] = {key: value for key, value in subject.items() if key in _SUBJECT_FIELDS}
        _unsupported(notes, "spec.subject", subject, _SUBJECT_FIELDS)
    if "privateKey" in spec:
        key = spec["privateKey"] or {}
        converted["privateKey"] = {name: value for name, value in key.items() if name in _PRIVATE_KEY_FIELDS}
        _unsupported(notes, "spec.privateKey", key, _PRIVATE_KEY_FIELDS)
    reference = dict(spec.get("issuerRef") or {})
    group = reference.pop("group", CERT_MANAGER_GROUP)
    if group != CERT_MANAGER_GROUP:
        notes.append(
            f"spec.issuerRef.group {group}: an external issuer certsmith cannot use; the Certificate names "
            f"{reference.get('kind', 'Issuer')}/{reference.get('name')} of certsmith's instead: create one"
        )
    converted["issuerRef"] = {key: value for key, value in reference.items() if key in ("name", "kind")}
    keystores = spec.get("keystores") or {}
    if keystores.get("pkcs12"):
        pkcs12 = dict(keystores["pkcs12"])
        profile = pkcs12.get("profile")
        if profile and profile not in _PKCS12_PROFILES:
            notes.append(f"spec.keystores.pkcs12.profile {profile}: not supported (RC2); Modern2023 is used")
            pkcs12.pop("profile")
        converted["keystores"] = {
            "pkcs12": {
                key: value
                for key, value in pkcs12.items()
                if key in ("create", "passwordSecretRef", "profile")
            }
        }
        _unsupported(notes, "spec.keystores.pkcs12", pkcs12, {"create", "passwordSecretRef", "profile"})
    if keystores.get("jks"):
        notes.append("spec.keystores.jks: JKS is not supported; use keystores.pkcs12 (Java reads PKCS#12)")
    handled = CERTIFICATE_FIELDS | {"subject", "privateKey", "issuerRef", "keystores"}
    _unsupported(notes, "spec", spec, handled)
    return converted


def _issuer(spec: dict[str, Any], notes: list[str]) -> dict[str, Any] | None:
    if "selfSigned" in spec:
        self_signed = spec["selfSigned"] or {}
        _unsupported(notes, "spec.selfSigned", self_signed, {"crlDistributionPoints"})
        return {"selfSigned": {k: v for k, v in self_signed.items() if k == "crlDistributionPoints"}}
    if "ca" in spec:
        ca = spec["ca"] or {}
        _unsupported(notes, "spec.ca", ca, _CA_FIELDS)
        return {"ca": {key: value for key, value in ca.items() if key in _CA_FIELDS}}
    if "acme" in spec:
        return {"acme": _acme(spec["acme"] or {}, notes)}
    kinds = ", ".join(sorted(spec)) or "none"
    notes.append(
        f"spec ({kinds}): certsmith issues self-signed, from a CA Secret, or by ACME only; not converted"
    )
    return None


def _acme(acme: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    converted = {key: value for key, value in acme.items() if key in _ACME_FIELDS}
    binding = acme.get("externalAccountBinding")
    if binding:
        converted["externalAccountBinding"] = {
            k: v for k, v in binding.items() if k in ("keyID", "keySecretRef")
        }
        _unsupported(notes, "spec.acme.externalAccountBinding", binding, {"keyID", "keySecretRef"})
    solvers = []
    for index, solver in enumerate(acme.get("solvers") or ()):
        where = f"spec.acme.solvers[{index}]"
        converted_solver = _solver(solver, where, notes)
        if converted_solver is not None:
            solvers.append(converted_solver)
    converted["solvers"] = solvers
    handled = _ACME_FIELDS | {"externalAccountBinding", "solvers"}
    _unsupported(notes, "spec.acme", acme, handled)
    return converted


def _solver(solver: Mapping[str, Any], where: str, notes: list[str]) -> dict[str, Any] | None:
    converted: dict[str, Any] = {}
    if solver.get("selector"):
        converted["selector"] = solver["selector"]
    if "http01" in solver:
        ingress = (solver["http01"] or {}).get("ingress")
        if ingress is None:
            notes.append(
                f"{where}.http01: only the ingress solver is supported (not gatewayHTTPRoute); dropped"
            )
            return None
        taken: dict[str, Any] = {k: v for k, v in ingress.items() if k in ("ingressClassName", "class")}
        annotations = ((ingress.get("ingressTemplate") or {}).get("metadata") or {}).get("annotations")
        if annotations:
            taken["annotations"] = annotations
        for name in sorted(set(ingress) - {"ingressClassName", "class", "ingressTemplate"}):
            notes.append(
                f"{where}.http01.ingress.{name}: not supported (certsmith answers challenges itself, "
                f"through an Ingress it makes per challenge); dropped"
            )
        converted["http01"] = {"ingress": taken}
        return converted
    dns01 = solver.get("dns01") or {}
    if "rfc2136" in dns01:
        rfc2136 = dns01["rfc2136"] or {}
        _unsupported(notes, f"{where}.dns01.rfc2136", rfc2136, _RFC2136_FIELDS)
        converted["dns01"] = {
            "rfc2136": {key: value for key, value in rfc2136.items() if key in _RFC2136_FIELDS}
        }
        return converted
    providers = ", ".join(sorted(dns01)) or "none"
    notes.append(f"{where}.dns01 ({providers}): only rfc2136 is supported; this solver is dropped")
    return None


def _unsupported(
    notes: list[str], where: str, given: Mapping[str, Any], supported: set[str] | frozenset[str]
) -> None:
    for name in sorted(set(given) - set(supported)):
        notes.append(f"{where}.{name}: not supported by certsmith; dropped")
