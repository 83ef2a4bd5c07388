"""Client-side pacing: token-bucket rate limits and the retry backoff schedule.

The bucket works by *reservation*: :meth:`TokenBucket.reserve` takes a token (possibly going
into debt) under a short lock and returns how long the caller must wait before using it. The
caller then sleeps outside the lock, with ``time.sleep`` in threads or ``asyncio.sleep`` in an
event loop, so one bucket serves both worlds and never blocks an event loop.

Example::

    bucket = TokenBucket(rate=10)          # 10 calls per second, no burst
    bucket.acquire()                       # sync: sleeps if needed
    await bucket.acquire_async()           # async: awaits asyncio.sleep
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Mapping


class TokenBucket:
    """Token bucket with ``rate`` tokens per second and room for ``burst`` tokens (default 1).

    With ``burst=1`` consecutive calls are spaced by at least ``1/rate`` seconds, so ``N`` calls
    take at least ``(N - 1) / rate`` seconds. ``clock`` and ``sleep`` are injectable for tests.

    Example::

        bucket = TokenBucket(rate=5)
        bucket.acquire()          # blocks until a token is free (await bucket.acquire_async() in triggers)
    """

    def __init__(self, rate: float, burst: float | None = None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        self.rate = float(rate)
        self.burst = max(1.0, float(burst if burst is not None else 1.0))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._updated = clock()

    def reserve(self, tokens: float = 1.0) -> float:
        """Take ``tokens`` now and return the seconds the caller must wait before acting (>= 0)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= tokens
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self, tokens: float = 1.0) -> float:
        """Block the calling thread until a token is available; return the time waited."""
        wait = self.reserve(tokens)
        if wait > 0:
            self._sleep(wait)
        return wait

    async def acquire_async(self, tokens: float = 1.0) -> float:
        """Await (without blocking the loop) until a token is available; return the time waited."""
        wait = self.reserve(tokens)
        if wait > 0:
            await asyncio.sleep(wait)
        return wait


class RateLimiter:
    """Buckets per ``(region, action)`` from a limits mapping such as ``{"DescribeImages": 10, "*": 20}``.

    The exact action name wins over ``"*"``; an action with no matching limit is not limited.

    Example::

        limiter = RateLimiter({"DescribeImages": 10, "*": 20})
        limiter.acquire("cn-hangzhou", "DescribeImages")
    """

    def __init__(self, limits: Mapping[str, float] | None = None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.limits = {str(k): float(v) for k, v in (limits or {}).items() if v and float(v) > 0}
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._lock = threading.Lock()

    def limit_for(self, action: str) -> float | None:
        return self.limits.get(action, self.limits.get("*"))

    def bucket(self, region: str | None, action: str) -> TokenBucket | None:
        rate = self.limit_for(action)
        if rate is None:
            return None
        key = (region or "", action)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(rate, clock=self._clock, sleep=self._sleep)
            return bucket

    def acquire(self, region: str | None, action: str) -> float:
        bucket = self.bucket(region, action)
        return bucket.acquire() if bucket else 0.0

    async def acquire_async(self, region: str | None, action: str) -> float:
        bucket = self.bucket(region, action)
        return await bucket.acquire_async() if bucket else 0.0


_SHARED: dict[tuple, RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_limiter(key: str, limits: Mapping[str, float] | None) -> RateLimiter:
    """One limiter per (connection, limits) in this process, so every hook on a connection shares buckets."""
    frozen = (key, tuple(sorted((str(k), float(v)) for k, v in (limits or {}).items())))
    with _SHARED_LOCK:
        limiter = _SHARED.get(frozen)
        if limiter is None:
            limiter = _SHARED[frozen] = RateLimiter(limits)
        return limiter


def backoff_cap(attempt: int, base: float, cap: float) -> float:
    """Upper bound of the wait after failed attempt ``attempt`` (1-based): ``min(cap, base * 2**(attempt-1))``."""
    if attempt < 1:
        return 0.0
    return min(cap, base * (2.0 ** min(attempt - 1, 62)))


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, never shorter than the server's ``retry_after`` (seconds).

    ``uniform(0, min(cap, base * 2**(attempt-1)))``, then raised to ``retry_after`` if that is larger.
    """
    upper = backoff_cap(attempt, base, cap)
    delay = (rng or random).uniform(0.0, upper) if upper > 0 else 0.0
    if retry_after is not None and retry_after > delay:
        delay = float(retry_after)
    return delay
