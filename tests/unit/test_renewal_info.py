"""ACME renewal information (RFC 9773): certIDs, answers, intervals and the chosen time, on a fixed
clock."""

from __future__ import annotations

import datetime
import statistics

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certsmith.renewal_info import (
    DEFAULT_INTERVAL,
    MAX_INTERVAL,
    MIN_INTERVAL,
    RenewalInfo,
    RenewalInfoError,
    SuggestedWindow,
    answered,
    cert_id,
    chosen_time,
    error_backoff,
    failed,
    first_fetch,
    from_status,
    interval,
    parse_answer,
    to_status,
)

NOW = datetime.datetime(2026, 12, 7, 1, 0, tzinfo=datetime.UTC)
WINDOW = SuggestedWindow(NOW + datetime.timedelta(days=59), NOW + datetime.timedelta(days=61))


def certificate(serial: int, key_identifier: bytes | None) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ari.example")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=90))
    )
    if key_identifier is not None:
        aki = x509.AuthorityKeyIdentifier(key_identifier, None, None)
        builder = builder.add_extension(aki, critical=False)
    return builder.sign(key, hashes.SHA256())


def test_cert_id_is_the_example_of_rfc_9773() -> None:
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    assert cert_id(certificate(0x87654321, aki)) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def test_cert_id_of_a_serial_without_the_top_bit_has_no_leading_zero() -> None:
    assert cert_id(certificate(0x1234, b"\x01\x02")) == "AQI.EjQ"


def test_a_certificate_without_authority_key_identifier_has_no_cert_id() -> None:
    assert cert_id(certificate(5, None)) is None


def test_pebbles_answer_is_read_to_the_millisecond() -> None:
    body = {
        "suggestedWindow": {"start": "2026-12-07T01:00:00.123456789Z", "end": "2026-12-09T01:00:00Z"},
        "explanationURL": "https://ca.example/why",
    }
    window, explanation = parse_answer(body)
    assert window.start == NOW + datetime.timedelta(milliseconds=123)
    assert window.end == NOW + datetime.timedelta(days=2)
    assert explanation == "https://ca.example/why"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ([], "not a JSON object"),
        ({}, "no suggestedWindow"),
        ({"suggestedWindow": {"start": "yesterday", "end": "2026-12-09T01:00:00Z"}}, "suggestedWindow.start"),
        ({"suggestedWindow": {"start": "2026-12-09T01:00:00", "end": "2026-12-10T01:00:00Z"}}, "time zone"),
        ({"suggestedWindow": {"start": "2026-12-09T01:00:00Z", "end": "2026-12-08T01:00:00Z"}}, "ends"),
    ],
)
def test_an_unusable_answer_names_what_is_wrong(body: object, named: str) -> None:
    with pytest.raises(RenewalInfoError, match=named):
        parse_answer(body)


def test_retry_after_is_clamped_to_a_minute_and_a_day_and_six_hours_without_one() -> None:
    assert interval(datetime.timedelta(seconds=1), None) == MIN_INTERVAL
    assert interval(datetime.timedelta(days=30), None) == MAX_INTERVAL
    assert interval(datetime.timedelta(hours=6), None) == datetime.timedelta(hours=6)
    assert interval(None, None) == DEFAULT_INTERVAL
    override = datetime.timedelta(seconds=2)
    assert interval(datetime.timedelta(hours=6), override) == override


def test_errors_back_off_exponentially_up_to_the_interval() -> None:
    delays = [error_backoff(n, None).total_seconds() / 60 for n in range(1, 12)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 360, 360]
    assert error_backoff(1, datetime.timedelta(seconds=2)) == datetime.timedelta(seconds=2)


def test_a_failure_keeps_the_last_window_and_counts() -> None:
    cert = "a.b"
    ok = answered(cert, {"suggestedWindow": _window_json(WINDOW)}, datetime.timedelta(hours=6), NOW, None)
    assert ok.next_update == NOW + datetime.timedelta(hours=6)
    once = failed(ok, cert, "the CA answered 500", NOW, None)
    twice = failed(once, cert, "the CA answered 500", NOW, None)
    assert (once.window, once.failures, once.next_update) == (WINDOW, 1, NOW + datetime.timedelta(minutes=1))
    assert (twice.failures, twice.next_update) == (2, NOW + datetime.timedelta(minutes=2))
    again = answered(cert, {"suggestedWindow": _window_json(WINDOW)}, None, NOW, None)
    assert (again.failures, again.error) == (0, None)


def test_the_chosen_time_is_inside_the_window_fixed_per_certificate_and_uniform() -> None:
    times = [chosen_time(f"aki.{serial:x}", WINDOW) for serial in range(2000)]
    assert all(WINDOW.start <= moment < WINDOW.end for moment in times)
    assert chosen_time("aki.1", WINDOW) == chosen_time("aki.1", WINDOW)
    fractions = [(moment - WINDOW.start) / (WINDOW.end - WINDOW.start) for moment in times]
    assert 0.47 < statistics.mean(fractions) < 0.53
    quarters = [sum(1 for f in fractions if q / 4 <= f < (q + 1) / 4) for q in range(4)]
    assert all(430 < count < 570 for count in quarters), quarters


def test_a_window_narrower_than_a_second_is_not_left_by_rounding() -> None:
    start = NOW + datetime.timedelta(milliseconds=793)
    narrow = SuggestedWindow(start, start + datetime.timedelta(seconds=1))
    assert all(start <= chosen_time(f"aki.{serial}", narrow) < narrow.end for serial in range(200))


def test_a_window_in_the_past_is_due_at_once() -> None:
    past = SuggestedWindow(NOW - datetime.timedelta(hours=1), NOW - datetime.timedelta(hours=1, seconds=-1))
    info = RenewalInfo("a.b", NOW + DEFAULT_INTERVAL, past, None, NOW)
    chosen = info.renewal_time()
    assert chosen is not None
    assert chosen <= NOW


def test_first_fetches_of_certificates_issued_together_are_spread_over_the_hour_after_issuance() -> None:
    """Let's Encrypt's notBefore is an hour before the issuance: the spread starts an hour later."""
    hour = datetime.timedelta(hours=1)
    issued = NOW + hour
    firsts = [first_fetch(f"aki.{serial:x}", NOW, None).next_update for serial in range(500)]
    assert all(issued <= moment < issued + hour for moment in firsts)
    assert max(firsts) - min(firsts) > datetime.timedelta(minutes=50)
    assert len({moment.minute for moment in firsts}) == 60
    short = first_fetch("aki.1", NOW, datetime.timedelta(seconds=2)).next_update
    assert NOW + datetime.timedelta(seconds=2) <= short < NOW + datetime.timedelta(seconds=4)


def test_the_status_round_trips_and_a_broken_one_is_asked_again() -> None:
    info = answered(
        "a.b",
        {"suggestedWindow": _window_json(WINDOW), "explanationURL": "https://ca.example/why"},
        datetime.timedelta(hours=6),
        NOW,
        None,
    )
    shown = to_status(info)
    assert shown["suggestedWindow"] == {"start": "2027-02-04T01:00:00Z", "end": "2027-02-06T01:00:00Z"}
    assert from_status(shown) == info
    assert from_status({"certID": "a.b", "nextUpdate": "soon"}) is None
    assert from_status(None) is None


def test_requests_per_certificate_per_day_at_the_default_interval() -> None:
    """Pebble and Let's Encrypt answer with Retry-After 21600: four requests a day per certificate."""
    day = datetime.timedelta(days=1)
    moment = first_fetch("a.b", NOW, None).next_update
    end, requests = moment + day, 0
    answer = {"suggestedWindow": _window_json(WINDOW)}
    while moment < end:
        requests += 1
        moment = answered("a.b", answer, datetime.timedelta(hours=6), moment, None).next_update
    assert requests == 4


def _window_json(window: SuggestedWindow) -> dict[str, str]:
    return {"start": window.start.isoformat(), "end": window.end.isoformat()}
