"""Run a command or an inspection on the ECS instances selected by tags or ids, across regions (Alibaba's OOS
ACS-ECS-BulkyRunCommand, with ACS-ECS-ApproveBulkyRunCommand's approval).

check the params (no API call) -> select (every page of every region; Stopped instances are reported, not run on)
-> approval when more than ``approval_above`` instances are selected (manual and scheduled runs alike; no answer
in 12 h is Reject) -> RunCommand through Cloud Assistant in rolling waves of ``concurrency``, stopping new waves
past ``max_errors`` -> report: each instance's exit code and output, the ones whose agent is offline (the command
did not run there), HTML + JSON files and the email.

The command is ``command`` or a file of ``include/scripts/`` named in ``script``. Schedule it like any DAG (an
inspection every night): Airflow's schedule replaces Cloud Assistant's own timed invocations.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param, TriggerRule, task

from aliyun_ops.logic import ids
from aliyun_ops.logic import statuses as st
from aliyun_ops.logic.budget import CONCURRENCY, COUNT_OR_PERCENT
from aliyun_ops.logic.commands import COMMAND_TYPES, MAX_TIMEOUT
from aliyun_ops.operators.ecs import RunCommandOperator, SelectInstancesOperator

INCLUDE = Path(__file__).resolve().parent.parent / "include"

with DAG(
    dag_id="ecs_run_command",
    description="Run a command on the ECS instances carrying some tags, with approval above a threshold",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    render_template_as_native_obj=True,
    template_searchpath=[str(INCLUDE)],
    tags=["aliyun", "ecs", "command"],
    doc_md=__doc__,
    params={
        "regions": Param([], type="array", items=ids.schema("region"), uniqueItems=True, title="Regions",
                         description="Empty: the aliyun_default connection's region."),
        "tags": Param({"env": "test"}, type=["null", "object"], additionalProperties={"type": "string"},
                      title="Tags", description="Instances carrying all of these tags (null: instance_ids only)."),
        "instance_ids": Param([], type="array", items=ids.schema("instance"), uniqueItems=True,
                              title="Instance ids", description="Optional: only these (with the tags, if any)."),
        "command": Param("uptime && df -h /", type=["null", "string"], maxLength=16384, title="Command",
                         description="The script to run (null when a file of include/scripts is named below)."),
        "script": Param(None, type=["null", "string"], pattern=r"^[A-Za-z0-9_.-]+\.(sh|ps1|bat|py)$",
                        title="Script file", description="A file of include/scripts/ to run instead of the command."),
        "command_type": Param("RunShellScript", enum=sorted(COMMAND_TYPES), title="Command type"),
        "timeout": Param(600, type="integer", minimum=1, maximum=MAX_TIMEOUT, title="Timeout (seconds)"),
        "concurrency": Param("100%", **CONCURRENCY, title="Concurrency",
                             description="Instances per wave: a number or a percentage."),
        "max_errors": Param(0, **COUNT_OR_PERCENT, title="Max errors",
                            description="Failures tolerated before no new wave starts and the run fails."),
        "approval_above": Param(20, type=["null", "integer"], minimum=0, title="Ask for approval above",
                                description="Ask before running on more than this many instances (null: never)."),
        "poll_interval": Param(10, type="integer", minimum=1, maximum=600, title="Poll interval (seconds)"),
        "notify_emails": Param([], type="array", items={"type": "string", "format": "idn-email"},
                               title="Email the report to"),
    },
) as dag:

    @task
    def check_params(**context) -> list[str]:
        """One command (the param or a script file that exists); some instances named. No API call."""
        from airflow.sdk.exceptions import AirflowFailException

        from aliyun_ops.hooks.ecs import EcsHook

        params = context["params"]
        if bool(params["command"]) == bool(params["script"]):
            raise AirflowFailException("give exactly one of command and script")
        if params["script"] and not (INCLUDE / "scripts" / params["script"]).is_file():
            raise AirflowFailException(f"include/scripts/{params['script']} does not exist")
        if not params["tags"] and not params["instance_ids"]:
            raise AirflowFailException("give tags or instance_ids: this DAG never runs on every instance")
        return list(params["regions"]) or [EcsHook().resolve_region()]

    target_regions = check_params()
    select = SelectInstancesOperator(
        task_id="select_instances",
        regions=target_regions,
        tags="{{ params.tags or {} }}",
        instance_ids="{{ params.instance_ids }}",
        statuses=sorted(st.SETTLED),
        allow_empty=True,
    )

    @task.branch
    def needs_approval(selected: list[dict], **context) -> str:
        """Approval above the threshold; else straight to the command."""
        limit = context["params"]["approval_above"]
        return "approve" if limit is not None and len(selected) > limit else "run_command"

    approve = ApprovalOperator(
        task_id="approve",
        subject="Run a command on {{ ti.xcom_pull(task_ids='select_instances') | length }} ECS instances?",
        body=("**{{ ti.xcom_pull(task_ids='select_instances') | length }}** instances in "
              "{{ ti.xcom_pull(task_ids='check_params') | join(', ') }} (tags {{ params.tags }}, ids "
              "{{ params.instance_ids }}), {{ params.concurrency }} at a time, max errors {{ params.max_errors }}:"
              "\n\n```\n{% if params.script %}include/scripts/{{ params.script }}{% else %}{{ params.command }}"
              "{% endif %}\n```"),
        defaults="Reject",
        response_timeout=timedelta(hours=12),
    )

    run = RunCommandOperator(
        task_id="run_command",
        instances=select.output,
        command_content="{% if params.script %}{% include 'scripts/' ~ params.script %}"
                        "{% else %}{{ params.command }}{% endif %}",
        command_type="{{ params.command_type }}",
        timeout="{{ params.timeout }}",
        concurrency="{{ params.concurrency }}",
        max_errors="{{ params.max_errors }}",
        poll_interval="{{ params.poll_interval }}",
        trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
    )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report(**context) -> dict:
        from aliyun_ops.pipelines.approval import approval_answer
        from aliyun_ops.pipelines.command_report import finish_command

        return finish_command(context, approval_answer(context))

    branch = needs_approval(select.output)
    select >> branch >> [approve, run]
    approve >> run >> report()
