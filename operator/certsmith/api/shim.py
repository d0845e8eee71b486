"""Certificates that Ingresses and Gateways ask for with annotations (cert-manager's ingress-shim).

An Ingress or Gateway annotated `certsmith.dev/issuer: NAME` (an Issuer in its namespace) or
`certsmith.dev/cluster-issuer: NAME` gets one Certificate per Secret its TLS configuration names, named
after that Secret, for the hosts served with it, and owned by the Ingress or Gateway. Pure: from an
object's body to the Certificates it wants, and what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from certsmith.api.durations import parse_duration

PREFIX = "certsmith.dev/"
ISSUER = f"{PREFIX}issuer"
CLUSTER_ISSUER = f"{PREFIX}cluster-issuer"
OPTIONS = {
    f"{PREFIX}duration": "duration",
    f"{PREFIX}renew-before": "renewBefore",
    f"{PREFIX}common-name": "commonName",
    f"{PREFIX}private-key-algorithm": "privateKey.algorithm",
    f"{PREFIX}private-key-size": "privateKey.size",
}
"""Optional annotations, and the Certificate field each sets."""
_ALGORITHMS = ("RSA", "ECDSA", "Ed25519")
INGRESS_API_VERSION = "networking.k8s.io/v1"
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"


@dataclass(frozen=True)
class Wanted:
    """The Certificates an annotated object wants (by name: their spec), and its problems, each a
    sentence naming the field or annotation and the fix."""

    certificates: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    annotated: bool = True


def ingress_certificates(body: Mapping[str, Any]) -> Wanted:
    """One Certificate per spec.tls[].secretName, for that entry's hosts."""
    entries = [
        (f"spec.tls[{index}]", entry.get("secretName"), list(entry.get("hosts") or []))
        for index, entry in enumerate((body.get("spec") or {}).get("tls") or [])
    ]
    return _wanted(body, entries)


def gateway_certificates(body: Mapping[str, Any]) -> Wanted:
    """One Certificate per Secret a listener's tls.certificateRefs names, for the listeners' hostnames."""
    namespace = (body.get("metadata") or {}).get("namespace")
    entries: list[tuple[str, str | None, list[str]]] = []
    problems = []
    for index, listener in enumerate((body.get("spec") or {}).get("listeners") or []):
        tls = listener.get("tls") or {}
        if not tls or tls.get("mode", "Terminate") != "Terminate":
            continue
        where = f"spec.listeners[{index}]"
        for position, reference in enumerate(tls.get("certificateRefs") or []):
            if reference.get("kind", "Secret") != "Secret" or reference.get("group", "") != "":
                problems.append(
                    f"{where}.tls.certificateRefs[{position}] is not a Secret; certsmith only fills Secrets"
                )
                continue
            if reference.get("namespace", namespace) != namespace:
                problems.append(
                    f"{where}.tls.certificateRefs[{position}] names a Secret in namespace "
                    f"{reference.get('namespace')}; certsmith makes Certificates in the Gateway's own "
                    f"namespace only"
                )
                continue
            hostname = listener.get("hostname")
            entries.append((where, reference.get("name"), [hostname] if hostname else []))
    wanted = _wanted(body, entries)
    return Wanted(wanted.certificates, (*problems, *wanted.problems), wanted.annotated)


def first_claim(bodies: Iterable[Mapping[str, Any]]) -> Mapping[str, Any]:
    """Of the objects asking for the same Secret, the one whose Certificate it is: the oldest by
    creationTimestamp, then by name (RFC 3339 timestamps in UTC sort as text)."""
    return min(
        bodies, key=lambda body: (body["metadata"].get("creationTimestamp") or "", body["metadata"]["name"])
    )


def asks_for_certificates(body: Mapping[str, Any]) -> bool:
    """Whether an Ingress or Gateway carries one of the issuer annotations (only those are kept)."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return bool(annotations.get(ISSUER) or annotations.get(CLUSTER_ISSUER))


def _wanted(body: Mapping[str, Any], entries: list[tuple[str, str | None, list[str]]]) -> Wanted:
    if not asks_for_certificates(body):
        return Wanted(annotated=False)
    annotations = body["metadata"]["annotations"]
    issuer, cluster_issuer = annotations.get(ISSUER), annotations.get(CLUSTER_ISSUER)
    if issuer and cluster_issuer:
        return Wanted(problems=(f"both {ISSUER} and {CLUSTER_ISSUER} are set; keep one",))
    options, problems = _options(annotations)
    if problems:
        return Wanted(problems=tuple(problems))
    reference = (
        {"name": issuer, "kind": "Issuer"} if issuer else {"name": cluster_issuer, "kind": "ClusterIssuer"}
    )
    hosts: dict[str, list[str]] = {}
    for where, secret, names in entries:
        if not secret:
            problems.append(f"{where} has no Secret name; name one to get a certificate for it")
            continue
        if not names:
            problems.append(f"{where} (Secret {secret}) names no host; list the hosts the certificate is for")
            continue
        hosts.setdefault(secret, [])
        hosts[secret] += [name for name in names if name not in hosts[secret]]
    certificates = {
        secret: _merged({"secretName": secret, "dnsNames": names, "issuerRef": reference}, options)
        for secret, names in hosts.items()
    }
    return Wanted(certificates, tuple(problems))


def _options(annotations: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    options: dict[str, Any] = {}
    problems = []
    for annotation, path in OPTIONS.items():
        value = annotations.get(annotation)
        if value is None:
            continue
        problem = _problem(path, value)
        if problem:
            problems.append(f"annotation {annotation}: {problem}")
            continue
        options[path] = int(value) if path == "privateKey.size" else value
        if path == "privateKey.algorithm" and value == "Ed25519":
            options["privateKey.encoding"] = "PKCS8"  # the only encoding of Ed25519 keys
    return options, problems


def _problem(path: str, value: str) -> str | None:
    if path in ("duration", "renewBefore"):
        try:
            parse_duration(value)
        except ValueError as error:
            return f"{error} (write a Go duration such as 2160h)"
    if path == "privateKey.algorithm" and value not in _ALGORITHMS:
        return f"{value!r} is not one of {', '.join(_ALGORITHMS)}"
    if path == "privateKey.size" and not value.isdigit():
        return f"{value!r} is not a number of bits (RSA: 2048, 3072, 4096; ECDSA: 256, 384, 521)"
    if path == "commonName" and len(value) > 64:
        return "longer than 64 characters (RFC 5280); leave it out, the hosts are in dnsNames"
    return None


def _merged(spec: dict[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    for path, value in options.items():
        head, _, tail = path.partition(".")
        if tail:
            spec.setdefault(head, {})[tail] = value
        else:
            spec[head] = value
    return spec
