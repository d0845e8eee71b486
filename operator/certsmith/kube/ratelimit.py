"""Client-side rate limiting of certsmith's own API requests (kopf's watches are not limited).

A token bucket, as client-go's `--kube-api-qps` / `--kube-api-burst`: `burst` requests may go at once,
then `qps` per second. It keeps a large burst of Certificates from flooding the API server with writes;
the API server's priority and fairness remains the real protection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client


class TokenBucket:
    """Thread-safe: worker threads share one bucket."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs qps > 0 and burst >= 1, not qps={qps}, burst={burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def delay(self) -> float:
        """Take a token; return how long the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.qps)
            self._updated = now
            self._tokens -= 1
            return max(0.0, -self._tokens / self.qps)

    def acquire(self) -> None:
        wait = self.delay()
        if wait > 0:
            time.sleep(wait)


class RateLimitedApiClient(client.ApiClient):
    """An ApiClient whose every request first takes a token from `bucket`."""

    def __init__(self, configuration: client.Configuration, bucket: TokenBucket) -> None:
        super().__init__(configuration)
        self.bucket = bucket

    def call_api(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 -- the client's own signature
        self.bucket.acquire()
        return super().call_api(*args, **kwargs)
