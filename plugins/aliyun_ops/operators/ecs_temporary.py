"""Release temporary resources: what a run made for itself (:mod:`aliyun_ops.actions.temporary`), in its teardown,
and what earlier runs left behind, once older than a grace period."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from aliyun_ops.actions.temporary import delete_temporary, find_temporary, temporary_filter
from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.logic.args import as_number, check_wait_args
from aliyun_ops.logic.lifecycle import DEFAULT_GRACE, stale
from aliyun_ops.logic.outcome import FAILED, SUCCESS
from aliyun_ops.logic.targets import normalize_regions
from aliyun_ops.operators.base import AliyunItemsOperator, aliyun_template_fields
from aliyun_ops.operators.base.instances import InstanceWaitMixin
from aliyun_ops.runtime import run_date
from aliyun_ops.waiting.instances import DELETED

SCOPES = ("run", "stale")


class ReleaseTemporaryResourcesOperator(InstanceWaitMixin, AliyunItemsOperator):
    """Release temporary resources (tags ``ops:managed-by`` and ``ops:temporary=true``) in ``regions``: instances
    first (deleted with ``Force`` and waited for), then security groups (which an instance held until then).

    :param scope: ``"run"`` (default): this DAG run's (tag ``ops:run-id``), as a teardown that runs whatever
        failed; ``"stale"``: this DAG's (tag ``ops:dag-id``; every DAG's with ``all_dags``) left by earlier runs and
        older than ``grace_hours`` at the run's logical date, as the first task of a run (a killed task, a teardown
        that never ran). A resource younger than the grace period, without our tags, or whose creation time cannot
        be read is never touched.
    :param purpose: only resources of this ``ops:purpose`` (e.g. ``"verify"``)

    One row per resource (``resource_type``, ``resource_id``, ``region``, ``run_id``, ``status``, ``reason``),
    pushed as XCom ``results``; the task fails when one could not be released (past ``max_errors``, default 0).

    Example::

        sweep = ReleaseTemporaryResourcesOperator(task_id="sweep_leftovers", regions=scope, scope="stale")
        release = ReleaseTemporaryResourcesOperator(task_id="release_temporary_resources", regions=scope)
        sweep >> work >> release.as_teardown(setups=scope, on_failure_fail_dagrun=True)
    """

    template_fields = aliyun_template_fields("regions", "scope", "grace_hours", "purpose", "all_dags")
    hook_class = EcsHook
    item_noun = "temporary resources"
    result_key_fields = ("resource_type", "resource_id", "region")
    state_field = "reason"

    def __init__(self, *, regions: Sequence[str] | str | None = None, scope: str = "run",
                 grace_hours: float = DEFAULT_GRACE.total_seconds() / 3600, purpose: str | None = None,
                 all_dags: bool = False, max_errors: int | str = 0, deferrable: bool = True,
                 poll_interval: float = 10.0, wait_timeout: float | None = 900.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.regions = regions
        self.scope = scope
        self.grace_hours = grace_hours
        self.purpose = purpose
        self.all_dags = all_dags
        self.max_errors = max_errors
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout

    def validate(self) -> timedelta:
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {self.scope!r}")
        grace = as_number(self.grace_hours)
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
            raise ValueError(f"grace_hours must be a number >= 0, got {self.grace_hours!r}")
        check_wait_args(self.poll_interval, self.wait_timeout)
        normalize_regions(self.regions)
        return timedelta(hours=float(grace))

    def execute(self, context: Any) -> list[dict]:
        grace = self.validate()
        hook, ti = self.hook, context["ti"]
        regions = normalize_regions(self.regions) or [self.resolve_region()]
        this_run = str(context["run_id"])
        tags = temporary_filter(run_id=this_run if self.scope == "run" else None, purpose=self.purpose,
                                dag_id=None if self.all_dags else ti.dag_id)
        found = [item for region in regions for item in find_temporary(hook, region, tags)]
        if self.scope == "stale":
            now = run_date(context)
            young = [i for i in found if i["run_id"] == this_run[:128] or not stale(i["created"], now=now, grace=grace)]
            if young:
                self.log.info("%d temporary resource(s) younger than %s at %s (or this run's) left alone: %s",
                              len(young), grace, now.isoformat(), ", ".join(i["resource_id"] for i in young[:10]))
            found = [i for i in found if i not in young]
        rows = [delete_temporary(hook, i) for i in found if i["resource_type"] == "instance"]
        state = {"rows": rows, "groups": [i for i in found if i["resource_type"] != "instance"]}
        waiting: dict[str, list[str]] = {}
        for row in rows:
            if row["status"] == SUCCESS:
                waiting.setdefault(row["region"], []).append(row["resource_id"])
        event = self.wait_for_instances(waiting, DELETED, carry=state) if waiting else {}
        return self.resume(context, state, event)

    def resume(self, context: Any, carry: dict, event: Mapping[str, Any]) -> list[dict]:
        rows = carry["rows"]
        for row in rows:
            info = (event.get("instances") or {}).get(row["resource_id"])
            if info is None or row["status"] != SUCCESS:
                continue
            if info.get("reached"):
                row["reason"] = "deleted"
            else:
                row.update(status=FAILED, reason=f"still {info.get('status')}: {event.get('message')}")
        rows += [delete_temporary(self.hook, group) for group in carry["groups"]]
        return self.conclude(context, rows, title=f"release temporary resources ({self.scope})")


__all__ = ["ReleaseTemporaryResourcesOperator"]
