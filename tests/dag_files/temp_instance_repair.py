"""Temporary instances as setup/teardown: create a worker, run a repair command on it, always delete it.

The teardown also finds the run's instances by their provenance tags, so they are released even if
``create_worker`` failed after RunInstances but before pushing its XCom.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from aliyun_ops.operators.ecs_commands import RunCommandOperator
from aliyun_ops.operators.ecs_instances import DeleteInstancesOperator, RunInstancesOperator

with DAG(
    dag_id="temp_instance_repair",
    schedule=None,
    catchup=False,
    params={
        "image_id": Param("", type="string", title="Image of the temporary worker"),
        "region": Param("cn-hangzhou", type="string"),
        "script": Param("echo repaired on $(hostname)", type="string", format="multiline"),
    },
    tags=["aliyun-ops", "test"],
) as dag:
    create = RunInstancesOperator(
        task_id="create_worker", image_id="{{ params.image_id }}", region="{{ params.region }}",
        instance_type="ecs.g7.large", tags={"purpose": "repair"}, poll_interval=1,
    )
    repair = RunCommandOperator(
        task_id="repair", instances=create.output, region="{{ params.region }}", content="{{ params.script }}",
        timeout=300, poll_interval=1,
    )
    delete = DeleteInstancesOperator(
        task_id="delete_worker", instances=create.output, region="{{ params.region }}",
        include_run_instances=True, poll_interval=1,
    )
    create >> repair >> delete.as_teardown(setups=create)
