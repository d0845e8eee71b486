"""The SelfSigned issuer: each certificate signed by its own key."""

from __future__ import annotations

from dataclasses import dataclass

from certsmith.issuers import IssuerNotReadyError, SigningRequest
from certsmith.pki import PKIError
from certsmith.pki.signing import IssuedCertificate, IssuerURLs, self_sign


@dataclass(frozen=True)
class SelfSignedSigner:
    urls: IssuerURLs

    def sign(self, request: SigningRequest) -> IssuedCertificate:
        try:
            return self_sign(request.template, request.key(), request.now, self.urls)
        except PKIError as error:
            raise IssuerNotReadyError("InvalidRequest", str(error)) from None
