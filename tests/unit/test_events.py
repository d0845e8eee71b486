"""The Event recorder: off the caller's path, bounded, and aggregating repeats (queued or posted)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kubernetes import client

from certsmith.kube import events
from certsmith.kube.events import EventRecorder
from certsmith.kube.port import EventRecord, ObjectRef


class _Core:
    """Records what would be posted; blocks every post until `release` is set."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.patched: list[tuple[str, dict[str, Any]]] = []
        self.release = threading.Event()

    def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        assert plural == "events"
        self.release.wait()
        self.created.append(body)
        return {"metadata": {"name": f"event-{len(self.created)}"}, "involvedObject": body["involvedObject"]}

    def merge_patch(self, plural: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        assert plural == "events"
        self.release.wait()
        self.patched.append((name, body))
        return {}


def _event(name: str, reason: str = "Issued") -> EventRecord:
    return EventRecord(ObjectRef("Certificate", "apps", name), False, reason, f"{reason} {name}")


def _recorder(bound: int, senders: int = 1) -> tuple[EventRecorder, _Core]:
    recorder = EventRecorder(client.ApiClient(client.Configuration()), bound, senders)
    core = _Core()
    recorder._core = core  # type: ignore[assignment]
    return recorder, core


def test_recording_never_waits_and_repeats_merge_while_queued() -> None:
    recorder, core = _recorder(bound=10)
    recorder.record(_event("first"))  # taken by the thread, which blocks posting it
    for _ in range(5):
        recorder.record(_event("web", "Failed"))
    core.release.set()
    assert recorder.flush(5)
    counts = {event["involvedObject"]["name"]: event["count"] for event in core.created}
    assert counts == {"first": 1, "web": 5}


def test_a_repeat_of_a_posted_event_updates_its_count() -> None:
    recorder, core = _recorder(bound=10)
    core.release.set()
    recorder.record(_event("web", "Failed"))
    assert recorder.flush(5)
    recorder.record(_event("web", "Failed"))
    assert recorder.flush(5)
    assert len(core.created) == 1
    assert core.patched == [("event-1", core.patched[0][1])]
    assert core.patched[0][1]["count"] == 2


def test_only_the_most_recently_posted_events_are_remembered_for_aggregation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events, "REMEMBERED_EVENTS", 2)
    recorder, core = _recorder(bound=10)
    core.release.set()
    for name in ("a", "b", "c", "a", "c"):
        recorder.record(_event(name))
        assert recorder.flush(5)
    assert [event["involvedObject"]["name"] for event in core.created] == ["a", "b", "c", "a"]
    assert [name for name, _ in core.patched] == ["event-3"]


def test_beyond_its_bound_events_are_dropped_not_queued() -> None:
    recorder, core = _recorder(bound=3)
    recorder.record(_event("first"))
    while not recorder.posting:  # the thread has taken it and waits in create
        time.sleep(0.001)
    for index in range(10):
        recorder.record(_event(f"c{index}"))
    core.release.set()
    assert recorder.flush(5)
    assert [event["involvedObject"]["name"] for event in core.created] == ["first", "c0", "c1", "c2"]


def test_several_senders_never_post_one_aggregate_twice_at_once() -> None:
    recorder, core = _recorder(bound=100, senders=4)
    recorder.record(_event("web", "Failed"))
    while not recorder.posting:
        time.sleep(0.001)
    for _ in range(3):
        recorder.record(_event("web", "Failed"))  # queued behind the one in flight, merged
    recorder.record(_event("other"))
    while recorder.posting < 2:  # "other" is taken by a second sender; "web" waits for the first
        time.sleep(0.001)
    time.sleep(0.05)
    assert recorder.posting == 2
    core.release.set()
    assert recorder.flush(5)
    assert sorted(str(event["involvedObject"]["name"]) for event in core.created) == ["other", "web"]
    assert [body["count"] for _, body in core.patched] == [4]
