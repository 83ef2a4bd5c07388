"""ECS disks: records created with instances, DescribeDisks."""

from __future__ import annotations

from ..clock import iso
from ..errors import ApiError
from ..rpc import Call, Params, action
from ..state import State
from . import common

CATEGORIES = ("cloud", "cloud_efficiency", "cloud_ssd", "cloud_essd", "cloud_auto", "cloud_essd_entry")
DEVICES = "bcdefghijklmnopq"


def new_disk(state: State, instance: dict, *, kind: str, size: int, category: str, index: int = 0,
             image_id: str = "", snapshot_id: str = "", now: float | None = None) -> dict:
    """Create an attached disk record (``kind`` system|data) and return it."""
    now = state.now() if now is None else now
    disk_id = state.new_id("d")
    device = "/dev/xvda" if kind == "system" else f"/dev/xvd{DEVICES[index % len(DEVICES)]}"
    rec = {
        "DiskId": disk_id, "DiskName": "", "Description": "", "InstanceId": instance["InstanceId"],
        "RegionId": instance["RegionId"], "ZoneId": instance["ZoneId"], "Type": kind, "Category": category,
        "Size": int(size), "Status": "In_use", "ImageId": image_id if kind == "system" else "",
        "SourceSnapshotId": snapshot_id, "Device": device, "Tags": {}, "Portable": kind == "data",
        "DeleteWithInstance": True, "DeleteAutoSnapshot": True, "Encrypted": False, "PerformanceLevel": "PL0"
        if category == "cloud_essd" else "", "DiskChargeType": "PostPaid", "CreationTime": iso(now),
        "AttachedTime": iso(now), "_created": now,
    }
    state.table("ecs.disks")[disk_id] = rec
    return rec


def disk_out(d: dict) -> dict:
    attached = d.get("InstanceId") or ""
    attachments = [{"InstanceId": attached, "Device": d.get("Device", ""), "AttachedTime": d.get("AttachedTime", "")}] \
        if attached else []
    return {
        "DiskId": d["DiskId"], "DiskName": d.get("DiskName", ""), "Description": d.get("Description", ""),
        "RegionId": d["RegionId"], "ZoneId": d["ZoneId"], "InstanceId": attached, "Type": d["Type"],
        "Category": d["Category"], "Size": d["Size"], "Status": d["Status"], "ImageId": d.get("ImageId", ""),
        "SourceSnapshotId": d.get("SourceSnapshotId", ""), "Device": d.get("Device", ""),
        "Portable": d.get("Portable", False), "DeleteWithInstance": d.get("DeleteWithInstance", True),
        "DeleteAutoSnapshot": d.get("DeleteAutoSnapshot", True), "Encrypted": d.get("Encrypted", False),
        "PerformanceLevel": d.get("PerformanceLevel", ""), "DiskChargeType": d.get("DiskChargeType", "PostPaid"),
        "CreationTime": d.get("CreationTime", ""), "AttachedTime": d.get("AttachedTime", ""),
        "EnableAutoSnapshot": False, "EnableAutomatedSnapshotPolicy": False, "SerialNumber": d["DiskId"][2:],
        "Tags": common.tags_out(d.get("Tags")), "OperationLocks": {"OperationLock": []},
        "Attachments": {"Attachment": attachments}, "MountInstances": {"MountInstance": []},
        "MountInstanceNum": 1 if attached else 0, "MultiAttach": "Disabled", "IOPS": 3000,
        "ResourceGroupId": "",
    }


@action("ecs", "DescribeDisks")
def describe_disks(call: Call, p: Params) -> dict:
    region = common.region(call, p)
    zone = p.str("ZoneId")
    ids = common.id_list(p, "DiskIds")
    if len(ids) > 100:
        raise ApiError("InvalidParameter.DiskIds", "The specified parameter DiskIds must contain at most 100 ids.", 400)
    disk_type = p.str("DiskType", "all", choices=("all", "system", "data"))
    category = p.str("Category", "all")
    status = p.str("Status", "All")
    instance_id = p.str("InstanceId")
    snapshot_id = p.str("SnapshotId")
    name = common.name_matcher(p.str("DiskName"))
    tags = common.tag_filters(p)
    table = call.state.table("ecs.disks")
    source = [table[i] for i in ids if i in table] if ids else table.values()
    items = []
    for d in source:
        if d["RegionId"] != region or (zone and d["ZoneId"] != zone):
            continue
        if instance_id and d.get("InstanceId") != instance_id:
            continue
        if disk_type != "all" and d["Type"] != disk_type:
            continue
        if category != "all" and d["Category"] != category:
            continue
        if status not in ("All", "all") and d["Status"] != status:
            continue
        if snapshot_id and d.get("SourceSnapshotId") != snapshot_id:
            continue
        if name and not name(d.get("DiskName", "")):
            continue
        if tags and not common.match_tags(d.get("Tags"), tags):
            continue
        items.append(d)
    page, counters = common.paginate(items, p, default_size=10, max_size=100)
    return {"Disks": {"Disk": [disk_out(d) for d in page]}, **counters}
