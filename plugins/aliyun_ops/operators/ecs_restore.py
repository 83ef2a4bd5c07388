"""Restore an instance's system disk from a backup image, with an undo: check first, keep a snapshot of the
current disk, replace, prove health; fall back (to a given image or the undo snapshot) only when the replace
itself failed.

The power state is the caller's to restore: stop the instance with ``StopInstancesOperator(mark_paused=True)``
before this task and pair it with ``ResumePausedOperator`` as a teardown (the restore DAG does), so an instance
that was Running ends Running and one that was Stopped ends Stopped, whatever happens here; the teardown also
releases the instance's lease.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aliyun_ops.actions import leases
from aliyun_ops.actions.health import STILL_BOOTING, run_health_command
from aliyun_ops.exceptions import AliyunApiError, error_reason
from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.logic import pause
from aliyun_ops.logic import provenance as pv
from aliyun_ops.logic import statuses as st
from aliyun_ops.logic.outcome import FAILED, SUCCESS
from aliyun_ops.logic.policies import RESTORE_UNDO_POLICY
from aliyun_ops.operators.base import AliyunBaseOperator, aliyun_template_fields, run_key
from aliyun_ops.runtime import run_date, run_info
from aliyun_ops.waiting.drivers import wait_for_instance, wait_for_resource

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
    if status not in (st.RUNNING, st.STOPPED):
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
    for img in hook.describe_images(region, status=st.IMAGE_AVAILABLE, tags={
            pv.SOURCE_INSTANCE: instance_id, pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE}):
        tags = pv.tags_from_api(img.get("Tags"))
        if UNDO_FOR in tags:        # an undo point of an earlier restore, not a backup
            continue
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
    if image.get("Status") != st.IMAGE_AVAILABLE:
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

    Steps: take this run's lease on the instance (another live run holding it refuses the restore, nothing changed)
    -> undo snapshot of the current system disk (tagged ``ops:undo-for``, kept 7 days) -> ReplaceSystemDisk -> wait
    for the new disk -> start, if this run stopped the instance -> ``health_command`` through Cloud Assistant, up to
    ``health_attempts`` tries ``health_retry_interval`` seconds apart (a machine still booting is retried, and
    reported as still booting).

    Each fallback undoes only what failed:

    * the **replace** failed: ReplaceSystemDisk again with ``fallback_image_id`` (or an image made from the undo
      snapshot), start it if this run stopped it, and fail with both stories in the result;
    * the **start** or the **health check** failed after a good replace: the restored disk stays, and the row is
      failed with the instance and the reason (a start refused for lack of stock does not make the disk worse).
      Only with ``rollback_on_failed_health`` does a failed (not still booting) health check put the undo snapshot
      back; never ``fallback_image_id``.

    ``start_after``: None (default) starts the instance after the restore only if this run stopped it (its
    ``ops:paused-by`` tag, written by ``StopInstancesOperator(mark_paused=True)`` when the approval was given), so an
    instance someone stopped meanwhile stays Stopped; True/False decide it outright. A start that was applied but
    whose answer was lost counts as done. ClientTokens are keyed on the run, so a retried try repeats nothing and a
    new run restores again.

    Returns (and pushes as XCom ``results`` before failing) one row: ``instance_id``, ``image_id``, ``was_status``,
    ``undo_snapshot_id``, ``disk_id``, ``fallback_image_id`` (used), ``health``, ``status``, ``reason``.

    Example::

        RestoreSystemDiskOperator(task_id="restore", plan=check.output, health_command="systemctl is-system-running")
    """

    template_fields = aliyun_template_fields("plan", "health_command", "take_undo_snapshot", "poll_interval",
                                             "rollback_on_failed_health", "health_retry_interval")
    hook_class = EcsHook

    def __init__(self, *, plan: Any, health_command: str | None = None, take_undo_snapshot: bool | str = True,
                 health_timeout: int = 600, poll_interval: float = 5.0, step_timeout: float = 1800.0,
                 health_attempts: int = 5, health_retry_interval: float = 30.0,
                 rollback_on_failed_health: bool = False, start_after: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.health_command = health_command
        self.take_undo_snapshot = take_undo_snapshot
        self.health_timeout = health_timeout
        self.poll_interval = poll_interval
        self.step_timeout = step_timeout
        self.health_attempts = health_attempts
        self.health_retry_interval = health_retry_interval
        self.rollback_on_failed_health = rollback_on_failed_health
        self.start_after = start_after

    def validate(self) -> None:
        if not isinstance(self.plan, Mapping) or not self.plan.get("instance_id"):
            raise ValueError("plan must be the output of the restore check")
        for name in ("take_undo_snapshot", "rollback_on_failed_health"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.start_after not in (None, True, False):
            raise ValueError(f"start_after must be null, true or false, got {self.start_after!r}")
        self.poll_interval = float(self.poll_interval)
        self.health_retry_interval = float(self.health_retry_interval)
        if self.poll_interval <= 0 or self.health_retry_interval < 0:
            raise ValueError("poll_interval must be above 0 and health_retry_interval not below 0")
        if isinstance(self.health_attempts, bool) or not isinstance(self.health_attempts, int) or \
                not 1 <= self.health_attempts <= 100:
            raise ValueError(f"health_attempts must be a whole number 1-100, got {self.health_attempts!r}")

    def execute(self, context: Any) -> list[dict]:
        self.validate()
        plan, hook = dict(self.plan), self.hook
        row = {"instance_id": plan["instance_id"], "instance_name": plan.get("instance_name", ""),
               "region": plan["region"], "image_id": plan["image_id"], "was_status": plan.get("was_status", ""),
               "undo_snapshot_id": "", "disk_id": "", "fallback_image_id": "", "health": "", "status": SUCCESS,
               "reason": ""}
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
        record = self.instance(hook, region, iid)
        if record.get("Status") == st.RUNNING:  # nobody is stopping it: waiting would only time out
            raise RestoreError("the instance is Running: it must be stopped first (did the stop step fail?); "
                               "nothing was changed")
        taken = leases.acquire(hook, context, [{"instance_id": iid, "region": region}], purpose="restore",
                               log=self.log)
        if iid in taken.refused:
            raise RestoreError(f"{taken.refused[iid]}; nothing was changed")
        start = self.should_start(context, record)
        row["was_status"] = st.RUNNING if start else st.STOPPED
        self.wait_status(hook, region, iid, st.STOPPED)
        for needed in self.needed_after_the_replace(start):  # a missing one fails here, with nothing replaced
            hook.check_allowed(needed, region, iid)
        disk = plan.get("current_disk_id") or self.current_disk(hook, region, iid)
        if self.take_undo_snapshot and disk:
            row["undo_snapshot_id"] = self.undo_snapshot(context, hook, plan, disk)
        try:
            row["disk_id"] = self.replace(context, hook, region, iid, plan["image_id"], "restore")
        except (RestoreError, AliyunApiError) as err:
            failure = str(err) if isinstance(err, RestoreError) else error_reason(err)
            self.log.error("%s: replace with %s failed (%s): falling back", iid, plan["image_id"], failure)
            row["fallback_image_id"] = self.fall_back(context, hook, plan, row["undo_snapshot_id"], start)
            raise RestoreError(f"restore from {plan['image_id']} failed ({failure}); fell back to "
                               f"{row['fallback_image_id']}, instance {self.status(hook, region, iid)}") from None
        row["reason"] = f"restored from {plan['image_id']}"
        if not start:
            return
        try:
            self.start(hook, region, iid)
        except (RestoreError, AliyunApiError) as err:
            failure = str(err) if isinstance(err, RestoreError) else error_reason(err)
            raise RestoreError(f"restored from {plan['image_id']} (new disk {row['disk_id']} kept), but the instance "
                               f"did not start: {failure}") from None
        try:
            row["health"] = self.health(context, hook, region, iid)
        except RestoreError as err:
            row["health"] = str(err)
            self.after_failed_health(context, hook, plan, row, err)

    def after_failed_health(self, context: Any, hook: EcsHook, plan: dict, row: dict, err: RestoreError) -> None:
        """The restored disk stays unless ``rollback_on_failed_health`` asks for the undo snapshot back (never for a
        machine still booting); either way the restore is failed with the reason."""
        kept = f"restored from {plan['image_id']} (new disk {row['disk_id']} kept), but the health check failed: {err}"
        if str(err).startswith(STILL_BOOTING) or not self.rollback_on_failed_health:
            raise RestoreError(kept)
        if not row["undo_snapshot_id"]:
            raise RestoreError(f"{kept}; no undo snapshot to roll back to")
        region, iid = plan["region"], plan["instance_id"]
        self.log.error("%s: health check failed (%s): rolling back to the undo snapshot", iid, err)
        row["fallback_image_id"] = self.fall_back(context, hook, {**plan, "fallback_image_id": ""},
                                                  row["undo_snapshot_id"], True)
        raise RestoreError(f"restored from {plan['image_id']}, but the health check failed ({err}); rolled back to "
                           f"the undo snapshot ({row['fallback_image_id']}), instance {self.status(hook, region, iid)}")

    def should_start(self, context: Any, record: Mapping[str, Any]) -> bool:
        """Start after the restore? As ``start_after`` says, else only if this run stopped the instance."""
        if self.start_after is not None:
            return bool(self.start_after)
        paused = pause.paused_info(pv.tags_from_api(record.get("Tags"))) or {}
        return (paused.get("mode") == pause.STOP and paused.get("run_key") == run_key(context)[:128]
                and paused.get("dag_id") == context["ti"].dag_id[:128])

    def needed_after_the_replace(self, start: bool) -> list[str]:
        """The reads and undo the restore needs once the disk is replaced: watch the new disk, start the instance
        again, read the health command's result."""
        needed = ["DescribeDisks"]
        if start:
            needed.append("StartInstance")
            if self.health_command:
                needed += ["RunCommand", "DescribeInvocations", "DescribeInvocationResults"]
        return needed

    def fall_back(self, context: Any, hook: EcsHook, plan: dict, undo_snapshot_id: str, start: bool) -> str:
        region, iid = plan["region"], plan["instance_id"]
        target = plan.get("fallback_image_id") or ""
        if not target:
            if not undo_snapshot_id:
                raise RestoreError("no fallback_image_id and no undo snapshot: the instance keeps what the failed "
                                   "step left")
            target = self.undo_image(context, hook, region, iid, undo_snapshot_id)
        if self.status(hook, region, iid) != st.STOPPED:
            hook.stop_instance(region, iid)
            self.wait_status(hook, region, iid, st.STOPPED)
        self.replace(context, hook, region, iid, target, "fallback")
        if start:
            self.start(hook, region, iid)
        return target

    # -- steps -------------------------------------------------------------------------------------------
    def current_disk(self, hook: EcsHook, region: str, iid: str) -> str:
        disks = hook.describe_disks(region, instance_id=iid, disk_type="system")
        return disks[0]["DiskId"] if disks else ""

    def undo_snapshot(self, context: Any, hook: EcsHook, plan: dict, disk_id: str) -> str:
        region, iid, info = plan["region"], plan["instance_id"], run_info(context)
        tags = {pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE, UNDO_FOR: iid, pv.RETENTION_DAYS: str(UNDO_RETENTION_DAYS),
                pv.RUN_KEY: info["run_key"][:128], pv.DAG_ID: info["dag_id"][:128]}
        name = f"undo-{iid}-{run_date(context):%Y%m%d-%H%M%S}"
        sid = hook.create_snapshot(region, disk_id, name=name, tags=tags,
                                   client_token=self.client_token(context, "undo", iid, disk_id),
                                   retention_days=UNDO_RETENTION_DAYS)
        self.log.info("%s: undo snapshot %s of system disk %s", iid, sid, disk_id)
        self.wait(hook, region, "snapshot", sid, f"undo snapshot {sid} (nothing was replaced)")
        return sid

    def undo_image(self, context: Any, hook: EcsHook, region: str, iid: str, snapshot_id: str) -> str:
        image_id = hook.create_image(region, None, image_name=f"undo-{iid}-{snapshot_id}"[:128], snapshot_id=snapshot_id,
                                     tags={pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE, UNDO_FOR: iid,
                                           pv.SOURCE_INSTANCE: iid, pv.POLICY: RESTORE_UNDO_POLICY,
                                           pv.RETENTION_DAYS: str(UNDO_RETENTION_DAYS)},
                                     client_token=self.client_token(context, "undo-image", iid, snapshot_id))
        self.wait(hook, region, "image", image_id, f"image {image_id} from the undo snapshot {snapshot_id}")
        return image_id

    def replace(self, context: Any, hook: EcsHook, region: str, iid: str, image_id: str, step: str) -> str:
        disk_id = hook.replace_system_disk(region, iid, image_id,
                                           client_token=self.client_token(context, step, iid, image_id))
        self.log.info("%s: %s: new system disk %s from %s", iid, step, disk_id, image_id)
        self.wait(hook, region, "disk", disk_id, f"new system disk {disk_id}")
        return disk_id

    def start(self, hook: EcsHook, region: str, iid: str) -> None:
        """StartInstance, then wait for Running; a start whose answer was lost (a retry told IncorrectInstanceStatus,
        or no answer) counts when the instance is Starting or Running."""
        if self.status(hook, region, iid) == st.STOPPED:
            try:
                hook.start_instance(region, iid)
            except AliyunApiError as err:
                now = self.status(hook, region, iid)
                if now not in (st.STARTING, st.RUNNING):
                    raise
                self.log.info("%s: StartInstance answered %s, but it is %s: accepted", iid, err.code, now)
        self.wait_status(hook, region, iid, st.RUNNING)

    def health(self, context: Any, hook: EcsHook, region: str, iid: str) -> str:
        """Run ``health_command``; ``RestoreError`` unless it exits 0 in time. Returns a short verdict."""
        if not self.health_command:
            return "not checked (no health_command)"
        tries = str(getattr(context["ti"], "try_number", 1))  # a retried task checks again, never reads an old verdict
        return run_health_command(hook, region, iid, self.health_command, name="aliyun-ops-restore-health",
                                  timeout=self.health_timeout, poll_interval=self.poll_interval,
                                  client_token=lambda n: self.client_token(context, "health", iid, tries, str(n)),
                                  attempts=self.health_attempts, retry_interval=self.health_retry_interval,
                                  error=RestoreError, log=self.log)

    def instance(self, hook: EcsHook, region: str, iid: str) -> dict:
        recs = hook.describe_instances(region, instance_ids=[iid])
        if not recs:
            raise RestoreError(f"instance {iid} not found in {region}; nothing was changed")
        return recs[0]

    def status(self, hook: EcsHook, region: str, iid: str) -> str:
        recs = hook.describe_instances(region, instance_ids=[iid])
        return recs[0].get("Status", "") if recs else "missing"

    def wait_status(self, hook: EcsHook, region: str, iid: str, target: str) -> None:
        wait_for_instance(hook, region, iid, target, timeout=self.step_timeout, poll_interval=self.poll_interval,
                          error=RestoreError, log=self.log)

    def wait(self, hook: EcsHook, region: str, kind: str, rid: str, what: str) -> None:
        """Wait for one image, snapshot or new disk (a disk listed late is waited for longer)."""
        wait_for_resource(hook, region, kind, rid, what=what, timeout=self.step_timeout,
                          poll_interval=self.poll_interval, error=RestoreError,
                          missing_polls=5 if kind == "disk" else 2, log=self.log)
