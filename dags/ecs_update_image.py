"""Update a golden image (Alibaba's OOS ACS-ECS-UpdateImage), test it, ask before publishing it.

plan (no change: the source image, given or the newest one carrying ``source_image_tags``; the update command; the
target name, refused if it exists) -> release what earlier runs left -> build instance from the source image, in a
group of the run's own (outbound as ``egress_cidrs``; nothing inbound) -> Cloud Assistant ready (installed and
rebooted once when missing) -> the update command (its output in the report) -> stop -> the image, tagged with the
source image, the script's hash and the run -> **test**: boot the new image in a closed group and run the health
command (as ``ecs_verify_backups``); a failed test deletes the image, nothing is published -> **approval**
(Required Actions; a mail to ``notify_emails`` links to it; no answer in 24 h is Reject), in manual and scheduled
runs alike -> publish: copies to ``copy_to_regions``, shared with ``share_with_accounts``, and an Asset event per
region (``aliyun-ecs://<region>/golden-images``) that other DAGs schedule on.

Every temporary instance and group is released by a teardown whatever fails (a failed stop included: the template's
StopInstance has no error branch and leaks the instance), and the next run sweeps what a killed run left.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, AssetAlias, Param, TriggerRule, task

from aliyun_ops.logic import ids
from aliyun_ops.logic.commands import COMMAND_TYPES, MAX_TIMEOUT
from aliyun_ops.operators.ecs import (
    ReleaseTemporaryResourcesOperator,
    RunCommandOperator,
    RunInstancesOperator,
    StopInstancesOperator,
    VerifyBackupsOperator,
)
from aliyun_ops.pipelines.notify import ApprovalMail

INCLUDE = Path(__file__).resolve().parent.parent / "include"
GOLDEN_ALIAS = "aliyun-ecs-golden-images"
PLAN = "{{ ti.xcom_pull(task_ids='plan') }}"

with DAG(
    dag_id="ecs_update_image",
    description="Update a golden image on a temporary instance, test it, and publish it once approved",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    template_searchpath=[str(INCLUDE)],
    tags=["aliyun", "ecs", "image-factory"],
    doc_md=__doc__,
    params={
        "region": Param(None, type=["null", "string"], pattern=ids.pattern("region"), title="Region",
                        description="Empty: the connection's region."),
        "source_image_id": Param(None, type=["null", "string"], pattern=ids.pattern("any_image"),
                                 title="Source image", description="Empty: the newest image with the tags below."),
        "source_image_tags": Param({"role": "golden-base"}, type=["null", "object"],
                                   additionalProperties={"type": "string"}, title="Source image tags"),
        "update_script": Param("update_image.sh", type=["null", "string"],
                               pattern=r"^[A-Za-z0-9_.-]+\.(sh|ps1|bat|py)$", title="Update script",
                               description="A file of include/scripts/ (null: the command below)."),
        "update_command": Param(None, type=["null", "string"], maxLength=16384, title="Update command"),
        "command_type": Param("RunShellScript", enum=sorted(COMMAND_TYPES), title="Command type"),
        "update_timeout": Param(3600, type="integer", minimum=60, maximum=MAX_TIMEOUT, title="Update timeout (s)"),
        "image_name_template": Param("golden-{date}-{datetime}", type="string", minLength=2, maxLength=128,
                                     title="Image name", description="Fields: date, datetime, run_id, dag_id."),
        "instance_type": Param("ecs.t6-c1m1.large", type="string", pattern=ids.pattern("instance_type"),
                               title="Build and test instance type"),
        "egress_cidrs": Param(["0.0.0.0/0"], type="array", items={"type": "string"}, minItems=1,
                              title="Build instance may connect to",
                              description="The update downloads packages; nothing comes in."),
        "health_command": Param(None, type=["null", "string"], title="Test command",
                                description="Null: the bundled include/scripts/health_check.sh."),
        "copy_to_regions": Param([], type="array", items=ids.schema("region"), uniqueItems=True,
                                 title="Publish to regions"),
        "share_with_accounts": Param([], type="array", items={"type": "string", "pattern": r"^[0-9]+$"},
                                     uniqueItems=True, title="Share with accounts"),
        "require_approval": Param(True, type="boolean", title="Ask before publishing",
                                  description="Off only for a pipeline you trust: a tested image is then published "
                                              "without a human."),
        "poll_interval": Param(15, type="integer", minimum=1, maximum=600, title="Poll interval (seconds)"),
        "notify_emails": Param([], type="array", items={"type": "string", "format": "idn-email"},
                               title="Ask and report to"),
    },
) as dag:

    @task
    def plan(**context) -> dict:
        """Everything checked before anything is made (ends the run with the reason otherwise)."""
        from airflow.sdk.exceptions import AirflowFailException

        from aliyun_ops.hooks.ecs import EcsHook
        from aliyun_ops.pipelines.image_update import plan_update

        params = context["params"]
        try:
            return plan_update(EcsHook(region=params["region"]), params, context, INCLUDE / "scripts")
        except ValueError as err:
            raise AirflowFailException(f"{err}: nothing was created") from None

    the_plan = plan()

    @task
    def build_scope(plan: dict) -> list[str]:
        """Setup of the release teardown, before anything is made: the regions of this run's temporary resources."""
        return [plan["region"]]

    scope = build_scope(the_plan)
    leftovers = ReleaseTemporaryResourcesOperator(task_id="sweep_leftovers", regions=scope, scope="stale",
                                                  max_errors="100%")
    build = RunInstancesOperator(
        task_id="build_instance",
        region="{{ ti.xcom_pull(task_ids='plan')['region'] }}",
        image_id="{{ ti.xcom_pull(task_ids='plan')['source_image_id'] }}",
        instance_type="{{ params.instance_type }}",
        instance_name="image-build-{{ ti.xcom_pull(task_ids='plan')['image_name'] }}",
        purpose="image-build",
        egress_cidrs="{{ params.egress_cidrs }}",
        poll_interval="{{ params.poll_interval }}",
    )

    @task
    def agent_ready(built: list[dict], **context) -> str:
        from aliyun_ops.hooks.ecs import EcsHook
        from aliyun_ops.pipelines.image_update import wait_agent_ready

        poll = float(context["params"]["poll_interval"])
        return wait_agent_ready(EcsHook(), built[0]["region"], built[0]["instance_id"], timeout=900,
                                poll_interval=poll)

    ready = agent_ready(build.output)
    update = RunCommandOperator(
        task_id="update",
        instances=build.output,
        command_content="{% if params.update_script %}{% include 'scripts/' ~ params.update_script %}"
                        "{% else %}{{ params.update_command }}{% endif %}",
        command_type="{{ params.command_type }}",
        timeout="{{ params.update_timeout }}",
        poll_interval="{{ params.poll_interval }}",
        output_limit=16384,
    )
    stop = StopInstancesOperator(task_id="stop_build_instance", instances=build.output,
                                 poll_interval="{{ params.poll_interval }}")

    @task
    def create_image(built: list[dict], **context) -> dict:
        from aliyun_ops.hooks.ecs import EcsHook
        from aliyun_ops.pipelines.image_update import create_golden_image

        plan, poll = context["ti"].xcom_pull(task_ids="plan"), float(context["params"]["poll_interval"])
        image_id = create_golden_image(EcsHook(), context, plan, built[0]["instance_id"], timeout=4 * 3600,
                                       poll_interval=poll)
        return {"region": plan["region"], "image_id": image_id, "instance_id": built[0]["instance_id"],
                "image_name": plan["image_name"]}

    image = create_image(build.output)
    test = VerifyBackupsOperator(
        task_id="test_image",
        copies=[image],
        instance_type="{{ params.instance_type }}",
        health_command="{% if params.health_command is none %}{% include 'scripts/health_check.sh' %}"
                       "{% else %}{{ params.health_command }}{% endif %}",
        health_retry_interval="{{ params.poll_interval }}",
        poll_interval="{{ params.poll_interval }}",
    )

    @task
    def keep_or_discard(image: dict, **context) -> dict:
        """A golden image that failed its test is deleted with its snapshots: nothing failed is kept or published."""
        from airflow.sdk.exceptions import AirflowFailException

        from aliyun_ops.hooks.ecs import EcsHook
        from aliyun_ops.pipelines.image_update import discard_image, judge_test
        from aliyun_ops.pipelines.report_inputs import task_results

        passed, why = judge_test(task_results(context["ti"], "test_image"))
        if passed:
            return image
        snapshots = discard_image(EcsHook(), image["region"], image["image_id"])
        raise AirflowFailException(f"the test of {image['image_id']} failed ({why}): the image and its snapshots "
                                   f"{snapshots} were deleted, nothing is published")

    kept = keep_or_discard(image)

    @task.branch
    def ask(**context) -> str:
        """Ask before publishing unless require_approval is off."""
        return "approve" if context["params"]["require_approval"] else "publish"

    asked = ask()
    approve = ApprovalOperator(
        task_id="approve",
        subject="Publish golden image {{ ti.xcom_pull(task_ids='plan')['image_name'] }}?",
        body=("Golden image **{{ ti.xcom_pull(task_ids='create_image')['image_id'] }}** "
              "({{ ti.xcom_pull(task_ids='plan')['image_name'] }}) in {{ ti.xcom_pull(task_ids='plan')['region'] }}, "
              "updated from {{ ti.xcom_pull(task_ids='plan')['source_image_id'] }} "
              "(script sha256 {{ ti.xcom_pull(task_ids='plan')['script_sha256'][:12] }}), passed its test."
              "\n\n- publish to: {{ params.copy_to_regions or 'its region only' }}"
              "\n- share with: {{ params.share_with_accounts or 'nobody' }}"),
        defaults="Reject",
        response_timeout=timedelta(hours=24),
        notifiers=[ApprovalMail(to="{{ params.notify_emails }}")],
    )

    @task(outlets=[AssetAlias(GOLDEN_ALIAS)], trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def publish(image: dict, **context) -> dict:
        from aliyun_ops.hooks.ecs import EcsHook
        from aliyun_ops.pipelines.image_update import publish as publish_image
        from aliyun_ops.pipelines.notify import golden_asset

        plan, poll = context["ti"].xcom_pull(task_ids="plan"), float(context["params"]["poll_interval"])
        published = publish_image(EcsHook(), context, plan, image["image_id"], timeout=4 * 3600, poll_interval=poll)
        for region, image_id in published.items():
            context["outlet_events"][AssetAlias(GOLDEN_ALIAS)].add(golden_asset(region), extra={
                "image_id": image_id, "run_id": context["run_id"]})
        return published

    published = publish(kept)
    release = ReleaseTemporaryResourcesOperator(
        task_id="release_temporary_resources",
        regions=scope,
        retries=3,
        retry_delay=timedelta(seconds=30),
    ).as_teardown(setups=scope, on_failure_fail_dagrun=True)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report(**context) -> dict:
        from aliyun_ops.pipelines.approval import approval_answer
        from aliyun_ops.pipelines.image_update_report import finish_update

        return finish_update(context, approval_answer(context))

    scope >> leftovers >> build
    ready >> update >> stop >> image
    test >> kept >> asked >> [approve, published]
    approve >> published
    [ready, update, stop, image, test] >> release
    [published, release] >> report()
