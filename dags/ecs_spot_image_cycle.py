"""Give spot (preemptible) instances a fresh system disk from their own image, on a timer (seed 000's OOS job).

select (tags or ids) -> lease and stop (tagged: a teardown restarts what was Running, whatever fails; an instance
another run holds is left alone and reported) -> CreateImage -> undo snapshot of the current disk ->
ReplaceSystemDisk with that image -> start if this run stopped it -> report and email.

What each failure does:
* CreateImage fails: the disk is left as it was (the seed replaced it with the base image, losing the data).
* the replace fails: ``base_image_id`` goes on the disk if given (the fresh image still holds the data), else the
  undo snapshot.
* the start fails after a good replace (``OperationDenied.NoStock`` is common for spot capacity): the fresh disk
  stays, the instance is reported failed and the resume teardown tries the start again; the base image is never
  written over a good replace.
* a re-run of the same logical date reuses the first try's image only if the instance has not started since it
  was made; otherwise (an on-call "Clear" hours later) it makes a new image, so no image older than the disk's
  last writes goes back on it. The undo snapshot (on by default) keeps the disk as it was before the replace.

Its images (``ops:policy=ecs-spot-image-cycle``, kept ``retention_days``) are pruned by the nightly
``ecs_image_retention`` run with its default policies. Credentials come only from Airflow connections (the seed
kept SMTP passwords in its template).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, Param, TriggerRule, task

from aliyun_ops.logic import ids
from aliyun_ops.logic import statuses as st
from aliyun_ops.logic.policies import SPOT_CYCLE_POLICY
from aliyun_ops.logic.provenance import RETENTION_DAYS_MAX
from aliyun_ops.operators.ecs import (
    CreateImageOperator,
    RestoreSystemDiskOperator,
    ResumePausedOperator,
    SelectInstancesOperator,
    StopInstancesOperator,
)

CRON = "0 12 * * *"          # daily 12:00, as the seed's default ("0 0 12 ? * *")

with DAG(
    dag_id="ecs_spot_image_cycle",
    description="Stop, image, put the image back on the system disk, start: spot instances on a timer",
    schedule=CronTriggerTimetable(CRON, timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["aliyun", "ecs", "spot"],
    doc_md=__doc__,
    params={
        "region": Param(None, type=["null", "string"], pattern=ids.pattern("region"), title="Region",
                        description="Empty: the connection's region."),
        "tags": Param({"spot-image-cycle": "true"}, type=["null", "object"], title="Instance tags",
                      description="Instances carrying all these tags (null: use instance_ids only)."),
        "instance_ids": Param([], type="array", items=ids.schema("instance"), uniqueItems=True,
                              title="Instance ids"),
        "base_image_id": Param(None, type=["null", "string"], pattern=ids.pattern("any_image"), title="Base image",
                               description="Put on the disk only if the replace with the fresh image fails."),
        "retention_days": Param(3, type="integer", minimum=1, maximum=RETENTION_DAYS_MAX, title="Keep the images (days)"),
        "take_undo_snapshot": Param(True, type="boolean", title="Snapshot the disk before replacing it",
                                    description="An undo point of the disk as it was (ops:undo-for, kept 7 days)."),
        "concurrency": Param(10, type=["integer", "string"], title="Concurrency (number or %)"),
        "max_errors": Param(0, type=["integer", "string"], title="Max errors (number or %)"),
        "poll_interval": Param(15, type="integer", minimum=1, maximum=600, title="Poll interval (seconds)"),
        "notify_emails": Param([], type="array", items={"type": "string", "format": "idn-email"},
                               title="Email the report to"),
    },
) as dag:
    @task
    def check_params(**context) -> list[str]:
        """Some instances must be named (tags or ids); the region (no API call). Nothing else runs if not."""
        from airflow.sdk.exceptions import AirflowFailException

        from aliyun_ops.hooks.ecs import EcsHook

        params = context["params"]
        if not params["tags"] and not params["instance_ids"]:
            raise AirflowFailException("give tags or instance_ids: this DAG never acts on every instance")
        return [params["region"] or EcsHook().resolve_region()]

    target_regions = check_params()
    select = SelectInstancesOperator(
        task_id="select_instances",
        regions=target_regions,
        tags="{{ params.tags }}",
        instance_ids="{{ params.instance_ids }}",
        statuses=sorted(st.SETTLED),
        allow_empty=True,
    )

    @task
    def pause_scope(regions: list[str]) -> list[str]:
        """Setup of the power-state teardown, before anything is stopped (see the backup DAG): the run's region."""
        return list(regions)

    scope = pause_scope(target_regions)
    batch = {"concurrency": "{{ params.concurrency }}", "max_errors": "{{ params.max_errors }}",
             "poll_interval": "{{ params.poll_interval }}"}
    stop = StopInstancesOperator(task_id="stop_instances", instances=select.output, mark_paused=True, **batch)
    create = CreateImageOperator(
        task_id="create_images",
        instances=select.output,
        policy=SPOT_CYCLE_POLICY,
        retention_days="{{ params.retention_days }}",
        image_name_template="spot-{instance_id}-{date}",
        reuse_after_restart=False,             # the image goes back on the disk: never one older than its last start
        trigger_rule=TriggerRule.ALL_DONE,     # an instance its stop refused still gets an image (crash-consistent)
        **batch,
    )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def plans(selected: list[dict], **context) -> list[dict]:
        """One replace per instance that is Stopped and whose fresh image is Available."""
        from aliyun_ops.pipelines.report_inputs import task_results
        from aliyun_ops.pipelines.spot_cycle import cycle_plans

        ti = context["ti"]
        return cycle_plans(selected, task_results(ti, "create_images"), context["params"]["base_image_id"],
                           task_results(ti, "stop_instances"))

    todo = plans(select.output)
    replace = RestoreSystemDiskOperator.partial(
        task_id="replace_system_disk",
        take_undo_snapshot="{{ params.take_undo_snapshot }}",
        poll_interval="{{ params.poll_interval }}",
        max_active_tis_per_dagrun=10,
    ).expand(plan=todo)

    resume = ResumePausedOperator(task_id="resume_instances", scope="run", regions=scope,
                                  poll_interval="{{ params.poll_interval }}") \
        .as_teardown(setups=scope, on_failure_fail_dagrun=True)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report(**context) -> dict:
        from aliyun_ops.pipelines.spot_cycle import finish_cycle

        params = context["params"]
        return finish_cycle(context, params["max_errors"], params["notify_emails"])

    select >> scope >> stop >> create >> todo
    replace >> resume >> report()
