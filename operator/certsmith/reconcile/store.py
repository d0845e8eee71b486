"""The latest observed objects: fed by watch events and by what the workers report they wrote.

Only the event loop writes the store (see `certsmith.runtime`); worker threads read it.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from certsmith.api import CERTIFICATE_REQUESTS, CERTIFICATES, CLUSTER_ISSUERS, GATEWAYS, INGRESSES, ISSUERS
from certsmith.api.bundle import BUNDLES
from certsmith.api.pod_certificate_request import POD_CERTIFICATE_REQUESTS
from certsmith.kube.port import Key
from certsmith.kube.secrets import ObservedSecret
from certsmith.kube.trust import Target


@dataclass(frozen=True)
class WorkItem:
    plural: str
    key: Key

    def __str__(self) -> str:
        namespace, name = self.key
        return f"{self.plural}/{namespace + '/' if namespace else ''}{name}"


@dataclass(frozen=True)
class IssuerState:
    ready_since: datetime.datetime | None
    """When the issuer last became Ready; None while it is not Ready."""
    ca_serial: int | None = None
    """The serial number of the CA certificate it signs with, for CA issuers."""
    ca_not_after: datetime.datetime | None = None


@dataclass
class Store:
    certificates: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    certificate_requests: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    issuers: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    cluster_issuers: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    ingresses: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    gateways: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    """Ingresses and Gateways, for the Certificates their annotations ask for."""
    pod_certificate_requests: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    """Kubernetes' PodCertificateRequests for certsmith's signer names, until answered."""
    secrets: dict[Key, ObservedSecret] = field(default_factory=dict)
    """Managed Secrets (label-selected watch)."""
    referenced: dict[Key, ObservedSecret | None] = field(default_factory=dict)
    """Secrets that issuers and keystores refer to, each watched by name; None: does not exist.
    A key that is absent has not been listed yet."""
    issuer_states: dict[WorkItem, IssuerState] = field(default_factory=dict)
    bundles: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    namespaces: dict[str, Mapping[str, str]] = field(default_factory=dict)
    """Every namespace's labels (the Bundles' namespaceSelector); terminating namespaces are left out."""
    bundle_targets: dict[tuple[str, Key], Target] = field(default_factory=dict)
    """The ConfigMaps and Secrets labelled as a Bundle's, by (kind, key) (label-selected watches)."""

    def remember(self, plural: str, key: Key, body: Mapping[str, Any]) -> None:
        """Keep `body` without metadata.managedFields, often its largest part, which certsmith never reads."""
        metadata = body.get("metadata") or {}
        if "managedFields" in metadata:
            body = {
                **body,
                "metadata": {name: value for name, value in metadata.items() if name != "managedFields"},
            }
        self.objects(plural)[key] = body

    def remember_status(self, plural: str, key: Key, status: Mapping[str, Any]) -> None:
        objects = self.objects(plural)
        body = objects.get(key)
        if body is not None:
            merged = {**(body.get("status") or {}), **status}
            objects[key] = {
                **body,
                "status": {name: value for name, value in merged.items() if value is not None},
            }

    def ca_not_after(self, plural: str, key: Key) -> datetime.datetime | None:
        state = self.issuer_states.get(WorkItem(plural, key))
        return state.ca_not_after if state else None

    def objects(self, plural: str) -> dict[Key, Mapping[str, Any]]:
        return {
            CERTIFICATES: self.certificates,
            CERTIFICATE_REQUESTS: self.certificate_requests,
            ISSUERS: self.issuers,
            CLUSTER_ISSUERS: self.cluster_issuers,
            INGRESSES: self.ingresses,
            GATEWAYS: self.gateways,
            BUNDLES: self.bundles,
            POD_CERTIFICATE_REQUESTS: self.pod_certificate_requests,
        }[plural]
