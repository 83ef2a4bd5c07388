"""Restore an instance's system disk from a backup image, with an undo: check first, keep a snapshot of the
current disk, replace, prove health, and fall back (to a given image or the undo snapshot) when any step fails.

The power state is the caller's to restore: stop the instance with ``StopInstancesOperator(mark_paused=True)``
before this task and pair it with ``ResumePausedOperator`` as a teardown (the restore DAG does), so an instance
that was Running ends Running and one that was Stopped ends Stopped, whatever happens here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aliyun_ops.exceptions import AliyunApiError, error_reason
from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.logic import provenance as pv
from aliyun_ops.logic.outcome import FAILED, SUCCESS
from aliyun_ops.operators.base import AliyunBaseOperator
from aliyun_ops.operators.image_batch import run_date, run_info
from aliyun_ops.operators.steps import run_health_command, wait_for_instance, wait_for_status

UNDO_FOR = "ops:undo-for"
UNDO_RETENTION_DAYS = 7


class RestoreError(RuntimeError):
    """A step of the restore failed (the message says which, for the report)."""


def check_restore(hook: EcsHook, region: str, instance_id: str, image_id: str | None, *,
                  fallback_image_id: str | None = None, allow_foreign_image: bool = False) -> dict:
    """Everything checked before any change: the instance exists, the image (given, or the newest complete
    backup of the instance in the region) is Available, ours and this instance's. Returns the plan."""
    recs = hook.describe_instances(region, instance_ids=[instance_id])
    if not recs:
        raise RestoreError(f"instance {instance_id} not found in {region}")
    status = recs[0].get("Status", "")
    if status not in ("Running", "Stopped"):
        raise RestoreError(f"instance {instance_id} is {status}: wait until it is Running or Stopped")
    if not image_id:
        image_id = newest_backup(hook, region, instance_id)
    image = check_image(hook, region, image_id, instance_id, allow_foreign_image, what="image_id")
    if fallback_image_id:
        check_image(hook, region, fallback_image_id, instance_id, True, what="fallback_image_id")
    disks = hook.describe_disks(region, instance_id=instance_id, disk_type="system")
    return {"region": region, "instance_id": instance_id, "instance_name": recs[0].get("InstanceName", ""),
            "was_status": status, "image_id": image_id, "image_name": image.get("ImageName", ""),
            "image_created": image.get("CreationTime", ""), "fallback_image_id": fallback_image_id or "",
            "current_disk_id": disks[0]["DiskId"] if disks else "",
            "current_image_id": disks[0].get("ImageId", "") if disks else ""}


def newest_backup(hook: EcsHook, region: str, instance_id: str) -> str:
    """The newest complete backup image of ``instance_id`` in ``region`` (a source image or a complete copy)."""
    found = []
    for img in hook.describe_images(region, status="Available", tags={
            pv.SOURCE_INSTANCE: instance_id, pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE}):
        tags = pv.tags_from_api(img.get("Tags"))
        if pv.SOURCE_IMAGE not in tags or tags.get(pv.COPY_STATUS) == pv.COPY_COMPLETE:
            found.append(img)
    if not found:
        raise RestoreError(f"no complete backup image of {instance_id} in {region}")
    return max(found, key=lambda img: (img.get("CreationTime", ""), img["ImageId"]))["ImageId"]


def check_image(hook: EcsHook, region: str, image_id: str, instance_id: str, allow_foreign: bool, *,
                what: str) -> dict:
    recs = hook.describe_images(region, image_ids=[image_id], owner=None)
    if not recs:
        raise RestoreError(f"{what} {image_id} not found in {region}")
    image = recs[0]
    if image.get("Status") != "Available":
        raise RestoreError(f"{what} {image_id} is {image.get('Status')}, not Available")
    tags = pv.tags_from_api(image.get("Tags"))
    if not allow_foreign and not pv.is_managed(tags):
        raise RestoreError(f"{what} {image_id} is not one of our backups (no {pv.MANAGED_BY_KEY} tag); "
                           "set allow_foreign_image to use it")
    if not allow_foreign and tags.get(pv.SOURCE_INSTANCE) != instance_id:
        raise RestoreError(f"{what} {image_id} is a backup of {tags.get(pv.SOURCE_INSTANCE) or 'no instance'}, not "
                           f"of {instance_id}; set allow_foreign_image to use it")
    return image


class RestoreSystemDiskOperator(AliyunBaseOperator):
    """Replace a Stopped instance's system disk from ``plan`` (the output of :func:`check_restore`), safely.

    Steps: undo snapshot of the current system disk (tagged ``ops:undo-for``, kept 7 days) -> ReplaceSystemDisk
    -> wait for the new disk -> start, if the instance was Running -> ``health_command`` through Cloud Assistant.
    When the replace, the start or the health check fails: ReplaceSystemDisk again with ``fallback_image_id``
    (or an image made from the undo snapshot), start if it was Running, and fail with both stories in the result.
    ClientTokens are keyed on the run, so a retried try repeats nothing and a new run restores again.

    Returns (and pushes as XCom ``results`` before failing) one row: ``instance_id``, ``image_id``,
    ``undo_snapshot_id``, ``disk_id``, ``fallback_image_id`` (used), ``health``, ``status``, ``reason``.

    Example::

        RestoreSystemDiskOperator(task_id="restore", plan=check.output, health_command="systemctl is-system-running")
    """

    template_fields = ("aliyun_conn_id", "plan", "health_command", "take_undo_snapshot", "poll_interval")
    hook_class = EcsHook

    def __init__(self, *, plan: Any, health_command: str | None = None, take_undo_snapshot: bool | str = True,
                 health_timeout: int = 600, poll_interval: float = 5.0, step_timeout: float = 1800.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.health_command = health_command
        self.take_undo_snapshot = take_undo_snapshot
        self.health_timeout = health_timeout
        self.poll_interval = poll_interval
        self.step_timeout = step_timeout

    def execute(self, context: Any) -> list[dict]:
        if not isinstance(self.plan, Mapping) or not self.plan.get("instance_id"):
            raise ValueError("plan must be the output of the restore check")
        if not isinstance(self.take_undo_snapshot, bool):
            raise ValueError("take_undo_snapshot must be true or false")
        self.poll_interval = float(self.poll_interval)
        if self.poll_interval <= 0:
            raise ValueError("poll_interval must be above 0")
        plan, hook = dict(self.plan), self.hook
        row = {"instance_id": plan["instance_id"], "instance_name": plan.get("instance_name", ""),
               "region": plan["region"], "image_id": plan["image_id"], "undo_snapshot_id": "", "disk_id": "",
               "fallback_image_id": "", "health": "", "status": SUCCESS, "reason": ""}
        try:
            self.restore(context, hook, plan, row)
        except (RestoreError, AliyunApiError) as err:
            row.update(status=FAILED, reason=str(err) if isinstance(err, RestoreError) else error_reason(err))
        context["ti"].xcom_push(key="results", value=[row])
        if row["status"] == FAILED:
            raise RestoreError(f"{row['instance_id']}: {row['reason']}")
        return [row]

    # -- the flow --------------------------------------------------------------------------------------
    def restore(self, context: Any, hook: EcsHook, plan: dict, row: dict) -> None:
        region, iid = plan["region"], plan["instance_id"]
        if self.status(hook, region, iid) == "Running":  # nobody is stopping it: waiting would only time out
            raise RestoreError("the instance is Running: it must be stopped first (did the stop step fail?); "
                               "nothing was changed")
        self.wait_status(hook, region, iid, "Stopped")
        for needed in self.needed_after_the_replace(plan):  # a missing one fails here, with nothing replaced
            hook.check_allowed(needed, region, iid)
        if self.take_undo_snapshot and plan.get("current_disk_id"):
            row["undo_snapshot_id"] = self.undo_snapshot(context, hook, plan)
        try:
            row["disk_id"] = self.replace(context, hook, region, iid, plan["image_id"], "restore")
            if plan["was_status"] == "Running":
                self.start(hook, region, iid)
                row["health"] = self.health(context, hook, region, iid)
            row["reason"] = f"restored from {plan['image_id']}"
        except (RestoreError, AliyunApiError) as err:
            failure = str(err) if isinstance(err, RestoreError) else error_reason(err)
            self.log.error("%s: restore from %s failed (%s): falling back", iid, plan["image_id"], failure)
            row["fallback_image_id"] = self.fall_back(context, hook, plan, row["undo_snapshot_id"])
            raise RestoreError(f"restore from {plan['image_id']} failed ({failure}); fell back to "
                               f"{row['fallback_image_id']}, instance {self.status(hook, region, iid)}") from None

    def needed_after_the_replace(self, plan: Mapping[str, Any]) -> list[str]:
        """The reads and undo the restore needs once the disk is replaced: watch the new disk, start the instance
        again, read the health command's result."""
        needed = ["DescribeDisks"]
        if plan["was_status"] == "Running":
            needed.append("StartInstance")
            if self.health_command:
                needed += ["RunCommand", "DescribeInvocations", "DescribeInvocationResults"]
        return needed

    def fall_back(self, context: Any, hook: EcsHook, plan: dict, undo_snapshot_id: str) -> str:
        region, iid = plan["region"], plan["instance_id"]
        target = plan.get("fallback_image_id") or ""
        if not target:
            if not undo_snapshot_id:
                raise RestoreError("no fallback_image_id and no undo snapshot: the instance keeps what the failed "
                                   "step left")
            target = self.undo_image(context, hook, region, iid, undo_snapshot_id)
        if self.status(hook, region, iid) != "Stopped":
            hook.stop_instance(region, iid)
            self.wait_status(hook, region, iid, "Stopped")
        self.replace(context, hook, region, iid, target, "fallback")
        if plan["was_status"] == "Running":
            self.start(hook, region, iid)
        return target

    # -- steps -------------------------------------------------------------------------------------------
    def undo_snapshot(self, context: Any, hook: EcsHook, plan: dict) -> str:
        region, iid, info = plan["region"], plan["instance_id"], run_info(context)
        tags = {pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE, UNDO_FOR: iid, pv.RETENTION_DAYS: str(UNDO_RETENTION_DAYS),
                pv.RUN_KEY: info["run_key"][:128], pv.DAG_ID: info["dag_id"][:128]}
        name = f"undo-{iid}-{run_date(context):%Y%m%d-%H%M%S}"
        sid = hook.create_snapshot(region, plan["current_disk_id"], name=name, tags=tags,
                                   client_token=self.client_token(context, "undo", iid),
                                   retention_days=UNDO_RETENTION_DAYS)
        self.log.info("%s: undo snapshot %s of system disk %s", iid, sid, plan["current_disk_id"])
        self.wait(lambda: _first_status(hook.describe_snapshots(region, [sid])), "accomplished",
                  f"undo snapshot {sid} (nothing was replaced)", failed=("failed", "missing"))
        return sid

    def undo_image(self, context: Any, hook: EcsHook, region: str, iid: str, snapshot_id: str) -> str:
        image_id = hook.create_image(region, None, image_name=f"undo-{iid}-{snapshot_id}"[:128], snapshot_id=snapshot_id,
                                     tags={pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE, UNDO_FOR: iid,
                                           pv.RETENTION_DAYS: str(UNDO_RETENTION_DAYS)},
                                     client_token=self.client_token(context, "undo-image", iid))
        self.wait(lambda: _first_status(hook.describe_images(region, image_ids=[image_id])), "Available",
                  f"image {image_id} from the undo snapshot {snapshot_id}", failed=("CreateFailed", "missing"))
        return image_id

    def replace(self, context: Any, hook: EcsHook, region: str, iid: str, image_id: str, step: str) -> str:
        disk_id = hook.replace_system_disk(region, iid, image_id,
                                           client_token=self.client_token(context, step, iid, image_id))
        self.log.info("%s: %s: new system disk %s from %s", iid, step, disk_id, image_id)
        self.wait(lambda: _first_status(hook.describe_disks(region, [disk_id])), "In_use",
                  f"new system disk {disk_id}", failed=())
        return disk_id

    def start(self, hook: EcsHook, region: str, iid: str) -> None:
        if self.status(hook, region, iid) == "Stopped":
            hook.start_instance(region, iid)
        self.wait_status(hook, region, iid, "Running")

    def health(self, context: Any, hook: EcsHook, region: str, iid: str) -> str:
        """Run ``health_command``; ``RestoreError`` unless it exits 0 in time. Returns a short verdict."""
        if not self.health_command:
            return "not checked (no health_command)"
        return run_health_command(hook, region, iid, self.health_command, name="aliyun-ops-restore-health",
                                  timeout=self.health_timeout, poll_interval=self.poll_interval,
                                  client_token=self.client_token(context, "health", iid), error=RestoreError)

    def status(self, hook: EcsHook, region: str, iid: str) -> str:
        recs = hook.describe_instances(region, instance_ids=[iid])
        return recs[0].get("Status", "") if recs else "missing"

    def wait_status(self, hook: EcsHook, region: str, iid: str, target: str) -> None:
        wait_for_instance(hook, region, iid, target, timeout=self.step_timeout, poll_interval=self.poll_interval,
                          error=RestoreError, log=self.log)

    def wait(self, fetch: Any, done: str, what: str, failed: tuple[str, ...] = ("missing",)) -> None:
        wait_for_status(fetch, done=done, failed=failed, what=what, timeout=self.step_timeout,
                        poll_interval=self.poll_interval, error=RestoreError)


def _first_status(records: list[dict]) -> str:
    return records[0].get("Status", "") if records else "missing"
