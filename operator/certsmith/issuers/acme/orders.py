"""An ACME order's life cycle as a pure state machine: (order, now) -> the next step.

The order is what the CA last said about it, kept in the Certificate's status (`status.acme.order`),
so `kubectl get certificate -o yaml` shows each authorization and challenge with its state and the
CA's error, and a restarted operator resumes the same order. `fold_order` turns the CA's answers (the
JSON of RFC 8555 section 7.1) into a new `Order`; `next_step` says what to do with it. Nothing here
does I/O.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from certsmith.api.status import parse_timestamp, timestamp

POLL_INTERVALS = (1, 2, 4, 8, 15, 30)
"""Seconds between polls of a pending order, growing with each poll, then every 30 s."""
ORDER_DEADLINE = datetime.timedelta(hours=1)
"""An order still not ready this long after it was created is abandoned, as stuck."""


class Status(StrEnum):
    """Order, authorization and challenge states (RFC 8555 section 7.1.6)."""

    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class Challenge:
    type: str
    """http-01 or dns-01."""
    url: str
    token: str
    status: str
    error: str | None = None


@dataclass(frozen=True)
class Authorization:
    url: str
    identifier: str
    """The DNS name, with "*." for a wildcard authorization."""
    status: str
    challenge: Challenge | None
    """The challenge certsmith answers; None when no solver of the issuer matches the name."""
    presented: bool = False
    """The solver is set up (the TXT record published, the HTTP-01 token served)."""
    answered: bool = False
    """The CA was told to validate."""


@dataclass(frozen=True)
class Order:
    url: str
    identifiers: tuple[str, ...]
    status: str
    finalize_url: str
    authorizations: tuple[Authorization, ...]
    created_at: datetime.datetime
    polls: int = 0
    next_poll: datetime.datetime | None = None
    certificate_url: str | None = None
    error: str | None = None
    saved: bool = False
    """This state is the one in the Certificate's status (read from it, not changed since)."""


@dataclass(frozen=True)
class NewOrder:
    """Create an order (the CA has none for this certificate, or the one it had is of no more use)."""

    why: str


@dataclass(frozen=True)
class Present:
    """Set up the solver for this authorization's challenge."""

    authorization: Authorization


@dataclass(frozen=True)
class Answer:
    """Ask the CA to validate these authorizations' challenges (all at once: once saved, none waits)."""

    authorizations: tuple[Authorization, ...]


@dataclass(frozen=True)
class Refresh:
    """Fetch the order and its unfinished authorizations again."""


@dataclass(frozen=True)
class Finalize:
    """Send the CSR (the CA then processes the order; it is polled like any other)."""


@dataclass(frozen=True)
class Download:
    """Download the certificate of the valid order."""


@dataclass(frozen=True)
class Wait:
    until: datetime.datetime
    message: str


Step = NewOrder | Present | Answer | Refresh | Finalize | Download | Wait

ChallengeChooser = Callable[[str], str | None]
"""identifier -> the challenge type ("http-01", "dns-01") its solver answers, or None."""


def next_step(
    order: Order | None, identifiers: Sequence[str], now: datetime.datetime, key_held: bool = False
) -> Step:
    """What to do next for a certificate that needs `identifiers`. `key_held`: the key of the CSR that
    finalized the order is still at hand (a CertificateRequest's, or one kept in memory since)."""
    restart = _restart_reason(order, identifiers, key_held)
    if order is None or restart is not None:
        return NewOrder(restart or "no order yet")
    challenge_step = _challenge_step(order, now)
    if challenge_step is not None:
        return challenge_step
    if order.status == Status.READY:
        return Finalize()
    if order.status == Status.VALID and order.certificate_url:
        return Download()
    if order.next_poll is not None and now < order.next_poll:
        return Wait(order.next_poll, _waiting_message(order))
    return Refresh()


def _challenge_step(order: Order, now: datetime.datetime) -> Step | None:
    pending = [a for a in order.authorizations if a.status == Status.PENDING and a.challenge is not None]
    for authorization in pending:
        if not authorization.presented:
            return Present(authorization)
    unanswered = [a for a in pending if not a.answered]
    if unanswered and not order.saved:
        # Every replica, and this one after a restart, answers HTTP-01 from the status, and a
        # restart cleans up TXT records from it: the status must show them before the CA looks.
        return Wait(now, "saving the presented challenges before asking the CA to validate them")
    return Answer(tuple(unanswered)) if unanswered else None


def _restart_reason(order: Order | None, identifiers: Sequence[str], key_held: bool) -> str | None:
    """Why `order` is of no more use. An order finalized with a key no longer at hand is one: the key
    of its CSR lived only in memory (keys are never stored outside the certificate's Secret), and a new
    order is cheaper than a certificate for a key nobody has."""
    if order is None:
        return None
    if sorted(order.identifiers) != sorted(identifiers):
        return "the names changed"
    if order.status == Status.INVALID or any(_failed(a) for a in order.authorizations):
        return "the last order failed"
    if order.status in (Status.PROCESSING, Status.VALID) and not key_held:
        return "it was finalized by an earlier attempt, whose key is gone"
    if order.status not in (Status.PENDING, Status.READY, Status.PROCESSING, Status.VALID):
        return f"the order is {order.status}"
    return None


def failure(order: Order, now: datetime.datetime) -> tuple[str, str] | None:
    """(reason, message) when the CA has refused the order, with the CA's own words; when no solver
    can answer one of its names; or when it has been pending too long."""
    for authorization in order.authorizations:
        challenge = authorization.challenge
        if authorization.status == Status.PENDING and challenge is None:
            return (
                "NoSolver",
                f"no solver of the issuer matches {authorization.identifier} "
                f"(a wildcard needs a dns01 solver); add one to spec.acme.solvers",
            )
        if _failed(authorization):
            detail = challenge.error if challenge and challenge.error else "the authorization is invalid"
            kind = challenge.type if challenge else "the"
            return "ChallengeFailed", f"{kind} challenge for {authorization.identifier} failed: {detail}"
    if order.status == Status.INVALID:
        return "OrderFailed", f"order {order.url} is invalid: {order.error or 'the CA gave no reason'}"
    if order.status in (Status.PENDING, Status.PROCESSING) and now - order.created_at > ORDER_DEADLINE:
        return "OrderStuck", f"order {order.url} has been {order.status} since {timestamp(order.created_at)}"
    return None


def _failed(authorization: Authorization) -> bool:
    """Whether the CA failed `authorization`, or the challenge certsmith answered: a challenge's own
    error or invalid state ends the attempt even while its authorization stays pending (step-ca keeps
    it pending, for a client to ask again, which would fail the same way)."""
    challenge = authorization.challenge
    if authorization.status == Status.INVALID:
        return True
    return challenge is not None and (challenge.status == Status.INVALID or challenge.error is not None)


def abandoned(order: Order, message: str) -> Order:
    """The order marked invalid by certsmith after a failure (its challenges cleaned up), so the next
    attempt makes a new one."""
    authorizations = tuple(replace(a, presented=False) for a in order.authorizations)
    return replace(order, status=Status.INVALID, error=order.error or message, authorizations=authorizations)


def fold_order(
    url: str,
    body: Mapping[str, Any],
    authorizations: Mapping[str, Mapping[str, Any]],
    previous: Order | None,
    choose: ChallengeChooser,
    now: datetime.datetime,
    retry_after: datetime.datetime | None = None,
) -> Order:
    """The order after the CA answered `body` for it and `authorizations` (by URL) for those fetched.

    Authorizations not fetched keep their last known state; a poll that changed nothing makes the next
    one wait longer.
    """
    known = {a.url: a for a in previous.authorizations} if previous and previous.url == url else {}
    folded = []
    for authorization_url in body.get("authorizations") or ():
        answer = authorizations.get(authorization_url)
        before = known.get(authorization_url)
        if answer is None and before is not None:
            folded.append(before)
        elif answer is not None:
            folded.append(_authorization(authorization_url, answer, before, choose))
    same = previous is not None and previous.url == url
    status = str(body.get("status", Status.PENDING))
    changed = (
        not same
        or previous is None
        or (status, tuple(folded))
        != (
            previous.status,
            previous.authorizations,
        )
    )
    polls = 0 if changed or previous is None else previous.polls + 1
    next_poll = now + datetime.timedelta(seconds=POLL_INTERVALS[min(polls, len(POLL_INTERVALS) - 1)])
    if retry_after is not None:
        next_poll = max(next_poll, retry_after)
    return Order(
        url=url,
        identifiers=tuple(_identifier(item) for item in body.get("identifiers") or ()),
        status=status,
        finalize_url=str(body.get("finalize", "")),
        authorizations=tuple(folded),
        created_at=previous.created_at if same and previous else now,
        polls=polls,
        next_poll=next_poll,
        certificate_url=body.get("certificate"),
        error=_problem(body.get("error")),
    )


def presented(order: Order, authorization: Authorization) -> Order:
    """The order once the solver for `authorization` is set up."""
    return _replaced(order, replace(authorization, presented=True))


def answered(order: Order, authorization: Authorization, answer: Mapping[str, Any]) -> Order:
    """The order after the CA acknowledged the challenge answer (`answer`, the challenge object)."""
    challenge = authorization.challenge
    if challenge is None:
        return order
    status, error = str(answer.get("status", challenge.status)), _problem(answer.get("error"))
    updated = replace(authorization, answered=True, challenge=replace(challenge, status=status, error=error))
    return replace(_replaced(order, updated), polls=0, next_poll=None)


def _replaced(order: Order, authorization: Authorization) -> Order:
    return replace(
        order,
        authorizations=tuple(
            authorization if a.url == authorization.url else a for a in order.authorizations
        ),
        saved=False,
    )


def _authorization(
    url: str, body: Mapping[str, Any], before: Authorization | None, choose: ChallengeChooser
) -> Authorization:
    name = str((body.get("identifier") or {}).get("value", ""))
    identifier = f"*.{name}" if body.get("wildcard") else name
    wanted = choose(identifier)
    challenge = None
    for item in body.get("challenges") or ():
        if item.get("type") == wanted:
            challenge = Challenge(
                type=str(item["type"]),
                url=str(item.get("url", "")),
                token=str(item.get("token", "")),
                status=str(item.get("status", Status.PENDING)),
                error=_problem(item.get("error")),
            )
            break
    same_challenge = bool(challenge and before and before.challenge and before.challenge.url == challenge.url)
    kept = before if before is not None and same_challenge else None
    status = str(body.get("status", Status.PENDING))
    return Authorization(
        url, identifier, status, challenge, bool(kept and kept.presented), bool(kept and kept.answered)
    )


def _identifier(item: Mapping[str, Any]) -> str:
    return str(item.get("value", ""))


def _problem(problem: Mapping[str, Any] | None) -> str | None:
    """An RFC 7807 problem as one line: its detail and type, and its subproblems."""
    if not problem:
        return None
    kind = str(problem.get("type", "")).rsplit(":", 1)[-1]
    text = f"{problem.get('detail', 'no detail')} ({kind})" if kind else str(problem.get("detail", ""))
    subproblems = [
        f"{(item.get('identifier') or {}).get('value', '?')}: {item.get('detail', '')}"
        for item in problem.get("subproblems") or ()
    ]
    return f"{text}; {'; '.join(subproblems)}" if subproblems else text


def _waiting_message(order: Order) -> str:
    waiting = [
        f"{a.identifier} ({a.challenge.type if a.challenge else 'no challenge'} {a.status})"
        for a in order.authorizations
        if a.status != Status.VALID
    ]
    what = ", ".join(waiting) if waiting else f"the order to be {Status.VALID}"
    return f"order {order.url} is {order.status}: waiting for {what}"


def finalized(order: Order) -> bool:
    """Whether the order was finalized: its certificate is for the key of the CSR sent."""
    return order.status in (Status.PROCESSING, Status.VALID)


def presents_http01(status: Mapping[str, Any], token: str) -> bool:
    """Whether the order in a Certificate's status presents HTTP-01 challenge `token` now."""
    return token in presented_http01_tokens(status)


def presented_http01_tokens(status: Mapping[str, Any]) -> frozenset[str]:
    """The HTTP-01 challenge tokens the order in a Certificate's status presents now."""
    order = (status.get("acme") or {}).get("order") or {}
    return frozenset(
        (authorization.get("challenge") or {}).get("token") or ""
        for authorization in order.get("authorizations") or ()
        if (authorization.get("challenge") or {}).get("type") == "http-01"
        and authorization.get("presented")
        and authorization.get("state") == Status.PENDING
    ) - {""}


def order_status(order: Order) -> dict[str, Any]:
    """The order as shown in the Certificate's status."""
    return {
        "url": order.url,
        "state": order.status,
        "identifiers": list(order.identifiers),
        "finalizeURL": order.finalize_url,
        "certificateURL": order.certificate_url,
        "createdAt": timestamp(order.created_at),
        "polls": order.polls,
        "nextPollTime": timestamp(order.next_poll) if order.next_poll else None,
        "error": order.error,
        "authorizations": [_authorization_status(a) for a in order.authorizations],
    }


def _authorization_status(authorization: Authorization) -> dict[str, Any]:
    """One authorization; absent values are left out (in a list, a merge patch keeps nulls)."""
    shown: dict[str, Any] = {
        "url": authorization.url,
        "identifier": authorization.identifier,
        "state": authorization.status,
        "presented": authorization.presented,
        "answered": authorization.answered,
    }
    challenge = authorization.challenge
    if challenge is not None:
        shown["challenge"] = {
            "type": challenge.type,
            "url": challenge.url,
            "token": challenge.token,
            "state": challenge.status,
        }
        if challenge.error:
            shown["challenge"]["error"] = challenge.error
    return shown


def order_from_status(status: Mapping[str, Any] | None) -> Order | None:
    """The order kept in a Certificate's status; None if there is none or it cannot be read (a new
    order is then made, which is always safe)."""
    if not status or not status.get("url"):
        return None
    try:
        created = parse_timestamp(status.get("createdAt"))
        if created is None:
            return None
        return Order(
            url=str(status["url"]),
            identifiers=tuple(str(item) for item in status.get("identifiers") or ()),
            status=str(status["state"]),
            finalize_url=str(status.get("finalizeURL") or ""),
            authorizations=tuple(
                Authorization(
                    url=str(item["url"]),
                    identifier=str(item["identifier"]),
                    status=str(item["state"]),
                    presented=bool(item.get("presented")),
                    answered=bool(item.get("answered")),
                    challenge=None
                    if not item.get("challenge")
                    else Challenge(
                        type=str(item["challenge"]["type"]),
                        url=str(item["challenge"]["url"]),
                        token=str(item["challenge"].get("token") or ""),
                        status=str(item["challenge"]["state"]),
                        error=item["challenge"].get("error"),
                    ),
                )
                for item in status.get("authorizations") or ()
            ),
            created_at=created,
            polls=int(status.get("polls") or 0),
            next_poll=parse_timestamp(status.get("nextPollTime")),
            certificate_url=status.get("certificateURL"),
            error=status.get("error"),
            saved=True,
        )
    except (KeyError, TypeError, ValueError):
        return None
