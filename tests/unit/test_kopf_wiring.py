"""What certsmith asks of kopf: event handlers only, and no memory of each object between events."""

from __future__ import annotations

import asyncio

from kopf._cogs.structs import bodies

from certsmith.handlers import NoMemories


def test_no_object_is_remembered_between_its_events() -> None:
    body: bodies.RawBody = {"metadata": {"uid": "7d3c", "namespace": "apps", "name": "web"}}
    memories = NoMemories()

    async def recall_twice() -> bool:
        first = await memories.recall(body, noticed_by_listing=True)
        second = await memories.recall(body)
        return first is not second

    assert asyncio.run(recall_twice())
    assert list(memories.iter_all_memories()) == []
