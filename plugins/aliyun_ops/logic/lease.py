"""Leases on instances, held in the cloud: what must not happen twice at once. Pure: no I/O.

Airflow's ``max_active_runs`` does not see a backfill next to tonight's run (Airflow 3 counts them apart), a second
deployment against the same account, or two manual restores approved together. So a run that stops, freezes,
restores or cycles an instance first tags it::

    ops:lease-holder  = <dag id>|<run key>|<epoch>   who holds it (the epoch tells two deployments' runs of the same
                                                     night apart: the DAG run's start time)
    ops:lease-until   = <ISO time, UTC>              after this the lease is stale and anyone may take it
    ops:lease-purpose = stop | freeze | restore | …  what it is held for (for the humans reading the tags)

and the resume teardown of the same run removes the tags. Tags have no compare-and-swap, so taking a lease is
read -> write -> settle -> read back: whoever's value is there after the settle holds it.

Example::

    holder = holder_id("ecs_cross_region_backup", "2026-11-20T18:00:00+00:00", "2026-11-20T18:00:05")
    tags = lease_tags(holder, now=now, ttl=timedelta(hours=12), purpose="stop")
    verdict(tags_of_instance, holder, now)      # -> "ours" | "free" | "stale" | "held"
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

LEASE_HOLDER = "ops:lease-holder"
LEASE_UNTIL = "ops:lease-until"
LEASE_PURPOSE = "ops:lease-purpose"
LEASE_TAG_KEYS = (LEASE_HOLDER, LEASE_UNTIL, LEASE_PURPOSE)

DEFAULT_TTL = timedelta(hours=12)
MAX_TAG_VALUE = 128

FREE, OURS, STALE, HELD = "free", "ours", "stale", "held"


def holder_id(dag_id: str, run_key: str, epoch: str = "") -> str:
    """The holder value of one DAG run; long ones keep a readable head and a digest of the whole, so two runs never
    share a value (a tag value holds at most 128 characters).

    >>> holder_id("backup", "2026-11-20T18:00:00+00:00", "e1")
    'backup|2026-11-20T18:00:00+00:00|e1'
    >>> len(holder_id("d" * 200, "r")) <= 128
    True
    """
    full = f"{dag_id}|{run_key}|{epoch}"
    if len(full) <= MAX_TAG_VALUE:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:16]
    return f"{full[:MAX_TAG_VALUE - 17]}#{digest}"


def lease_tags(holder: str, *, now: datetime, ttl: timedelta = DEFAULT_TTL, purpose: str = "") -> dict[str, str]:
    """The tags that take (or renew) a lease for ``ttl`` from ``now`` (an aware datetime)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if ttl <= timedelta(0):
        raise ValueError(f"a lease must last some time, got {ttl}")
    return {LEASE_HOLDER: holder[:MAX_TAG_VALUE], LEASE_UNTIL: (now + ttl).isoformat(timespec="seconds"),
            LEASE_PURPOSE: purpose[:MAX_TAG_VALUE]}


@dataclass(frozen=True)
class Lease:
    holder: str
    until: datetime | None      # None: unreadable, which counts as live (fail closed) until someone looks
    purpose: str = ""

    def describe(self) -> str:
        dag, _, rest = self.holder.partition("|")
        run = rest.rpartition("|")[0] or rest
        until = self.until.isoformat(timespec="seconds") if self.until else "an unreadable time"
        return f"held by DAG {dag} run {run}{f' ({self.purpose})' if self.purpose else ''} until {until}"


def read_lease(tags: Mapping[str, str]) -> Lease | None:
    """The lease an instance's tags hold; None when it carries none."""
    holder = tags.get(LEASE_HOLDER)
    if not holder:
        return None
    try:
        until = datetime.fromisoformat(tags.get(LEASE_UNTIL) or "")
    except ValueError:
        until = None
    if until is not None and until.tzinfo is None:
        until = None
    return Lease(holder, until, tags.get(LEASE_PURPOSE, ""))


def verdict(tags: Mapping[str, str], holder: str, now: datetime) -> str:
    """Whether ``holder`` may act on a resource with these tags at ``now``: ``ours`` (it holds the lease), ``free``
    (no lease), ``stale`` (another holder's lease expired: it may be taken) or ``held`` (another live lease).

    >>> from datetime import timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> verdict(lease_tags("a", now=t), "b", t), verdict(lease_tags("a", now=t), "a", t), verdict({}, "a", t)
    ('held', 'ours', 'free')
    """
    lease = read_lease(tags)
    if lease is None:
        return FREE
    if lease.holder == holder[:MAX_TAG_VALUE]:
        return OURS
    if lease.until is not None and lease.until <= now:
        return STALE
    return HELD
