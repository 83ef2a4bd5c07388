"""Power calls, pauses and rolling waves over many instances: the steps Start/Stop, RunCommand and the resume
share. A lost answer is checked with DescribeInstances; a pause is tagged before the disruptive call and taken under
the run's lease (:mod:`.leases`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..exceptions import AliyunApiError
from ..hooks.ecs import EcsHook
from ..logic import pause
from ..logic.args import check_lease_wait
from ..logic.budget import ErrorBudget, resolve_concurrency
from ..logic.outcome import FAILED, SKIPPED
from ..logic.targets import by_region
from ..runtime import run_key
from . import leases


def result(item: Mapping[str, Any], outcome: str, status: str = "", reason: str = "", **extra: Any) -> dict:
    return {"instance_id": item["instance_id"], "region": item["region"], "status": outcome, "reason": reason,
            "instance_status": status, **extra}


def describe_targets(hook: EcsHook, targets: Sequence[Mapping[str, Any]]) -> dict[str, dict]:
    """``{instance_id: DescribeInstances record}`` for the targets that exist (batched, per region)."""
    found: dict[str, dict] = {}
    for region, ids in by_region(targets).items():
        for rec in hook.describe_instances(region, instance_ids=ids):
            found[rec["InstanceId"]] = rec
    return found


def triage(hook: EcsHook, items: Sequence[Mapping[str, Any]],
           decide: Callable[[dict, Mapping[str, Any]], tuple[str, str] | None]) -> tuple[dict[str, dict], list[dict]]:
    """Look the instances up (batched, per region) and settle what needs no call: ``decide(item, record)`` returns
    None to act on the instance, or ``(outcome, reason)`` to settle it now; an instance not found fails.
    Returns ``({instance_id: result} settled, [items to act on, each with its current "status"])``."""
    current = describe_targets(hook, items)
    settled: dict[str, dict] = {}
    todo: list[dict] = []
    for item in items:
        rec = current.get(item["instance_id"])
        if rec is None:
            settled[item["instance_id"]] = result(item, FAILED, "", f"instance not found in {item['region']}")
            continue
        item = {**item, "status": rec.get("Status", "")}
        verdict = decide(item, rec)
        if verdict is None:
            todo.append(item)
        else:
            settled[item["instance_id"]] = result(item, verdict[0], item["status"], verdict[1])
    return settled, todo


def plan_waves(items: Sequence[Mapping[str, Any]], settled: dict[str, dict], todo: list[dict],
               concurrency: int | str, doing: str, log: Any) -> dict:
    """The resumable state of a rolling run: ``todo`` cut into waves of ``concurrency`` (OOS semantics)."""
    size = resolve_concurrency(concurrency, len(todo))
    waves = [todo[i:i + size] for i in range(0, len(todo), size)]
    log.info("%d instance(s): %d to %s in %d wave(s), %d skipped, %d failed before any call", len(items), len(todo),
             doing, len(waves), sum(1 for r in settled.values() if r["status"] == SKIPPED),
             sum(1 for r in settled.values() if r["status"] == FAILED))
    return {"order": [i["instance_id"] for i in items], "results": settled, "waves": waves}


def next_wave(state: dict, max_errors: int | str) -> list[dict] | None:
    """The next wave of ``state``; None when none is left or the failures exceed ``max_errors`` (then every
    instance of the waves left is ``skipped``, never started)."""
    results = state["results"]
    if not state["waves"]:
        return None
    budget = ErrorBudget.after([results[i]["status"] if i in results else "" for i in state["order"]], max_errors)
    if budget.exhausted:
        for item in (i for wave in state["waves"] for i in wave):
            results[item["instance_id"]] = result(item, SKIPPED, item.get("status", ""), budget.not_started)
        state["waves"] = []
        return None
    return state["waves"].pop(0)


def mark_paused(hook: EcsHook, context: Any, region: str, ids: list[str], mode: str, refusal: str) -> str | None:
    """Tag ``ids`` ``ops:paused-*`` (this run, ``mode``) before a disruptive call; returns the reason to give
    each instance (``refusal`` + why) if tagging failed, in which case the caller must not pause them. The tag must
    be removable again (``ecs:UntagResources``), or a resume could never finish: that is proven first."""
    tags = pause.pause_tags(run_key=run_key(context), dag_id=context["ti"].dag_id, mode=mode, at=datetime.now(UTC))
    try:
        hook.check_allowed("UntagResources", region, ids[0])
        hook.tag_resources(region, "instance", ids, tags)
    except AliyunApiError as err:
        return f"{refusal}: could not tag it {pause.PAUSED_BY} first ({err.code}: {err.message})"
    return None


def lease_items(hook: EcsHook, context: Any, items: Sequence[Mapping[str, Any]], *, purpose: str,
                wait_seconds: Any, poll_interval: float, log: Any) -> tuple[list[dict], dict[str, dict]]:
    """Take this run's lease (:mod:`aliyun_ops.leases`) on each instance before a disruptive step; returns the
    items leased and ``{instance_id: failed result}`` for those another live run holds (after waiting up to
    ``wait_seconds``) or that could not be tagged. Nothing else is changed for a refused instance."""
    taken = leases.acquire(hook, context, items, purpose=purpose, wait_seconds=check_lease_wait(wait_seconds),
                           poll_interval=min(float(poll_interval), 60.0), log=log)
    refused = {i["instance_id"]: result(i, FAILED, "", f"{purpose} refused: {taken.refused[i['instance_id']]}")
               for i in items if i["instance_id"] in taken.refused}
    for iid, seconds in taken.waited.items():
        log.info("%s: leased after waiting %.0fs for another run", iid, seconds)
    return [i for i in items if i["instance_id"] not in refused], refused



def unmark_paused(hook: EcsHook, region: str, ids: list[str], log: Any, left: str) -> None:
    """Drop the ``ops:paused-*`` tags of ``ids``, which :func:`mark_paused` wrote but which were never paused (the
    call was refused), so that no resume ever acts on them; ``left`` says in the warning what a resume would do if
    the tags stay."""
    try:
        hook.untag_resources(region, "instance", ids, pause.PAUSE_TAG_KEYS)
    except AliyunApiError as err:
        log.warning("could not remove the pause tags of %s (%s): the resume will find them %s", ", ".join(ids),
                    err.code, left)


def call_power(hook: EcsHook, call: Any, region: str, ids: list[str], done: set[str], log: Any) -> dict[str, dict]:
    """Run a batched power call (``call()`` -> InstanceResponses); an instance whose answer is an error, or missing
    (a dropped connection, a retry told "IncorrectInstanceStatus ... is Starting"), is described again and counts
    as accepted (``Code == "200"``) when its status is in ``done``. Returns ``{instance_id: answer}`` for all ``ids``.
    """
    try:
        answered = {r.get("InstanceId"): r for r in call()}
    except AliyunApiError as err:
        log.warning("power call in %s failed (%s): checking what actually happened", region, err)
        answered = {i: {"InstanceId": i, "Code": err.code, "Message": err.message} for i in ids}
    doubtful = [i for i in ids if str((answered.get(i) or {}).get("Code")) != "200"]
    current = describe_targets(hook, [{"instance_id": i, "region": region} for i in doubtful]) if doubtful else {}
    for iid in doubtful:
        status = (current.get(iid) or {}).get("Status")
        if status in done:
            log.info("%s: answer was %s, but it is %s: accepted", iid, (answered.get(iid) or {}).get("Code", "missing"),
                     status)
            answered[iid] = {"InstanceId": iid, "Code": "200", "CurrentStatus": status}
        else:
            answered.setdefault(iid, {"InstanceId": iid, "Code": "NoResponse", "Message": "no answer"})
            answered[iid].setdefault("CurrentStatus", status or "")
    return answered


def select_by_tags(hook: EcsHook, regions: Sequence[str], tags: Mapping[str, str]) -> list[dict]:
    out = []
    for region in regions:
        out.extend({"instance_id": r["InstanceId"], "region": region}
                   for r in hook.describe_instances(region, tags=tags))
    return out
