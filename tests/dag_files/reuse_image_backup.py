"""Reuse story: a user's own DAG built only from aliyun_ops image classes (no project pipeline code).

Images every instance tagged ``backup=reuse`` in the source region, copies the images to the
disaster-recovery region, waits for the copies with the sensor, then deletes the source images whose
copies all succeeded.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from aliyun_ops.operators.ecs import CopyImageOperator, CreateImageOperator, DeleteImagesOperator
from aliyun_ops.sensors.ecs_images import WaitForImageAvailableSensor

with DAG(
    "reuse_image_backup",
    schedule=None,
    render_template_as_native_obj=True,
    params={
        "source_region": Param("cn-hangzhou", type="string"),
        "destination_region": Param("cn-shanghai", type="string"),
        "tag_value": Param("reuse", type="string"),
        "poll_interval": Param(0.2, type="number"),
    },
    tags=["aliyun", "example"],
) as dag:
    create = CreateImageOperator(
        task_id="create_images",
        region="{{ params.source_region }}",
        instance_tags={"backup": "{{ params.tag_value }}"},
        image_name_template="reuse-{instance_name}-{instance_id}-{date}",
        tags={"owner": "reuse-example"},
        policy="reuse",
        retention_days=3,
        poll_interval="{{ params.poll_interval }}",
        timeout=600,
    )
    copy = CopyImageOperator(
        task_id="copy_images",
        images=create.output,
        destination_regions=["{{ params.destination_region }}"],
        retention_days=3,
        poll_interval="{{ params.poll_interval }}",
        timeout=600,
    )
    wait = WaitForImageAvailableSensor(
        task_id="copies_available",
        images=copy.output,
        poke_interval=0.2,
        timeout=600,
    )
    delete_sources = DeleteImagesOperator(
        task_id="delete_source_images",
        images=copy.output,
        image_key="source_image_id",
        region_key="source_region",
        require_success=True,
    )
    create >> copy >> wait >> delete_sources
