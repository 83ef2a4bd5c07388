"""Restore an instance's system disk from a backup image, with an undo, and leave it as it was found.

check (no change: the instance exists; the image, given or the newest complete backup of this instance in the
region, is Available, ours and this instance's unless ``allow_foreign_image``) -> approval in manual runs ->
lease the instance to this run and stop it if it is Running *now* (tagged, so the teardown starts it again
whatever fails; another restore holding the instance refuses this one, nothing changed) -> undo snapshot of the
current system disk (``ops:undo-for``, kept 7 days) -> ReplaceSystemDisk -> start if this run stopped it ->
health command, retried while the machine boots -> report.

Fallbacks undo only what failed: a failed replace puts ``fallback_image_id`` (or the undo snapshot) back; a failed
start or health check after a good replace keeps the restored disk and fails the run naming why, unless
``rollback_on_failed_health`` asks for the undo snapshot back. The power state is read when the instance is
stopped (after the approval): one someone stopped meanwhile ends Stopped. The form asks to type the instance id
twice.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param, TriggerRule, task

from aliyun_ops.logic import ids
from aliyun_ops.operators.ecs import RestoreSystemDiskOperator, ResumePausedOperator, StopInstancesOperator

INCLUDE = Path(__file__).resolve().parent.parent / "include"

with DAG(
    dag_id="ecs_restore_system_disk",
    description="Replace an instance's system disk with a backup image, with an undo snapshot and a fallback",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    render_template_as_native_obj=True,
    template_searchpath=[str(INCLUDE)],
    tags=["aliyun", "ecs", "restore"],
    doc_md=__doc__,
    params={
        "instance_id": Param(type="string", pattern=ids.pattern("instance"), title="Instance id"),
        "confirm_instance_id": Param(type="string", title="Type the instance id again",
                                     description="The instance's system disk is replaced."),
        "region": Param(None, type=["null", "string"], pattern=ids.pattern("region"), title="Region",
                        description="Empty: the connection's region."),
        "image_id": Param(None, type=["null", "string"], pattern=ids.pattern("image"), title="Image id",
                          description="Empty: the instance's newest complete backup in the region."),
        "fallback_image_id": Param(None, type=["null", "string"], pattern=ids.pattern("any_image"),
                                   title="Fallback image id",
                                   description="Used when the restore fails. Empty: the undo snapshot."),
        "take_undo_snapshot": Param(True, type="boolean", title="Take an undo snapshot first"),
        "health_command": Param(None, type=["null", "string"], title="Health command",
                                description="Run after the restore (Cloud Assistant). Null: the bundled "
                                            "include/scripts/health_check.sh; empty: no check."),
        "allow_foreign_image": Param(False, type="boolean", title="Allow an image of another instance"),
        "rollback_on_failed_health": Param(False, type="boolean", title="Roll back on a failed health check",
                                           description="Put the undo snapshot back when the restored system fails "
                                                       "its health check (never while it is still booting)."),
        "require_approval": Param(True, type="boolean", title="Ask for approval (manual runs)"),
        "poll_interval": Param(15, type="integer", minimum=1, maximum=600, title="Poll interval (seconds)"),
        "notify_emails": Param([], type="array", items={"type": "string", "format": "idn-email"},
                               title="Email the report to"),
    },
) as dag:

    @task
    def check(**context) -> dict:
        """Everything checked before any change; the plan the approval shows and the restore follows."""
        from airflow.sdk.exceptions import AirflowFailException

        from aliyun_ops.hooks.ecs import EcsHook
        from aliyun_ops.operators.ecs_restore import RestoreError, check_restore

        params = context["params"]
        if params["confirm_instance_id"] != params["instance_id"]:
            raise AirflowFailException("confirm_instance_id does not match instance_id: nothing was changed")
        hook = EcsHook(region=params["region"])
        try:
            return check_restore(hook, hook.resolve_region(), params["instance_id"], params["image_id"],
                                 fallback_image_id=params["fallback_image_id"],
                                 allow_foreign_image=params["allow_foreign_image"])
        except RestoreError as err:
            raise AirflowFailException(f"{err}: nothing was changed") from None

    plan = check()

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def ask_approval(plan: dict, **context) -> bool:
        """Manual runs with require_approval ask; scheduled runs never wait."""
        from aliyun_ops.pipelines.approval import is_manual_run

        return bool(context["params"]["require_approval"]) and is_manual_run(context)

    approve = ApprovalOperator(
        task_id="approve",
        subject="Replace the system disk of {{ ti.xcom_pull(task_ids='check')['instance_id'] }}?",
        body=("Instance **{{ ti.xcom_pull(task_ids='check')['instance_id'] }}** "
              "({{ ti.xcom_pull(task_ids='check')['instance_name'] }}, "
              "{{ ti.xcom_pull(task_ids='check')['was_status'] }}) in {{ ti.xcom_pull(task_ids='check')['region'] }}"
              "\n\n- current system disk: {{ ti.xcom_pull(task_ids='check')['current_disk_id'] }} from "
              "{{ ti.xcom_pull(task_ids='check')['current_image_id'] }}"
              "\n- restore from: {{ ti.xcom_pull(task_ids='check')['image_id'] }} "
              "({{ ti.xcom_pull(task_ids='check')['image_name'] }}, "
              "{{ ti.xcom_pull(task_ids='check')['image_created'] }})"
              "\n- undo: {{ 'snapshot of the current disk first' if params.take_undo_snapshot else 'NONE' }}; "
              "if the replace fails: {{ params.fallback_image_id or 'the undo snapshot' }}; if the health check "
              "fails: {{ 'roll back to the undo snapshot' if params.rollback_on_failed_health else 'keep the "
              "restored disk and report' }}"
              "\n- power: read again when approved (Running: stopped, then started again; Stopped: stays Stopped)"),
        defaults="Reject",
        response_timeout=timedelta(hours=4),
    )

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def pause_scope(plan: dict) -> list[str]:
        """Setup of the power-state teardown, before anything is stopped (see the backup DAG)."""
        return [plan["region"]]

    scope = pause_scope(plan)

    stop = StopInstancesOperator(
        task_id="stop_instance",
        instances=[{"instance_id": "{{ ti.xcom_pull(task_ids='check')['instance_id'] }}",
                    "region": "{{ ti.xcom_pull(task_ids='check')['region'] }}"}],
        mark_paused=True,
        poll_interval="{{ params.poll_interval }}",
    )

    restore = RestoreSystemDiskOperator(
        task_id="restore",
        plan=plan,
        take_undo_snapshot="{{ params.take_undo_snapshot }}",
        rollback_on_failed_health="{{ params.rollback_on_failed_health }}",
        poll_interval="{{ params.poll_interval }}",
        health_retry_interval="{{ params.poll_interval }}",
        health_command="{% if params.health_command is none %}{% include 'scripts/health_check.sh' %}"
                       "{% else %}{{ params.health_command }}{% endif %}",
    )

    resume = ResumePausedOperator(
        task_id="resume_instances",
        scope="run",
        regions=scope,
        poll_interval="{{ params.poll_interval }}",
    ).as_teardown(setups=scope, on_failure_fail_dagrun=True)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report(**context) -> dict:
        from aliyun_ops.pipelines.approval import approve_task_state
        from aliyun_ops.pipelines.restore_report import finish_restore

        return finish_restore(context, approve_task_state(context))

    ask_approval(plan) >> approve >> scope >> stop >> restore >> resume >> report()
