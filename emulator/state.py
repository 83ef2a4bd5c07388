"""The emulator's whole state: tables of resources, the clock, scheduled events, id counters.

Product modules keep their resources in named tables (``state.table("ecs.images")``) of
plain dicts and schedule future changes with ``state.schedule(delay, "kind", **payload)``;
handlers for event kinds are registered with :func:`on_event`. Everything is plain data, so
the state pickles to the data directory and survives a restart.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .clock import Event, Scheduler, SimClock

log = logging.getLogger("emulator.state")

EventHandler = Callable[["State", Event], None]
_EVENT_HANDLERS: dict[str, EventHandler] = {}


def on_event(kind: str) -> Callable[[EventHandler], EventHandler]:
    """Register the function that applies scheduled events of ``kind``."""

    def register(fn: EventHandler) -> EventHandler:
        _EVENT_HANDLERS[kind] = fn
        return fn

    return register


class State:
    """Everything the emulator knows.

    Example::

        state = State(clock=SimClock(time_scale=100))
        images = state.table("ecs.images")
        images[state.new_id("m")] = {"Status": "Creating"}
        state.schedule(60, "ecs.image.ready", image_id="m-...")
    """

    FILE_NAME = "state.pickle"

    def __init__(self, clock: SimClock | None = None, data_dir: str | Path | None = None, seed: int = 0) -> None:
        self.clock = clock or SimClock()
        self.scheduler = Scheduler()
        self.tables: dict[str, dict[str, Any]] = {}
        self.counters: dict[str, int] = {}
        self.seed = seed
        self.data_dir = Path(data_dir) if data_dir else None
        self.dirty = False
        self.lock = threading.RLock()

    # -- tables and ids -------------------------------------------------------------------
    def table(self, name: str) -> dict[str, Any]:
        table = self.tables.get(name)
        if table is None:
            table = self.tables[name] = {}
        return table

    def new_id(self, prefix: str, length: int = 20) -> str:
        """A fresh id like Alibaba's (``m-bp1g7004ksh0oeuc0bs1``), unique across regions."""
        n = self.counters.get(prefix, 0) + 1
        self.counters[prefix] = n
        digest = hashlib.sha1(f"{self.seed}:{prefix}:{n}".encode()).hexdigest()
        return f"{prefix}-{digest[: length - len(prefix) - 1]}"

    def rng(self, purpose: str) -> random.Random:
        """A random generator that is deterministic for a given seed and purpose."""
        n = self.counters.get(f"rng:{purpose}", 0) + 1
        self.counters[f"rng:{purpose}"] = n
        return random.Random(f"{self.seed}:{purpose}:{n}")

    # -- time -----------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock.now()

    def schedule(self, delay: float, kind: str, **payload: Any) -> Event:
        self.dirty = True
        return self.scheduler.at(self.now() + max(0.0, delay), kind, **payload)

    def schedule_at(self, when: float, kind: str, **payload: Any) -> Event:
        self.dirty = True
        return self.scheduler.at(when, kind, **payload)

    def advance(self) -> int:
        """Apply every event that is due at the current simulated time."""
        applied = 0
        now = self.now()
        for event in self.scheduler.due(now):
            handler = _EVENT_HANDLERS.get(event.kind)
            if handler is None:
                log.error("no handler for event %s", event.kind)
                continue
            handler(self, event)
            applied += 1
        if applied:
            self.dirty = True
        return applied

    # -- persistence ----------------------------------------------------------------------
    def snapshot(self) -> dict:
        return {
            "clock": self.clock.to_state(),
            "scheduler": self.scheduler.to_state(),
            "tables": self.tables,
            "counters": self.counters,
            "seed": self.seed,
        }

    def restore(self, data: dict, time_scale: float | None = None) -> None:
        self.clock = SimClock.from_state(data["clock"], time_scale)
        self.scheduler = Scheduler()
        self.scheduler.load_state(data["scheduler"])
        self.tables = data["tables"]
        self.counters = data["counters"]
        self.seed = data.get("seed", self.seed)

    def reset(self) -> None:
        self.scheduler = Scheduler()
        self.tables = {}
        self.counters = {}
        self.dirty = True

    def save(self) -> None:
        """Write the state atomically to the data directory (if there is one)."""
        if not self.data_dir:
            return
        with self.lock:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.data_dir / (self.FILE_NAME + ".tmp")
            with open(tmp, "wb") as fh:
                pickle.dump(self.snapshot(), fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.data_dir / self.FILE_NAME)
            self.dirty = False

    def load(self, time_scale: float | None = None) -> bool:
        """Load the saved state, if any. Returns whether there was one."""
        if not self.data_dir:
            return False
        path = self.data_dir / self.FILE_NAME
        if not path.exists():
            return False
        with open(path, "rb") as fh:
            self.restore(pickle.load(fh), time_scale)
        return True
