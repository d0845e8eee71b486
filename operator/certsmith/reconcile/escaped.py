"""Failures that escape a reconcile — the API server refused (403, 429, 5xx) or did not answer — are
recorded in the Certificate's status as any failed attempt is (`failedIssuanceAttempts`,
`lastFailureTime`, the reason in the Issuing condition), never only in memory: the policy's back-off
reads them, so after a restart the next attempt is at the time the status says."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from certsmith.api.status import condition, precise_timestamp, timestamp
from certsmith.renewal import BackoffSettings


def escaped_failure(
    body: Mapping[str, Any], reason: str, message: str, now: datetime.datetime, backoff: BackoffSettings
) -> tuple[dict[str, Any], datetime.datetime]:
    """The status patch recording one more failed attempt of the Certificate `body`, and when the next
    attempt is due (as the policy will compute it from that status)."""
    current = body.get("status") or {}
    previous = current.get("conditions") or []
    generation = (body.get("metadata") or {}).get("generation")
    failures = int(current.get("failedIssuanceAttempts") or 0) + 1
    retry_at = now + backoff.delay(failures)
    kept = [dict(item) for item in previous if item.get("type") != "Issuing"]
    if not any(item.get("type") == "Ready" for item in kept):
        kept.insert(0, condition("Ready", False, reason, message, generation, previous, now))
    issuing = condition(
        "Issuing",
        True,
        reason,
        f"attempt {failures} failed: {message}; next attempt at {timestamp(retry_at)}",
        generation,
        previous,
        now,
    )
    status = {
        "conditions": [*kept, issuing],
        "failedIssuanceAttempts": failures,
        "lastFailureTime": precise_timestamp(now),
    }
    return status, retry_at
