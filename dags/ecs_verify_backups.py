"""Prove that the backups restore: boot the newest DR copy of each instance and check it, every time copies land.

Runs on the backup DAG's Asset events (each destination region with new copies) and on demand. For each chosen
copy: RunInstances from it in its region (a small instance type, the region's default vSwitch unless given) in a
security group of its own, which the run creates closed (no inbound rule; outbound only to Alibaba's internal
services, which Cloud Assistant and the metadata service need), never the VPC's default group: the clone of a
production server starts its cron jobs and queue consumers at boot, and must not reach production. Wait Running,
run the health command through Cloud Assistant (retried while the clone boots), tag the image
``ops:verified-at=<UTC>`` (or ``ops:verify-failed=<reason>``), release the instance. A teardown releases any
temporary instance of the run left behind, then its security group; one that fails fails the run, and the report
names what was left. The run starts by releasing what earlier runs of this DAG left (a killed task, a teardown that
never ran) once older than ``leftover_grace_hours``; never anything untagged or younger. Retention never deletes a group's newest verified copy.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, AssetAlias, Param, TriggerRule, task

from aliyun_ops.logic import ids
from aliyun_ops.logic.policies import BACKUP_POLICY
from aliyun_ops.operators.ecs import ReleaseTemporaryResourcesOperator, VerifyBackupsOperator
from aliyun_ops.pipelines.backup_report import BACKUP_ASSET_ALIAS

INCLUDE = Path(__file__).resolve().parent.parent / "include"

with DAG(
    dag_id="ecs_verify_backups",
    description="Boot the newest DR copy of each instance, run a health check, tag it verified, release it",
    schedule=[AssetAlias(BACKUP_ASSET_ALIAS)],
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    template_searchpath=[str(INCLUDE)],
    tags=["aliyun", "ecs", "verify"],
    doc_md=__doc__,
    params={
        "regions": Param([], type="array", items=ids.schema("region"), uniqueItems=True, title="DR regions",
                         description="Empty: every region holding complete copies."),
        "policy": Param(BACKUP_POLICY, type=["null", "string"], title="Policy",
                        description="Copies of this ops:policy (null: any policy we manage)."),
        "sample_percent": Param(100, type="number", exclusiveMinimum=0, maximum=100, title="Sample (%)",
                                description="Share of the copies booted each run (at least one)."),
        "instance_type": Param("ecs.t6-c1m1.large", type="string", pattern=ids.pattern("instance_type"),
                               title="Temporary instance type"),
        "health_command": Param(None, type=["null", "string"], title="Health command",
                                description="Null: the bundled include/scripts/health_check.sh."),
        "health_attempts": Param(5, type="integer", minimum=1, maximum=100, title="Health check tries",
                                 description="A clone just booted may still be starting its services."),
        "health_retry_seconds": Param(30, type="integer", minimum=0, maximum=3600, title="Seconds between tries"),
        "concurrency": Param(4, type="integer", minimum=1, maximum=20, title="Copies booted at once"),
        "leftover_grace_hours": Param(6, type="number", minimum=0, maximum=720, title="Sweep leftovers after (hours)",
                                      description="Clones and groups of earlier runs of this DAG (a killed task) "
                                                  "older than this at the run's date are released first."),
        "notify_emails": Param([], type="array", items={"type": "string", "format": "idn-email"},
                               title="Email the report to"),
    },
) as dag:

    @task
    def regions(**context) -> list[str]:
        """The DR regions to look in: given, or every region of the account (DescribeRegions)."""
        from aliyun_ops.hooks.ecs import EcsHook

        given = list(context["params"]["regions"])
        return given or sorted(r["RegionId"] for r in EcsHook().describe_regions())

    scope = regions()

    @task
    def select_copies(regions: list[str], **context) -> list[dict]:
        from aliyun_ops.hooks.ecs import EcsHook
        from aliyun_ops.operators.ecs_verify import newest_copies

        params = context["params"]
        return newest_copies(EcsHook(), regions, policy=params["policy"], sample_percent=params["sample_percent"],
                             seed=context["run_id"])

    copies = select_copies(scope)

    verify = VerifyBackupsOperator(
        task_id="verify",
        copies=copies,
        instance_type="{{ params.instance_type }}",
        health_command="{% if params.health_command is none %}{% include 'scripts/health_check.sh' %}"
                       "{% else %}{{ params.health_command }}{% endif %}",
        concurrency="{{ params.concurrency }}",
        health_attempts="{{ params.health_attempts }}",
        health_retry_interval="{{ params.health_retry_seconds }}",
    )

    leftovers = ReleaseTemporaryResourcesOperator(       # clones and groups of earlier runs that died
        task_id="sweep_leftovers",
        regions=scope,
        scope="stale",
        grace_hours="{{ params.leftover_grace_hours }}",
        max_errors="100%",                                 # reported; this run's verification goes on
    )

    release = ReleaseTemporaryResourcesOperator(         # this run's clones, then their group, whatever failed
        task_id="release_temporary_resources",
        regions=scope,
        retries=3,
        retry_delay=timedelta(seconds=30),
    ).as_teardown(setups=scope, on_failure_fail_dagrun=True)   # a clone left running fails the run

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report(**context) -> dict:
        from aliyun_ops.pipelines.verify_report import finish_verify

        return finish_verify(context)

    scope >> leftovers >> copies
    copies >> verify >> release >> report()
