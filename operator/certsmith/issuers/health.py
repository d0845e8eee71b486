"""Each issuer's health: one failure domain per issuer.

A CA that does not answer (connection refused, timeouts) is counted per issuer. After
`UNREACHABLE_AFTER` such failures in a row the issuer is unreachable: its Certificates wait on it
(`CAUnreachable`) instead of each trying the network, and one probe, the account registration, tries
again with back-off. Any answer from the CA, even a refusal, makes it reachable again. Memory only:
after a restart the first requests find out again.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from dataclasses import dataclass

from certsmith.api.status import timestamp
from certsmith.issuers import IssuerId, IssuerNotReadyError

UNREACHABLE_AFTER = 2
"""Failures to reach the CA in a row that make an issuer unreachable."""
FIRST_PROBE = datetime.timedelta(seconds=5)
LAST_PROBE = datetime.timedelta(minutes=5)
"""The probe's back-off: FIRST_PROBE after the first failure, doubling, at most LAST_PROBE."""
CA_UNREACHABLE = "CAUnreachable"


@dataclass(frozen=True)
class Domain:
    """What is known of one issuer's CA: consecutive failures to reach it, and the last one."""

    failures: int
    address: str
    last_error: str
    failed_at: datetime.datetime

    @property
    def unreachable(self) -> bool:
        return self.failures >= UNREACHABLE_AFTER

    @property
    def next_attempt(self) -> datetime.datetime:
        delay = min(FIRST_PROBE * (1 << max(self.failures - 1, 0)), LAST_PROBE)
        return self.failed_at + delay


class IssuerHealth:
    """Written by the I/O layer's threads after each CA request, read by reconciles; thread-safe."""

    def __init__(self, clock: Callable[[], datetime.datetime]) -> None:
        self._clock = clock
        self._domains: dict[IssuerId, Domain] = {}
        self._lock = threading.Lock()

    def failed(self, issuer: IssuerId, address: str, error: str) -> bool:
        """Count a failure to reach `address`; True if the issuer has just become unreachable."""
        with self._lock:
            before = self._domains.get(issuer)
            failures = (before.failures if before else 0) + 1
            self._domains[issuer] = Domain(failures, address, error, self._clock())
            return failures == UNREACHABLE_AFTER

    def answered(self, issuer: IssuerId) -> bool:
        """The CA answered; True if the issuer was unreachable until now."""
        with self._lock:
            before = self._domains.pop(issuer, None)
        return before is not None and before.unreachable

    def domain(self, issuer: IssuerId) -> Domain | None:
        with self._lock:
            return self._domains.get(issuer)

    def refusal(self, issuer: IssuerId) -> IssuerNotReadyError | None:
        """Why the issuer's Certificates must wait, while it is unreachable."""
        domain = self.domain(issuer)
        if domain is None or not domain.unreachable:
            return None
        return IssuerNotReadyError(
            CA_UNREACHABLE,
            f"the CA at {domain.address} did not answer {domain.failures} times in a row (last: "
            f"{domain.last_error}); one probe tries again at {timestamp(domain.next_attempt)}, "
            f"its certificates wait until the CA answers",
        )

    def forget(self, issuer: IssuerId) -> None:
        with self._lock:
            self._domains.pop(issuer, None)
