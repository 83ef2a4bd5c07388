"""The clock STS temporary keys live by: the **real** wall clock, not the simulated one.

The SDKs compare the ``Expiration`` they are given with their own clock to decide when to refresh, so an expiry in
simulated time (1000 times faster in the tests) would have them use keys the emulator already refuses.
:func:`credential_now` is real time plus an offset that only ``POST /_emulator/sts/clock {"advance": s}`` moves
(to age keys in a test without waiting); ``GET /_emulator/sts/clock`` reads it.
"""

from __future__ import annotations

import math
import time

from ..clock import iso
from ..registry import admin_route
from ..state import State

CLOCK_TABLE = "sts.clock"
MAX_CLOCK_ADVANCE = 366 * 86400


def credential_now(state: State) -> float:
    """The clock temporary keys live by: real epoch seconds plus the ``sts/clock`` offset (0 unless a test moved
    it). The simulated clock never moves it: its time scale and ``advance`` do not age credentials."""
    return time.time() + float(state.table(CLOCK_TABLE).get("offset", 0.0))


@admin_route("GET", "sts/clock")
def _get_clock(emulator, body: dict, query: dict) -> dict:
    now = credential_now(emulator.state)
    return {"offset": emulator.state.table(CLOCK_TABLE).get("offset", 0.0), "now": now, "iso": iso(now)}


@admin_route("POST", "sts/clock")
def _move_clock(emulator, body: dict, query: dict) -> dict:
    """``{"advance": seconds}``: age every temporary key (and move the ``Expiration`` of new ones) by that much."""
    unknown = set(body) - {"advance"}
    if unknown:
        raise ValueError(f"unknown sts/clock fields: {', '.join(sorted(unknown))}")
    advance = body.get("advance", 0)
    if isinstance(advance, bool) or not isinstance(advance, int | float) or not math.isfinite(advance) \
            or not 0 <= advance <= MAX_CLOCK_ADVANCE:
        raise ValueError(f"advance must be a number of seconds from 0 to {MAX_CLOCK_ADVANCE}")
    table = emulator.state.table(CLOCK_TABLE)
    table["offset"] = float(table.get("offset", 0.0)) + float(advance)
    return _get_clock(emulator, {}, query)
