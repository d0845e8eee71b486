"""The CAA pre-flight decision (RFC 8659): pure, records as literals."""

from __future__ import annotations

import time

import pytest

from certsmith.issuers.acme.caa import CAALookupError, Record, Relevant, forbidden, relevant_records
from certsmith_devtools.kit import free_port

OWNER = "example.com."
CA = ("ca.test",)


def _records(*records: tuple[int, str, str]) -> Relevant:
    return Relevant(OWNER, tuple(Record(*record) for record in records))


@pytest.mark.parametrize(
    ("identifier", "records"),
    [
        ("www.example.com", None),
        ("www.example.com", _records((0, "issue", "ca.test"))),
        ("www.example.com", _records((0, "issue", "other.test"), (0, "issue", "CA.test.; account=1"))),
        ("www.example.com", _records((0, "iodef", "mailto:x@example.com"))),
        ("www.example.com", _records((0, "issuewild", ";"))),
        ("*.example.com", _records((0, "issue", "other.test"), (0, "issuewild", "ca.test"))),
        ("*.example.com", _records((0, "issue", "ca.test"))),
    ],
)
def test_records_that_allow_the_ca(identifier: str, records: Relevant | None) -> None:
    assert forbidden(identifier, records, CA) is None


@pytest.mark.parametrize(
    ("identifier", "records", "says"),
    [
        ("www.example.com", _records((0, "issue", "other.test")), 'example.com. CAA 0 issue "other.test"'),
        ("www.example.com", _records((0, "issue", ";")), 'example.com. CAA 0 issue ";"'),
        ("*.example.com", _records((0, "issue", "ca.test"), (0, "issuewild", ";")), "issuewild"),
        ("www.example.com", _records((128, "future", "x"), (0, "issue", "ca.test")), "critical and unknown"),
    ],
)
def test_records_that_forbid_the_ca_are_named_with_the_fix(
    identifier: str, records: Relevant, says: str
) -> None:
    reason = forbidden(identifier, records, CA)
    assert reason is not None
    assert says in reason
    assert identifier in reason


def test_a_ca_of_unknown_identity_is_left_to_judge_for_itself() -> None:
    assert forbidden("www.example.com", _records((0, "issue", "other.test")), ()) is None


def test_a_nameserver_that_does_not_answer_is_a_lookup_error_within_the_deadline() -> None:
    """Nothing listens on the port: the lookup fails at once or at the deadline, naming the name."""
    silent = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(CAALookupError, match=r"www\.example\.com"):
        relevant_records("www.example.com", (silent,), started + 1.0)
    assert time.monotonic() - started < 3.0
