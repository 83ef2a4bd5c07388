"""Restore an instance's system disk from a backup image (by default its newest complete backup).

find the image (given, or the newest Available ``ops:managed-by`` backup of this instance in its region)
-> stop if needed -> ReplaceSystemDisk -> wait for the new disk -> start -> wait Running.
Destructive: the form asks to type the instance id again.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task

from aliyun_ops.logic import ids
from aliyun_ops.operators.ecs import ReplaceSystemDiskOperator

with DAG(
    dag_id="ecs_restore_system_disk",
    description="Replace an instance's system disk with a backup image",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["aliyun", "ecs", "restore"],
    doc_md=__doc__,
    params={
        "instance_id": Param(type="string", pattern=ids.pattern("instance"), title="Instance id"),
        "confirm_instance_id": Param(type="string", title="Type the instance id again",
                                     description="The instance's system disk is replaced: its data is lost."),
        "region": Param(None, type=["null", "string"], pattern=ids.pattern("region"), title="Region",
                        description="Empty: the connection's region."),
        "image_id": Param(None, type=["null", "string"], pattern=ids.pattern("image"), title="Image id",
                          description="Empty: the instance's newest complete backup image."),
    },
) as dag:

    @task(multiple_outputs=True)
    def choose_image(**context) -> dict:
        """Check the confirmation, then pick the image (newest complete backup unless one is given)."""
        from airflow.sdk.exceptions import AirflowFailException

        from aliyun_ops.hooks.ecs import EcsHook
        from aliyun_ops.logic import provenance as pv

        params = context["params"]
        instance_id = params["instance_id"]
        if params["confirm_instance_id"] != instance_id:
            raise AirflowFailException("confirm_instance_id does not match instance_id: nothing was changed")
        hook = EcsHook(region=params["region"])
        region = hook.resolve_region()
        if params["image_id"]:
            return {"region": region, "image_id": params["image_id"]}
        backups = [img for img in hook.describe_images(region, status="Available",
                                                       tags={pv.SOURCE_INSTANCE: instance_id,
                                                             pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE})
                   if pv.SOURCE_IMAGE not in pv.tags_from_api(img.get("Tags"))]
        if not backups:
            raise AirflowFailException(f"no Available backup image of {instance_id} in {region}")
        newest = max(backups, key=lambda img: (img.get("CreationTime", ""), img["ImageId"]))
        return {"region": region, "image_id": newest["ImageId"]}

    chosen = choose_image()
    ReplaceSystemDiskOperator(
        task_id="replace_system_disk",
        instances=["{{ params.instance_id }}"],
        region=chosen["region"],
        image_id=chosen["image_id"],
        concurrency=1,
    )
