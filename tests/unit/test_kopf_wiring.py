"""What certsmith asks of kopf: event handlers only, and no memory of each object between events."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

from kopf._cogs.structs import bodies

from certsmith.handlers import NoDiffBase, NoMemories, operator_registry, operator_settings
from certsmith.runtime import Runtime


def test_no_object_is_remembered_between_its_events() -> None:
    body: bodies.RawBody = {"metadata": {"uid": "7d3c", "namespace": "apps", "name": "web"}}
    memories = NoMemories()

    async def recall_twice() -> bool:
        first = await memories.recall(body, noticed_by_listing=True)
        second = await memories.recall(body)
        return first is not second

    assert asyncio.run(recall_twice())
    assert list(memories.iter_all_memories()) == []


def test_only_event_handlers_are_registered() -> None:
    """`NoMemories` and `NoDiffBase` hold only while kopf calls no change handler, daemon or index."""
    for namespaced in (False, True):
        runtime = SimpleNamespace(
            settings=SimpleNamespace(namespaced=namespaced),
            custom_object_event=print,
            secret_event=print,
            namespace_event=print,
            bundle_target_event=print,
        )
        registry = operator_registry(cast(Runtime, runtime))

        assert registry._watching.get_all_handlers()
        assert not registry._changing.get_all_handlers()
        assert not registry._spawning.get_all_handlers()
        assert not registry._indexing.get_all_handlers()


def test_kopf_builds_no_essence_to_diff() -> None:
    body = bodies.Body({"metadata": {"name": "web"}, "spec": {"dnsNames": ["web.example"]}})

    assert NoDiffBase().build(body=body) == {}
    assert operator_settings(namespaced=False).persistence.diffbase_storage.build(body=body) == {}
