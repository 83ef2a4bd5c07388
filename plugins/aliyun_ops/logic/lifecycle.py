"""Temporary resources over time, pure: when a leftover of an earlier run may be swept.

A run releases what it made for itself in a teardown; a leftover (a killed task, a teardown that never ran) is
released by a later run once it is older than a grace period. A resource whose creation time cannot be read is
never swept: an unknown age is not an old one.

Example::

    stale("2026-11-20T00:00:00Z", now=datetime(2026, 11, 20, 8, tzinfo=UTC), grace=timedelta(hours=6))   # True
"""

from __future__ import annotations

from datetime import datetime, timedelta

DEFAULT_GRACE = timedelta(hours=6)


def parse_created(value: str | None) -> datetime | None:
    """An ECS ``CreationTime`` (``2026-11-20T04:00Z`` or with seconds) as an aware datetime; None if unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def stale(created: str | None, *, now: datetime, grace: timedelta = DEFAULT_GRACE) -> bool:
    """Whether a resource created at ``created`` is older than ``grace`` at ``now``: only then may a sweep release it.

    >>> from datetime import UTC
    >>> t = datetime(2026, 11, 20, 8, tzinfo=UTC)
    >>> stale("2026-11-20T01:00Z", now=t), stale("2026-11-20T03:00:00Z", now=t), stale("soon", now=t)
    (True, False, False)
    """
    if grace < timedelta(0):
        raise ValueError(f"grace must not be negative, got {grace}")
    at = parse_created(created)
    return at is not None and now - at > grace
