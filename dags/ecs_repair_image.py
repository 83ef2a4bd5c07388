"""Repair an image that does not boot, offline (Alibaba's OOS ACS-ECS-RepairImage), and report what each item did.

check (no change: the image exists, its image check does not call the system ``Invalid``, it is a Linux x86_64 or
arm64 image with a system snapshot; the repair items are known; an unsupported image ends the run here, with the
reason) -> release what earlier runs left -> repair instance from a base image of the image's architecture (the
newest Alibaba Cloud Linux 3, discovered, unless ``base_image_id``), the image's system snapshot attached as a data
disk, in a closed group of the run's own, no public address, pay-as-you-go -> the data disk In_use and its serial ->
SELinux permissive and a reboot -> the public command ``ACS-ECS-ImageRepair-for-linux.sh`` on that disk (its line
per item kept) -> after the flush wait, a snapshot of the repaired disk (kept 1 day) -> the repaired image
``repaired_<name>_<UTC %Y%m%d%H%M%S>`` (image check ``Standard``, the original platform, boot mode and
architecture), Available -> its check result, read once finished -> report.

The repair instance and its group are released by a teardown whatever fails (the template waits out a minute of
"instance protection" first; here the release retries instead), and the next run sweeps what a killed run left.
The snapshot is deleted when no image was made of it. Every create carries a ClientToken, so a retried task makes
nothing twice.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, TriggerRule, task

from aliyun_ops.logic import ids
from aliyun_ops.operators.ecs import ReleaseTemporaryResourcesOperator
from aliyun_ops.pipelines.image_repair import DEFAULT_REPAIR_ITEMS, REPAIR_ITEMS

with DAG(
    dag_id="ecs_repair_image",
    description="Repair an image that does not boot (drivers, fstab, grub, cloud-init...) offline, into a new image",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    tags=["aliyun", "ecs", "image-factory"],
    doc_md=__doc__,
    params={
        "region": Param(None, type=["null", "string"], pattern=ids.pattern("region"), title="Region",
                        description="Empty: the connection's region."),
        "image_id": Param(None, type=["null", "string"], pattern=ids.pattern("any_image"), title="Image to repair",
                          description="One of your custom images (m-...); empty: the newest one whose image check "
                                      "found a problem that stops a boot."),
        "base_image_id": Param(None, type=["null", "string"], pattern=ids.pattern("any_image"), title="Base image",
                               description="Of the repair instance; empty: the newest Alibaba Cloud Linux 3 of the "
                                           "image's architecture."),
        "repair_items": Param(list(DEFAULT_REPAIR_ITEMS), type="array", minItems=1, uniqueItems=True,
                              items={"type": "string", "enum": list(REPAIR_ITEMS)}, title="Repair items",
                              description="'all', or some of the items; the default is the repair command's own "
                                          "set (the template's 'assist' alone repairs nothing that stops a boot)."),
        "instance_type": Param(None, type=["null", "string"], pattern=ids.pattern("instance_type"),
                               title="Repair instance type",
                               description="Empty: ecs.g7.large for x86_64, ecs.g8y.large for arm64."),
        "zone_id": Param(None, type=["null", "string"], title="Zone"),
        "vswitch_id": Param(None, type=["null", "string"], pattern=r"^vsw-[a-z0-9]+$", title="vSwitch",
                            description="Empty: the region's (zone's) default vSwitch."),
        "security_group_id": Param(None, type=["null", "string"], pattern=r"^sg-[a-z0-9]+$",
                                   title="Security group",
                                   description="Empty: a closed group of the run's own (nothing in; out only to "
                                               "Alibaba Cloud's internal services), deleted afterwards."),
        "system_disk_category": Param("cloud_essd", enum=["cloud_essd", "cloud_auto", "cloud_ssd",
                                                          "cloud_efficiency"], title="Disk category"),
        "flush_wait": Param(60, type="integer", minimum=0, maximum=600, title="Flush wait (seconds)",
                            description="Between the repair and the snapshot, as the template."),
        "poll_interval": Param(15, type="integer", minimum=1, maximum=600, title="Poll interval (seconds)"),
        "notify_emails": Param([], type="array", items={"type": "string", "format": "idn-email"},
                               title="Report to"),
    },
) as dag:

    @task
    def check(**context) -> dict:
        """The template's checks before anything is made (ends the run with the reason otherwise)."""
        from airflow.sdk.exceptions import AirflowFailException

        from aliyun_ops.hooks.ecs import EcsHook
        from aliyun_ops.pipelines.image_repair import check_image, image_to_repair

        params = context["params"]
        hook = EcsHook(region=params["region"])
        region = hook.resolve_region(params["region"])
        try:
            image_id = image_to_repair(hook, region, params["image_id"])
            return check_image(hook, region, image_id, params["repair_items"])
        except ValueError as err:
            raise AirflowFailException(str(err)) from None

    plan = check()

    @task
    def repair_scope(plan: dict) -> list[str]:
        """Setup of the release teardown, before anything is made: the region of this run's temporary resources."""
        return [plan["region"]]

    scope = repair_scope(plan)
    leftovers = ReleaseTemporaryResourcesOperator(task_id="sweep_leftovers", regions=scope, scope="stale",
                                                  max_errors="100%")

    @task
    def launch(plan: dict, **context) -> dict:
        from aliyun_ops.hooks.ecs import EcsHook
        from aliyun_ops.pipelines.image_repair import launch as launch_instance

        return launch_instance(EcsHook(), context, plan, context["params"])

    instance = launch(plan)

    @task
    def attached_disk(plan: dict, instance: dict, **context) -> dict:
        from aliyun_ops.hooks.ecs import EcsHook
        from aliyun_ops.pipelines.image_repair import data_disk

        poll = float(context["params"]["poll_interval"])
        return data_disk(EcsHook(), plan["region"], instance["instance_id"], poll=poll)

    disk = attached_disk(plan, instance)

    @task
    def repair(plan: dict, instance: dict, disk: dict, **context) -> dict:
        from aliyun_ops.hooks.ecs import EcsHook
        from aliyun_ops.pipelines.image_repair import repair as repair_disk

        poll = float(context["params"]["poll_interval"])
        return repair_disk(EcsHook(), context, plan, instance["instance_id"], disk, poll)

    repaired = repair(plan, instance, disk)

    @task
    def make_image(plan: dict, disk: dict, **context) -> dict:
        import time

        from aliyun_ops.hooks.ecs import EcsHook
        from aliyun_ops.pipelines.image_repair import make_image as make_repaired_image

        time.sleep(int(context["params"]["flush_wait"]))    # the template's wait for the disk's IO to settle
        return make_repaired_image(EcsHook(), context, plan, disk, float(context["params"]["poll_interval"]))

    image = make_image(plan, disk)

    @task
    def image_check(plan: dict, image: dict, **context) -> dict:
        from aliyun_ops.hooks.ecs import EcsHook
        from aliyun_ops.pipelines.image_repair import detection_after

        return detection_after(EcsHook(), plan["region"], image["image_id"], timeout=3600,
                               poll=float(context["params"]["poll_interval"]))

    checked = image_check(plan, image)
    release = ReleaseTemporaryResourcesOperator(
        task_id="release_temporary_resources",
        regions=scope,
        retries=3,
        retry_delay=timedelta(seconds=30),
    ).as_teardown(setups=scope, on_failure_fail_dagrun=True)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report(**context) -> dict:
        from aliyun_ops.pipelines.image_repair_report import finish_repair

        return finish_repair(context)

    scope >> leftovers >> instance
    repaired >> image
    [instance, disk, repaired, image] >> release
    [checked, release] >> report()
