"""The runtime is supervised: its initial listing is retried with back-off, and if it ends for any
reason but a shutdown, the process says why and exits non-zero (so that it is started again)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry

from certsmith.api import CERTIFICATES
from certsmith.metrics.issuance import IssuanceMetrics
from certsmith.reconcile.store import WorkItem
from certsmith.runtime import Runtime, RuntimeStoppingError, _Listing
from certsmith.scheduler import utc_now
from certsmith.settings import OperatorSettings


class Exited(SystemExit):
    """Stands for the end of the process (SystemExit: the event loop lets it through its callbacks)."""


def _runtime(exits: list[int]) -> Runtime:
    settings = OperatorSettings(health_port=0, metrics_port=0, acme_http01_port=0)
    runtime = Runtime(
        client.ApiClient(client.Configuration()), settings, utc_now, IssuanceMetrics(CollectorRegistry())
    )

    def exit_process(code: int) -> NoReturn:
        exits.append(code)
        raise Exited

    runtime.exit_process = exit_process
    return runtime


def test_a_runtime_that_fails_ends_the_process_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    exits: list[int] = []
    runtime = _runtime(exits)

    async def fails() -> None:
        raise ConnectionResetError("connection reset by peer")

    async def main() -> None:
        runtime.run = fails  # type: ignore[method-assign]
        runtime.start()
        await asyncio.sleep(1)

    with pytest.raises(Exited):
        asyncio.run(main())
    assert exits == [1]
    reason = "the runtime stopped: ConnectionResetError: connection reset by peer"
    assert runtime.stopped == runtime.not_ready == reason
    assert runtime.liveness_problem() == reason
    assert f"{reason}; exiting" in caplog.records[-1].getMessage()
    assert caplog.records[-1].levelno == logging.CRITICAL


def test_a_shutdown_does_not_end_the_process() -> None:
    exits: list[int] = []
    runtime = _runtime(exits)

    async def main() -> None:
        async def waits() -> None:
            await asyncio.Event().wait()

        runtime.run = waits  # type: ignore[method-assign]
        runtime.start()
        await asyncio.sleep(0)
        runtime.shutdown()
        await asyncio.sleep(0.1)

    asyncio.run(main())
    assert exits == []
    assert runtime.stopped is None


def test_the_listing_is_retried_until_it_succeeds(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = _runtime([])
    attempts: list[str] = []

    def listing() -> _Listing:
        attempts.append(str(runtime.not_ready))
        if len(attempts) < 3:
            raise ConnectionResetError("reset")
        return _Listing()

    monkeypatch.setattr("certsmith.runtime.retry_delay", lambda failures: 0)
    monkeypatch.setattr(runtime, "_listing", listing)
    assert asyncio.run(runtime._list()) == _Listing()
    assert (
        attempts[2]
        == "listing Secrets and issuers failed 2 times in a row, last: ConnectionResetError: reset"
    )
    retries = [record.getMessage() for record in caplog.records if "retrying" in record.getMessage()]
    assert retries == [
        "listing Secrets and issuers failed (attempt 1: ConnectionResetError: reset); retrying in 0s",
        "listing Secrets and issuers failed (attempt 2: ConnectionResetError: reset); retrying in 0s",
    ]


def test_a_failure_that_escapes_a_certificates_reconcile_is_recorded_in_its_status(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = _runtime([])
    item = WorkItem(CERTIFICATES, ("apps", "web"))
    runtime.store.remember(CERTIFICATES, item.key, {"metadata": {"name": "web", "namespace": "apps"}})
    patches: list[Mapping[str, Any]] = []

    def patch_status(plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        if len(patches) == 1:
            raise ApiException(status=503, reason="Service Unavailable")
        patches.append(status)

    monkeypatch.setattr(runtime.port, "patch_status", patch_status)
    asyncio.run(runtime._failed(item, ApiException(status=429, reason="Too Many Requests")))
    assert patches[0]["failedIssuanceAttempts"] == 1
    assert runtime.store.certificates[item.key]["status"]["failedIssuanceAttempts"] == 1
    assert len(runtime.scheduler) == 1
    asyncio.run(runtime._failed(item, TimeoutError()))
    assert "its back-off is kept in memory" in caplog.text
    assert "reconciling certificates/apps/web failed (attempt 2, APITimeout:" in caplog.text
    assert len(runtime.scheduler) == 1


def test_a_long_listing_ends_at_the_next_page_once_the_runtime_stops() -> None:
    """The interpreter waits for a listing's thread before it exits: with 100,000 objects to page
    through, a stopping replica would outlive its grace period."""
    runtime = _runtime([])
    listed: list[int] = []

    def pages() -> Iterator[list[int]]:
        for page in range(100):
            listed.append(page)
            if page == 2:
                runtime.shutdown()  # SIGTERM while the listing runs
            yield [page]

    with pytest.raises(RuntimeStoppingError):
        for _ in runtime._unless_stopping(pages()):
            pass
    assert listed == [0, 1, 2]
