"""References: from a Certificate to the issuer that signs it, and to a key of a Secret."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from certsmith.api import SpecError


class IssuerKind(StrEnum):
    ISSUER = "Issuer"
    CLUSTER_ISSUER = "ClusterIssuer"


@dataclass(frozen=True)
class SecretKeyRef:
    """One key of a Secret's data (a password, an ACME account key, a TSIG secret)."""

    name: str
    key: str


@dataclass(frozen=True)
class IssuerRef:
    name: str
    kind: IssuerKind

    def __str__(self) -> str:
        return f"{self.kind.value}/{self.name}"


def parse_issuer_ref(reference: Mapping[str, Any]) -> IssuerRef:
    try:
        kind = IssuerKind(reference.get("kind", "Issuer"))
    except ValueError:
        raise SpecError("issuerRef.kind", "must be Issuer or ClusterIssuer") from None
    name = reference.get("name")
    if not name:
        raise SpecError("issuerRef.name", "is required")
    return IssuerRef(str(name), kind)
