"""Prune old backup images (and their snapshots) by age, keeping the newest complete ones.

Only images carrying ``ops:managed-by=airflow-aliyun-ops`` (and, by default, the backup DAG's
``ops:policy``) are ever considered; the newest ``keep_last`` complete backups of each instance in
each region, images in use and shared images are always kept. ``dry_run`` reports the plan only.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, Param, task

from aliyun_ops.logic import ids
from aliyun_ops.operators.ecs import PruneBackupImagesOperator

with DAG(
    dag_id="ecs_image_retention",
    description="Delete backup images older than the retention, never the newest complete ones",
    schedule=CronTriggerTimetable("0 5 * * *", timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["aliyun", "ecs", "retention"],
    doc_md=__doc__,
    params={
        "regions": Param([], type="array", items=ids.schema("region"), uniqueItems=True,
                         title="Regions", description="Source and DR regions. Empty: the connection's region."),
        "retention_days": Param(7, type="integer", minimum=1, maximum=3650, title="Retention days"),
        "keep_last": Param(3, type="integer", minimum=1, maximum=100, title="Keep at least",
                           description="Newest complete backups kept per instance and region, whatever their age."),
        "policy": Param("ecs-cross-region-backup", type=["null", "string"], title="Policy",
                        description="Only images with this ops:policy tag (null: any image we manage)."),
        "delete_failed": Param(True, type="boolean", title="Delete failed builds"),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Report the plan, delete nothing."),
    },
) as dag:

    @task
    def regions(**context) -> list[str]:
        from aliyun_ops.hooks.ecs import EcsHook

        return list(context["params"]["regions"]) or [EcsHook().resolve_region()]

    PruneBackupImagesOperator(
        task_id="prune",
        regions=regions(),
        retention_days="{{ params.retention_days }}",
        keep_last="{{ params.keep_last }}",
        policy="{{ params.policy }}",
        delete_failed="{{ params.delete_failed }}",
        dry_run="{{ params.dry_run }}",
    )
