"""The SelfSigned issuer: each certificate signed by its own key."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from certsmith.issuers import IssuerNotReadyError
from certsmith.pki import PKIError
from certsmith.pki.keys import PrivateKey
from certsmith.pki.request import CertificateTemplate
from certsmith.pki.signing import IssuedCertificate, IssuerURLs, self_sign


@dataclass(frozen=True)
class SelfSignedSigner:
    urls: IssuerURLs

    def sign(
        self, request: CertificateTemplate, key: PrivateKey, now: datetime.datetime
    ) -> IssuedCertificate:
        try:
            return self_sign(request, key, now, self.urls)
        except PKIError as error:
            raise IssuerNotReadyError("InvalidRequest", str(error)) from None
