"""Network resources a run makes for itself: release its temporary security groups (:mod:`aliyun_ops.temporary`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aliyun_ops.actions.temporary import release_security_groups
from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.logic.targets import normalize_regions
from aliyun_ops.operators.base import AliyunItemsOperator


class ReleaseSecurityGroupsOperator(AliyunItemsOperator):
    """Delete the temporary security groups this DAG run made in ``regions`` (tags ``ops:temporary=true`` and this
    run's ``ops:run-id``), as a teardown after the instances in them are gone. One result per group
    (``security_group_id``, ``region``, ``status``, ``reason``), pushed as XCom ``results``; the task fails when one
    could not be deleted (give it ``retries``: an instance just released may still hold the group for a moment).

    Example::

        sweep = DeleteInstancesOperator(task_id="release_instances", regions=scope, include_run_instances=True)
        groups = ReleaseSecurityGroupsOperator(task_id="release_security_groups", regions=scope, retries=3)
        work >> sweep >> groups.as_teardown(setups=scope)
    """

    template_fields = ("aliyun_conn_id", "region", "regions", "purpose")
    hook_class = EcsHook
    item_noun = "security groups"
    result_key_fields = ("security_group_id", "region")
    state_field = "reason"

    def __init__(self, *, regions: Sequence[str] | str | None = None, purpose: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.regions = regions
        self.purpose = purpose

    def execute(self, context: Any) -> list[dict]:
        regions = normalize_regions(self.regions) or [self.resolve_region()]
        rows = release_security_groups(self.hook, context, regions, purpose=self.purpose or None, log=self.log)
        return self.conclude(context, rows, title="ReleaseSecurityGroups")
