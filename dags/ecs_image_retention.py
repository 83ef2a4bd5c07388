"""Prune our backup images in every region, by age, count and calendar, never the wrong one.

Each run plans first (read only), then deletes what the plan allows and sweeps the snapshots earlier runs
failed to delete, then reports. The rules (see the README's retention table):

* only images tagged ``ops:managed-by=airflow-aliyun-ops`` whose ``ops:policy`` is in the ``policy`` set: by default
  every policy the project's DAGs write (``logic.policies.PROJECT_POLICIES``: the cross-region backup and the spot
  image cycle), ``any`` for any image we manage; a managed image of another policy, or with none, is kept and
  reported with a warning;
* an image is old when older than ``max(retention_days, its own ops:retention-days tag)``;
* per group (policy, source instance, region) the newest complete backup, the newest verified one, the newest
  ``keep_last`` and the newest of each of the last ``keep_daily`` days / ``keep_weekly`` weeks /
  ``keep_monthly`` months (in ``timezone``) are kept; images in use, shared or being copied always are;
* a region whose plan deletes more than ``max_delete_fraction`` of its managed images is held: a manual run
  asks for approval (Required Actions), a scheduled run fails with the plan in the report.

``regions`` empty (the default) covers every region holding images we manage, DR copies included. The report has a
quota row for every region holding images we manage, whether this run prunes it or not.
Times come from the run's logical date, so a backfill plans as that night would have.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, CronTriggerTimetable, Param, TriggerRule, task

from aliyun_ops.logic import ids
from aliyun_ops.logic.policies import (
    ANY,
    BACKUP_POLICY,
    GOLDEN_POLICY,
    PROJECT_POLICIES,
    RESTORE_UNDO_POLICY,
    SPOT_CYCLE_POLICY,
)
from aliyun_ops.logic.provenance import RETENTION_DAYS_MAX
from aliyun_ops.operators.ecs import ApplyRetentionPlanOperator, PlanImageRetentionOperator

with DAG(
    dag_id="ecs_image_retention",
    description="Delete backup images past their retention in every region, never the newest or verified ones",
    schedule=CronTriggerTimetable("0 5 * * *", timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["aliyun", "ecs", "retention"],
    doc_md=__doc__,
    params={
        "regions": Param([], type="array", items=ids.schema("region"), uniqueItems=True, title="Regions",
                         description="Empty: every region holding images we manage (source and DR)."),
        "retention_days": Param(7, type="integer", minimum=1, maximum=RETENTION_DAYS_MAX, title="Retention days",
                                description="An image's own ops:retention-days tag can only lengthen this."),
        "keep_last": Param(3, type="integer", minimum=1, maximum=100, title="Keep at least",
                           description="Newest complete backups kept per group, whatever their age."),
        "keep_daily": Param(0, type="integer", minimum=0, maximum=366, title="Keep daily",
                            description="Newest backup of each of the last N days that have one."),
        "keep_weekly": Param(0, type="integer", minimum=0, maximum=520, title="Keep weekly"),
        "keep_monthly": Param(0, type="integer", minimum=0, maximum=1200, title="Keep monthly"),
        "timezone": Param("Asia/Shanghai", type="string", minLength=1, title="Calendar time zone",
                          description="Days, weeks and months of the keep_* rules (IANA name)."),
        # a list (the form shows a multi-select of the examples); one value and null still validate for callers
        # of the single-policy form (null: any)
        "policy": Param(list(PROJECT_POLICIES), type=["array", "string", "null"], title="Policies",
                        items={"type": "string", "minLength": 1, "maxLength": 128}, minItems=1, uniqueItems=True,
                        minLength=1, maxLength=128, examples=[*PROJECT_POLICIES, ANY],
                        values_display={BACKUP_POLICY: f"{BACKUP_POLICY} (ecs_cross_region_backup)",
                                        SPOT_CYCLE_POLICY: f"{SPOT_CYCLE_POLICY} (ecs_spot_image_cycle)",
                                        RESTORE_UNDO_POLICY: f"{RESTORE_UNDO_POLICY} (ecs_restore_system_disk)",
                                        GOLDEN_POLICY: f"{GOLDEN_POLICY} (ecs_update_image)",
                                        ANY: "any image we manage (also with no ops:policy)"},
                        description="Prune images whose ops:policy tag is one of these. Default: every policy the "
                                    "project's DAGs write. 'any' (or null): any image we manage. A managed image of "
                                    "another policy, or with none, is kept and warned about."),
        "delete_failed": Param(True, type="boolean", title="Delete failed builds"),
        "max_delete_fraction": Param(0.5, type="number", exclusiveMinimum=0, maximum=1,
                                     title="Max share deleted per region",
                                     description="Above it a region's deletions need approval (1: no guard)."),
        "orphan_grace_hours": Param(24, type="number", minimum=0, title="Snapshot sweep grace (hours)"),
        "image_quota": Param(None, type=["null", "integer"], minimum=1, title="Custom-image quota",
                             description="Per region, when the account cannot say (null: ask the API)."),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Report the plan, delete nothing."),
        "notify_emails": Param([], type="array", items={"type": "string", "format": "idn-email"},
                               title="Email the report to"),
    },
) as dag:
    plan = PlanImageRetentionOperator(
        task_id="plan",
        regions="{{ params.regions }}",
        retention_days="{{ params.retention_days }}",
        keep_last="{{ params.keep_last }}",
        keep_daily="{{ params.keep_daily }}",
        keep_weekly="{{ params.keep_weekly }}",
        keep_monthly="{{ params.keep_monthly }}",
        timezone="{{ params.timezone }}",
        policy="{{ params.policy }}",
        delete_failed="{{ params.delete_failed }}",
        max_delete_fraction="{{ params.max_delete_fraction }}",
        orphan_grace_hours="{{ params.orphan_grace_hours }}",
        image_quota="{{ params.image_quota }}",
    )

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def ask_approval(survey: dict, **context) -> bool:
        """Only a manual run with a held region asks; otherwise the approval step is skipped."""
        from aliyun_ops.pipelines.retention_report import needs_approval

        return needs_approval(survey, context)

    approve = ApprovalOperator(
        task_id="approve",
        subject="ecs_image_retention would delete more than max_delete_fraction of a region's backups",
        body="{{ ti.xcom_pull(task_ids='plan')['summary'] }}",
        defaults="Reject",
        response_timeout=timedelta(hours=12),
    )

    apply = ApplyRetentionPlanOperator(
        task_id="apply",
        plan=plan.output,
        approved="{{ ((ti.xcom_pull(task_ids='approve') or {}).get('chosen_options') or []) == ['Approve'] }}",
        dry_run="{{ params.dry_run }}",
        trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
    )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report(**context) -> dict:
        from aliyun_ops.pipelines.retention_report import finish_retention_run

        return finish_retention_run(context)

    ask_approval(plan.output) >> approve >> apply >> report()
