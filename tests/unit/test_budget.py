"""The rewrite and issuance budgets: bounded per key, and memory only for keys spent in the window."""

from __future__ import annotations

import datetime

from certsmith.budget import RewriteBudget

T0 = datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)


def test_the_limit_holds_in_any_window_and_frees_when_the_oldest_leaves_it() -> None:
    budget: RewriteBudget[str] = RewriteBudget(2, HOUR)
    budget.spend("web", T0)
    assert budget.next_allowed("web", T0) is None
    budget.spend("web", T0 + datetime.timedelta(minutes=10))
    assert budget.next_allowed("web", T0 + datetime.timedelta(minutes=20)) == T0 + HOUR
    assert budget.next_allowed("web", T0 + HOUR) is None
    assert budget.next_allowed("api", T0) is None


def test_keys_whose_last_spend_left_the_window_are_forgotten() -> None:
    budget: RewriteBudget[str] = RewriteBudget(5, HOUR)
    for index in range(1000):
        budget.spend(f"cert-{index}", T0)
    assert len(budget) == 1000
    budget.spend("web", T0 + HOUR)
    assert len(budget) == 1
    for _ in range(20):
        budget.spend("web", T0 + HOUR)
    assert budget.next_allowed("web", T0 + HOUR) == T0 + 2 * HOUR
