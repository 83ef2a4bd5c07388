"""Prove that backups restore: boot each chosen DR copy as a temporary instance, run a health command on it,
tag the image with the verdict, and delete the instance whatever happened.

Temporary instances carry the run's temporary tags (``ops:managed-by``, ``ops:temporary``, ``ops:run-id``,
``ops:dag-id``) and ``ops:verify-of=<image>``, so ``DeleteInstancesOperator(include_run_instances=True,
regions=...)`` as a teardown removes any left behind by a killed task; they boot in a closed security group of
the run (:mod:`aliyun_ops.temporary`), which ``ReleaseSecurityGroupsOperator`` deletes after them.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aliyun_ops.actions.health import run_health_command
from aliyun_ops.actions.pool import run_batch
from aliyun_ops.actions.temporary import INTERNAL_SERVICES_CIDR, isolated_security_group, temporary_tags
from aliyun_ops.exceptions import AliyunApiError, error_reason
from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.logic import provenance as pv
from aliyun_ops.logic import statuses as st
from aliyun_ops.logic.args import check_count
from aliyun_ops.logic.budget import check_concurrency
from aliyun_ops.logic.outcome import FAILED, SUCCESS
from aliyun_ops.operators.base import AliyunItemsOperator, aliyun_template_fields
from aliyun_ops.waiting.drivers import wait_for_instance

VERIFY_OF = "ops:verify-of"
VERIFY_FAILED = "ops:verify-failed"


class VerifyError(RuntimeError):
    """The copy did not prove bootable and healthy (the message says at which step)."""


def newest_copies(hook: EcsHook, regions: Sequence[str], *, policy: str | None = None,
                  sample_percent: float = 100, seed: str = "") -> list[dict]:
    """The newest complete *copy* (a DR backup: ``ops:source-image`` and ``ops:copy-status=complete``) of each
    source instance in each region (``[{"region", "image_id", "instance_id", "created", "image_name"}]``),
    sampled to ``sample_percent`` (at least one when any; the same sample for the same ``seed``)."""
    tags = {pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE, **({pv.POLICY: policy} if policy else {})}
    newest: dict[tuple[str, str], dict] = {}
    for region in regions:
        for img in hook.describe_images(region, status=st.IMAGE_AVAILABLE, tags=tags):
            t = pv.tags_from_api(img.get("Tags"))
            instance = t.get(pv.SOURCE_INSTANCE)
            if not instance or pv.SOURCE_IMAGE not in t or t.get(pv.COPY_STATUS) != pv.COPY_COMPLETE:
                continue
            row = {"region": region, "image_id": img["ImageId"], "instance_id": instance,
                   "created": img.get("CreationTime", ""), "image_name": img.get("ImageName", "")}
            key = (region, instance)
            if key not in newest or (row["created"], row["image_id"]) > (newest[key]["created"], newest[key]["image_id"]):
                newest[key] = row
    chosen = sorted(newest.values(), key=lambda r: (r["region"], r["instance_id"]))
    if sample_percent < 100 and chosen:
        count = max(1, round(len(chosen) * sample_percent / 100))
        chosen = sorted(random.Random(seed).sample(chosen, count), key=lambda r: (r["region"], r["instance_id"]))
    return chosen


class VerifyBackupsOperator(AliyunItemsOperator):
    """Boot each copy in ``copies`` (``newest_copies`` output) as a temporary instance, run ``health_command``,
    tag the image ``ops:verified-at=<UTC>`` or ``ops:verify-failed=<reason>``, delete the instance.

    :param instance_type: the temporary instance's type (small is fine: it only has to boot)
    :param vswitch_id: the clone's vSwitch in the copy's region; default the region's default vSwitch
    :param security_group_id: the clone's security group; default (recommended) a closed group this run creates in
        the vSwitch's VPC (tagged ``ops:temporary``, no inbound rule, outbound only to ``egress_cidrs``) and the
        teardown deletes. Never the VPC's default group: a clone of a production server starts its cron jobs and
        queue consumers at boot, and must not reach production.
    :param egress_cidrs: where the clone may connect (default Alibaba's internal services, 100.100.0.0/16: the
        metadata service, DNS and Cloud Assistant, which the health check needs)
    :param concurrency: copies verified at once (a number or a percentage, OOS semantics)
    :param max_errors: copies that may fail before the task fails (default ``"100%"``: every copy is tried and
        the DAG's report decides the run's outcome)
    :param health_attempts, health_retry_interval: tries of the health command and the seconds between them (a
        clone just booted may still be starting its services)

    Returns one row per copy: ``status`` (success = verified), ``reason``, ``boot_seconds``, ``verify_instance``.

    Example::

        VerifyBackupsOperator(task_id="verify", copies=select.output, instance_type="ecs.t6-c1m1.large")
    """

    template_fields = aliyun_template_fields("copies", "instance_type", "health_command", "vswitch_id",
                                             "security_group_id", "concurrency", "max_errors", "health_attempts",
                                             "health_retry_interval", "poll_interval")
    hook_class = EcsHook
    item_noun = "copies"
    result_key_fields = ("region", "image_id")
    state_field = "verify_instance"

    def __init__(self, *, copies: Any, instance_type: str = "ecs.t6-c1m1.large", health_command: str = "true",
                 vswitch_id: str | None = None, security_group_id: str | None = None, concurrency: int | str = 4,
                 max_errors: int | str = "100%", egress_cidrs: Sequence[str] = (INTERNAL_SERVICES_CIDR,),
                 health_timeout: int = 600, poll_interval: float = 5.0, boot_timeout: float = 900.0,
                 health_attempts: int = 5, health_retry_interval: float = 30.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.copies = copies
        self.instance_type = instance_type
        self.health_command = health_command
        self.vswitch_id = vswitch_id
        self.security_group_id = security_group_id
        self.egress_cidrs = egress_cidrs
        self.concurrency = concurrency
        self.max_errors = max_errors
        self.health_timeout = health_timeout
        self.poll_interval = poll_interval
        self.boot_timeout = boot_timeout
        self.health_attempts = health_attempts
        self.health_retry_interval = health_retry_interval

    def execute(self, context: Any) -> list[dict]:
        check_concurrency(self.concurrency)
        check_count(self.max_errors, "max_errors")
        if isinstance(self.health_attempts, bool) or not str(self.health_attempts).isdigit() or \
                not 1 <= int(self.health_attempts) <= 100:
            raise ValueError(f"health_attempts must be a whole number 1-100, got {self.health_attempts!r}")
        self.health_attempts = int(self.health_attempts)
        self.health_retry_interval = float(self.health_retry_interval)
        self.poll_interval = float(self.poll_interval)
        if self.health_retry_interval < 0:
            raise ValueError("health_retry_interval must not be negative")
        copies = [dict(c) for c in (self.copies or []) if isinstance(c, Mapping) and c.get("image_id")]
        if not copies:
            self.log.info("no copy to verify")
            return self.conclude(context, [], title="verify backups")
        hook = self.hook
        self._networks: dict[str, tuple[str, str]] = {}   # region -> (vswitch, group), shared by the verify threads
        self._network_lock = threading.Lock()
        batch = run_batch(copies, lambda c: self.verify_one(context, hook, c), key=lambda c: c["image_id"],
                          concurrency=self.concurrency, max_errors="100%")
        rows = []
        for copy, res in zip(copies, batch, strict=True):
            value = res.value or {}
            rows.append({**copy, **value, "status": SUCCESS if res.status == SUCCESS else FAILED,
                         "reason": value.get("reason") or res.error or ""})
        return self.conclude(context, rows, title="verify backups")

    def verify_one(self, context: Any, hook: EcsHook, copy: dict) -> dict:
        region, image_id = copy["region"], copy["image_id"]
        out: dict[str, Any] = {"verify_instance": "", "boot_seconds": None}
        try:
            iid, started = self.boot(context, hook, copy), time.monotonic()
            out["verify_instance"] = iid
            self.wait_running(hook, region, iid)
            out["boot_seconds"] = round(time.monotonic() - started, 1)
            out["reason"] = self.health(context, hook, region, iid)
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            hook.tag_resources(region, "image", [image_id], {pv.VERIFIED_AT: now})
            hook.untag_resources(region, "image", [image_id], [VERIFY_FAILED])
            return out
        except (VerifyError, AliyunApiError) as err:
            reason = str(err) if isinstance(err, VerifyError) else error_reason(err)
            self.tag_failed(hook, region, image_id, reason)
            raise VerifyError(reason) from None
        finally:
            if out["verify_instance"]:
                self.release(hook, region, out["verify_instance"])

    def network(self, context: Any, hook: EcsHook, region: str) -> tuple[str, str]:
        """``(vswitch, security group)`` of the clone: the given group, else this run's closed group (no inbound
        rule, outbound only to ``egress_cidrs``) in the vSwitch's VPC; never the VPC's default group, where a clone
        of a production server could reach production (its cron jobs and queue consumers start at boot)."""
        with self._network_lock:
            if region not in self._networks:
                vsw = hook.default_vswitch(region, vswitch_id=self.vswitch_id or None)
                group = self.security_group_id or isolated_security_group(
                    hook, context, region, vsw["VpcId"], purpose="verify", allowed_cidrs=list(self.egress_cidrs),
                    log=self.log)
                self._networks[region] = (vsw["VSwitchId"], group)
            return self._networks[region]

    def boot(self, context: Any, hook: EcsHook, copy: dict) -> str:
        region = copy["region"]
        vswitch, group = self.network(context, hook, region)
        tags = {**temporary_tags(context, "verify"), VERIFY_OF: copy["image_id"],
                pv.SOURCE_INSTANCE: copy["instance_id"]}
        for needed in ("DescribeInstances", "DeleteInstance"):  # what is made must be watched and released
            hook.check_allowed(needed, region, "i-permission-check")
        ids = hook.run_instances(region, copy["image_id"], self.instance_type, v_switch_id=vswitch,
                                 security_group_id=group, instance_name=f"verify-{copy['image_id']}", tags=tags,
                                 client_token=self.client_token(context, "boot", copy["image_id"]),
                                 internet_max_bandwidth_out=0)
        if not ids:
            raise VerifyError("RunInstances returned no instance")
        self.log.info("%s: booting %s in %s as %s", copy["instance_id"], copy["image_id"], region, ids[0])
        return ids[0]

    def wait_running(self, hook: EcsHook, region: str, iid: str) -> None:
        wait_for_instance(hook, region, iid, st.RUNNING, timeout=self.boot_timeout, poll_interval=self.poll_interval,
                          error=VerifyError, log=self.log)

    def health(self, context: Any, hook: EcsHook, region: str, iid: str) -> str:
        tries = str(getattr(context["ti"], "try_number", 1))  # a retried task checks again, never reads an old verdict
        verdict = run_health_command(hook, region, iid, self.health_command, name="aliyun-ops-verify-health",
                                     timeout=self.health_timeout, poll_interval=self.poll_interval,
                                     client_token=lambda n: self.client_token(context, "hc", iid, tries, str(n)),
                                     attempts=self.health_attempts, retry_interval=self.health_retry_interval,
                                     error=VerifyError, log=self.log)
        return f"booted and {verdict}"

    def tag_failed(self, hook: EcsHook, region: str, image_id: str, reason: str) -> None:
        try:
            hook.tag_resources(region, "image", [image_id], {VERIFY_FAILED: " ".join(reason.split())[:128]})
        except AliyunApiError as err:
            self.log.warning("could not tag %s %s: %s", image_id, VERIFY_FAILED, error_reason(err))

    def release(self, hook: EcsHook, region: str, iid: str) -> None:
        try:
            hook.delete_instance(region, iid, force=True)
            self.log.info("released temporary instance %s", iid)
        except AliyunApiError as err:
            if not err.is_not_found:
                self.log.warning("could not release %s (%s): the teardown sweep will", iid, error_reason(err))
