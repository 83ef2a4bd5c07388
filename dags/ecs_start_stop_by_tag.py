"""Start or stop every ECS instance carrying some tags, from a trigger form (e.g. env=test at night).

select (tags, regions, optional ids) -> start | stop (batched, skips instances already there, waits)
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task

from aliyun_ops.logic import ids
from aliyun_ops.logic.budget import CONCURRENCY, COUNT_OR_PERCENT
from aliyun_ops.operators.ecs import SelectInstancesOperator, StartInstancesOperator, StopInstancesOperator

with DAG(
    dag_id="ecs_start_stop_by_tag",
    description="Start or stop the ECS instances that carry some tags",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["aliyun", "ecs", "power"],
    doc_md=__doc__,
    params={
        "action": Param("stop", enum=["start", "stop"], title="Action"),
        "regions": Param([], type="array", items=ids.schema("region"), uniqueItems=True,
                         title="Regions", description="Empty: the aliyun_default connection's region."),
        "tags": Param({"env": "test"}, type="object", additionalProperties={"type": "string"}, minProperties=1,
                      title="Tags", description="Instances carrying all of these tags."),
        "instance_ids": Param([], type="array", items=ids.schema("instance"),
                              title="Instance ids", description="Optional: only these (combined with the tags)."),
        "force_stop": Param(False, type="boolean", title="Force stop"),
        "stopped_mode": Param("KeepCharging", enum=["KeepCharging", "StopCharging"], title="Stopped mode"),
        "concurrency": Param("100%", **CONCURRENCY, title="Concurrency"),
        "max_errors": Param(0, **COUNT_OR_PERCENT, title="Max errors"),
    },
) as dag:

    @task
    def regions(**context) -> list[str]:
        """The regions asked for, or the connection's default region (no API call)."""
        from aliyun_ops.hooks.ecs import EcsHook

        return list(context["params"]["regions"]) or [EcsHook().resolve_region()]

    target_regions = regions()
    select = SelectInstancesOperator(
        task_id="select_instances",
        regions=target_regions,
        tags="{{ params.tags }}",
        instance_ids="{{ params.instance_ids }}",
    )

    @task.branch
    def choose(action: str) -> str:
        return f"{action}_instances"

    common = {"instances": select.output, "concurrency": "{{ params.concurrency }}",
              "max_errors": "{{ params.max_errors }}"}
    start = StartInstancesOperator(task_id="start_instances", **common)
    stop = StopInstancesOperator(task_id="stop_instances", force_stop="{{ params.force_stop }}",
                                 stopped_mode="{{ params.stopped_mode }}", **common)
    select >> choose("{{ params.action }}") >> [start, stop]
