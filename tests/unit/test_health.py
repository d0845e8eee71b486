"""The probes: liveness follows the event loop's ticks, readiness whether this replica serves."""

from __future__ import annotations

from certsmith.health import STALLED_AFTER, HealthApp


def _get(app: HealthApp, path: str) -> tuple[str, str]:
    statuses: list[str] = []
    body = b"".join(app({"PATH_INFO": path}, lambda status, headers: statuses.append(status)))
    return statuses[0], body.decode()


def test_liveness_fails_once_the_event_loop_stops_ticking() -> None:
    now = 1000.0
    app = HealthApp(lambda: 990.0, lambda: None, monotonic=lambda: now)
    assert _get(app, "/healthz")[0] == "200 OK"
    now = 990.0 + STALLED_AFTER + 1
    status, body = _get(app, "/healthz")
    assert status.startswith("503")
    assert "has not ticked for 31s" in body


def test_readiness_says_why_a_replica_is_not_ready_yet() -> None:
    reason: str | None = "listing Secrets and issuers"
    app = HealthApp(lambda: 0.0, lambda: reason, monotonic=lambda: 0.0)
    status, body = _get(app, "/readyz")
    assert status.startswith("503")
    assert "listing" in body
    reason = None
    assert _get(app, "/readyz")[0] == "200 OK"
    assert _get(app, "/elsewhere")[0].startswith("404")


def test_liveness_fails_while_a_watch_is_stuck() -> None:
    stuck: str | None = "the watch secret-watch ns metadata.name=ca has made no progress for 200s"
    app = HealthApp(lambda: 0.0, lambda: None, lambda: stuck, monotonic=lambda: 0.0)
    status, body = _get(app, "/healthz")
    assert status.startswith("503")
    assert "secret-watch" in body
    stuck = None
    assert _get(app, "/healthz")[0] == "200 OK"


def test_liveness_names_why_the_runtime_stopped_not_the_stalled_tick() -> None:
    app = HealthApp(
        lambda: 0.0, lambda: None, lambda: "the runtime stopped: TimeoutError", monotonic=lambda: 99.0
    )
    status, body = _get(app, "/healthz")
    assert status.startswith("503")
    assert body == "the runtime stopped: TimeoutError\n"
