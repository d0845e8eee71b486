"""Issuers: one way of signing per module, all behind the `Signer` protocol."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509

from certsmith.pki.keys import PrivateKey, PublicKey
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import IssuedCertificate

IssuerId = tuple[str, tuple[str, str]]
"""(plural, (namespace, name)) of an Issuer or ClusterIssuer (a ClusterIssuer's namespace is "")."""


class IssuerNotReadyError(RuntimeError):
    """The issuer cannot sign now; `reason` is a CamelCase word for status conditions."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SigningFailedError(RuntimeError):
    """This attempt failed (the CA refused, a challenge failed, the CA is unreachable). `order` is the
    ACME order state to keep in the status, so the next attempt knows what happened."""

    def __init__(
        self,
        reason: str,
        message: str,
        order: Mapping[str, Any] | None = None,
        retry_after: datetime.datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.order = order
        self.retry_after = retry_after
        """The CA's Retry-After, when it gave one."""


@dataclass(frozen=True)
class SigningRequest:
    template: CertificateTemplate
    key: Callable[[], PrivateKey]
    """The certificate's key, made (or taken from the Secret) on first call, the same on every call."""
    now: datetime.datetime
    certificate: tuple[str, str]
    """(namespace, name) of the Certificate (or CertificateRequest)."""
    uid: str | None = None
    """The Certificate's uid: what it makes for a challenge (an Ingress) is owned by it, so that the
    garbage collector removes it with the Certificate."""
    labels: Mapping[str, str] = field(default_factory=dict)
    order: Mapping[str, Any] | None = None
    """The ACME order kept in the Certificate's status, if any."""
    csr: x509.CertificateSigningRequest | None = None
    """A CertificateRequest's CSR, made elsewhere: its key is the certificate's key, and only
    self-signing reads the private key (`key`)."""
    kind: str = "Certificate"
    """Certificate or CertificateRequest: what owns the objects made for a challenge."""
    key_held: bool = False
    """`key` is the key an earlier call finalized an order with (kept in memory since)."""
    replaces: str | None = None
    """The ARI certID of the certificate this one renews, for an ACME CA's newOrder."""

    def public_key(self) -> PublicKey:
        return self.csr.public_key() if self.csr is not None else self.key().public_key()  # type: ignore[return-value]


@dataclass(frozen=True)
class Pending:
    """Signing takes longer than one reconcile (an ACME order): keep `order`, come back at `until`."""

    order: Mapping[str, Any]
    until: datetime.datetime
    message: str
    new_order: bool = False
    key_needed: bool = False
    """The order was finalized: the next call must sign for the same key (`SigningRequest.key_held`)."""


@dataclass(frozen=True)
class RenewalInfoAnswer:
    """A CA's answer to an ARI request: its JSON (read by `certsmith.renewal_info`) and Retry-After."""

    body: object
    retry_after: datetime.timedelta | None


class RenewalInfoSource(Protocol):
    """Where a CA's renewal information (ACME ARI) is read; the reading is network I/O (a lane's)."""

    def offers_renewal_info(self) -> bool | None:
        """Whether the CA offers it; None while that is not known yet (no network call)."""
        ...

    def renewal_info(self, cert_id: str) -> RenewalInfoAnswer | None:
        """The CA's answer for the certificate `cert_id`; None if the CA offers none."""
        ...


class Signer(Protocol):
    def sign(self, request: SigningRequest) -> IssuedCertificate | Pending:
        """Sign a certificate for the request's key. Only self-signing uses the private key itself."""
        ...
