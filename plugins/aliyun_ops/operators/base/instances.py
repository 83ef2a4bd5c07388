"""What per-instance operators add to :class:`~aliyun_ops.operators.base.AliyunItemsOperator`: waiting for
instance statuses (:class:`InstanceWaitMixin`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.triggers.ecs_instances import InstanceStatusTrigger
from aliyun_ops.waiting import deadline_from
from aliyun_ops.waiting.drivers import poll_instances
from aliyun_ops.waiting.instances import InstanceWatch


class InstanceWaitMixin:
    """What per-instance operators add to :class:`AliyunItemsOperator` to wait for instance statuses: deferred to
    :class:`InstanceStatusTrigger`, or polled in the worker with the same engine (:class:`InstanceWatch`).
    A mixin, so an operator stays one level below ``AliyunItemsOperator``:
    ``class MyOperator(InstanceWaitMixin, AliyunItemsOperator)``."""

    hook_class = EcsHook
    item_noun = "instances"
    poll_interval: float
    wait_timeout: float | None

    def wait_for_instances(self, targets: Mapping[str, Sequence[str]], target_status: str,
                           carry: Any) -> Mapping[str, Any]:
        """The watch event once every instance of ``targets`` (``{region: [ids]}``) is ``target_status`` or the
        wait ended; ``carry`` is what :meth:`resume` gets back after a deferral."""
        deadline = deadline_from(self.wait_timeout)
        trigger = InstanceStatusTrigger(targets=dict(targets), target_status=target_status, carry=carry,
                                        aliyun_conn_id=self.aliyun_conn_id, poll_interval=self.poll_interval,
                                        deadline=deadline)
        timeout = None if self.wait_timeout is None else timedelta(seconds=float(self.wait_timeout) + 300)
        return self.hand_off(trigger, timeout=timeout, wait_here=lambda: poll_instances(
            self.hook, InstanceWatch(targets, target_status), poll_interval=self.poll_interval, deadline=deadline,
            log=self.log))
