"""Sync drivers: in-worker waiting for the non-deferrable mode of the instance and Cloud Assistant operators.

The same watches as the triggers in :mod:`aliyun_ops.triggers.ecs_instances`, driven synchronously:
one batched round per ``poll_interval`` until every item is final, the deadline passes or the API fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aliyun_ops.exceptions import AliyunApiError
from aliyun_ops.waiting.instances import MAX_IDS, InstanceWatch, InvocationWatch


def poll_in_worker(watch: Any, one_round: Callable[[], None], *, poll_interval: float, deadline: float | None,
                   log: Any = None, label: str = "") -> dict:
    """Run ``one_round`` until ``watch`` is done or the deadline passes; returns the watch's event.

    Example::

        event = poll_in_worker(watch, lambda: refresh(watch), poll_interval=10, deadline=time.time() + 600)
    """
    try:
        while True:
            one_round()
            watch.polls += 1
            if log is not None:
                log.info("%s: %s", label, watch.summary())
            if watch.done:
                return watch.event("success")
            if deadline is not None and time.time() >= deadline:
                return watch.event("timeout", message=f"deadline passed: {watch.summary()}")
            time.sleep(poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - time.time())))
    except AliyunApiError as err:
        return watch.event("error", message=str(err), error=err.to_dict())


def poll_instances(hook: Any, watch: InstanceWatch, *, poll_interval: float, deadline: float | None,
                   log: Any = None) -> dict:
    """Synchronous twin of :class:`InstanceStatusTrigger`: DescribeInstances for up to 100 ids a call."""

    def one_round() -> None:
        for region, ids in watch.pending_by_region().items():
            for start in range(0, len(ids), MAX_IDS):
                batch = ids[start:start + MAX_IDS]
                watch.update(region, batch, hook.describe_instances(region, instance_ids=batch))
                watch.api_calls += 1

    return poll_in_worker(watch, one_round, poll_interval=poll_interval, deadline=deadline, log=log,
                          label=f"instances -> {watch.target}")


def poll_invocations(hook: Any, watch: InvocationWatch, *, poll_interval: float, deadline: float | None,
                     log: Any = None) -> dict:
    """Synchronous twin of :class:`InvocationTrigger`: one DescribeInvocations per pending invoke id."""

    def one_round() -> None:
        for invoke_id in watch.pending():
            region = watch.items[invoke_id]["region"]
            watch.update(invoke_id, hook.describe_invocations(region, invoke_id))
            watch.api_calls += 1

    return poll_in_worker(watch, one_round, poll_interval=poll_interval, deadline=deadline, log=log,
                          label="Cloud Assistant")
