"""Offline image repair (Alibaba's OOS ACS-ECS-RepairImage): the steps of ``ecs_repair_image``.

check (no change: the image can be repaired) -> repair instance from a base image of the same architecture, with the
image's system snapshot as a data disk -> the data disk's serial -> SELinux permissive and a reboot -> the public
command ``ACS-ECS-ImageRepair-for-linux.sh`` on that disk -> a snapshot of the repaired disk -> the repaired image
(``repaired_<name>_<UTC %Y%m%d%H%M%S>``, image check ``Standard``) -> its check result. The repair instance is a
temporary resource of the run (released by the DAG's teardown, whatever fails); the snapshot is deleted when no
image was made of it.

Better than the template: a ClientToken on every create (a retried task makes nothing twice), the instance in a
closed group of the run's own (never a group you must pick), the image check read after creation, one report row
per repair item.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

from ..actions.temporary import INTERNAL_SERVICES_CIDR, isolated_security_group, temporary_tags
from ..exceptions import AliyunApiError, RunIncomplete, error_reason
from ..hooks.ecs import EcsHook
from ..logic import provenance as pv
from ..logic import statuses as st
from ..logic.commands import decode_output
from ..logic.naming import client_token, sanitize_image_name
from ..runtime import run_date
from ..waiting.drivers import poll_invocations, wait_for_instance, wait_for_resource
from ..waiting.instances import InvocationWatch

log = logging.getLogger(__name__)

REPAIR_COMMAND = "ACS-ECS-ImageRepair-for-linux.sh"
REPAIR_ITEMS = ("all", "assist", "aegis", "growpart", "virtio", "selinux", "dhcp", "grub", "fstab", "nvme",
                "cloudinit")
DEFAULT_REPAIR_ITEMS = ("assist", "cloudinit", "virtio", "nvme", "fstab", "grub", "dhcp", "growpart")
ARCHITECTURES = {"x86_64": "aliyun_3_x64", "arm64": "aliyun_3_arm64"}
"""Supported architectures and the Alibaba Cloud Linux 3 image family a repair instance boots from."""
INSTANCE_TYPES = {"x86_64": "ecs.g7.large", "arm64": "ecs.g8y.large"}
"""The repair instance's type when none is given, by architecture."""
PLATFORMS = {"Red Hat": "RedHat"}
"""DescribeImages' platform names that CreateImage spells otherwise (the template's table; the rest are the same)."""
SELINUX_PERMISSIVE = "sed -i 's/^SELINUX=.*/SELINUX=permissive/g' /etc/selinux/config"
PURPOSE = "image-repair"
COMMAND_KEY = "command"
"""XCom key of the repair command's result (pushed before the task fails on it)."""


def detection_item(image: Mapping[str, Any], name: str) -> dict:
    items = ((image.get("DetectionOptions") or {}).get("Items") or {}).get("Item") or []
    return next((i for i in items if i.get("Name") == name), {})


def needs_repair(image: Mapping[str, Any]) -> bool:
    """Whether an image's finished check found a problem that keeps it from booting (a ``High`` risk item)."""
    options = image.get("DetectionOptions") or {}
    items = (options.get("Items") or {}).get("Item") or []
    return options.get("Status") == st.DETECTION_FINISHED and any(i.get("RiskLevel") == st.DETECTION_RISK_HIGH for i in items) \
        and detection_item(image, "SystemImage").get("Value") != st.DETECTION_INVALID


def image_to_repair(hook: EcsHook, region: str, image_id: str | None) -> str:
    """``image_id``, else the newest of your Available images whose check found a problem that stops a boot."""
    if image_id:
        return image_id
    broken = [i for i in hook.describe_images(region, status=st.IMAGE_AVAILABLE) if needs_repair(i)]
    if not broken:
        raise ValueError(f"no image of yours in {region} has a check result saying it does not boot: give image_id")
    return max(broken, key=lambda i: (i.get("CreationTime", ""), i["ImageId"]))["ImageId"]


def check_image(hook: EcsHook, region: str, image_id: str, items: Sequence[str]) -> dict:
    """What the template checks before anything is made: the image exists and is ours (a custom image), its check
    does not say the system is ``Invalid``, its architecture is x86_64 or arm64, it has a system snapshot; the repair
    items are known. ``ValueError`` with the reason otherwise; the plan otherwise."""
    bad = [i for i in items if i not in REPAIR_ITEMS]
    if not items or bad:
        raise ValueError(f"repair_items must be some of {list(REPAIR_ITEMS)}, got {bad or 'none'}")
    found = hook.describe_images(region, image_ids=[image_id], owner=None)
    if not found:
        raise ValueError(f"image {image_id} not found in {region}")
    image = found[0]
    if image.get("ImageOwnerAlias", "self") != "self":
        raise ValueError(f"image {image_id} is a {image.get('ImageOwnerAlias')} image: only your own custom images "
                         "can be repaired (copy a shared one first)")
    system = detection_item(image, "SystemImage")
    if str(system.get("Value") or system.get("RiskCode") or "") == st.DETECTION_INVALID:
        raise ValueError(f"image {image_id}: its image check says the system is Invalid (not a Linux system this "
                         "repair knows): nothing was created")
    arch = image.get("Architecture") or ""
    if arch not in ARCHITECTURES:
        raise ValueError(f"image {image_id} is {arch or 'of no known architecture'}: only x86_64 and arm64 images "
                         "can be repaired")
    if (image.get("OSType") or "linux").lower() != "linux":
        raise ValueError(f"image {image_id} is {image.get('OSType')}: only Linux images can be repaired")
    mappings = (image.get("DiskDeviceMappings") or {}).get("DiskDeviceMapping") or []
    snapshot = next((m.get("SnapshotId") for m in mappings if m.get("SnapshotId")), "")
    if not snapshot:
        raise ValueError(f"image {image_id} has no system snapshot to repair")
    return {"region": region, "image_id": image_id, "image_name": image.get("ImageName") or image_id,
            "architecture": arch, "platform": image.get("Platform") or "", "boot_mode": image.get("BootMode") or "",
            "os_type": image.get("OSType") or "linux", "snapshot_id": snapshot, "items": list(items),
            "detection_before": {"Status": (image.get("DetectionOptions") or {}).get("Status"),
                                 "SystemImage": system}}


def base_image(hook: EcsHook, region: str, architecture: str, given: str | None) -> str:
    """The base image of the repair instance: ``given``, else the newest public Alibaba Cloud Linux 3 image of the
    architecture (discovered, as the template's list of two grows stale)."""
    if given:
        return given
    family = ARCHITECTURES[architecture]
    public = [i for i in hook.describe_images(region, owner="system", status=st.IMAGE_AVAILABLE)
              if str(i.get("ImageId", "")).startswith(family) and i.get("Architecture", architecture) == architecture]
    if not public:
        raise ValueError(f"no public {family} image in {region}: give base_image_id")
    return max(public, key=lambda i: (i.get("CreationTime", ""), i["ImageId"]))["ImageId"]


def launch(hook: EcsHook, context: Any, plan: Mapping[str, Any], params: Mapping[str, Any]) -> dict:
    """The repair instance (temporary, in a closed group of the run), the image's snapshot as its data disk; Running.
    ``{"instance_id", "base_image_id", "instance_type"}``."""
    from alibabacloud_ecs20140526 import models as m

    ti, region = context["ti"], plan["region"]
    base = base_image(hook, region, plan["architecture"], params.get("base_image_id"))
    vsw = hook.default_vswitch(region, params.get("zone_id"), vswitch_id=params.get("vswitch_id"))
    group = params.get("security_group_id") or isolated_security_group(
        hook, context, region, vsw["VpcId"], purpose=PURPOSE, allowed_cidrs=[INTERNAL_SERVICES_CIDR], log=log)
    category = params.get("system_disk_category") or "cloud_essd"
    instance_type = params.get("instance_type") or INSTANCE_TYPES[plan["architecture"]]
    ids = hook.run_instances(
        region, base, instance_type, security_group_id=group, v_switch_id=vsw["VSwitchId"],
        instance_name=f"image-repair-{plan['image_id']}", tags=temporary_tags(context, PURPOSE),
        client_token=client_token(ti.dag_id, str(context["run_id"]), "repair-instance", plan["image_id"]),
        system_disk_category=category, internet_max_bandwidth_out=0, instance_charge_type="PostPaid",
        data_disk=[m.RunInstancesRequestDataDisk(snapshot_id=plan["snapshot_id"], category=category,
                                                 disk_name=f"image_repair_{plan['snapshot_id']}"[:128])])
    wait_for_instance(hook, region, ids[0], st.RUNNING, timeout=900, poll_interval=float(params["poll_interval"]),
                      error=RunIncomplete)
    return {"instance_id": ids[0], "base_image_id": base, "instance_type": instance_type}


def data_disk(hook: EcsHook, region: str, instance_id: str, *, poll: float, timeout: float = 600) -> dict:
    """The repair instance's data disk (the image's system disk, attached), once In_use with its serial number:
    ``{"disk_id", "serial"}``."""
    from ..waiting.drivers import wait_until

    def ready() -> dict | None:
        disks = hook.describe_disks(region, instance_id=instance_id, disk_type="data")
        if disks and disks[0].get("Status") == st.DISK_IN_USE and disks[0].get("SerialNumber"):
            return {"disk_id": disks[0]["DiskId"], "serial": disks[0]["SerialNumber"]}
        return None

    found = wait_until(ready, poll_interval=poll, deadline=time.time() + timeout,
                       what=f"data disk of {instance_id}").get("value")
    if not found:
        raise RunIncomplete(f"the data disk of {instance_id} never became In_use with a serial number")
    return found


def _run(hook: EcsHook, region: str, instance_id: str, invoke_id: str, poll: float, timeout: float) -> dict:
    event = poll_invocations(hook, InvocationWatch({region: [invoke_id]}), poll_interval=poll,
                             deadline=time.time() + timeout)
    rec = (hook.describe_invocation_results(region, invoke_id, instance_id) or [{}])[0]
    return {"invoke_id": invoke_id, "status": rec.get("InvocationStatus") or event.get("status"),
            "exit_code": rec.get("ExitCode"), "output": decode_output(rec.get("Output")),
            "error": rec.get("ErrorInfo") or rec.get("ErrorCode") or ""}


def repair(hook: EcsHook, context: Any, plan: Mapping[str, Any], instance_id: str, disk: Mapping[str, str],
           poll: float) -> dict:
    """SELinux permissive and a reboot (as the template), then the public repair command on the data disk.
    ``RunIncomplete`` with the command's output unless it exits 0; the per-item lines otherwise."""
    ti, region = context["ti"], plan["region"]
    run_token = (ti.dag_id, str(context["run_id"]))
    selinux = _run(hook, region, instance_id, hook.run_command(
        region, [instance_id], SELINUX_PERMISSIVE, timeout=300, name="aliyun-ops-repair-selinux",
        client_token=client_token(*run_token, "repair-selinux", instance_id)), poll, 600)
    if selinux["status"] != st.INVOCATION_SUCCESS:
        raise RunIncomplete(f"SELinux could not be set permissive on {instance_id}: {selinux['error']} "
                            f"{selinux['output'][-300:]}")
    reboot(hook, region, instance_id, poll)
    invoke_id = hook.invoke_command(region, [instance_id], REPAIR_COMMAND, parameters={
        "repairitems": " ".join(plan["items"]), "disk_serial": disk["serial"]},
        client_token=client_token(*run_token, "repair-command", instance_id))
    result = _run(hook, region, instance_id, invoke_id, poll, 3600)
    result["items"] = item_lines(result["output"], plan["items"])
    ti.xcom_push(key=COMMAND_KEY, value=result)      # for the report, even when it failed
    if result["status"] != st.INVOCATION_SUCCESS or str(result["exit_code"]) not in ("0", "None"):
        raise RunIncomplete(f"the repair command failed on {instance_id} (exit {result['exit_code']}): "
                            f"{result['output'][-500:] or result['error']}")
    return result


def reboot(hook: EcsHook, region: str, instance_id: str, poll: float) -> None:
    """RebootInstance, then wait until the instance has started again (a new ``StartTime``, Running): a look right
    after the call may still see the Running of before the reboot."""
    from ..waiting.drivers import wait_until

    before = (hook.describe_instances(region, instance_ids=[instance_id]) or [{}])[0].get("StartTime")
    hook.reboot_instance(region, instance_id)

    def started_again() -> bool | None:
        rec = (hook.describe_instances(region, instance_ids=[instance_id]) or [{}])[0]
        return True if rec.get("Status") == st.RUNNING and rec.get("StartTime") != before else None

    if not wait_until(started_again, poll_interval=poll, deadline=time.time() + 900,
                      what=f"reboot of {instance_id}").get("value"):
        raise RunIncomplete(f"{instance_id} did not come back from its reboot")


def item_lines(output: str, items: Sequence[str]) -> dict[str, str]:
    """What the repair command said of each item: the last line naming it (``{item: line}``)."""
    said: dict[str, str] = {}
    for line in output.splitlines():
        for item in items:
            if re.search(rf"\b{re.escape(item)}\b", line, re.I):
                said[item] = line.strip()[:300]
    return {item: said.get(item, "(not mentioned in the output)") for item in items}


def make_image(hook: EcsHook, context: Any, plan: Mapping[str, Any], disk: Mapping[str, str], poll: float) -> dict:
    """A snapshot of the repaired disk (kept 1 day), then the repaired image from it, named as the template names
    it, with the image check ``Standard`` and the original platform, boot mode and architecture; Available. The
    snapshot is deleted when the image could not be made."""
    ti, region = context["ti"], plan["region"]
    run_token = (ti.dag_id, str(context["run_id"]))
    snapshot = hook.create_snapshot(region, disk["disk_id"], name=f"image_repair_{disk['disk_id']}",
                                    tags={pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE, pv.RUN_ID: run_token[1][:128],
                                          pv.SOURCE_IMAGE: plan["image_id"]},
                                    client_token=client_token(*run_token, "repair-snapshot", disk["disk_id"]),
                                    retention_days=1)
    wait_for_resource(hook, region, "snapshot", snapshot, what=f"snapshot {snapshot} of the repaired disk",
                      timeout=3600, poll_interval=poll, error=RunIncomplete)
    name = sanitize_image_name(f"repaired_{plan['image_name']}_{run_date(context).astimezone(UTC):%Y%m%d%H%M%S}")
    platform = PLATFORMS.get(plan["platform"], plan["platform"])
    extra = {k: v for k, v in {"platform": platform, "boot_mode": plan["boot_mode"],
                               "architecture": plan["architecture"]}.items() if v}
    image_id = ""
    try:
        image_id = hook.create_image(
            region, None, image_name=name, snapshot_id=snapshot, detection_strategy="Standard",
            tags={pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE, pv.SOURCE_IMAGE: plan["image_id"],
                  pv.RUN_ID: run_token[1][:128], pv.DAG_ID: ti.dag_id},
            description=f"{plan['image_id']} repaired offline ({', '.join(plan['items'])})"[:256],
            client_token=client_token(*run_token, "repaired-image", snapshot), **extra)
        wait_for_resource(hook, region, "image", image_id, what=f"repaired image {image_id}", timeout=4 * 3600,
                          poll_interval=poll, error=RunIncomplete)
    except (AliyunApiError, RunIncomplete) as err:
        raise RunIncomplete(f"the repaired image could not be made ({err}); "
                            + discard(hook, region, image_id, snapshot)) from None
    return {"image_id": image_id, "image_name": name, "snapshot_id": snapshot}


def discard(hook: EcsHook, region: str, image_id: str, snapshot_id: str) -> str:
    """Delete what a failed image creation left (the image if one was made, then the snapshot); what was done."""
    done = []
    for kind, rid in (("image", image_id), ("snapshot", snapshot_id)):
        if not rid:
            continue
        try:
            if kind == "image":
                hook.delete_image(region, rid, force=True)
            else:
                hook.delete_snapshot(region, rid, force=True)
            done.append(f"{kind} {rid} deleted")
        except AliyunApiError as err:
            if not err.is_not_found:
                log.warning("%s %s not deleted: %s", kind, rid, error_reason(err))
                done.append(f"{kind} {rid} NOT deleted ({error_reason(err)}): delete it by hand")
    return "; ".join(done)


def detection_after(hook: EcsHook, region: str, image_id: str, *, timeout: float, poll: float) -> dict:
    """The repaired image's check (``Standard``) once finished: ``{"Status", "SystemImage", "Items"}``."""
    from ..waiting.drivers import wait_until

    def finished() -> dict | None:
        rec = (hook.describe_images(region, image_ids=[image_id]) or [{}])[0]
        options = rec.get("DetectionOptions") or {}
        return options if options.get("Status") == st.DETECTION_FINISHED else None

    options = wait_until(finished, poll_interval=poll, deadline=time.time() + timeout,
                         what=f"image check of {image_id}").get("value") or {}
    items = (options.get("Items") or {}).get("Item") or []
    return {"Status": options.get("Status") or "not finished", "Items": items,
            "SystemImage": next((i for i in items if i.get("Name") == "SystemImage"), {})}

