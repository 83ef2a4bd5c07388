"""Sensor: wait until ECS instances reach a status (deferrable by default)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator

from aliyun_ops.exceptions import WaitFailed
from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.logic import statuses as st
from aliyun_ops.logic.targets import by_region, normalize_instances
from aliyun_ops.runtime import DEFAULT_CONN_ID, AliyunOperatorMixin, aliyun_template_fields
from aliyun_ops.triggers.ecs_instances import InstanceStatusTrigger
from aliyun_ops.waiting.instances import INSTANCE_TARGETS, InstanceWatch


class WaitForInstanceStatusSensor(AliyunOperatorMixin, BaseSensorOperator):
    """Wait until every given instance is ``target_status`` (``Running``, ``Stopped`` or ``Deleted``).

    Deferrable by default: the wait runs in :class:`~aliyun_ops.triggers.ecs_instances.InstanceStatusTrigger`
    (batched DescribeInstances, 100 ids per call, absolute deadline = now + ``timeout``). With
    ``deferrable=False`` it pokes every ``poke_interval`` in a worker slot. Instances may span regions
    when given as records with a ``region`` key. Fails if an instance vanishes (unless waiting for
    ``Deleted``) or the timeout passes. Returns ``{"i-1": "Running", ...}``.

    Example::

        WaitForInstanceStatusSensor(task_id="wait_running", instance_ids=["i-1", "i-2"], region="cn-hangzhou",
                                    target_status="Running", poke_interval=10, timeout=1800)
    """

    template_fields: Sequence[str] = aliyun_template_fields("instance_ids", "target_status")
    hook_class = EcsHook

    def __init__(self, *, instance_ids: Any, target_status: str = st.RUNNING, region: str | None = None,
                 aliyun_conn_id: str = DEFAULT_CONN_ID, deferrable: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("poke_interval", 15)
        kwargs.setdefault("timeout", 3600)
        super().__init__(**kwargs)
        self.instance_ids = instance_ids
        self.target_status = target_status
        self.region = region
        self.aliyun_conn_id = aliyun_conn_id
        self.deferrable = deferrable

    def _targets(self) -> dict[str, list[str]]:
        if self.target_status not in INSTANCE_TARGETS:
            raise ValueError(f"target_status must be one of {list(INSTANCE_TARGETS)}, got {self.target_status!r}")
        items = normalize_instances(self.instance_ids, self.region or self.hook.region)
        if not items:
            raise ValueError("instance_ids is empty")
        return by_region(items)

    def execute(self, context: Any) -> Any:
        targets = self._targets()
        if not self.deferrable:
            return super().execute(context)
        timeout = float(self.timeout) if self.timeout is not None else None
        self.defer(trigger=InstanceStatusTrigger(targets=targets, target_status=self.target_status,
                                                 aliyun_conn_id=self.aliyun_conn_id,
                                                 poll_interval=float(self.poke_interval),
                                                 deadline=None if timeout is None else time.time() + timeout),
                   method_name="execute_complete",
                   timeout=None if timeout is None else timedelta(seconds=timeout + 300))

    def poke(self, context: Any) -> bool:
        targets = self._targets()
        watch = InstanceWatch(targets, self.target_status, missing_polls=1)
        for region, ids in targets.items():
            for start in range(0, len(ids), 100):
                batch = ids[start:start + 100]
                watch.update(region, batch, self.hook.describe_instances(region, instance_ids=batch))
        self.log.info("instances -> %s: %s", self.target_status, watch.summary())
        gone = [iid for iid, i in watch.items.items() if i["status"] == "Missing"]
        if gone:
            raise WaitFailed(f"instance(s) not found while waiting for {self.target_status}: {gone}")
        return watch.done

    def execute_complete(self, context: Any, event: dict | None = None) -> dict[str, str]:
        if not event:
            raise WaitFailed(f"{self.task_id}: resumed without a trigger event")
        statuses = {iid: info["status"] for iid, info in (event.get("instances") or {}).items()}
        not_reached = [iid for iid, info in (event.get("instances") or {}).items() if not info.get("reached")]
        if event.get("status") != "success" or not_reached:
            raise WaitFailed(f"instances did not reach {self.target_status}: {event.get('message')} "
                               f"(not reached: {not_reached})")
        self.log.info("all %d instance(s) are %s", len(statuses), self.target_status)
        return statuses
