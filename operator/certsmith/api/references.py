"""References: from a Certificate to the issuer that signs it, and to a key of a Secret."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
