"""ECS snapshots: CreateSnapshot, DescribeSnapshots, DeleteSnapshot.

Records (table ``ecs.snapshots``, keyed by SnapshotId) keep ``Status`` progressing|accomplished|failed,
``Usage`` image|disk|image_disk|none, ``Tags`` as a dict, and ``_start``/``_end`` so Progress rises
with simulated time. Snapshots made by CreateImage/CopyImage are completed by the image module. A snapshot
keeps the brokenness its disk had when it was taken (``_issues``, ``_invalid``: :mod:`emulator.ecs.detection`).
"""

from __future__ import annotations

from ..clock import iso
from ..errors import ApiError, invalid_parameter
from ..rpc import Call, Params, action
from ..state import State, on_event
from . import common, detection, timings

STATUSES = ("progressing", "accomplished", "failed")


def new_snapshot(state: State, *, region: str, size: int, disk: dict | None = None, now: float, end: float | None,
                 usage: str = "none", name: str = "", description: str = "", tags: dict | None = None,
                 retention_days: int | None = None, source_snapshot_id: str = "", source_region: str = "",
                 disk_type: str | None = None, snapshot_type: str = "user", source: dict | None = None) -> dict:
    """A snapshot record; its brokenness is ``source``'s (default: ``disk``'s)."""
    snap_id = state.new_id("s")
    done = end is None or end <= now
    rec = {
        "SnapshotId": snap_id, "SnapshotName": name, "Description": description, "RegionId": region,
        "Status": "accomplished" if done else "progressing", "SourceDiskId": disk["DiskId"] if disk else "",
        "SourceDiskSize": str(size), "SourceDiskType": (disk_type or (disk or {}).get("Type", "system")).capitalize(),
        "SourceStorageType": "disk", "InstanceId": (disk or {}).get("InstanceId", ""), "Usage": usage,
        "CreationTime": iso(now), "LastModifiedTime": iso(end if end is not None else now),
        "RetentionDays": retention_days, "Tags": dict(tags or {}), "Encrypted": False, "KMSKeyId": "",
        "Category": "standard", "SnapshotType": snapshot_type, "InstantAccess": False, "ProductCode": "",
        "SourceSnapshotId": source_snapshot_id, "SourceRegionId": source_region,
        "SnapshotSN": f"64{snap_id[2:14]}", "_created": now, "_start": now, "_end": end if end is not None else now,
    }
    detection.carry(source if source is not None else disk, rec)
    state.table("ecs.snapshots")[snap_id] = rec
    return rec


def finish(state: State, snap: dict, at: float, ok: bool = True) -> None:
    snap["Status"] = "accomplished" if ok else "failed"
    snap["LastModifiedTime"] = iso(at)
    snap["_end"] = at
    if ok and snap.get("RetentionDays"):
        state.schedule_at(at + int(snap["RetentionDays"]) * 86400, "ecs.snapshot.expire",
                          snapshot_id=snap["SnapshotId"])


def images_using(state: State, snapshot_id: str) -> list[dict]:
    return [img for img in common.custom_images(state)
            if any(m.get("SnapshotId") == snapshot_id for m in img.get("DiskDeviceMappings", []))]


def disks_using(state: State, snapshot_id: str) -> list[dict]:
    return [d for d in state.table("ecs.disks").values() if d.get("SourceSnapshotId") == snapshot_id]


def refresh_usage(state: State, snapshot_ids) -> None:
    snaps = state.table("ecs.snapshots")
    for sid in snapshot_ids:
        snap = snaps.get(sid)
        if snap is None:
            continue
        by_image, by_disk = bool(images_using(state, sid)), bool(disks_using(state, sid))
        snap["Usage"] = "image_disk" if by_image and by_disk else "image" if by_image else \
            "disk" if by_disk else "none"


def snapshot_out(s: dict, now: float) -> dict:
    done = s["Status"] != "progressing"
    return {
        "SnapshotId": s["SnapshotId"], "SnapshotName": s.get("SnapshotName", ""),
        "Description": s.get("Description", ""), "RegionId": s["RegionId"], "Status": s["Status"],
        "Progress": "100%" if s["Status"] == "accomplished" else common.progress(s, now) if not done else "0%",
        "RemainTime": 0 if done else common.remain_time(s, now), "SourceDiskId": s.get("SourceDiskId", ""),
        "SourceDiskSize": s.get("SourceDiskSize", ""), "SourceDiskType": s.get("SourceDiskType", ""),
        "SourceStorageType": s.get("SourceStorageType", "disk"), "Usage": s.get("Usage", "none"),
        "CreationTime": s.get("CreationTime", ""), "LastModifiedTime": s.get("LastModifiedTime", ""),
        "RetentionDays": s.get("RetentionDays") or 0, "Tags": common.tags_out(s.get("Tags")),
        "Encrypted": s.get("Encrypted", False), "KMSKeyId": s.get("KMSKeyId", ""),
        "Category": s.get("Category", "standard"), "SnapshotType": s.get("SnapshotType", "user"),
        "InstantAccess": False, "InstantAccessRetentionDays": 0, "ProductCode": "",
        "SourceSnapshotId": s.get("SourceSnapshotId", ""), "SourceRegionId": s.get("SourceRegionId", ""),
        "SnapshotSN": s.get("SnapshotSN", ""), "Available": s["Status"] == "accomplished",
        "FullSnapshotSizeInBytes": int(s.get("SourceDiskSize") or 0) * 1024**3 // 10, "ResourceGroupId": "",
        "SnapshotLinkId": "sl-" + (s.get("SourceDiskId") or s["SnapshotId"])[2:],
    }


@on_event("ecs.snapshot.done")
def _snapshot_done(state: State, event) -> None:
    snap = state.table("ecs.snapshots").get(event.payload["snapshot_id"])
    if snap is not None and snap["Status"] == "progressing":
        finish(state, snap, event.at)


@on_event("ecs.snapshot.expire")
def _snapshot_expire(state: State, event) -> None:
    sid = event.payload["snapshot_id"]
    if images_using(state, sid):
        return  # a snapshot that backs an image is kept
    state.table("ecs.snapshots").pop(sid, None)


@action("ecs", "CreateSnapshot")
def create_snapshot(call: Call, p: Params) -> dict:
    state = call.state
    disk = common.get_disk(state, p.str("DiskId"), p.str("RegionId"))
    key, previous = common.idempotent(call, p, "CreateSnapshot")
    if previous is not None:
        return {"SnapshotId": previous}
    name = p.str("SnapshotName", "")
    if name and (not common.valid_name(name) or name.lower().startswith("auto")):
        raise ApiError("InvalidSnapshotName.Malformed",
                       "The specified SnapshotName is wrongly formed: 2-128 characters, starting with a letter, "
                       "not starting with auto, http:// or https://.", 400)
    description = common.check_description(p.str("Description"))
    retention = p.int("RetentionDays", None)
    if retention is not None and not 1 <= retention <= 65536:
        raise invalid_parameter("RetentionDays", "It must be between 1 and 65536.")
    tags = common.parse_tags(p)
    instance = state.table("ecs.instances").get(disk.get("InstanceId") or "")
    if instance is not None and instance["Status"] not in ("Running", "Stopped"):
        raise common.incorrect_instance_status(detail="The instance of the disk must be Running or Stopped.")
    if any(s.get("SourceDiskId") == disk["DiskId"] and s["Status"] == "progressing" and s.get("Usage") != "image"
           for s in state.table("ecs.snapshots").values()):
        raise ApiError("IncorrectDiskStatus.CreatingSnapshot", "A previous snapshot creation is in process.", 403)
    now = call.now
    size = int(disk["Size"])
    duration = (timings.get(state, "snapshot_base") + timings.get(state, "snapshot_per_gib") * size) \
        * timings.slowness(state, disk["RegionId"], call.extra["emulator"].faults.cfg)
    snap = new_snapshot(state, region=disk["RegionId"], size=size, disk=disk, now=now, end=now + duration,
                        name=name, description=description, tags=tags, retention_days=retention)
    state.schedule_at(now + duration, "ecs.snapshot.done", snapshot_id=snap["SnapshotId"])
    common.remember(call, p, key, snap["SnapshotId"])
    return {"SnapshotId": snap["SnapshotId"]}


@action("ecs", "DescribeSnapshots")
def describe_snapshots(call: Call, p: Params) -> dict:
    state = call.state
    region = common.region(call, p)
    ids = common.id_list(p, "SnapshotIds")
    if len(ids) > 100:
        raise invalid_parameter("SnapshotIds", "At most 100 snapshot ids are allowed.")
    disk_id, instance_id = p.str("DiskId"), p.str("InstanceId")
    usage = p.str("Usage", choices=("image", "disk", "image_disk", "none"))
    status = p.str("Status", "all", choices=("progressing", "accomplished", "failed", "all"))
    stype = p.str("SnapshotType", "all", choices=("auto", "user", "all"))
    source_type = p.str("SourceDiskType")
    name = common.name_matcher(p.str("SnapshotName"))
    tags = common.tag_filters(p)
    created_from, created_to = common.creation_filters(p)
    table = state.table("ecs.snapshots")
    source = [table[i] for i in dict.fromkeys(ids) if i in table] if ids else list(table.values())
    items = []
    for s in source:
        if s["RegionId"] != region:
            continue
        if disk_id and s.get("SourceDiskId") != disk_id:
            continue
        if instance_id and s.get("InstanceId") != instance_id:
            continue
        if usage and s.get("Usage") != usage:
            continue
        if status != "all" and s["Status"] != status:
            continue
        if stype != "all" and s.get("SnapshotType") != stype:
            continue
        if source_type and s.get("SourceDiskType", "").lower() != source_type.lower():
            continue
        if name and not name(s.get("SnapshotName", "")):
            continue
        if tags and not common.match_tags(s.get("Tags"), tags):
            continue
        ts = common.created_ts(s)
        if (created_from is not None and ts < created_from) or (created_to is not None and ts > created_to):
            continue
        items.append(s)
    items.sort(key=lambda s: (-common.created_ts(s), s["SnapshotId"]))
    page, counters = common.paginate(items, p, default_size=10, max_size=100)
    now = call.now
    return {"Snapshots": {"Snapshot": [snapshot_out(s, now) for s in page]}, **counters}


@action("ecs", "DeleteSnapshot")
def delete_snapshot(call: Call, p: Params) -> dict:
    state = call.state
    snap = common.get_snapshot(state, p.str("SnapshotId"), p.str("RegionId"))
    force = p.bool("Force")
    if images_using(state, snap["SnapshotId"]):
        raise ApiError("SnapshotCreatedImage", "The snapshot has been used to create user defined image(s).", 403)
    if disks_using(state, snap["SnapshotId"]) and not force:
        raise ApiError("SnapshotCreatedDisk", "The snapshot has been used to create disk(s).", 403)
    state.table("ecs.snapshots").pop(snap["SnapshotId"], None)
    return {}
