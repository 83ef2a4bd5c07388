"""Nightly cross-region cold backup of ECS instances.

resume what earlier runs left paused -> select -> (pre-command | stop, each instance leased to this run and tagged
ops:paused-by first; an instance another run holds is waited for, then reported)
-> create images -> wait -> copy to each DR region -> wait -> tag complete
                        \\-> resume (teardown: start what this run stopped, thaw what it froze, whatever failed)
-> report (XCom, artifact files, email, Asset per destination region)

Wiring only: all work happens in aliyun_ops operators at run time; nothing calls the cloud at parse time.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, AssetAlias, CronTriggerTimetable, TriggerRule, task

from aliyun_ops.logic import statuses as st
from aliyun_ops.logic.policies import BACKUP_POLICY
from aliyun_ops.operators.ecs import (
    CopyImageOperator,
    CreateImageOperator,
    ResumePausedOperator,
    RunCommandOperator,
    SelectInstancesOperator,
    StopInstancesOperator,
)
from aliyun_ops.pipelines.backup_params import backup_params
from aliyun_ops.pipelines.backup_report import BACKUP_ASSET_ALIAS

INCLUDE = Path(__file__).resolve().parent.parent / "include"
THAW = "{% include 'scripts/post_backup.sh' %}"

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

    # the safety net, first thing after the params are checked: whatever an earlier run of this DAG left
    # stopped or frozen (a run marked failed by hand, a killed scheduler, a teardown that could not run) is
    # resumed, in every region; if that fails nothing more is paused (the report says why)
    resume_earlier = ResumePausedOperator(
        task_id="resume_earlier_runs",
        scope="dag",
        thaw_command=THAW,
        poll_interval=config["poll_interval"],
        retries=1,
    )

    select = SelectInstancesOperator(
        task_id="select_instances",
        regions=config["source_regions"],
        tags=config["tags"],
        instance_ids=config["instance_ids"],
        statuses=sorted(st.SETTLED),
        allow_empty=config["allow_empty"],
    )

    @task
    def pause_scope(regions: list[str]) -> list[str]:
        """Setup of the resume teardown, done before anything is paused: the regions whose pauses it undoes.

        A failed stop or pre-command cannot be the setup (a teardown whose setups all failed is skipped)."""
        return list(regions)

    scope = pause_scope(config["source_regions"])

    @task.branch
    def choose_preparation(consistency: str) -> list[str]:
        """ready_instances always follows: it waits for whichever preparation ran."""
        step = {"command": "pre_command", "stop": "stop_instances"}.get(consistency)
        return [step, "ready_instances"] if step else ["ready_instances"]

    prepare = choose_preparation(config["consistency"])

    @task
    def to_prepare(selected: list[dict], **context) -> list[dict]:
        """The selected instances this run has not imaged yet: a re-run of the night pauses nothing twice."""
        from aliyun_ops.pipelines.backup_prepare import still_to_image

        return still_to_image(selected, context)

    todo = to_prepare(select.output)
    # every batch step shares the run's OOS-style concurrency, error budget and polling
    batch_args = {"concurrency": config["concurrency"], "max_errors": config["max_errors"],
                  "poll_interval": config["poll_interval"]}

    # both tag each instance ops:paused-by=<run key> before touching it: the resume below works from the tags
    pre_command = RunCommandOperator(
        task_id="pre_command",
        instances=todo,
        command_content="{% include 'scripts/pre_backup.sh' %}",
        mark_paused=True,
        lease_wait=config["lease_wait_seconds"],
        **batch_args,
    )
    stop = StopInstancesOperator(
        task_id="stop_instances",
        instances=todo,
        mark_paused=True,
        lease_wait=config["lease_wait_seconds"],
        **batch_args,
    )

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def ready_instances(selected: list[dict], todo: list[dict], **context) -> list[dict]:
        """Instances to image: those whose preparation (if any) succeeded, and those already imaged by this run."""
        ti = context["ti"]
        prepared = ti.xcom_pull(task_ids="pre_command") or ti.xcom_pull(task_ids="stop_instances")
        if prepared is None:
            return selected
        ok = {r["instance_id"] for r in prepared if r.get("status") in ("success", "skipped")}
        ok |= {i["instance_id"] for i in selected} - {i["instance_id"] for i in todo}
        return [i for i in selected if i["instance_id"] in ok]

    ready = ready_instances(select.output, todo)

    create = CreateImageOperator(
        task_id="create_images",
        instances=ready,
        image_name_template=config["image_name_template"],
        tags=config["extra_tags"],
        policy=BACKUP_POLICY,
        retention_days=config["retention_days"],
        timeout=config["timeout_seconds"],
        resume_paused_after_snapshots=config["pauses"],
        thaw_command=THAW,
        **batch_args,
    )

    # the undo of the preparation, whatever happened upstream (a failed or killed stop, pre-command or image
    # task included): it works from the ops:paused-* tags, not from upstream results
    resume = ResumePausedOperator(
        task_id="resume_instances",
        scope="run",
        regions=scope,
        thaw_command=THAW,
        poll_interval=config["poll_interval"],
    ).as_teardown(setups=scope, on_failure_fail_dagrun=True)

    copy = CopyImageOperator(
        task_id="copy_images",
        images=create.output,
        destination_regions=config["destination_regions"],
        tags=config["extra_tags"],
        policy=BACKUP_POLICY,
        retention_days=config["retention_days"],
        encrypted=config["encrypted"],
        kms_key_id=config["kms_key_id"],
        timeout=config["timeout_seconds"],
        **batch_args,
    )

    @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[AssetAlias(BACKUP_ASSET_ALIAS)], retries=0)
    def report(config: dict, **context) -> dict:
        """Per instance and region: ids, sizes, durations, downtime, status, reason; artifact, email, assets.

        Written whatever happened; the run then fails if items failed past max_errors or a resume failed."""
        from airflow.sdk.exceptions import AirflowFailException

        from aliyun_ops.pipelines.backup_report import finish_backup

        if config is None:
            raise AirflowFailException("nothing was done: the parameters are invalid (see resolve_config's log)")
        ti = context["ti"]
        prepared = ti.xcom_pull(task_ids="pre_command", key="results") or \
            ti.xcom_pull(task_ids="stop_instances", key="results")
        selected = ti.xcom_pull(task_ids="select_instances")
        missing = ti.xcom_pull(task_ids="select_instances", key="missing") or []
        if selected is not None:
            selected = list(selected) + [{"instance_id": i, "status": "missing"} for i in missing]
        # per-item results, also when the task failed past max_errors (pushed under "results" first)
        created = ti.xcom_pull(task_ids="create_images") or ti.xcom_pull(task_ids="create_images", key="results")
        copies = ti.xcom_pull(task_ids="copy_images") or ti.xcom_pull(task_ids="copy_images", key="results")
        return finish_backup(context, config, selected, created, copies, prepared,
                             resumed=ti.xcom_pull(task_ids="resume_instances", key="results"),
                             resumed_earlier=ti.xcom_pull(task_ids="resume_earlier_runs", key="results"))

    final = report(config)

    config >> resume_earlier >> select >> scope >> prepare >> [pre_command, stop, ready]
    todo >> prepare
    pre_command >> ready
    stop >> ready
    [pre_command, stop, create] >> resume
    [copy, resume] >> final
