"""When to renew, and how long to wait after a failure. Pure; the caller supplies the clock."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from certsmith.flags import flag

DEFAULT_RENEWAL_FRACTION = 2 / 3
"""Without renewBefore/renewBeforePercentage, renew when this much of the actual lifetime has passed."""


@dataclass(frozen=True)
class BackoffSettings:
    """Delay after the n-th consecutive failure: `initial` doubled (n-1) times, at most `maximum`.

    cert-manager waits 1h doubling to 32h; a minute doubling to an hour finds a fixed problem sooner
    and still costs at most a few dozen attempts a day.
    """

    initial: datetime.timedelta = field(
        default=datetime.timedelta(minutes=1),
        metadata=flag(
            "--backoff-initial",
            metavar="DURATION",
            help="wait after a first failed issuance, doubled per failure",
        ),
    )
    maximum: datetime.timedelta = field(
        default=datetime.timedelta(hours=1),
        metadata=flag(
            "--backoff-max", metavar="DURATION", help="longest wait between failed issuance attempts"
        ),
    )

    def delay(self, failures: int) -> datetime.timedelta:
        if failures <= 0:
            return datetime.timedelta(0)
        delay: datetime.timedelta = self.initial * 2 ** min(failures - 1, 32)
        return min(delay, self.maximum)


def renewal_time(
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    renew_before: datetime.timedelta | None = None,
    renew_before_percentage: int | None = None,
) -> datetime.datetime:
    """The moment to renew a certificate valid from `not_before` to `not_after`, to the second.

    Works on the actual lifetime, not the requested one: an issuer may have shortened it. A
    renewBefore at least as long as the actual lifetime would mean renewing at once, forever; the
    default fraction applies instead.
    """
    lifetime = not_after - not_before
    if renew_before is not None:
        ahead = renew_before
    elif renew_before_percentage is not None:
        ahead = lifetime * renew_before_percentage / 100
    else:
        ahead = lifetime * (1 - DEFAULT_RENEWAL_FRACTION)
    if ahead >= lifetime:
        ahead = lifetime * (1 - DEFAULT_RENEWAL_FRACTION)
    return (not_after - ahead).replace(microsecond=0)
