"""Take and release instance leases (:mod:`aliyun_ops.logic.lease`) through the ECS API.

A lease is taken before an instance is stopped, frozen, restored or cycled, and released by the run's resume
teardown (:class:`~aliyun_ops.operators.ecs_pause.ResumePausedOperator`), so two runs that overlap (a backfill
next to tonight's run, a second deployment, two manual restores) never disrupt one instance at once. Lease times
are the worker's wall clock (UTC): a lease guards real time between processes, unlike plans, which take their
time from the run.

Example::

    taken = acquire(hook, context, [{"instance_id": "i-1", "region": "cn-hangzhou"}], purpose="restore",
                    wait_seconds=0, log=log)
    taken.refused     # {"i-1": "held by DAG ecs_restore_system_disk run manual__... (restore) until ..."}
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..exceptions import AliyunApiError, error_reason
from ..hooks.ecs import EcsHook
from ..logic import lease as lz
from ..logic.provenance import tags_from_api
from ..logic.targets import by_region
from ..runtime import run_key
from ..waiting import pause

SETTLE_SECONDS = 2.0
"""Between writing a lease and reading it back: a run that wrote at the same moment is seen then."""


def run_epoch(context: Any) -> str:
    """The DAG run's start time: it tells apart two deployments' runs of the same night (same DAG, same key)."""
    started = getattr(context.get("dag_run"), "start_date", None) if hasattr(context, "get") else None
    return started.strftime("%Y%m%dT%H%M%S.%f") if isinstance(started, datetime) else ""


def run_holder(context: Any) -> str:
    """The lease holder value of this DAG run."""
    return lz.holder_id(context["ti"].dag_id, run_key(context), run_epoch(context))


@dataclass
class Taken:
    """What :func:`acquire` got: ``held`` ids, ``refused`` ``{id: reason}``, ``waited`` ``{id: seconds}``."""

    held: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    waited: dict[str, float] = field(default_factory=dict)


def _tags_by_id(hook: EcsHook, region: str, ids: Sequence[str]) -> dict[str, dict[str, str]]:
    return {r["InstanceId"]: tags_from_api(r.get("Tags")) for r in hook.describe_instances(region, instance_ids=ids)}


def _try_once(hook: EcsHook, region: str, ids: list[str], holder: str, purpose: str, ttl: timedelta,
              refused: dict[str, str]) -> tuple[list[str], list[str]]:
    """One read -> write -> settle -> read back over ``ids``; returns (held, still blocked)."""
    now = datetime.now(UTC)
    tags = _tags_by_id(hook, region, ids)
    held, blocked, take = [], [], []
    for iid in ids:
        if iid not in tags:
            refused[iid] = f"instance not found in {region}"
            continue
        seen = lz.verdict(tags[iid], holder, now)
        (blocked if seen == lz.HELD else take).append(iid)
    if take:
        hook.tag_resources(region, "instance", take, lz.lease_tags(holder, now=now, ttl=ttl, purpose=purpose))
        pause(SETTLE_SECONDS)
        after = _tags_by_id(hook, region, take)
        for iid in take:
            (held if lz.verdict(after.get(iid, {}), holder, datetime.now(UTC)) == lz.OURS else blocked).append(iid)
    return held, blocked


def acquire(hook: EcsHook, context: Any, items: Sequence[Mapping[str, Any]], *, purpose: str,
            ttl: timedelta = lz.DEFAULT_TTL, wait_seconds: float = 0.0, poll_interval: float = 15.0,
            log: Any = None) -> Taken:
    """Take (or renew) this run's lease on each instance of ``items``; an instance another live run holds is waited
    for up to ``wait_seconds`` (0: refused at once), then refused with who holds it. A lease we cannot tag (API
    error) is refused with the error; nothing else is changed."""
    holder, taken = run_holder(context), Taken()
    started = time.monotonic()
    for region, ids in by_region(items).items():
        try:
            hook.check_allowed("UntagResources", region, ids[0])   # a lease must be releasable again
        except AliyunApiError as err:
            taken.refused.update(dict.fromkeys(ids, f"cannot take a lease: {error_reason(err)}"))
            continue
        pending, rounds = list(ids), 0
        while pending:
            try:
                held, pending = _try_once(hook, region, pending, holder, purpose, ttl, taken.refused)
            except AliyunApiError as err:
                taken.refused.update(dict.fromkeys(pending, f"cannot take a lease: {error_reason(err)}"))
                break
            waited = round(time.monotonic() - started, 1)
            taken.held += held
            if rounds:
                taken.waited.update(dict.fromkeys(held, waited))
            rounds += 1
            if not pending:
                break
            if time.monotonic() - started + poll_interval > wait_seconds:
                _refuse(hook, region, pending, taken, waited)
                break
            if log:
                log.info("%d instance(s) leased by another run; waiting (%.0fs so far): %s", len(pending), waited,
                         ", ".join(pending[:10]))
            pause(poll_interval)
    if log and taken.refused:
        log.warning("not leased: %s", "; ".join(f"{i}: {r}" for i, r in sorted(taken.refused.items())))
    return taken


def _refuse(hook: EcsHook, region: str, ids: list[str], taken: Taken, waited: float) -> None:
    tags = _tags_by_id(hook, region, ids)
    for iid in ids:
        lease = lz.read_lease(tags.get(iid, {}))
        who = lease.describe() if lease else "taken by another run at the same moment"
        taken.refused[iid] = f"another run holds it: {who}" + (f" (waited {waited:.0f}s)" if waited >= 5 else "")


def release(hook: EcsHook, region: str, ids: Sequence[str]) -> None:
    """Remove the lease tags of ``ids`` (the caller checked they are this run's)."""
    if ids:
        hook.untag_resources(region, "instance", list(ids), lz.LEASE_TAG_KEYS)


def held_by_run(hook: EcsHook, context: Any, region: str) -> list[dict]:
    """The instances of ``region`` whose lease this run holds (DescribeInstances by the holder tag)."""
    return hook.describe_instances(region, tags={lz.LEASE_HOLDER: run_holder(context)})
