"""The ACME order state machine and solver choice: pure, no network (CA answers are JSON literals)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from certsmith.api.acme import parse_acme_spec, solver_for
from certsmith.issuers.acme.http01 import HTTP01Responder
from certsmith.issuers.acme.orders import (
    Answer,
    Download,
    Finalize,
    NewOrder,
    Order,
    Present,
    Refresh,
    Wait,
    abandoned,
    answered,
    failure,
    finalized,
    fold_order,
    next_step,
    order_from_status,
    order_status,
    presented,
    presented_http01_tokens,
    presents_http01,
)

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
SECOND = datetime.timedelta(seconds=1)
ORDER = "https://ca.test/order/1"
NAMES = ("a.example.com", "*.example.com")


def _authz(name: str, status: str = "pending", wildcard: bool = False, error: Any = None) -> dict[str, Any]:
    url = f"https://ca.test/chall/{name}"
    challenge: dict[str, Any] = {"type": "dns-01", "url": url, "token": f"t-{name}"}
    challenge["status"] = "invalid" if error else status
    if error:
        challenge["error"] = error
    return {
        "identifier": {"type": "dns", "value": name},
        "status": "invalid" if error else status,
        "wildcard": wildcard,
        "challenges": [{**challenge, "type": "http-01", "url": challenge["url"] + "/h"}, challenge],
    }


def _order_body(status: str = "pending") -> dict[str, Any]:
    return {
        "status": status,
        "identifiers": [{"type": "dns", "value": name} for name in NAMES],
        "authorizations": ["https://ca.test/authz/a", "https://ca.test/authz/w"],
        "finalize": f"{ORDER}/finalize",
    }


def _choose(identifier: str) -> str:
    return "dns-01"


def _fold(
    previous: Order | None, status: str = "pending", at: datetime.datetime = NOW, **authorizations: Any
) -> Order:
    answers = {
        "https://ca.test/authz/a": authorizations.get("a", _authz("example.com")),
        "https://ca.test/authz/w": authorizations.get("w", _authz("example.com", wildcard=True)),
    }
    return fold_order(ORDER, _order_body(status), answers, previous, _choose, at)


def test_the_happy_path_presents_saves_answers_polls_and_finalizes() -> None:
    assert isinstance(next_step(None, NAMES, NOW), NewOrder)
    order = _fold(None)
    assert [a.identifier for a in order.authorizations] == ["example.com", "*.example.com"]
    for _ in order.authorizations:
        step = next_step(order, NAMES, NOW)
        assert isinstance(step, Present)
        order = presented(order, step.authorization)
    step = next_step(order, NAMES, NOW)
    assert isinstance(step, Wait), "challenges are saved in the status before the CA is asked"
    assert step.until == NOW
    saved = order_from_status(order_status(order))
    assert saved is not None
    order = saved
    step = next_step(order, NAMES, NOW)
    assert isinstance(step, Answer)
    assert len(step.authorizations) == 2
    for authorization in step.authorizations:
        order = answered(order, authorization, {"status": "processing"})
    assert isinstance(next_step(order, NAMES, NOW), Refresh)
    order = _fold(order)
    waiting = next_step(order, NAMES, NOW)
    assert isinstance(waiting, Wait)
    assert waiting.until == NOW + SECOND
    assert "waiting for example.com (dns-01 pending), *.example.com (dns-01 pending)" in waiting.message
    for poll in range(1, 5):
        assert isinstance(next_step(order, NAMES, NOW + poll * 100 * SECOND), Refresh)
        order = _fold(order, at=NOW + poll * 100 * SECOND)
    assert order.polls == 4
    assert order.next_poll == NOW + 400 * SECOND + 15 * SECOND, "polls of an unchanged order slow down"
    order = _fold(order, "ready", a=_authz("example.com", "valid"), w=_authz("example.com", "valid", True))
    assert isinstance(next_step(order, NAMES, NOW), Finalize)


def test_a_failed_challenge_reports_the_cas_words_and_the_next_attempt_makes_a_new_order() -> None:
    problem = {
        "type": "urn:ietf:params:acme:error:unauthorized",
        "detail": "No TXT record found at _acme-challenge.example.com",
    }
    order = _fold(None, "invalid", w=_authz("example.com", wildcard=True, error=problem))
    reason, message = failure(order, NOW) or ("", "")
    assert reason == "ChallengeFailed"
    assert "dns-01 challenge for *.example.com failed: No TXT record found" in message
    assert "(unauthorized)" in message
    assert next_step(order, NAMES, NOW) == NewOrder("the last order failed")


@pytest.mark.parametrize("challenge_state", ["invalid", "pending"])
def test_a_challenge_that_failed_while_its_authorization_stays_pending_fails_the_attempt_at_once(
    challenge_state: str,
) -> None:
    """step-ca answers a challenge it could not validate with the challenge invalid (a wrong answer) or
    pending with an error (a connection error), and leaves the authorization and the order pending."""
    order = _fold(None)
    for authorization in order.authorizations:
        order = presented(order, authorization)
    saved = order_from_status(order_status(order))
    assert saved is not None
    step = next_step(saved, NAMES, NOW)
    assert isinstance(step, Answer)
    problem = {
        "type": "urn:ietf:params:acme:error:connection",
        "detail": "error doing http GET for url http://example.com:80/.well-known/acme-challenge/t",
    }
    order = answered(saved, step.authorizations[0], {"status": challenge_state, "error": problem})
    assert order.authorizations[0].status == "pending"
    reason, message = failure(order, NOW) or ("", "")
    assert reason == "ChallengeFailed"
    assert message == (
        "dns-01 challenge for example.com failed: error doing http GET for url "
        "http://example.com:80/.well-known/acme-challenge/t (connection)"
    )
    assert next_step(order, NAMES, NOW) == NewOrder("the last order failed")
    kept = order_from_status(order_status(abandoned(order, message)))
    assert kept is not None
    assert failure(kept, NOW) is not None, "the failure survives the status"


def test_a_challenge_still_being_validated_is_no_failure() -> None:
    order = _fold(None)
    order = answered(order, order.authorizations[0], {"status": "processing"})
    assert failure(order, NOW) is None
    assert not isinstance(next_step(order, NAMES, NOW), NewOrder)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"identifiers": ("a.example.com",)}, "the names changed"),
        ({"status": "processing"}, "it was finalized by an earlier attempt, whose key is gone"),
        ({"status": "valid"}, "it was finalized by an earlier attempt, whose key is gone"),
        ({"status": "expired"}, "the order is expired"),
    ],
)
def test_orders_of_no_more_use_are_replaced(change: dict[str, Any], why: str) -> None:
    order = dataclasses.replace(_fold(None), **change)
    assert next_step(order, NAMES, NOW) == NewOrder(why)


def test_a_finalized_order_is_polled_and_downloaded_while_its_key_is_at_hand() -> None:
    ready = _fold(None, "ready", a=_authz("example.com", "valid"), w=_authz("example.com", "valid", True))
    processing = dataclasses.replace(ready, status="processing", next_poll=NOW + SECOND)
    waiting = next_step(processing, NAMES, NOW, key_held=True)
    assert isinstance(waiting, Wait)
    assert waiting.until == NOW + SECOND
    assert isinstance(next_step(processing, NAMES, NOW + SECOND, key_held=True), Refresh)
    valid = dataclasses.replace(processing, status="valid", certificate_url="https://ca.test/cert/1")
    assert isinstance(next_step(valid, NAMES, NOW, key_held=True), Download)
    assert isinstance(next_step(valid, NAMES, NOW), NewOrder), "without the key, a new order"
    assert finalized(processing)
    assert finalized(valid)
    assert not finalized(ready)
    stuck = failure(processing, NOW + datetime.timedelta(minutes=61))
    assert stuck is not None
    assert stuck[0] == "OrderStuck"


def test_an_order_pending_for_over_an_hour_is_abandoned() -> None:
    order = _fold(None)
    assert failure(order, NOW + datetime.timedelta(minutes=59)) is None
    reason, message = failure(order, NOW + datetime.timedelta(minutes=61)) or ("", "")
    assert reason == "OrderStuck"
    assert isinstance(next_step(abandoned(order, message), NAMES, NOW), NewOrder)


def test_a_name_no_solver_answers_is_a_failure_that_says_how_to_fix_it() -> None:
    answers = {
        "https://ca.test/authz/a": _authz("example.com"),
        "https://ca.test/authz/w": _authz("x", wildcard=True),
    }
    order = fold_order(ORDER, _order_body(), answers, None, lambda name: None, NOW)
    reason, message = failure(order, NOW) or ("", "")
    assert reason == "NoSolver"
    assert "spec.acme.solvers" in message


def test_retry_after_is_honoured() -> None:
    later = NOW + datetime.timedelta(minutes=5)
    order = fold_order(ORDER, _order_body(), {}, None, _choose, NOW, retry_after=later)
    assert order.next_poll == later


def test_the_status_round_trip_keeps_everything_and_bad_status_means_no_order() -> None:
    order = presented(_fold(None), _fold(None).authorizations[0])
    restored = order_from_status(order_status(order))
    assert restored == dataclasses.replace(order, saved=True)
    assert order_from_status({"url": ORDER, "state": "pending"}) is None
    assert order_from_status({"url": ORDER, "createdAt": "yesterday"}) is None
    assert order_from_status(None) is None


def test_http01_tokens_are_found_in_a_status_only_while_presented_and_pending() -> None:
    answers = {
        "https://ca.test/authz/a": _authz("example.com"),
        "https://ca.test/authz/w": _authz("www.example.com"),
    }
    order = fold_order(ORDER, _order_body(), answers, None, lambda name: "http-01", NOW)
    status = {"acme": {"order": order_status(order)}}
    assert not presents_http01(status, "t-example.com")
    order = presented(order, order.authorizations[0])
    assert presents_http01({"acme": {"order": order_status(order)}}, "t-example.com")
    assert not presents_http01({"acme": {"order": order_status(order)}}, "t-www.example.com")
    assert not presents_http01({}, "t-example.com")
    assert presented_http01_tokens({"acme": {"order": order_status(order)}}) == {"t-example.com"}
    assert presented_http01_tokens(status) == frozenset()


def test_the_http01_responder_answers_its_own_tokens_then_asks_the_lookup() -> None:
    responder = HTTP01Responder(lambda token: "from-status" if token == "elsewhere" else None)
    responder.present("mine", "mine.thumbprint")
    seen: list[str] = []

    def get(path: str) -> bytes:
        return b"".join(responder({"PATH_INFO": path}, lambda status, headers: seen.append(status)))

    assert get("/.well-known/acme-challenge/mine") == b"mine.thumbprint"
    assert get("/.well-known/acme-challenge/elsewhere") == b"from-status"
    assert get("/.well-known/acme-challenge/unknown") == b"no such challenge\n"
    assert get("/other") == b"no such challenge\n"
    responder.cleanup("mine")
    assert get("/.well-known/acme-challenge/mine") == b"no such challenge\n"
    assert seen == ["200 OK", "200 OK", "404 Not Found", "404 Not Found", "404 Not Found"]


SOLVERS = parse_acme_spec(
    {
        "server": "https://ca.test/dir",
        "privateKeySecretRef": {"name": "account"},
        "solvers": [
            {"http01": {"ingress": {"ingressClassName": "default"}}},
            {"selector": {"dnsZones": ["example.com"]}, "dns01": {"rfc2136": {"nameserver": "zone"}}},
            {"selector": {"dnsZones": ["dev.example.com"]}, "dns01": {"rfc2136": {"nameserver": "dev"}}},
            {"selector": {"dnsNames": ["exact.dev.example.com"]}, "http01": {"ingress": {"class": "exact"}}},
            {"selector": {"matchLabels": {"team": "a"}}, "http01": {"ingress": {"class": "team-a"}}},
        ],
    }
).solvers


@pytest.mark.parametrize(
    ("identifier", "labels", "chosen"),
    [
        ("other.org", {}, 0),
        ("example.com", {}, 1),
        ("www.example.com", {}, 1),
        ("x.dev.example.com", {}, 2),
        ("exact.dev.example.com", {}, 3),
        ("*.dev.example.com", {}, 2),
        ("other.org", {"team": "a"}, 4),
        ("www.example.com", {"team": "a"}, 1),
    ],
)
def test_the_most_specific_solver_wins(identifier: str, labels: dict[str, str], chosen: int) -> None:
    assert solver_for(SOLVERS, identifier, labels) is SOLVERS[chosen]


def test_a_wildcard_is_never_given_an_http01_solver() -> None:
    assert solver_for(SOLVERS[:1], "*.example.com", {}) is None


def test_an_ip_address_is_only_given_an_http01_solver() -> None:
    """RFC 8738: DNS-01 cannot prove an IP address, so a DNS-01 solver never matches one."""
    dns_only = parse_acme_spec(
        {
            "server": "https://ca.test/dir",
            "privateKeySecretRef": {"name": "account"},
            "solvers": [{"dns01": {"rfc2136": {"nameserver": "ns"}}}],
        }
    ).solvers
    assert solver_for(dns_only, "192.0.2.7", {}) is None
    assert solver_for(dns_only, "2001:db8::7", {}) is None
    assert solver_for(SOLVERS, "192.0.2.7", {}) is SOLVERS[0]
    assert solver_for(SOLVERS, "192.0.2.7", {"team": "a"}) is SOLVERS[4]
