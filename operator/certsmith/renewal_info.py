"""ACME Renewal Information (ARI, RFC 9773): what a CA says about when to renew one certificate, and
when to ask it again. Pure; the caller supplies the clock and does the GET.

A CA answers `GET {renewalInfo}/{certID}` with a suggested window. certsmith renews at a time chosen
uniformly inside it (RFC 9773 section 4.2), derived from the certID and the window rather than drawn
at random, so that every replica, and this one after a restart, chooses the same time from the same
answer and the status does not change on every reconcile. A window already past means "renew now".

The state lives in the Certificate's status (`status.renewalInformation`), so a restart neither
forgets a window nor asks the CA again before it is due.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from cryptography import x509

MIN_INTERVAL = datetime.timedelta(minutes=1)
MAX_INTERVAL = datetime.timedelta(days=1)
DEFAULT_INTERVAL = datetime.timedelta(hours=6)
"""Between two requests for one certificate when the CA names no Retry-After (RFC 9773 section
4.3.3 suggests six hours)."""
FIRST_FETCH_SPREAD = datetime.timedelta(hours=1)
"""The first request for a certificate comes at a time spread over this (or the interval, if shorter),
so that certificates issued together do not all ask at once; the spread starts as long after the
notBefore, since CAs backdate it (Let's Encrypt by an hour): spread from the notBefore itself, every
first request of a burst would be due at once."""
ERROR_BACKOFF_INITIAL = datetime.timedelta(minutes=1)
"""The wait after a failed request, doubled per consecutive failure, at most the normal interval."""


class RenewalInfoError(ValueError):
    """The CA's renewalInfo answer cannot be used; the message says what is wrong with it."""


@dataclass(frozen=True)
class SuggestedWindow:
    start: datetime.datetime
    end: datetime.datetime


@dataclass(frozen=True)
class RenewalInfo:
    """What is known of one certificate's renewal information, and when to ask again."""

    cert_id: str
    next_update: datetime.datetime
    window: SuggestedWindow | None = None
    """None until the CA has answered once."""
    explanation_url: str | None = None
    retrieved: datetime.datetime | None = None
    failures: int = 0
    """Consecutive failed requests since the last answer."""
    error: str | None = None
    """The last failure, while it is the latest outcome."""

    def renewal_time(self) -> datetime.datetime | None:
        """The time chosen inside the window; None before the CA has answered."""
        return chosen_time(self.cert_id, self.window) if self.window else None

    def due(self, now: datetime.datetime) -> bool:
        return now >= self.next_update


def cert_id(certificate: x509.Certificate) -> str | None:
    """The certificate's ARI identifier (RFC 9773 section 4.1): base64url of the keyIdentifier of its
    Authority Key Identifier, ".", base64url of the DER bytes of its serial number (with the leading
    zero a positive number whose top bit is set needs). None if it has no keyIdentifier."""
    try:
        aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    if not aki.key_identifier:
        return None
    serial = certificate.serial_number
    serial_der = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
    return f"{_b64url(aki.key_identifier)}.{_b64url(serial_der)}"


def parse_answer(body: object) -> tuple[SuggestedWindow, str | None]:
    """The window and explanation URL of a renewalInfo answer; RenewalInfoError if it is not one."""
    if not isinstance(body, Mapping):
        raise RenewalInfoError(f"the renewalInfo answer is not a JSON object: {str(body)[:100]!r}")
    window = body.get("suggestedWindow")
    if not isinstance(window, Mapping):
        raise RenewalInfoError("the renewalInfo answer has no suggestedWindow object")
    start = _instant(window.get("start"), "suggestedWindow.start")
    end = _instant(window.get("end"), "suggestedWindow.end")
    if end <= start:
        raise RenewalInfoError(
            f"the renewalInfo answer's suggestedWindow ends ({end.isoformat()}) before it starts "
            f"({start.isoformat()})"
        )
    explanation = body.get("explanationURL")
    return SuggestedWindow(start, end), str(explanation) if isinstance(explanation, str) else None


def interval(
    retry_after: datetime.timedelta | None, override: datetime.timedelta | None
) -> datetime.timedelta:
    """The wait until the next request: `override` if set (certsmith run --acme-ari-interval), else
    the CA's Retry-After clamped to [1 minute, 1 day], else 6 hours."""
    if override is not None:
        return override
    if retry_after is None:
        return DEFAULT_INTERVAL
    return min(max(retry_after, MIN_INTERVAL), MAX_INTERVAL)


def error_backoff(failures: int, override: datetime.timedelta | None) -> datetime.timedelta:
    """The wait after the n-th consecutive failed request: from 1 minute (or the override, if
    shorter) doubled per failure, at most the normal interval."""
    longest = interval(None, override)
    initial = min(ERROR_BACKOFF_INITIAL, longest)
    delay: datetime.timedelta = initial * 2 ** min(max(failures - 1, 0), 32)
    return min(delay, longest)


def first_fetch(cert: str, not_before: datetime.datetime, override: datetime.timedelta | None) -> RenewalInfo:
    """A certificate not asked about yet: its first request is due at a time spread over the second
    hour after its notBefore (`FIRST_FETCH_SPREAD`), the same for the same certificate (a restart
    does not move it)."""
    spread = min(FIRST_FETCH_SPREAD, interval(None, override))
    return RenewalInfo(cert, not_before + spread * (1 + _fraction(f"{cert}/first")))


def answered(
    cert: str,
    body: object,
    retry_after: datetime.timedelta | None,
    now: datetime.datetime,
    override: datetime.timedelta | None,
) -> RenewalInfo:
    """The state after the CA answered `body`; RenewalInfoError if it cannot be used."""
    window, explanation = parse_answer(body)
    return RenewalInfo(cert, now + interval(retry_after, override), window, explanation, now)


def failed(
    previous: RenewalInfo | None,
    cert: str,
    message: str,
    now: datetime.datetime,
    override: datetime.timedelta | None,
) -> RenewalInfo:
    """The state after a request failed: the last window is kept, the next request backs off."""
    kept = previous if previous is not None and previous.cert_id == cert else RenewalInfo(cert, now)
    failures = kept.failures + 1
    return replace(
        kept, next_update=now + error_backoff(failures, override), failures=failures, error=message
    )


def chosen_time(cert: str, window: SuggestedWindow) -> datetime.datetime:
    """A time uniformly distributed inside [start, end), fixed for this certificate and window, to
    the second (rounded up, so never before the start) unless the window is narrower than that."""
    seed = f"{cert}/{_stamp(window.start)}/{_stamp(window.end)}"
    chosen = window.start + (window.end - window.start) * _fraction(seed)
    whole = chosen.replace(microsecond=0)
    rounded = whole + datetime.timedelta(seconds=1) if whole < chosen else whole
    return rounded if rounded < window.end else chosen


def to_status(info: RenewalInfo) -> dict[str, Any]:
    """status.renewalInformation; absent values are None (removed by the status merge patch)."""
    window = info.window
    return {
        "certID": info.cert_id,
        "suggestedWindow": {"start": _stamp(window.start), "end": _stamp(window.end)} if window else None,
        "explanationURL": info.explanation_url,
        "retrieved": _stamp(info.retrieved) if info.retrieved else None,
        "nextUpdate": _stamp(info.next_update),
        "failures": info.failures or None,
        "error": info.error,
    }


def from_status(status: Mapping[str, Any] | None) -> RenewalInfo | None:
    """status.renewalInformation as written by `to_status`; None if absent or unreadable (the CA is
    then asked again, which is always safe)."""
    if not status or not status.get("certID"):
        return None
    try:
        window_status = status.get("suggestedWindow")
        window = None
        if window_status:
            window = SuggestedWindow(
                _instant(window_status.get("start"), "start"), _instant(window_status.get("end"), "end")
            )
        retrieved = status.get("retrieved")
        return RenewalInfo(
            cert_id=str(status["certID"]),
            next_update=_instant(status.get("nextUpdate"), "nextUpdate"),
            window=window,
            explanation_url=status.get("explanationURL"),
            retrieved=_instant(retrieved, "retrieved") if retrieved else None,
            failures=int(status.get("failures") or 0),
            error=status.get("error"),
        )
    except (RenewalInfoError, TypeError, ValueError):
        return None


def describe_window(info: RenewalInfo) -> str:
    """The window in words, for reasons and `certsmith status`."""
    if info.window is None:
        return "no window yet"
    text = f"window {_stamp(info.window.start)} to {_stamp(info.window.end)}"
    return f"{text}, explanation {info.explanation_url}" if info.explanation_url else text


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _instant(value: object, field: str) -> datetime.datetime:
    """An RFC 3339 time, to the millisecond, as the status keeps it (Go writes up to nine fractional
    digits; Python reads six)."""
    if not isinstance(value, str):
        raise RenewalInfoError(f"{field} is not an RFC 3339 time: {value!r}")
    try:
        parsed = datetime.datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()))
    except ValueError:
        raise RenewalInfoError(f"{field} is not an RFC 3339 time: {value[:60]!r}") from None
    if parsed.tzinfo is None:
        raise RenewalInfoError(f"{field} has no time zone: {value[:60]!r}")
    parsed = parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)
    return parsed.astimezone(datetime.UTC)


def _stamp(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC, with milliseconds only when there are any."""
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.astimezone(datetime.UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def _fraction(seed: str) -> float:
    """A number in [0, 1) fixed by `seed`, uniformly spread over seeds."""
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") / 2**64


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
