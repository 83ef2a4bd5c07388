"""ECS disks: records created with instances, DescribeDisks.

A disk's ``SerialNumber`` (what the guest sees in ``/dev/disk/by-id`` and ``lsblk -o SERIAL``) is, as on real ECS,
a region prefix (``bp1`` in cn-hangzhou, ``uf6`` in cn-shanghai...) and 17 lower-case letters and digits; the
emulator derives it from the disk id, so it is stable without being stored. A disk made from a snapshot (or an
image) carries the snapshot's brokenness (:mod:`emulator.ecs.detection`).
"""

from __future__ import annotations

import hashlib

from ..clock import iso
from ..errors import ApiError
from ..rpc import Call, Params, action
from ..state import State
from . import common, detection

CATEGORIES = ("cloud", "cloud_efficiency", "cloud_ssd", "cloud_essd", "cloud_auto", "cloud_essd_entry")
DEVICES = "bcdefghijklmnopq"
# the first characters of resource ids (and disk serial numbers) in each region, as the real cloud makes them
SERIAL_PREFIX = {"cn-hangzhou": "bp1", "cn-shanghai": "uf6", "cn-beijing": "2ze", "cn-shenzhen": "wz9",
                 "ap-southeast-1": "t4n", "cn-qingdao": "m5e", "cn-zhangjiakou": "8vb"}
_SERIAL_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def serial_number(disk: dict) -> str:
    """The disk's serial number: region prefix + 17 characters derived from its id (stable, unique per id)."""
    number = int.from_bytes(hashlib.sha1(f"serial:{disk['DiskId']}".encode()).digest(), "big")
    chars = []
    for _ in range(17):
        number, rest = divmod(number, len(_SERIAL_ALPHABET))
        chars.append(_SERIAL_ALPHABET[rest])
    return SERIAL_PREFIX.get(disk.get("RegionId", ""), "bp1") + "".join(chars)


def guest_device(disk: dict) -> str:
    """The disk's device as a Linux guest names it (``/dev/xvdb`` -> ``/dev/vdb``)."""
    return (disk.get("Device") or "").replace("/dev/xvd", "/dev/vd")


def new_disk(state: State, instance: dict, *, kind: str, size: int, category: str, index: int = 0,
             image_id: str = "", snapshot_id: str = "", now: float | None = None, name: str = "",
             description: str = "", delete_with_instance: bool = True, source: dict | None = None) -> dict:
    """Create an attached disk record (``kind`` system|data) and return it; ``source`` (the image or snapshot it
    is made from) gives its brokenness."""
    now = state.now() if now is None else now
    disk_id = state.new_id("d")
    # index: 1 for the first data disk (/dev/xvdb), as DataDisk.N counts
    device = "/dev/xvda" if kind == "system" else f"/dev/xvd{DEVICES[(max(index, 1) - 1) % len(DEVICES)]}"
    rec = {
        "DiskId": disk_id, "DiskName": name, "Description": description, "InstanceId": instance["InstanceId"],
        "RegionId": instance["RegionId"], "ZoneId": instance["ZoneId"], "Type": kind, "Category": category,
        "Size": int(size), "Status": "In_use", "ImageId": image_id if kind == "system" else "",
        "SourceSnapshotId": snapshot_id, "Device": device, "Tags": {}, "Portable": kind == "data",
        "DeleteWithInstance": bool(delete_with_instance), "DeleteAutoSnapshot": True, "Encrypted": False,
        "PerformanceLevel": "PL0" if category == "cloud_essd" else "", "DiskChargeType": "PostPaid",
        "CreationTime": iso(now), "AttachedTime": iso(now), "_created": now,
    }
    detection.carry(source, rec)
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
        "EnableAutoSnapshot": False, "EnableAutomatedSnapshotPolicy": False, "SerialNumber": serial_number(d),
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
