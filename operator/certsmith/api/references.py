"""References from a Certificate to the issuer that signs it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class IssuerKind(StrEnum):
    ISSUER = "Issuer"
    CLUSTER_ISSUER = "ClusterIssuer"


@dataclass(frozen=True)
class IssuerRef:
    name: str
    kind: IssuerKind

    def __str__(self) -> str:
        return f"{self.kind.value}/{self.name}"
