"""From an issuer (or a Certificate's issuerRef) to a Signer, or the reason there is none.

Owns the cache of verified CA key pairs. Entries are keyed by the CA Secret's resourceVersion, so a
changed Secret can never be signed with from a stale entry, whichever thread filled it; `invalidate`
only frees memory.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from certsmith.api import CLUSTER_ISSUERS, ISSUERS, SpecError
from certsmith.api.issuer import (
    ACMEIssuerSpec,
    CAIssuerSpec,
    IssuerSpec,
    SelfSignedIssuerSpec,
    parse_issuer_spec,
)
from certsmith.api.references import IssuerKind, IssuerRef
from certsmith.issuers import IssuerNotReadyError, Signer
from certsmith.issuers.ca import CASigner, load_authority
from certsmith.issuers.selfsigned import SelfSignedSigner
from certsmith.kube.port import Key, KubePort
from certsmith.kube.secrets import ObservedSecret
from certsmith.pki.signing import SigningAuthority

IssuerId = tuple[str, Key]
"""(plural, key) of an Issuer or ClusterIssuer."""
IssuerLookup = Callable[[str, Key], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Resolved:
    signer: Signer
    ca_certificate: x509.Certificate | None
    """The CA certificate that signs, for CA issuers."""
    authority: SigningAuthority | None = None


class IssuerResolver:
    def __init__(
        self,
        issuers: IssuerLookup,
        referenced: Mapping[Key, ObservedSecret | None],
        port: KubePort,
        cluster_resource_namespace: str,
    ) -> None:
        self._issuers = issuers
        self._referenced = referenced
        self._port = port
        self._cluster_resource_namespace = cluster_resource_namespace
        self._authorities: dict[tuple[Key, str, CAIssuerSpec], SigningAuthority] = {}
        self._lock = threading.Lock()

    def ca_secret(self, spec: CAIssuerSpec, issuer: IssuerId) -> Key:
        """The Secret with a CA issuer's key pair; a ClusterIssuer's is in the cluster resource namespace."""
        plural, key = issuer
        namespace = self._cluster_resource_namespace if plural == CLUSTER_ISSUERS else key[0]
        return (namespace, spec.secret_name)

    def resolve_spec(self, spec: IssuerSpec, issuer: IssuerId, now: datetime.datetime) -> Resolved:
        """Raises IssuerNotReadyError with the reason this issuer cannot sign."""
        if isinstance(spec, SelfSignedIssuerSpec):
            return Resolved(SelfSignedSigner(spec.urls), None)
        if isinstance(spec, ACMEIssuerSpec):
            raise IssuerNotReadyError(
                "Unsupported", f"ACME issuers are not supported by this version of certsmith ({spec.server})"
            )
        try:
            authority = self._authority(spec, self.ca_secret(spec, issuer), now)
        except IssuerNotReadyError as error:
            if issuer[0] == CLUSTER_ISSUERS and error.reason == "SecretNotFound":
                raise IssuerNotReadyError(
                    error.reason,
                    f"{error}; a ClusterIssuer's CA Secret lives in the operator's cluster resource "
                    f"namespace (certsmith run --cluster-resource-namespace)",
                ) from None
            raise
        return Resolved(CASigner(authority), authority.certificate, authority)

    def resolve(self, reference: IssuerRef, namespace: str, now: datetime.datetime) -> Resolved:
        """The signer for a Certificate in `namespace` naming `reference`."""
        item = issuer_id(reference, namespace)
        body = self._issuers(*item)
        where = f" in namespace {namespace}" if reference.kind is IssuerKind.ISSUER else ""
        if body is None:
            raise IssuerNotReadyError("IssuerNotFound", f"{reference} does not exist{where}; create it")
        try:
            spec = parse_issuer_spec(body.get("spec") or {})
            return self.resolve_spec(spec, item, now)
        except SpecError as error:
            raise IssuerNotReadyError("IssuerNotReady", f"{reference}: {error}") from None
        except IssuerNotReadyError as error:
            raise IssuerNotReadyError("IssuerNotReady", f"{reference} is not ready: {error}") from None

    def invalidate(self, secret: Key) -> None:
        with self._lock:
            self._authorities = {key: value for key, value in self._authorities.items() if key[0] != secret}

    def referenced_secret(self, key: Key) -> ObservedSecret | None:
        """A referenced Secret from its watch; read once if the watch has not listed it yet."""
        if key in self._referenced:
            return self._referenced[key]
        return self._port.read_secret(*key)

    def _authority(self, spec: CAIssuerSpec, secret_key: Key, now: datetime.datetime) -> SigningAuthority:
        observed = self.referenced_secret(secret_key)
        version = observed.resource_version if observed else ""
        cache_key = (secret_key, version, spec)
        with self._lock:
            cached = self._authorities.get(cache_key)
        if cached is not None and cached.certificate.not_valid_after_utc > now:
            return cached
        namespace, name = secret_key
        authority = load_authority(
            f"{namespace}/{name}", observed.contents if observed else None, spec.urls, now
        )
        with self._lock:
            self._authorities[cache_key] = authority
        return authority


def issuer_id(reference: IssuerRef, namespace: str) -> IssuerId:
    """The issuer a Certificate in `namespace` names."""
    if reference.kind is IssuerKind.CLUSTER_ISSUER:
        return (CLUSTER_ISSUERS, ("", reference.name))
    return (ISSUERS, (namespace, reference.name))
