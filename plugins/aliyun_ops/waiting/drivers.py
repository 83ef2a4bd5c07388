"""The two drivers of every wait: :func:`drive` (sync, in the worker) and :func:`adrive` (async, in a trigger).

A wait is a *watch* (what is known: :class:`~aliyun_ops.waiting.images.ResourceWatch`,
:class:`~aliyun_ops.waiting.instances.InstanceWatch`, :class:`~aliyun_ops.waiting.instances.InvocationWatch`)
and a *plan* (when to look and what to ask: :class:`~aliyun_ops.waiting.images.PollPlan` polls by prediction,
:class:`IntervalPlan` every ``poll_interval``). A plan's ``look(key)`` is a generator of requests; the driver
answers each with ``fetch(request)``, its only I/O. Both drivers end the same way, with the watch's event:
``success`` (all final), ``progress`` (``return_when="first"``: some final, after ``min_partial_seconds``),
``timeout`` (deadline) or ``error`` (a permanent API error; the hook already retried the transient ones).

Example (sync)::

    watch = InstanceWatch({"cn-hangzhou": ["i-1"]}, "Running")
    event = drive(IntervalPlan(watch, instance_requests(watch), poll_interval=10, deadline=time.time() + 600),
                  lambda req: hook.describe_instances(req[1], instance_ids=req[2]))
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import Any

from aliyun_ops.exceptions import AliyunApiError
from aliyun_ops.waiting.images import BATCH, PROBE_STATUSES, PROGRESS, Request, ResourceWatch, SnapshotPointWatch
from aliyun_ops.waiting.instances import MAX_IDS, ConditionWatch, InstanceWatch, InvocationWatch


class IntervalPlan:
    """Look at everything every ``poll_interval`` seconds (first look at once), never past ``deadline``.

    ``requests()`` gives one round's requests; each answer is handed to ``apply(request, answer)``.
    """

    def __init__(self, watch: Any, requests: Callable[[], Iterable[Request]], apply: Callable[[Request, Any], None],
                 *, poll_interval: float, deadline: float | None = None) -> None:
        self.watch = watch
        self.requests = requests
        self.apply = apply
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.next_at = 0.0

    def due(self, now: float) -> list[str]:
        return ["all"] if not self.watch.done and (now >= self.next_at or self.expired(now)) else []

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def wait(self, now: float) -> float:
        wait = max(0.0, self.next_at - now)
        return wait if self.deadline is None else max(0.0, min(wait, self.deadline - now))

    def look(self, key: str) -> Generator[Request, Any, None]:
        for request in list(self.requests()):
            answer = yield request
            self.watch.api_calls += 1
            self.apply(request, answer)
        self.next_at = time.time() + self.poll_interval


def _step(plan: Any, watch: Any, due: list[str], started: float, now: float, log: Any, label: str,
          return_when: str, min_partial_seconds: float) -> dict | None:
    """After a round: the event to end with, or None to wait ``plan.wait(now)`` more."""
    if due:
        watch.polls += 1
        if log is not None:
            log.info("%s: %s", label, watch.summary())
    if watch.done:
        return watch.event("success")
    if return_when == "first" and getattr(watch, "any_terminal", False) and now - started >= min_partial_seconds:
        return watch.event(PROGRESS)
    if plan.expired(now):
        return watch.event("timeout", message=f"deadline passed: {watch.summary()}")
    return None


def _pause(plan: Any, watch: Any, started: float, now: float, return_when: str, min_partial_seconds: float) -> float:
    wait = plan.wait(now)
    if return_when == "first" and getattr(watch, "any_terminal", False):  # only the minimum dwell is left
        wait = min(wait, max(0.0, started + min_partial_seconds - now))
    return wait


def drive(plan: Any, fetch: Callable[[Request], Any], *, log: Any = None, label: str = "wait",
          return_when: str = "all", min_partial_seconds: float = 0.0) -> dict:
    """Run ``plan`` in this thread until its watch ends; returns the event."""
    watch, started = plan.watch, time.time()
    try:
        while True:
            due = plan.due(time.time())
            for key in due:
                look, answer = plan.look(key), None
                try:
                    while True:
                        answer = fetch(look.send(answer))
                except StopIteration:
                    pass
            now = time.time()
            event = _step(plan, watch, due, started, now, log, label, return_when, min_partial_seconds)
            if event is not None:
                return event
            time.sleep(_pause(plan, watch, started, now, return_when, min_partial_seconds))
    except AliyunApiError as err:
        return watch.event("error", message=str(err), error=err.to_dict())


async def adrive(plan: Any, fetch: Callable[[Request], Awaitable[Any]], *, log: Any = None, label: str = "wait",
                 return_when: str = "all", min_partial_seconds: float = 0.0) -> dict:
    """:func:`drive` for a trigger: ``fetch`` is a coroutine function, sleeping does not block the triggerer."""
    watch, started = plan.watch, time.time()
    try:
        while True:
            due = plan.due(time.time())
            for key in due:
                look, answer = plan.look(key), None
                try:
                    while True:
                        answer = await fetch(look.send(answer))
                except StopIteration:
                    pass
            now = time.time()
            event = _step(plan, watch, due, started, now, log, label, return_when, min_partial_seconds)
            if event is not None:
                return event
            await asyncio.sleep(_pause(plan, watch, started, now, return_when, min_partial_seconds))
    except AliyunApiError as err:
        if log is not None:
            log.error("%s: wait stopped by a permanent API error: %s", label, err)
        return watch.event("error", message=str(err), error=err.to_dict())


# -- the interval plans of instances and invocations ----------------------------------------------
def instance_plan(watch: InstanceWatch, *, poll_interval: float, deadline: float | None) -> IntervalPlan:
    """Every round: DescribeInstances for the pending ids, 100 a request: ``("instances", region, ids)``."""
    def requests() -> list[Request]:
        return [("instances", region, ids[n:n + MAX_IDS])
                for region, ids in watch.pending_by_region().items() for n in range(0, len(ids), MAX_IDS)]

    return IntervalPlan(watch, requests, lambda req, records: watch.update(req[1], req[2], records),
                        poll_interval=poll_interval, deadline=deadline)


def invocation_plan(watch: InvocationWatch, *, poll_interval: float, deadline: float | None) -> IntervalPlan:
    """Every round: DescribeInvocations per pending invoke id: ``("invocations", region, invoke_id)``."""
    def requests() -> list[Request]:
        return [("invocations", watch.items[i]["region"], i) for i in watch.pending()]

    return IntervalPlan(watch, requests, lambda req, records: watch.update(req[2], records),
                        poll_interval=poll_interval, deadline=deadline)


def resource_plan(watch: ResourceWatch, *, poll_interval: float, deadline: float | None) -> IntervalPlan:
    """Every round: one DescribeImages/-Snapshots/-Disks per region for the pending ids (100 a request):
    ``("<kind>s", region, ids)``. For a few resources each awaited once (an undo snapshot, a new disk); many images
    in flight use :class:`~aliyun_ops.waiting.images.PollPlan`, which polls by prediction."""
    def requests() -> list[Request]:
        return [(f"{watch.kind}s", region, ids[n:n + BATCH])
                for region, ids in watch.pending_by_region().items() for n in range(0, len(ids), BATCH)]

    return IntervalPlan(watch, requests, lambda req, records: watch.update(req[1], req[2], records, time.time()),
                        poll_interval=poll_interval, deadline=deadline)


def snapshot_point_plan(watch: SnapshotPointWatch, *, poll_interval: float,
                        deadline: float | None) -> IntervalPlan:
    """Every round: DescribeImages for the images not past their point in time, 100 a request."""
    def requests() -> list[Request]:
        return [("images", region, ids[n:n + BATCH])
                for region, ids in watch.pending_by_region().items() for n in range(0, len(ids), BATCH)]

    return IntervalPlan(watch, requests, lambda req, records: watch.update(req[1], req[2], records),
                        poll_interval=poll_interval, deadline=deadline)


def sync_fetch(hook: Any) -> Callable[[Request], Any]:
    """Answer instance, invocation, image, snapshot and disk requests with the hook's sync methods (the one place
    a wait request becomes a hook call in the worker; the triggers have their async twin)."""
    calls: dict[str, Callable[[str, Any], Any]] = {
        "instances": lambda region, ids: hook.describe_instances(region, instance_ids=ids),
        "invocations": lambda region, invoke_id: hook.describe_invocations(region, invoke_id),
        "images": lambda region, ids: hook.describe_images(region, image_ids=ids),
        "snapshots": lambda region, ids: hook.describe_snapshots(region, ids),
        "disks": lambda region, ids: hook.describe_disks(region, ids),
        "count": lambda region, tags: hook.count_images(region, tags, status=PROBE_STATUSES),
    }

    def fetch(request: Request) -> Any:
        what, region, arg = request
        return calls[what](region, arg)

    return fetch


def poll_instances(hook: Any, watch: InstanceWatch, *, poll_interval: float, deadline: float | None,
                   log: Any = None) -> dict:
    """Wait in the worker for instances (the sync twin of ``InstanceStatusTrigger``)."""
    return drive(instance_plan(watch, poll_interval=poll_interval, deadline=deadline), sync_fetch(hook), log=log,
                 label=f"instances -> {watch.target}")


def poll_resources(hook: Any, watch: ResourceWatch, *, poll_interval: float, deadline: float | None,
                   log: Any = None) -> dict:
    """Wait in the worker, every ``poll_interval``, for a few images, snapshots or disks to be final."""
    return drive(resource_plan(watch, poll_interval=poll_interval, deadline=deadline), sync_fetch(hook), log=log,
                 label=f"{watch.kind}s")


def wait_until(check: Callable[[], Any], *, poll_interval: float, deadline: float | None, what: str,
               log: Any = None) -> dict:
    """Call ``check()`` every ``poll_interval`` until it returns something other than None (a backup that
    appeared, a lease that was freed); the event's ``value`` is that, or None after the deadline."""
    watch = ConditionWatch(what)
    plan = IntervalPlan(watch, lambda: [("condition", "", what)], lambda _req, value: watch.update(value),
                        poll_interval=poll_interval, deadline=deadline)
    return drive(plan, lambda _request: check(), log=log, label=what)


def poll_invocations(hook: Any, watch: InvocationWatch, *, poll_interval: float, deadline: float | None,
                     log: Any = None) -> dict:
    """Wait in the worker for Cloud Assistant invocations (the sync twin of ``InvocationTrigger``)."""
    return drive(invocation_plan(watch, poll_interval=poll_interval, deadline=deadline), sync_fetch(hook), log=log,
                 label="Cloud Assistant")


# -- one resource, in the worker (the restore's and the verification's steps) -----------------------
def wait_for_instance(hook: Any, region: str, instance_id: str, target: str, *, timeout: float,
                      poll_interval: float, error: type[Exception] = RuntimeError, log: Any = None) -> None:
    """Wait until the instance is ``target`` (``InstanceWatch``); raise ``error`` if it does not get there."""
    event = poll_instances(hook, InstanceWatch({region: [instance_id]}, target), poll_interval=poll_interval,
                           deadline=time.time() + timeout, log=log)
    info = (event.get("instances") or {}).get(instance_id) or {}
    if not info.get("reached"):
        raise error(f"instance {instance_id} is {info.get('status') or 'unknown'}, not {target}: {event['message']}")


def wait_for_resource(hook: Any, region: str, kind: str, rid: str, *, what: str, timeout: float,
                      poll_interval: float, error: type[Exception] = RuntimeError, missing_polls: int = 2,
                      log: Any = None) -> None:
    """Wait until one image, snapshot or disk is final (``ResourceWatch``); raise ``error`` naming ``what`` unless
    it ended well (Available, accomplished, In_use)."""
    watch = ResourceWatch([{"region": region, "id": rid}], kind=kind, missing_polls=missing_polls)
    event = poll_resources(hook, watch, poll_interval=poll_interval, deadline=time.time() + timeout, log=log)
    item = (event.get("items") or {}).get(rid) or {}
    if not item.get("ok"):
        late = "" if item.get("terminal") else f", after {timeout:.0f}s"
        raise error(f"{what} is {item.get('status') or 'unknown'}, not {' or '.join(sorted(watch.ok_states))}{late}")
