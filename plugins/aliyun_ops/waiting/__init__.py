"""The waiting engine: what to look at and when, without I/O (watches, poll by prediction), and the
sync drivers that run a watch in the worker. Triggers (async drivers) and operators both build on it;
operators import from :mod:`aliyun_ops.triggers` only the trigger classes they defer to.
"""

from __future__ import annotations

import time


def deadline_from(timeout_seconds: float | None) -> float | None:
    """An absolute epoch deadline ``timeout_seconds`` from now (None: no deadline), so a triggerer restart keeps it."""
    return None if timeout_seconds is None else time.time() + float(timeout_seconds)


def pause(seconds: float) -> None:
    """The one fixed delay outside a watch: between the tries of a health check, while a lease settles. Operators
    never sleep themselves (a wait is a watch, driven here or in a trigger)."""
    if seconds > 0:
        time.sleep(seconds)
