"""A failure that escapes a reconcile (the API server refused or did not answer) is recorded in the
Certificate's status, so its back-off holds across a restart: a new process, reading only that
status, waits until the same moment."""

from __future__ import annotations

import socket

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from certsmith.kube.port import ApiAccessError, failure_reason
from certsmith.reconcile.escaped import escaped_failure
from tests.unit.test_reconcile import MINUTE, NOW, NS, World


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ApiException(status=403, reason="Forbidden"), "APIForbidden"),
        (ApiAccessError("patching the status of certificates/a/b", 429, "Too Many Requests"), "APIThrottled"),
        (ApiException(status=503, reason="Service Unavailable"), "APIServerError"),
        (urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"), "APITimeout"),  # type: ignore[arg-type]
        (TimeoutError(), "APITimeout"),
        (urllib3.exceptions.MaxRetryError(None, "/"), "APIUnreachable"),  # type: ignore[arg-type]
        (ConnectionResetError(), "APIUnreachable"),
        (socket.gaierror(), "APIUnreachable"),
        (KeyError("spec"), "InternalError"),
    ],
)
def test_failures_are_classified(error: Exception, reason: str) -> None:
    assert failure_reason(error)[0] == reason


def test_a_response_body_never_reaches_the_description() -> None:
    error = ApiException(status=500, reason="Internal Server Error")
    error.body = "tls.key: c2VjcmV0"
    assert "c2VjcmV0" not in failure_reason(error)[1]


def test_an_escaped_failure_holds_its_back_off_after_a_restart() -> None:
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    world.certificate("web")
    world.reconcile("web")
    ready_before = world.ready("web")
    world.clock.advance(MINUTE)
    for attempt in (1, 2):
        body = world.store.certificates[(NS, "web")]
        status, retry_at = escaped_failure(
            body, "APIThrottled", "the API server answered 429", world.clock(), world.settings.backoff
        )
        world.store.remember_status("certificates", (NS, "web"), status)
        assert world.status("web")["failedIssuanceAttempts"] == attempt
        assert retry_at == world.clock() + MINUTE * 2 ** (attempt - 1)
    issuing = next(c for c in world.status("web")["conditions"] if c["type"] == "Issuing")
    assert issuing["reason"] == "APIThrottled"
    assert issuing["message"].startswith("attempt 2 failed: the API server answered 429; next attempt at")
    assert world.ready("web") == ready_before, "Ready is kept as it was"

    restarted = World()  # a new process: nothing in memory, the status as the API server keeps it
    restarted.clock.advance(world.clock() - NOW)
    restarted.issuer("selfsigned", {"selfSigned": {}})
    restarted.store.remember("certificates", (NS, "web"), world.store.certificates[(NS, "web")])
    restarted.kube.secrets.update(world.kube.secrets)
    restarted.certificate("web", renewBefore="2160h")  # due for renewal now, so only the back-off holds it
    outcome = restarted.reconcile("web")
    assert outcome.recheck_at == retry_at
    assert restarted.kube.requests == [], "backing off: nothing is written before the time in the status"
    restarted.clock.advance(retry_at - restarted.clock())
    restarted.reconcile("web")
    assert f"PUT secrets/{NS}/web" in restarted.kube.requests, "renewed once the back-off has passed"
