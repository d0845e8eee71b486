"""Go's duration syntax ("2160h", "1h30m", "90.5s"), as Kubernetes and cert-manager users write it."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

from certsmith.api import SpecError

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_WHOLE = re.compile(rf"(?:{_PART.pattern})+")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> datetime.timedelta:
    """Parse a Go duration; raises ValueError naming the text."""
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"{text!r} is not a Go duration such as '2160h' or '1h30m'")
    return datetime.timedelta(
        seconds=sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in _PART.findall(text))
    )


def format_duration(duration: datetime.timedelta) -> str:
    """Whole seconds in Go's style: 2160h0m0s."""
    seconds = int(duration.total_seconds())
    return f"{seconds // 3600}h{seconds % 3600 // 60}m{seconds % 60}s"


def spec_duration(spec: Mapping[str, Any], name: str) -> datetime.timedelta | None:
    """The Go duration in `spec[name]`, None when unset."""
    text = spec.get(name)
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as error:
        raise SpecError(name, str(error)) from None
