"""Pausing instances for a consistent backup, and deciding how to undo it. Pure: no I/O.

An instance we stop (``mode="stop"``) or freeze with a pre-backup command (``mode="freeze"``) is
tagged *before* the disruptive call, and keeps the tags until it has been resumed::

    ops:paused-by   = <run key>     the run that paused it (its logical date, else its run id)
    ops:paused-dag  = <dag id>      the DAG of that run
    ops:paused-mode = stop | freeze how it was paused, hence how to undo it
    ops:paused-at   = <ISO time>    when the pause was requested (UTC, the worker's clock)

and, once an early resume (right after the image's snapshots are taken) was requested::

    ops:resumed-at  = <ISO time>    when the start or thaw was requested (same clock)
    ops:thaw-invoke = <invoke id>   the thaw command sent early, checked by the final resume

The tags are the durable fact a resume works from: whatever failed upstream (a task killed, a
run marked failed by hand, a scheduler restart), the next resume finds the instance by its tags.

Example::

    tags = pause_tags(run_key="2026-11-20T18:00:00+00:00", dag_id="backup", mode="stop", at=now)
    plan_resume("stop", "Stopped")      # -> "start"
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime

from . import statuses as st

PAUSED_BY = "ops:paused-by"
PAUSED_DAG = "ops:paused-dag"
PAUSED_MODE = "ops:paused-mode"
PAUSED_AT = "ops:paused-at"
RESUMED_AT = "ops:resumed-at"
THAW_INVOKE = "ops:thaw-invoke"
PAUSE_TAG_KEYS = (PAUSED_BY, PAUSED_DAG, PAUSED_MODE, PAUSED_AT, RESUMED_AT, THAW_INVOKE)

STOP, FREEZE = "stop", "freeze"
MODES = (STOP, FREEZE)

# what a resume does with one paused instance, by mode and current status
START = "start"        # call StartInstances, then wait for Running
THAW = "thaw"          # run the post-backup (thaw) command
WAIT = "wait"          # a transition is under way: look again once it settles
DONE = "done"          # nothing to undo any more: only remove the tags
GONE = "gone"          # the instance no longer exists: nothing to undo, nothing to untag

SETTLED = frozenset({st.RUNNING, st.STOPPED})


def pause_tags(*, run_key: str, dag_id: str, mode: str, at: datetime) -> dict[str, str]:
    """The tags put on an instance before it is stopped or frozen.

    >>> from datetime import datetime, timezone
    >>> pause_tags(run_key="r1", dag_id="d", mode="stop", at=datetime(2026, 1, 1, tzinfo=timezone.utc))[PAUSED_AT]
    '2026-01-01T00:00:00+00:00'
    """
    if mode not in MODES:
        raise ValueError(f"pause mode must be one of {MODES}, got {mode!r}")
    return {PAUSED_BY: str(run_key)[:128], PAUSED_DAG: str(dag_id)[:128], PAUSED_MODE: mode,
            PAUSED_AT: at.isoformat(timespec="seconds"),
            RESUMED_AT: "", THAW_INVOKE: ""}  # a new pause forgets an earlier resume (a re-run of the night)


def pause_digest(paused: Iterable[Mapping[str, str]]) -> str:
    """A short digest of these pauses (instance and ``paused_at``): part of a thaw's ClientToken, so that a
    thaw is sent again for a new pause (a re-run) and never answered by the invocation of an earlier one.

    >>> pause_digest([{"instance_id": "i-1", "paused_at": "t"}]) == pause_digest([{"instance_id": "i-1", "paused_at": "u"}])
    False
    """
    text = ",".join(sorted(f"{p['instance_id']}@{p.get('paused_at') or ''}" for p in paused))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_resume(mode: str, status: str | None) -> str:
    """What to do for an instance paused in ``mode`` that is now ``status`` (None: not found).

    * stop: Stopped -> start; Running -> done (someone, or an early resume, started it);
      Starting/Pending -> wait (then done); Stopping -> wait (then start).
    * freeze: Running -> thaw; Stopped -> done (a stop or reboot ends a freeze); transitions -> wait.
    * an unknown mode is treated as ``stop`` when the instance is Stopped and ``freeze`` when Running:
      the undo that cannot hurt (starting what is stopped, thawing what may be frozen).

    >>> plan_resume("stop", "Stopped"), plan_resume("freeze", "Running"), plan_resume("stop", None)
    ('start', 'thaw', 'gone')
    """
    if not status:
        return GONE
    if status not in SETTLED:
        return WAIT
    if mode == FREEZE:
        return THAW if status == st.RUNNING else DONE
    if mode == STOP:
        return START if status == st.STOPPED else DONE
    return START if status == st.STOPPED else THAW


def paused_info(tags: Mapping[str, str]) -> dict[str, str] | None:
    """The pause tags of a resource as ``{"run_key", "dag_id", "mode", "paused_at", "resumed_at",
    "thaw_invoke"}``; None when not paused."""
    if PAUSED_BY not in tags:
        return None
    return {"run_key": tags.get(PAUSED_BY, ""), "dag_id": tags.get(PAUSED_DAG, ""),
            "mode": tags.get(PAUSED_MODE, ""), "paused_at": tags.get(PAUSED_AT, ""),
            "resumed_at": tags.get(RESUMED_AT, ""), "thaw_invoke": tags.get(THAW_INVOKE, "")}


def image_point_in_time_taken(image: Mapping) -> bool:
    """Whether a (DescribeImages) image record has its snapshots taken: every disk mapping has a snapshot id.

    From then on the image no longer depends on the instance's disks staying still, so a stopped or frozen
    instance can be resumed although the image is not Available yet.
    """
    mappings = (image.get("DiskDeviceMappings") or {}).get("DiskDeviceMapping") or []
    return bool(mappings) and all(m.get("SnapshotId") for m in mappings)


def parse_time(value: str | None) -> datetime | None:
    """An ``ops:*-at`` tag value as an aware datetime; None when absent, malformed or naive."""
    try:
        parsed = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def paused_seconds(paused_at: str | None, resumed_at: datetime | None) -> float | None:
    """Seconds between the ``ops:paused-at`` tag and the resume; None when either is unknown or malformed."""
    start = parse_time(paused_at)
    if start is None or resumed_at is None:
        return None
    if resumed_at.tzinfo is None:
        return None
    return round(max(0.0, (resumed_at - start).total_seconds()), 1)


def started_since(instance_start: str | None, image_created: str | None) -> bool:
    """Whether an instance has (or may have) run since an image of it was made: its ``StartTime`` is at or after the
    image's ``CreationTime`` (the image's point in time), compared to the minute, as DescribeInstances gives only
    minutes. No ``StartTime`` means never started; an unreadable time counts as "started since" (fail safe: a new
    image is made, never an old one written back onto a disk that has changed since).

    >>> started_since("2026-11-20T04:00Z", "2026-11-20T10:05:09Z"), started_since("2026-11-20T10:06Z", "2026-11-20T10:05:09Z")
    (False, True)
    >>> started_since("2026-11-20T10:05Z", "2026-11-20T10:05:09Z"), started_since("", "2026-11-20T10:05:09Z")
    (True, False)
    >>> started_since("2026-11-20T10:06Z", None), started_since("soon", "2026-11-20T10:05:09Z")
    (True, True)
    """
    if not instance_start:
        return False
    start, created = parse_time(instance_start), parse_time(image_created)
    if start is None or created is None:
        return True
    return start.replace(second=0, microsecond=0) >= created.replace(second=0, microsecond=0)
