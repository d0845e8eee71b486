"""Does RSA key generation in a worker thread stall the event loop? (certsmith reconciles in threads.)

    python bench/loop_lag.py

Measures how late a 10 ms asyncio timer fires while worker threads generate RSA-2048 keys, the way
certsmith's workers do, against the same loop idle. cryptography releases the GIL while OpenSSL
works, so the loop, and with it every watch stream, stays responsive.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from cryptography.hazmat.primitives.asymmetric import rsa

_TICK = 0.01


async def _lags(seconds: float) -> list[float]:
    lags = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        await asyncio.sleep(_TICK)
        lags.append(time.perf_counter() - started - _TICK)
    return lags


def _generate(count: int) -> None:
    for _ in range(count):
        rsa.generate_private_key(65537, 2048)


async def main() -> None:
    idle = await _lags(2.0)
    busy: list[float] = []
    started = time.perf_counter()

    async def probe() -> None:
        while True:
            tick = time.perf_counter()
            await asyncio.sleep(_TICK)
            busy.append(time.perf_counter() - tick - _TICK)

    running = asyncio.create_task(probe())
    await asyncio.gather(*(asyncio.to_thread(_generate, 25) for _ in range(4)))
    elapsed = time.perf_counter() - started
    running.cancel()
    print("| loop | timer lag p50 (ms) | p99 (ms) | max (ms) | samples |")
    print("|---|---|---|---|---|")
    for label, lags in (("idle", idle), (f"4 threads generating 100 RSA-2048 keys ({elapsed:.1f}s)", busy)):
        ordered = sorted(lags)
        p50, p99, worst = (
            1000 * value
            for value in (statistics.median(ordered), ordered[int(len(ordered) * 0.99)], ordered[-1])
        )
        print(f"| {label} | {p50:.2f} | {p99:.2f} | {worst:.2f} | {len(ordered)} |")


if __name__ == "__main__":
    asyncio.run(main())
