"""Triggers that wait on many ECS instances or Cloud Assistant invocations at once.

:class:`InstanceStatusTrigger` polls ``DescribeInstances`` with up to 100 ids per call (per region)
until every instance has reached the target status (``Running``, ``Stopped``, or ``Deleted`` =
no longer returned), has vanished, or the absolute deadline passes. It yields exactly one event::

    {"status": "success" | "timeout" | "error", "target_status": "Running",
     "instances": {"i-1": {"region": "cn-hangzhou", "status": "Running", "reached": true}, ...},
     "pending": ["i-7"],             # not at the target when the trigger gave up (timeout/error)
     "message": "...", "error": {...} | None, "polls": 3, "api_calls": 4}

:class:`InvocationTrigger` polls ``DescribeInvocations`` once per invoke id (one invocation covers
up to 100 instances) until every invocation is final. Its event carries per-instance statuses but
no command output (outputs can be 24 KB per instance; the operator fetches them on resume)::

    {"status": "success" | "timeout" | "error",
     "invocations": {"t-1": {"region": "cn-hangzhou", "status": "Success",
                             "instances": {"i-1": "Success", "i-2": "Failed"}}},
     "pending": ["t-2"], "message": "...", "error": {...} | None, "polls": 2, "api_calls": 2}

The watch classes are plain Python, shared with the operators' in-process (non-deferrable) polling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from airflow.triggers.base import TriggerEvent

from aliyun_ops.triggers.base import AliyunBaseTrigger, async_fetch
from aliyun_ops.waiting.drivers import adrive, instance_plan, invocation_plan
from aliyun_ops.waiting.instances import (
    DELETED,
    INSTANCE_TARGETS,
    MAX_IDS,
    MISSING,
    InstanceWatch,
    InvocationWatch,
    _by_region,
)

__all__ = ["DELETED", "INSTANCE_TARGETS", "MAX_IDS", "MISSING", "InstanceStatusTrigger", "InstanceWatch",
           "InvocationTrigger", "InvocationWatch"]

class _EcsWaitTrigger(AliyunBaseTrigger):
    """``carry`` is opaque JSON handed back unchanged in the event (``event["carry"]``): the operator's
    per-item state. Defer ``kwargs`` would be the usual place, but ``dag.test()`` (Airflow 3.3) drops them
    when it resumes a task, so the state travels with the trigger instead."""

    def _event(self, payload: dict) -> TriggerEvent:
        return TriggerEvent({**payload, "carry": self.carry})

    def make_hook(self):
        from aliyun_ops.hooks.ecs import EcsHook

        return EcsHook(aliyun_conn_id=self.aliyun_conn_id, region=self.region)

    async def _run(self, plan: Any, label: str):
        """Drive ``plan`` with the async hook (one client per region); yields the one event."""
        try:
            hook = self.make_hook()
            await hook.asettings()
            event = await adrive(plan, async_fetch(hook), log=self.log, label=label)
        except ValueError as err:  # e.g. a broken connection definition
            event = plan.watch.event("error", message=str(err), error={"code": "ValueError", "message": str(err)})
        yield self._event(event)


class InstanceStatusTrigger(_EcsWaitTrigger):
    """Wait until many instances (one or more regions) reach ``target_status``; batched DescribeInstances.

    ``target_status`` is ``Running``, ``Stopped`` or ``Deleted`` (no longer returned). An instance that
    disappears while waiting for another status ends as ``Missing`` (not reached).

    Example::

        InstanceStatusTrigger(targets={"cn-hangzhou": ["i-1", "i-2"], "cn-shanghai": ["i-3"]},
                              target_status="Running", poll_interval=10, deadline=time.time() + 1800)
    """

    serialized_fields: ClassVar[tuple[str, ...]] = ("targets", "target_status", "missing_polls", "carry")

    def __init__(self, *, targets: Mapping[str, Sequence[str]], target_status: str, missing_polls: int = 2,
                 carry: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.carry = carry
        self.targets = _by_region(targets)
        if target_status not in INSTANCE_TARGETS:
            raise ValueError(f"target_status must be one of {list(INSTANCE_TARGETS)}, got {target_status!r}")
        self.target_status = target_status
        self.missing_polls = int(missing_polls)

    async def run(self):
        watch = InstanceWatch(self.targets, self.target_status, missing_polls=self.missing_polls)
        if not watch.items:
            yield self._event(watch.event("success", message="nothing to wait for"))
            return
        plan = instance_plan(watch, poll_interval=self.poll_interval, deadline=self.deadline)
        async for event in self._run(plan, f"instances -> {self.target_status}"):
            yield event


class InvocationTrigger(_EcsWaitTrigger):
    """Wait until Cloud Assistant invocations are final; one DescribeInvocations call per invoke id per poll.

    Example::

        InvocationTrigger(targets={"cn-hangzhou": ["t-1", "t-2"]}, poll_interval=5, deadline=time.time() + 900)
    """

    serialized_fields: ClassVar[tuple[str, ...]] = ("targets", "carry")

    def __init__(self, *, targets: Mapping[str, Sequence[str]], carry: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.carry = carry
        self.targets = _by_region(targets)

    async def run(self):
        watch = InvocationWatch(self.targets)
        if not watch.items:
            yield self._event(watch.event("success", message="nothing to wait for"))
            return
        async for event in self._run(invocation_plan(watch, poll_interval=self.poll_interval, deadline=self.deadline),
                                     "Cloud Assistant"):
            yield event

