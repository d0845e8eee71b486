"""The client-side token bucket, on a fake clock."""

from __future__ import annotations

import pytest

from certsmith.kube.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_goes_at_once_then_qps_applies() -> None:
    clock = FakeClock()
    bucket = TokenBucket(qps=10, burst=3, clock=clock)
    assert [bucket.delay() for _ in range(3)] == [0, 0, 0]
    assert bucket.delay() == pytest.approx(0.1)
    assert bucket.delay() == pytest.approx(0.2)
    clock.now = 10.0  # idle long enough to refill, but never beyond the burst
    assert [bucket.delay() for _ in range(3)] == [0, 0, 0]
    assert bucket.delay() == pytest.approx(0.1)


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="qps > 0"):
        TokenBucket(qps=0, burst=1)
