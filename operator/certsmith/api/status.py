"""Rendering status: conditions that keep their transition time while nothing changes."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any


def timestamp(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC, to the second, as Kubernetes writes times."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def precise_timestamp(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC, to the microsecond (as Kubernetes' MicroTime), where order within a second
    matters: a failure and an issuer that became ready in the same second."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def condition(
    kind: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None,
    previous: Sequence[Mapping[str, Any]],
    now: datetime.datetime,
) -> dict[str, Any]:
    """A condition; its lastTransitionTime moves only when its status does."""
    value = "True" if status else "False"
    earlier = next((item for item in previous if item.get("type") == kind), None)
    transition = (
        earlier["lastTransitionTime"] if earlier and earlier.get("status") == value else timestamp(now)
    )
    rendered: dict[str, Any] = {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    if generation is not None:
        rendered["observedGeneration"] = generation
    return rendered


def status_differs(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """True if a merge patch of `desired` onto `current` would change anything (None deletes)."""
    return any(
        (key in current) if value is None else current.get(key) != value for key, value in desired.items()
    )


def is_ready_for_its_spec(body: Mapping[str, Any]) -> bool:
    """Whether the object says Ready=True for the generation of its spec: nothing is known to be left
    to do for it (its renewal still has to be scheduled)."""
    generation = (body.get("metadata") or {}).get("generation")
    return any(
        item.get("type") == "Ready"
        and item.get("status") == "True"
        and item.get("observedGeneration") == generation
        for item in (body.get("status") or {}).get("conditions") or []
    )
