"""Nightly cross-region cold backup of ECS instances.

select -> (pre-command | stop) -> create images -> wait -> (post-command | start)
                                                      \\-> copy to each DR region -> wait -> tag complete
-> report (XCom, artifact files, email, Asset per destination region)

Wiring only: all work happens in aliyun_ops operators at run time; nothing calls the cloud at parse time.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, AssetAlias, CronTriggerTimetable, TriggerRule, task

from aliyun_ops.operators.ecs import (
    CopyImageOperator,
    CreateImageOperator,
    RunCommandOperator,
    SelectInstancesOperator,
    StartInstancesOperator,
    StopInstancesOperator,
)
from aliyun_ops.pipelines.backup_params import backup_params
from aliyun_ops.pipelines.backup_report import BACKUP_ASSET_ALIAS

INCLUDE = Path(__file__).resolve().parent.parent / "include"
POLICY = "ecs-cross-region-backup"

with DAG(
    dag_id="ecs_cross_region_backup",
    description="Image tagged ECS instances and copy the images to disaster-recovery regions",
    schedule=CronTriggerTimetable("0 2 * * *", timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    params=backup_params(),
    render_template_as_native_obj=True,
    template_searchpath=[str(INCLUDE)],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True},
    tags=["aliyun", "ecs", "backup"],
    doc_md=__doc__,
) as dag:

    @task(multiple_outputs=True)
    def resolve_config(**context) -> dict:
        """Validate the params beyond their JSON schema and fill defaults (no API call)."""
        from airflow.sdk.exceptions import AirflowFailException

        from aliyun_ops.hooks.ecs import EcsHook
        from aliyun_ops.pipelines.backup_params import resolve_backup_config

        try:
            return resolve_backup_config(context["params"], EcsHook().region)
        except ValueError as exc:  # bad input does not get better with a retry
            raise AirflowFailException(str(exc)) from None

    config = resolve_config()

    select = SelectInstancesOperator(
        task_id="select_instances",
        regions=config["source_regions"],
        tags=config["tags"],
        instance_ids=config["instance_ids"],
        statuses=["Running", "Stopped"],
    )

    @task.branch
    def choose_preparation(consistency: str) -> list[str]:
        """ready_instances always follows: it waits for whichever preparation ran."""
        step = {"command": "pre_command", "stop": "stop_instances"}.get(consistency)
        return [step, "ready_instances"] if step else ["ready_instances"]

    prepare = choose_preparation(config["consistency"])
    # every batch step shares the run's OOS-style rate control and polling
    batch_args = {"concurrency": config["concurrency"], "max_errors": config["max_errors"],
                  "poll_interval": config["poll_interval"]}

    pre_command = RunCommandOperator(
        task_id="pre_command",
        instances=select.output,
        command_content="{% include 'scripts/pre_backup.sh' %}",
        **batch_args,
    )
    stop = StopInstancesOperator(
        task_id="stop_instances",
        instances=select.output,
        **batch_args,
    )

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def ready_instances(selected: list[dict], **context) -> list[dict]:
        """Instances to image: those whose preparation (if any) succeeded."""
        ti = context["ti"]
        prepared = ti.xcom_pull(task_ids="pre_command") or ti.xcom_pull(task_ids="stop_instances")
        if prepared is None:
            return selected
        ok = {r["instance_id"] for r in prepared if r.get("status") in ("success", "skipped")}
        return [i for i in selected if i["instance_id"] in ok]

    ready = ready_instances(select.output)

    create = CreateImageOperator(
        task_id="create_images",
        instances=ready,
        image_name_template=config["image_name_template"],
        tags=config["extra_tags"],
        policy=POLICY,
        retention_days=config["retention_days"],
        timeout=config["timeout_seconds"],
        **batch_args,
    )

    @task.branch(trigger_rule=TriggerRule.ALL_DONE)
    def choose_restore(consistency: str) -> list[str]:
        """After imaging, whatever happened: thaw or restart what preparation paused."""
        return {"command": ["post_command"], "stop": ["start_instances"]}.get(consistency, [])

    restore = choose_restore(config["consistency"])

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def paused_instances(**context) -> list[dict]:
        """Instances preparation actually paused (stopped by us, or pre-command succeeded)."""
        ti = context["ti"]
        prepared = ti.xcom_pull(task_ids="pre_command") or ti.xcom_pull(task_ids="stop_instances") or []
        return [r for r in prepared if r.get("status") == "success"]

    paused = paused_instances()

    post_command = RunCommandOperator(
        task_id="post_command",
        instances=paused,
        command_content="{% include 'scripts/post_backup.sh' %}",
        **batch_args,
    )
    start = StartInstancesOperator(
        task_id="start_instances",
        instances=paused,
        **batch_args,
    )

    copy = CopyImageOperator(
        task_id="copy_images",
        images=create.output,
        destination_regions=config["destination_regions"],
        tags=config["extra_tags"],
        policy=POLICY,
        retention_days=config["retention_days"],
        encrypted=config["encrypted"],
        kms_key_id=config["kms_key_id"],
        timeout=config["timeout_seconds"],
        **batch_args,
    )

    @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[AssetAlias(BACKUP_ASSET_ALIAS)], retries=0)
    def report(config: dict, **context) -> dict:
        """Per instance and region: ids, sizes, durations, status, reason; artifact, email, assets."""
        from aliyun_ops.pipelines.backup_report import finish_backup

        ti = context["ti"]
        prepared = ti.xcom_pull(task_ids="pre_command") or ti.xcom_pull(task_ids="stop_instances")
        return finish_backup(context, config, ti.xcom_pull(task_ids="select_instances"),
                             ti.xcom_pull(task_ids="create_images"), ti.xcom_pull(task_ids="copy_images"), prepared)

    final = report(config)

    prepare >> [pre_command, stop, ready]
    pre_command >> ready
    stop >> ready
    create >> restore >> [post_command, start]
    paused >> [post_command, start]
    create >> paused
    [copy, post_command, start] >> final
