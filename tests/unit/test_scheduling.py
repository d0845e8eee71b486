"""The work queue and the single renewal scheduler."""

from __future__ import annotations

import asyncio
import datetime

from certsmith.scheduler import Scheduler, utc_now
from certsmith.workqueue import WorkQueue


def test_queue_deduplicates_and_requeues_keys_added_while_active() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        queue.add("a")
        queue.add("b")
        assert len(queue) == 2
        first = await queue.get()
        queue.add(first)  # changed while being handled
        second = await queue.get()
        queue.done(second)
        queue.done(first)
        third = await queue.get()
        queue.done(third)
        return [first, second, third]

    assert asyncio.run(scenario()) == ["a", "b", "a"]


def test_scheduler_fires_in_time_order_and_replaces_and_cancels() -> None:
    async def scenario() -> list[str]:
        fired: list[str] = []
        scheduler: Scheduler[str] = Scheduler(fired.append)
        runner = asyncio.create_task(scheduler.run())
        now = utc_now()
        scheduler.schedule("late", now + datetime.timedelta(milliseconds=300))
        scheduler.schedule("early", now + datetime.timedelta(milliseconds=100))
        scheduler.schedule("moved", now + datetime.timedelta(seconds=60))
        scheduler.schedule("moved", now + datetime.timedelta(milliseconds=200))
        scheduler.schedule("cancelled", now + datetime.timedelta(milliseconds=150))
        scheduler.cancel("cancelled")
        scheduler.schedule("past", now - datetime.timedelta(hours=1))
        await asyncio.sleep(0.5)
        runner.cancel()
        assert len(scheduler) == 0
        return fired

    assert asyncio.run(scenario()) == ["past", "early", "moved", "late"]


def test_the_scheduler_holds_about_two_entries_per_key_however_often_they_are_scheduled() -> None:
    scheduler: Scheduler[int] = Scheduler(lambda key: None)
    now = utc_now()
    for round_ in range(10):
        for key in range(1000):
            scheduler.schedule(key, now + datetime.timedelta(days=60, seconds=round_))
            scheduler.schedule(key, now + datetime.timedelta(days=60, seconds=round_))  # the same: no entry
    assert len(scheduler) == 1000
    assert len(scheduler._heap) <= 2 * 1000 + 64
    for key in range(900):
        scheduler.cancel(key)
    assert len(scheduler) == 100
    assert len(scheduler._heap) <= 2 * 100 + 64
    assert {entry[2] for entry in scheduler._heap if scheduler._live(entry)} == set(range(900, 1000))
