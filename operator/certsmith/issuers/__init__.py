"""Issuers: one way of signing per module, all behind the `Signer` protocol."""

from __future__ import annotations

import datetime
from typing import Protocol

from certsmith.pki.keys import PrivateKey
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import IssuedCertificate


class IssuerNotReadyError(RuntimeError):
    """The issuer cannot sign now; `reason` is a CamelCase word for status conditions."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Signer(Protocol):
    def sign(
        self, request: CertificateTemplate, key: PrivateKey, now: datetime.datetime
    ) -> IssuedCertificate:
        """Sign a certificate for `key`'s public half. The private key is used only by self-signing."""
        ...
