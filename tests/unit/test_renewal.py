"""Renewal times and back-off, with fixed times."""

from __future__ import annotations

import datetime
import re

import pytest

from certsmith.api.durations import format_duration, parse_duration
from certsmith.renewal import BackoffSettings, renewal_time

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
END = START + datetime.timedelta(days=90)


def test_default_renews_at_two_thirds_of_the_actual_lifetime() -> None:
    assert renewal_time(START, END) == START + datetime.timedelta(days=60)


def test_renew_before_and_percentage() -> None:
    assert renewal_time(START, END, renew_before=datetime.timedelta(days=30)) == END - datetime.timedelta(
        days=30
    )
    assert renewal_time(START, END, renew_before_percentage=10) == END - datetime.timedelta(days=9)


def test_renew_before_longer_than_an_issuer_shortened_lifetime_falls_back_to_two_thirds() -> None:
    short_end = START + datetime.timedelta(hours=1)
    assert renewal_time(
        START, short_end, renew_before=datetime.timedelta(hours=2)
    ) == START + datetime.timedelta(minutes=40)


def test_renewal_time_is_truncated_to_the_second() -> None:
    end = START + datetime.timedelta(seconds=10)
    assert renewal_time(START, end).microsecond == 0


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = BackoffSettings(datetime.timedelta(minutes=1), datetime.timedelta(minutes=10))
    delays = [backoff.delay(n).total_seconds() / 60 for n in range(7)]
    assert delays == [0, 1, 2, 4, 8, 10, 10]
    assert backoff.delay(10_000) == datetime.timedelta(minutes=10)


def test_go_durations() -> None:
    assert parse_duration("2160h") == datetime.timedelta(days=90)
    assert parse_duration("1h30m") == datetime.timedelta(minutes=90)
    assert parse_duration("59m55s") == datetime.timedelta(minutes=59, seconds=55)
    assert parse_duration("1.5h") == datetime.timedelta(minutes=90)
    assert parse_duration("500ms") == datetime.timedelta(milliseconds=500)
    assert format_duration(datetime.timedelta(hours=25, seconds=3)) == "25h0m3s"


@pytest.mark.parametrize("bad", ["", "90", "1 h", "1d", "h"])
def test_malformed_go_duration_is_named_in_the_error(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        parse_duration(bad)
