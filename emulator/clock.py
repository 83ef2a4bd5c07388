"""Simulated time for the emulator.

Simulated seconds run ``time_scale`` times faster than real seconds, and the admin API can
jump the clock forward. Scheduled events are kept in a heap of plain data (not closures) so
that they survive a restart with the rest of the state.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass
class SimClock:
    """Simulated clock.

    Example::

        clock = SimClock(time_scale=600)  # 20 simulated minutes per 2 real seconds
        clock.now()                        # float epoch seconds, simulated
    """

    time_scale: float = 1.0
    sim_base: float = field(default_factory=time.time)
    real_base: float = field(default_factory=time.monotonic)
    frozen: bool = False

    def now(self) -> float:
        if self.frozen:
            return self.sim_base
        return self.sim_base + (time.monotonic() - self.real_base) * self.time_scale

    def rebase(self) -> None:
        """Fix the current simulated time as the new base (before changing scale/freezing)."""
        self.sim_base = self.now()
        self.real_base = time.monotonic()

    def set_scale(self, scale: float) -> None:
        if scale <= 0:
            raise ValueError("time_scale must be positive")
        self.rebase()
        self.time_scale = scale

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock cannot go backwards")
        self.rebase()
        self.sim_base += seconds

    def freeze(self, frozen: bool) -> None:
        self.rebase()
        self.frozen = frozen

    def real_seconds(self, sim_seconds: float) -> float:
        """How many real seconds ``sim_seconds`` of simulated time take."""
        return sim_seconds / self.time_scale

    def to_state(self) -> dict:
        return {"time_scale": self.time_scale, "now": self.now(), "frozen": self.frozen}

    @classmethod
    def from_state(cls, data: dict, time_scale: float | None = None) -> SimClock:
        clock = cls(time_scale=time_scale or data.get("time_scale", 1.0))
        clock.sim_base = data["now"]
        clock.frozen = data.get("frozen", False)
        return clock


def iso(ts: float) -> str:
    """ECS style UTC timestamp: 2024-01-01T00:00:00Z."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_minutes(ts: float) -> str:
    """RDS style UTC timestamp: 2024-01-01T00:00Z."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


def parse_iso(value: str) -> float:
    """Parse the UTC timestamps ECS and RDS accept (with or without seconds)."""
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise ValueError(f"not a UTC timestamp: {value!r}")


@dataclass(order=True)
class Event:
    at: float
    seq: int
    kind: str = field(compare=False)
    payload: dict = field(compare=False, default_factory=dict)


class Scheduler:
    """A heap of future events, applied in time order by :meth:`due`."""

    def __init__(self) -> None:
        self._heap: list[Event] = []
        self._seq = 0

    def at(self, when: float, kind: str, **payload) -> Event:
        self._seq += 1
        event = Event(when, self._seq, kind, payload)
        heapq.heappush(self._heap, event)
        return event

    def due(self, now: float):
        """Yield events whose time has come, oldest first; events added meanwhile count too."""
        while self._heap and self._heap[0].at <= now:
            yield heapq.heappop(self._heap)

    def cancel(self, predicate) -> int:
        before = len(self._heap)
        self._heap = [e for e in self._heap if not predicate(e)]
        heapq.heapify(self._heap)
        return before - len(self._heap)

    def __len__(self) -> int:
        return len(self._heap)

    def to_state(self) -> dict:
        return {"seq": self._seq, "events": [(e.at, e.seq, e.kind, e.payload) for e in self._heap]}

    def load_state(self, data: dict) -> None:
        self._seq = data.get("seq", 0)
        self._heap = [Event(*e) for e in data.get("events", [])]
        heapq.heapify(self._heap)
