"""The steps a plan can hand to the I/O layer, and what a signing step hands back."""

from __future__ import annotations

import datetime
from collections.abc import Hashable
from dataclasses import dataclass, field

from certsmith.issuers import (
    IssuerId,
    Pending,
    RenewalInfoSource,
    Signer,
    SigningFailedError,
    SigningRequest,
)
from certsmith.issuers.acme.accounts import Registration
from certsmith.pki.keys import PrivateKey
from certsmith.pki.signing import IssuedCertificate
from certsmith.renewal_info import RenewalInfo


@dataclass(frozen=True)
class SignStep:
    """Run `signer` for `request` in the lane of issuer `lane`, for the object `owner`."""

    lane: IssuerId
    address: str
    """The CA the step talks to, named in the issuer's health."""
    owner: Hashable
    signer: Signer
    request: SigningRequest
    basis: Hashable
    """What the request was made from (for a Certificate: its generation, its Secret's resourceVersion
    and the lane): a result made from another basis is not used, so one that waited unsettled while
    the Secret changed (or another issuer took the name) is never written later."""


@dataclass(frozen=True)
class RegisterStep:
    """Register the issuer's ACME account: the issuer's one probe of its CA."""

    lane: IssuerId
    address: str
    owner: Hashable
    registration: Registration


@dataclass(frozen=True)
class RenewalInfoStep:
    """Ask the CA for the renewal information (ACME ARI) of the certificate `previous` names. It runs
    in the issuer's ARI lane (one request at a time per issuer), never delaying the issuer's signing
    steps."""

    lane: IssuerId
    address: str
    owner: Hashable
    source: RenewalInfoSource
    previous: RenewalInfo
    """What is known so far (the window is kept if the request fails)."""
    interval: datetime.timedelta | None
    """certsmith run --acme-ari-interval, if set."""


Step = SignStep | RegisterStep | RenewalInfoStep

RESULT_KEPT = datetime.timedelta(hours=1)
"""How long a signing step's result may wait for its owner's reconcile (see `Signed.usable`): long
enough for a worker queue's backlog after a restart (100,000 Certificates take 20 minutes), as a
finalized ACME order's key is in memory only and a dropped result means a new order."""

KEY_GENERATION_LANE: IssuerId = ("KeyGeneration", ("", "RSA"))
"""The lane where Certificates of issuers that only compute (self-signed, CA) are signed when their
new key is slow to make (RSA: ~50 ms of CPU at 2048 bits, against ~0.02 ms for ECDSA P-256), so that
those keys take at most its threads while the reconcile workers go on with the rest."""


@dataclass(frozen=True)
class Signed:
    """A signing step's result, kept for its owner's next reconcile."""

    result: IssuedCertificate | Pending | SigningFailedError
    key: PrivateKey | None = field(repr=False)
    """The certificate's private key, made in memory by the request (None for a CSR's request)."""
    basis: Hashable
    made_at: datetime.datetime

    def usable(self, basis: Hashable, now: datetime.datetime) -> bool:
        """Whether a reconcile with `basis` may act on this result: made from the same basis, recently,
        and not an expired certificate. Its owner is queued when it is made, so a result left unused
        for `RESULT_KEPT` was passed over (the owner found nothing to issue meanwhile); acting on it
        later would write a certificate signed back then."""
        if isinstance(self.result, IssuedCertificate) and self.result.certificate.not_valid_after_utc <= now:
            return False
        return self.basis == basis and now - self.made_at <= RESULT_KEPT

    def require_key(self) -> PrivateKey:
        """The key the certificate was signed for; only a Certificate's signing step has one."""
        if self.key is None:
            raise RuntimeError("a signing step for a CSR has no private key")
        return self.key
