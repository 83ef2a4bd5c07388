"""ECS custom images: CreateImage, DescribeImages, CopyImage, CancelCopyImage, DeleteImage, share permissions,
and the ``images`` fleet section.

Lifecycle on simulated time (durations in ``emulator/ecs/timings.py``, times the region's slowness):

* CreateImage: ``Creating`` (Progress rises) -> ``Available`` or ``CreateFailed`` (fault
  ``image_create_fail``). From an instance, the disks' snapshots are *taken* at the snapshot point
  (timing ``image_snapshot_point``, 20 s, times the region's slowness, capped at half the image's
  duration): until then every DiskDeviceMapping has an empty ``SnapshotId`` and the snapshots do not
  exist; from then on they are listed (``progressing``, Usage ``image``, ids stable) and complete
  with the image. An image of a ``Stopped`` instance that was started before the point gets the
  private field ``_torn: true`` (the disks were being written while captured); otherwise ``false``.
* CopyImage: the copy is created in the destination region as ``Creating`` when fewer than
  ``copy_concurrency`` (5) copies run there, else ``Waiting``; a waiting copy starts exactly when a
  running one in the same destination ends (or is cancelled). Each copy gets its own snapshots in
  the destination. Fault ``copy_fail`` makes it end ``CreateFailed``.

Custom image records are keyed by ImageId; public images (seeded by regions.py) are keyed
``<region>/<image id>`` and have ImageOwnerAlias ``system``.
"""

from __future__ import annotations

from typing import Any

from ..clock import iso, parse_iso
from ..errors import ApiError, invalid_parameter, missing_parameter
from ..keys import ACCOUNT_ID
from ..registry import fleet_count, fleet_section
from ..rpc import Call, Params, action
from ..state import State, on_event
from . import common, detection, snapshots, timings
from .regions import REGIONS

STATUSES = ("Creating", "Waiting", "Available", "UnAvailable", "CreateFailed", "Deprecated")
OWNER_ALIASES = ("system", "self", "others", "marketplace")
IN_PROGRESS = ("Creating", "Waiting")


# -- helpers ---------------------------------------------------------------------------------
def _check_name(name: str | None, what: str = "Image name") -> None:
    if name is None:
        return
    if not common.valid_name(name) or name.lower().startswith(("aliyun", "acs:")):
        raise ApiError("InvalidImageName.Malformed",
                       f"The specified {what} is wrongly formed: 2-128 characters, starting with a letter, not "
                       "starting with aliyun, acs:, http:// or https://; letters, digits, '.', ':', '_', '-'.", 400)


def _check_unique(state: State, region: str, name: str | None) -> None:
    if not name:
        return
    for img in common.custom_images(state, region):
        if img.get("ImageName") == name and img.get("Status") != "CreateFailed":
            raise ApiError("InvalidImageName.Duplicated", "The specified Image name has already bean used.", 400)


def image_count(state: State, region: str) -> int:
    """Custom images of the region that count against the quota (every status, copies included)."""
    return sum(1 for _ in common.custom_images(state, region))


def _check_quota(state: State, region: str, faults: dict) -> None:
    quota = timings.image_quota(state, region, faults)
    if image_count(state, region) >= quota:
        raise ApiError("QuotaExceed.Image", f"The Image Quota exceeds (custom images per region: {quota}).", 403)


def _faults(call: Call) -> Any:
    return call.extra["emulator"].faults


def total_size(img: dict) -> int:
    return sum(int(m.get("Size") or 0) for m in img.get("DiskDeviceMappings", [])) or int(img.get("Size") or 0)


def _used_image_ids(state: State, region: str) -> set[str]:
    return {r.get("ImageId") for r in state.table("ecs.instances").values() if r["RegionId"] == region}


def image_out(img: dict, now: float, used: set[str]) -> dict:
    status = img.get("Status", "Available")
    if status == "Creating":
        prog = common.progress(img, now)
    elif status == "Waiting":
        prog = "0%"
    elif status == "Available":
        prog = "100%"
    else:
        prog = img.get("Progress") or "0%"
    mappings = []
    for m in img.get("DiskDeviceMappings", []):
        mappings.append({"Device": m.get("Device", ""), "Size": str(m.get("Size", "")),
                         "SnapshotId": m.get("SnapshotId", ""), "Type": m.get("Type", "system"),
                         "Format": "", "ImportOSSBucket": "", "ImportOSSObject": "", "Encrypted": False,
                         "Progress": prog if status in IN_PROGRESS else ("100%" if status == "Available" else prog),
                         "RemainTime": common.remain_time(img, now) if status == "Creating" else 0})
    is_system = img.get("ImageOwnerAlias") == "system"
    return {
        "ImageId": img["ImageId"], "ImageName": img.get("ImageName", ""), "Description": img.get("Description", ""),
        "Status": status, "Progress": prog, "CreationTime": img.get("CreationTime", ""),
        "Size": int(img.get("Size") or 0), "OSType": img.get("OSType", "linux"), "OSName": img.get("OSName", ""),
        "OSNameEn": img.get("OSNameEn", ""), "Platform": img.get("Platform", ""),
        "Architecture": img.get("Architecture", "x86_64"), "ImageOwnerAlias": img.get("ImageOwnerAlias", "self"),
        "ImageOwnerId": 0 if is_system else int(ACCOUNT_ID), "IsCopied": bool(img.get("IsCopied", False)),
        "IsPublic": bool(img.get("IsPublic", False)),
        "IsSelfShared": "True" if img.get("ShareAccounts") else "False" if not is_system else "",
        "IsSubscribed": False, "IsSupportCloudinit": True, "IsSupportIoOptimized": True,
        "Usage": "instance" if img["ImageId"] in used else "none", "ImageVersion": img.get("ImageVersion", ""),
        "ImageFamily": img.get("ImageFamily", ""), "BootMode": img.get("BootMode", "BIOS"),
        "ProductCode": "", "SupplierName": "", "ResourceGroupId": "", "Usable": True, "LicenseType": "Auto",
        "LoginAsNonRootSupported": False,
        "DiskDeviceMappings": {"DiskDeviceMapping": mappings}, "Tags": common.tags_out(img.get("Tags")),
        "Features": {"NvmeSupport": "supported"}, "DetectionOptions": detection.detection_out(img),
    }


def _new_image(state: State, *, region: str, name: str, description: str, now: float, status: str,
               tags: dict, os_from: dict, mappings: list[dict], extra: dict | None = None,
               source: dict | None = None) -> dict:
    """A custom image record; ``source`` (its system snapshot, or the image it copies) gives its brokenness."""
    image_id = state.new_id("m")
    system = next((m for m in mappings if m.get("Type") == "system"), mappings[0] if mappings else {})
    rec = {
        "ImageId": image_id, "ImageName": name, "Description": description, "RegionId": region, "Status": status,
        "CreationTime": iso(now), "Size": int(system.get("Size") or 0),
        "OSType": os_from.get("OSType", "linux"), "OSName": os_from.get("OSName", ""),
        "OSNameEn": os_from.get("OSNameEn", os_from.get("OSName", "")), "Platform": os_from.get("Platform", ""),
        "Architecture": os_from.get("Architecture", "x86_64"), "ImageOwnerAlias": "self", "IsCopied": False,
        "IsPublic": False, "Tags": dict(tags), "DiskDeviceMappings": mappings, "ImageVersion": "",
        "ImageFamily": "", "BootMode": os_from.get("BootMode", "BIOS"), "ShareAccounts": {},
        "SourceInstanceId": "", "SourceImageId": "", "SourceRegionId": "", "_created": now, "_op": 0,
    }
    detection.carry(source, rec)
    rec.update(extra or {})
    state.table("ecs.images")[image_id] = rec
    return rec


def _os_of_instance(state: State, inst: dict) -> dict:
    base = common.find_image(state, inst["RegionId"], inst.get("ImageId", "")) or {}
    return {"OSType": inst.get("OSType") or base.get("OSType", "linux"),
            "OSName": inst.get("OSName") or base.get("OSName", ""),
            "OSNameEn": inst.get("OSNameEn") or base.get("OSNameEn", ""),
            "Platform": base.get("Platform", ""), "Architecture": base.get("Architecture", "x86_64"),
            "BootMode": base.get("BootMode", "BIOS")}


def _drop_snapshots(state: State, img: dict) -> None:
    snaps = state.table("ecs.snapshots")
    for sid in img.get("_own_snapshots", []):
        snaps.pop(sid, None)


# -- CreateImage -----------------------------------------------------------------------------
ARCHITECTURES = ("i386", "x86_64", "arm64")
BOOT_MODES = ("BIOS", "UEFI", "UEFI-Preferred")
# CreateImage's documented Platform values
PLATFORMS = ("Aliyun", "Anolis", "CentOS", "Ubuntu", "CoreOS", "SUSE", "Debian", "OpenSUSE", "FreeBSD", "RedHat",
             "Kylin", "UOS", "Fedora", "Fedora CoreOS", "CentOS Stream", "AlmaLinux", "Rocky Linux", "Gentoo",
             "Customized Linux", "Others Linux", "Windows Server 2022", "Windows Server 2019",
             "Windows Server 2016", "Windows Server 2012", "Windows Server 2008", "Windows Server 2003")


def os_named(platform: str, architecture: str) -> dict:
    """The OS fields of an image whose system disk is described only by Platform and Architecture (an image made
    from a data disk snapshot): ``Ubuntu 64位`` / ``Ubuntu 64 bit``, as the console shows such custom images."""
    bits = "32" if architecture == "i386" else "64"
    return {"OSType": "windows" if platform.startswith("Windows") else "linux", "OSName": f"{platform} {bits}位",
            "OSNameEn": f"{platform} {bits} bit", "Platform": platform, "Architecture": architecture}


def _os_of_snapshot(state: State, snap: dict) -> dict:
    """A system disk snapshot tells its OS (the source instance's, or the image's it belongs to); a data disk
    snapshot does not: Architecture x86_64 and Platform Others Linux, CreateImage's defaults."""
    if snap.get("SourceDiskType", "").lower() == "system":
        src_disk = state.table("ecs.disks").get(snap.get("SourceDiskId") or "")
        src_inst = state.table("ecs.instances").get((src_disk or {}).get("InstanceId") or snap.get("InstanceId", ""))
        if src_inst is not None:
            return _os_of_instance(state, src_inst)
        for img in snapshots.images_using(state, snap["SnapshotId"]):
            return {k: img.get(k, "") for k in ("OSType", "OSName", "OSNameEn", "Platform", "Architecture",
                                                  "BootMode")}
    return {**os_named("Others Linux", "x86_64"), "BootMode": "BIOS"}


def _create_options(p: Params) -> dict:
    """CreateImage's Architecture, Platform, BootMode and DetectionStrategy, checked."""
    out = {"Architecture": p.str("Architecture"), "Platform": p.str("Platform"), "BootMode": p.str("BootMode"),
           "DetectionStrategy": p.str("DetectionStrategy")}
    for name, allowed in (("Architecture", ARCHITECTURES), ("Platform", PLATFORMS), ("BootMode", BOOT_MODES),
                          ("DetectionStrategy", ("Standard",))):
        if out[name] is not None and out[name] not in allowed:
            raise invalid_parameter(name, f"Valid values: {', '.join(allowed)}.")
    return out


def _snapshot_mappings(state: State, region: str, p: Params) -> list[tuple[dict, str]]:
    """``SnapshotId`` or ``DiskDeviceMapping.N.SnapshotId``: ``[(snapshot, "system"|"data")]``, system first."""
    given = p.struct_list("DiskDeviceMapping")
    sid = p.str("SnapshotId")
    wanted = [(sid, "system")] if sid else []
    for n, m in enumerate(given):
        if not m.get("SnapshotId"):
            continue
        kind = (m.get("DiskType") or ("system" if n == 0 and not sid else "data")).lower()
        if kind not in ("system", "data"):
            raise invalid_parameter(f"DiskDeviceMapping.{n + 1}.DiskType", "Valid values: system, data.")
        if sid and kind == "system":
            continue  # SnapshotId already names the system disk
        wanted.append((m["SnapshotId"], kind))
    if sum(1 for _, kind in wanted if kind == "system") != 1:
        raise ApiError("InvalidParameter.DiskDeviceMapping",
                       "The specified DiskDeviceMapping must contain exactly one system disk snapshot.", 400)
    out = []
    for snapshot_id, kind in sorted(wanted, key=lambda w: w[1] != "system"):
        snap = common.get_snapshot(state, snapshot_id, region)
        if snap["Status"] != "accomplished":
            raise ApiError("InvalidSnapshotId.NotReady", "The current status of the DiskDeviceMapping.n.SnapshotId or "
                           "SnapshotId does not support this operation.", 403)
        out.append((snap, kind))
    return out


@action("ecs", "CreateImage")
def create_image(call: Call, p: Params) -> dict:
    state = call.state
    region = common.region(call, p)
    key, previous = common.idempotent(call, p, "CreateImage")
    if previous is not None:
        return {"ImageId": previous}
    instance_id = p.str("InstanceId")
    if not instance_id and not p.str("SnapshotId") \
            and not any(m.get("SnapshotId") for m in p.struct_list("DiskDeviceMapping")):
        raise ApiError("MissingParameter", "The input parameter SnapshotId or InstanceId or DiskDeviceMapping that is "
                       "mandatory for processing this request is not supplied.", 400)
    name = p.str("ImageName")
    _check_name(name)
    description = common.check_description(p.str("Description"))
    tags = common.parse_tags(p)
    options = _create_options(p)
    faults = _faults(call)
    now = call.now
    sources: list[tuple[dict, str]] = []
    if instance_id:
        inst = common.get_instance(state, instance_id, region)
        if inst["Status"] not in ("Running", "Stopped"):
            raise common.incorrect_instance_status(
                400, f"Instance {instance_id} is {inst['Status']}; CreateImage needs Running or Stopped.")
        disks = common.disks_of(state, instance_id)
        os_from = _os_of_instance(state, inst)
    else:
        inst, disks = None, []
        sources = _snapshot_mappings(state, region, p)
        os_from = _os_of_snapshot(state, sources[0][0])
    _check_unique(state, region, name)
    _check_quota(state, region, faults.cfg)
    common.dry_run(p)
    if options["Platform"] or options["Architecture"]:
        os_from.update(os_named(options["Platform"] or os_from.get("Platform") or "Others Linux",
                                options["Architecture"] or os_from.get("Architecture") or "x86_64"))
    if options["BootMode"]:
        os_from["BootMode"] = options["BootMode"]
    size = sum(int(d["Size"]) for d in disks) if inst else sum(int(s.get("SourceDiskSize") or 0) for s, _ in sources)
    slowness = timings.slowness(state, region, faults.cfg)
    duration = (timings.get(state, "image_create_base") + timings.get(state, "image_create_per_gib") * size) \
        * slowness
    point = min(timings.get(state, "image_snapshot_point") * slowness, duration / 2) if inst else 0.0
    fail_cfg = faults.get("image_create_fail") or {}
    fail = bool(instance_id and instance_id in (fail_cfg.get("instance_ids") or [])) \
        or faults.roll(float(fail_cfg.get("rate", 0) or 0))
    if inst:  # the snapshots are taken at the snapshot point; "_disk" says of what
        mappings = [{"Device": d.get("Device", ""), "Size": int(d["Size"]), "SnapshotId": "", "Type": d["Type"],
                     "_disk": {"DiskId": d["DiskId"], "InstanceId": instance_id, "Type": d["Type"]}} for d in disks]
    else:
        mappings = [{"Device": "/dev/xvda" if kind == "system" else f"/dev/xvd{'bcdefghijklmnop'[n - 1]}",
                     "Size": int(snap.get("SourceDiskSize") or 0), "SnapshotId": snap["SnapshotId"], "Type": kind}
                    for n, (snap, kind) in enumerate(sources)]
    img = _new_image(state, region=region, name=name or "", description=description, now=now, status="Creating",
                     tags=tags, os_from=os_from, mappings=mappings, source=sources[0][0] if sources else None,
                     extra={"SourceInstanceId": instance_id or "", "_start": now, "_end": now + duration,
                            "_fail": fail, "_own_snapshots": [], "ImageVersion": p.str("ImageVersion", ""),
                            "ImageFamily": p.str("ImageFamily", ""), "_snapshot_point": now + point,
                            "_snapshots_taken": not inst, "_torn": False,
                            "_source_stopped": bool(inst and inst["Status"] == "Stopped"),
                            "_detection": {"Status": "Processing"} if options["DetectionStrategy"] else None})
    if inst:
        state.schedule_at(now + point, "ecs.image.snapshot_point", image_id=img["ImageId"], op=img["_op"])
    else:
        snapshots.refresh_usage(state, [snap["SnapshotId"] for snap, _ in sources])
    state.schedule_at(now + duration, "ecs.image.done", image_id=img["ImageId"], op=img["_op"])
    common.remember(call, p, key, img["ImageId"])
    return {"ImageId": img["ImageId"]}


def _on_image_event(kind: str, apply) -> None:
    """Handle scheduled events ``kind`` with ``apply(state, img, at)``; an event is ignored once its image
    is gone or no longer the Creating operation that scheduled it."""

    def handler(state: State, event) -> None:
        img = state.table("ecs.images").get(event.payload["image_id"])
        if img is not None and img.get("_op") == event.payload["op"] and img["Status"] == "Creating":
            apply(state, img, event.at)

    on_event(kind)(handler)


def _take_snapshots(state: State, img: dict, at: float) -> None:
    """CreateImage's point in time: each disk's snapshot is taken now and completes with the image."""
    if img.get("_snapshots_taken", True):  # copies, fleet images and images from a snapshot have theirs
        return
    img["_snapshots_taken"] = True
    disks = state.table("ecs.disks")
    for m in img["DiskDeviceMappings"]:
        disk = m.pop("_disk")
        snap = snapshots.new_snapshot(state, region=img["RegionId"], size=int(m["Size"]), disk=disk,
                                      now=at, end=img["_end"], usage="image",
                                      description=f"Create for image {img['ImageId']}", snapshot_type="user",
                                      source=disks.get(disk["DiskId"]) or {})
        m["SnapshotId"] = snap["SnapshotId"]
        img["_own_snapshots"].append(snap["SnapshotId"])
        if m.get("Type") == "system":
            detection.carry(snap, img)
    source = state.table("ecs.instances").get(img.get("SourceInstanceId") or "")
    started = source.get("_started_at") if source is not None else None
    img["_torn"] = bool(img.get("_source_stopped") and started is not None and started >= img["_start"])


def _complete(state: State, img: dict, at: float) -> None:
    _take_snapshots(state, img, at)
    snaps = state.table("ecs.snapshots")
    img["_end"] = at
    if img.get("_fail"):
        img["Status"] = "CreateFailed"
        img["Progress"] = "0%"
        _drop_snapshots(state, img)
        img["DiskDeviceMappings"] = [m for m in img["DiskDeviceMappings"] if m.get("SnapshotId") in snaps]
        img["_own_snapshots"] = []
        img["_detection"] = None  # no check of an image that failed
        return
    img["Status"] = "Available"
    for sid in img.get("_own_snapshots", []):
        snap = snaps.get(sid)
        if snap is not None and snap["Status"] == "progressing":
            snapshots.finish(state, snap, at)
    if (img.get("_detection") or {}).get("Status") == "Processing":  # DetectionStrategy=Standard: checked after
        state.schedule_at(at + timings.get(state, "image_detection") * timings.slowness(state, img["RegionId"]),
                          "ecs.image.detected", image_id=img["ImageId"])


_on_image_event("ecs.image.snapshot_point", _take_snapshots)
_on_image_event("ecs.image.done", _complete)


@on_event("ecs.image.detected")
def _detected(state: State, event) -> None:
    img = state.table("ecs.images").get(event.payload["image_id"])
    if img is not None and (img.get("_detection") or {}).get("Status") == "Processing":
        img["_detection"] = {"Status": "Finished", "FinishedAt": iso(event.at)}


# -- DescribeImages --------------------------------------------------------------------------
def _images_in(state: State, region: str) -> list[dict]:
    return [img for img in state.table("ecs.images").values() if img.get("RegionId") == region]


@action("ecs", "DescribeImages")
def describe_images(call: Call, p: Params) -> dict:
    state = call.state
    region = common.region(call, p)
    ids = p.csv("ImageId")
    if len(ids) > 100:
        raise invalid_parameter("ImageId", "At most 100 image ids are allowed.")
    statuses = p.csv("Status") or ["Available"]
    for s in statuses:
        if s not in STATUSES:
            raise ApiError("InvalidStatus.ValueNotSupported", f"The specified Status {s!r} is not supported.", 400)
    alias = p.str("ImageOwnerAlias")
    if alias is not None and alias not in OWNER_ALIASES:
        raise ApiError("InvalidImageOwnerAlias.ValueNotSupported",
                       "The specified ImageOwnerAlias is not supported (system, self, others, marketplace).", 400)
    usage = p.str("Usage")
    if usage is not None and usage not in ("instance", "none"):
        raise ApiError("InvalidUsage", "The specified Usage is not valid (instance or none).", 400)
    is_public = p.bool("IsPublic") if "IsPublic" in p else None
    snapshot_id = p.str("SnapshotId")
    name = p.str("ImageName")
    os_type, arch, family = p.str("OSType"), p.str("Architecture"), p.str("ImageFamily")
    tags = common.tag_filters(p)
    created_from, created_to = common.creation_filters(p)
    used = _used_image_ids(state, region)
    id_set = set(ids)
    items = []
    for img in _images_in(state, region):
        if id_set and img["ImageId"] not in id_set:
            continue
        if img.get("Status") not in statuses:
            continue
        owner = img.get("ImageOwnerAlias", "self")
        if alias is not None and owner != alias:
            continue
        if usage is not None and ("instance" if img["ImageId"] in used else "none") != usage:
            continue
        if is_public is not None and bool(img.get("IsPublic")) != is_public:
            continue
        if snapshot_id and not any(m.get("SnapshotId") == snapshot_id for m in img.get("DiskDeviceMappings", [])):
            continue
        if name is not None:
            iname = img.get("ImageName", "")
            if "*" in name:
                if not common.name_matcher(name)(iname):
                    continue
            elif name not in iname:
                continue
        if os_type and img.get("OSType") != os_type:
            continue
        if arch and img.get("Architecture") != arch:
            continue
        if family and img.get("ImageFamily") != family:
            continue
        if tags and not common.match_tags(img.get("Tags"), tags):
            continue
        ts = common.created_ts(img)
        if (created_from is not None and ts < created_from) or (created_to is not None and ts > created_to):
            continue
        items.append(img)
    items.sort(key=lambda i: (-common.created_ts(i), i["ImageId"]))
    page, counters = common.paginate(items, p, default_size=10, max_size=100, token_scheme=False)
    now = call.now
    return {"RegionId": region, "Images": {"Image": [image_out(i, now, used) for i in page]}, **counters}


# -- CopyImage -------------------------------------------------------------------------------
def _running_copies(state: State, region: str) -> list[dict]:
    return [i for i in common.custom_images(state, region) if i.get("_copy") and i["Status"] == "Creating"]


def _waiting_copies(state: State, region: str) -> list[dict]:
    waiting = [i for i in common.custom_images(state, region) if i.get("_copy") and i["Status"] == "Waiting"]
    waiting.sort(key=lambda i: i.get("_queue_seq", 0))
    return waiting


def _start_copy(state: State, img: dict, at: float) -> None:
    img["Status"] = "Creating"
    img["_start"] = at
    img["_end"] = at + float(img["_duration"])
    snaps = state.table("ecs.snapshots")
    for sid in img.get("_own_snapshots", []):
        if sid in snaps:
            snaps[sid]["_start"], snaps[sid]["_end"] = img["_start"], img["_end"]
    state.schedule_at(img["_end"], "ecs.image.copy_done", image_id=img["ImageId"], op=img["_op"])


def _pump(state: State, region: str, at: float) -> None:
    limit = int(timings.get(state, "copy_concurrency"))
    running = len(_running_copies(state, region))
    for img in _waiting_copies(state, region):
        if running >= limit:
            break
        _start_copy(state, img, at)
        running += 1


def _copy_done(state: State, img: dict, at: float) -> None:
    _complete(state, img, at)
    img["_copy"] = False
    _pump(state, img["RegionId"], at)


_on_image_event("ecs.image.copy_done", _copy_done)


@action("ecs", "CopyImage")
def copy_image(call: Call, p: Params) -> dict:
    state = call.state
    region = common.region(call, p)
    key, previous = common.idempotent(call, p, "CopyImage")
    if previous is not None:
        return {"ImageId": previous}
    image_id = p.str("ImageId", required=True)
    dest = p.str("DestinationRegionId")
    if not dest:
        raise missing_parameter("DestinationRegionId")
    if dest not in REGIONS:
        raise ApiError("DestinationRegion.NotFound", f"The destination region not found ({dest}).", 400)
    src = common.get_image(state, region, image_id)
    if src.get("ImageOwnerAlias") == "system":
        raise ApiError("InvalidImageId.NotFound",
                       "The specified ImageId does not exist in this account (only custom images can be copied).", 404)
    if src.get("Status") != "Available":
        raise ApiError("IncorrectImageStatus", "The image not available.", 400)
    name = p.str("DestinationImageName")
    _check_name(name, "destination Image name")
    description = p.str("DestinationDescription")
    if description is not None:
        common.check_description(description)
    encrypted = p.bool("Encrypted")
    kms = p.str("KMSKeyId")
    if kms and not encrypted:
        raise ApiError("InvalidParameter.EncryptedIllegal",
                       "The specified parameter Encrypted must be true when kmsKeyId is not empty.", 400)
    tags = common.parse_tags(p)
    faults = _faults(call)
    _check_unique(state, dest, name)
    _check_quota(state, dest, faults.cfg)
    common.dry_run(p)
    now = call.now
    size = total_size(src)
    duration = (timings.get(state, "copy_base") + timings.get(state, "copy_per_gib") * size) \
        * timings.slowness(state, dest, faults.cfg)
    fail_cfg = faults.get("copy_fail") or {}
    regions = fail_cfg.get("regions")
    rate = float(fail_cfg.get("rate", 1.0 if regions else 0.0) or 0.0)
    fail = (regions is None or dest in regions) and (rate >= 1.0 or faults.roll(rate))
    mappings, own = [], []
    for m in src.get("DiskDeviceMappings", []):
        s = snapshots.new_snapshot(state, region=dest, size=int(m.get("Size") or 0), now=now, end=now + duration,
                                   usage="image", description=f"Copied from {m.get('SnapshotId')} ({region})",
                                   source_snapshot_id=m.get("SnapshotId", ""), source_region=region,
                                   disk_type=m.get("Type", "system"),
                                   source=state.table("ecs.snapshots").get(m.get("SnapshotId", "")) or src)
        s["Encrypted"], s["KMSKeyId"] = encrypted, kms or ""
        own.append(s["SnapshotId"])
        mappings.append({**m, "SnapshotId": s["SnapshotId"]})
    seq = state.counters.get("ecs.copy_seq", 0) + 1
    state.counters["ecs.copy_seq"] = seq
    img = _new_image(state, region=dest, name=name or src.get("ImageName", ""),
                     description=description if description is not None else src.get("Description", ""),
                     now=now, status="Waiting", tags=tags, os_from=src, mappings=mappings, source=src,
                     extra={"IsCopied": True, "SourceImageId": src["ImageId"], "SourceRegionId": region,
                            "_copy": True, "_queue_seq": seq, "_duration": duration, "_fail": fail,
                            "_own_snapshots": own, "Encrypted": encrypted, "KMSKeyId": kms or "",
                            "ImageVersion": src.get("ImageVersion", ""), "ImageFamily": src.get("ImageFamily", "")})
    for sid in own:
        state.table("ecs.snapshots")[sid]["Description"] = f"Copy for image {img['ImageId']}"
    _pump(state, dest, now)
    common.remember(call, p, key, img["ImageId"])
    return {"ImageId": img["ImageId"]}


@action("ecs", "CancelCopyImage")
def cancel_copy_image(call: Call, p: Params) -> dict:
    state = call.state
    region = common.region(call, p)
    img = common.get_image(state, region, p.str("ImageId"))
    if not img.get("IsCopied"):
        raise ApiError("ImageCreatedNotFromCopy", "The specified image is not the target image of a copy action.", 400)
    if img["Status"] == "Available":
        raise ApiError("IncorrectImageStatus", "The image is copied finished.", 400)
    if img["Status"] == "CreateFailed":
        raise ApiError("IncorrectImageStatus", "The Image copy has been failed.", 400)
    if img["Status"] not in IN_PROGRESS:
        raise ApiError("IncorrectImageStatus", "The specified image is not coping.", 400)
    was_running = img["Status"] == "Creating"
    _drop_snapshots(state, img)
    state.table("ecs.images").pop(img["ImageId"], None)
    if was_running:
        _pump(state, region, call.now)
    return {}


# -- DeleteImage -----------------------------------------------------------------------------
@action("ecs", "DeleteImage")
def delete_image(call: Call, p: Params) -> dict:
    state = call.state
    region = common.region(call, p)
    img = common.get_image(state, region, p.str("ImageId"))
    force = p.bool("Force")
    if img.get("ImageOwnerAlias") == "system":
        raise ApiError("InvalidImageId.NotFound",
                       "The specified ImageId does not exist in this account (system images cannot be deleted).", 404)
    if img.get("_copy") and img["Status"] in IN_PROGRESS:
        raise ApiError("OperationDenied.ImageCopying", "The Image is coping.", 403)
    if any(i.get("_copy") and i["Status"] in IN_PROGRESS and i.get("SourceImageId") == img["ImageId"]
           for i in common.custom_images(state)):
        raise ApiError("OperationDenied.ImageCopying", "The Image is coping.", 403)
    if img["Status"] == "Creating":
        raise ApiError("ImageIsCreating", "The specified image is being created.", 403)
    if img.get("ShareAccounts") or img.get("IsPublic"):
        raise ApiError("ImageUseShared", "The specified image has been shared to others.", 403)
    if not force and img["ImageId"] in _used_image_ids(state, region):
        raise ApiError("ImageUsingByInstance", "The specified image has been used to create instances.", 403)
    common.dry_run(p)
    state.table("ecs.images").pop(img["ImageId"], None)
    snapshots.refresh_usage(state, [m.get("SnapshotId") for m in img.get("DiskDeviceMappings", [])])
    return {}


# -- sharing ---------------------------------------------------------------------------------
def _custom_image(state: State, region: str, image_id: str | None) -> dict:
    img = common.get_image(state, region, image_id)
    if img.get("ImageOwnerAlias") == "system":
        raise ApiError("InvalidImageId.NotFound", "The specified ImageId does not exist in this account.", 404)
    return img


@action("ecs", "ModifyImageSharePermission")
def modify_image_share_permission(call: Call, p: Params) -> dict:
    state = call.state
    region = common.region(call, p)
    img = _custom_image(state, region, p.str("ImageId"))
    add, remove = p.repeat_list("AddAccount"), p.repeat_list("RemoveAccount")
    if len(add) > 10 or len(remove) > 10:
        raise invalid_parameter("AddAccount", "At most 10 accounts per call.")
    for acct in add + remove:
        if not (acct.isascii() and acct.isdigit()):
            raise ApiError("InvalidAccount.NotFound", f"The specified account {acct!r} does not exist.", 404)
    if ACCOUNT_ID in add:
        raise ApiError("InvalidAccount.Forbidden", "The image cannot be shared with its owner.", 403)
    if img["Status"] != "Available" and add:
        raise ApiError("IncorrectImageStatus", "The image not available.", 400)
    common.dry_run(p)
    shares = img.setdefault("ShareAccounts", {})
    for acct in add:
        shares.setdefault(acct, iso(call.now))
    for acct in remove:
        shares.pop(acct, None)
    if "IsPublic" in p:
        img["IsPublic"] = p.bool("IsPublic")
    return {}


@action("ecs", "DescribeImageSharePermission")
def describe_image_share_permission(call: Call, p: Params) -> dict:
    state = call.state
    region = common.region(call, p)
    img = _custom_image(state, region, p.str("ImageId"))
    accounts = [{"AliyunId": a, "SharedTime": t} for a, t in (img.get("ShareAccounts") or {}).items()]
    page, counters = common.paginate(accounts, p, default_size=10, max_size=100, token_scheme=False)
    return {"ImageId": img["ImageId"], "RegionId": region, "Accounts": {"Account": page},
            "ShareGroups": {"ShareGroup": [{"Group": "all"}] if img.get("IsPublic") else []}, **counters}


# -- fleet spec ------------------------------------------------------------------------------
def _fleet_os(entry: dict, base: dict) -> dict:
    """The OS fields of a fleet image: ``base`` (the source instance's, else Alibaba Cloud Linux 3) with the
    entry's ``architecture``, ``platform``, ``os_type``, ``os_name``, ``boot_mode``."""
    checks = (("architecture", ARCHITECTURES), ("platform", PLATFORMS), ("os_type", ("linux", "windows")),
              ("boot_mode", BOOT_MODES))
    for field, allowed in checks:
        if field in entry and entry[field] not in allowed:
            raise ApiError("InvalidFleetSpec", f"images[].{field} must be one of {', '.join(allowed)}, "
                           f"got {entry[field]!r}", 400)
    if "os_name" in entry and not isinstance(entry["os_name"], str):
        raise ApiError("InvalidFleetSpec", f"images[].os_name must be a string, got {entry['os_name']!r}", 400)
    out = dict(base)
    if "platform" in entry:
        out.update(os_named(entry["platform"], entry.get("architecture", out.get("Architecture", "x86_64"))))
    elif "architecture" in entry:
        out["Architecture"] = entry["architecture"]
    if "os_type" in entry:
        out["OSType"] = entry["os_type"]
    if "os_name" in entry:
        out["OSName"] = out["OSNameEn"] = entry["os_name"]
    if "boot_mode" in entry:
        out["BootMode"] = entry["boot_mode"]
    return out


def _fleet_health(entry: dict) -> tuple[dict | None, dict | None]:
    """``(brokenness to give the system snapshot or None to keep the disk's, _detection)`` of a fleet image."""
    issues = detection.parse_broken(entry.get("broken"), "images[].broken")
    if isinstance(issues, str):
        raise ApiError("InvalidFleetSpec", issues, 400)
    for field in ("invalid", "detected"):
        if field in entry and not isinstance(entry[field], bool):
            raise ApiError("InvalidFleetSpec", f"images[].{field} must be true or false, got {entry[field]!r}", 400)
    given = "broken" in entry or "invalid" in entry
    health = {"_issues": issues, "_invalid": bool(entry.get("invalid"))} if given else None
    detected = entry.get("detected", given)
    return health, ({"Status": "Finished"} if detected else None)


@fleet_section("images", order=60)
def load_images(state: State, spec: Any) -> list[str]:
    """``[{"region", "name"?, "tags"?, "creation_time"? (ISO), "status"? (Available), "instance_id"?,
    "size"? (40), "data_disks"?: [{"size"}], "description"?, "count"?, "architecture"?, "platform"?, "os_type"?,
    "os_name"?, "boot_mode"?, "broken"?, "invalid"?, "detected"?}]`` -> ids of the images.

    Each image gets accomplished snapshots (one per disk of the source instance if given, else
    one system snapshot of ``size`` plus one per data disk) dated at its creation time. ``broken`` (``true``:
    the check items fstab and grub fail, or a list of repair items) and ``invalid`` (no Linux system on the disk)
    go to the image and its system snapshot (:mod:`emulator.ecs.detection`); either shows a finished check in
    DetectionOptions unless ``detected: false`` (``detected: true`` shows one for a healthy image).
    """
    if not isinstance(spec, list):
        raise ApiError("InvalidFleetSpec", "images must be a list", 400)
    ids: list[str] = []
    disks_table = state.table("ecs.disks")
    for entry in spec:
        if not isinstance(entry, dict) or entry.get("region") not in REGIONS:
            raise ApiError("InvalidFleetSpec", f"images entry needs a known region: {entry!r}", 400)
        region = entry["region"]
        status = entry.get("status", "Available")
        if status not in ("Available", "CreateFailed", "UnAvailable", "Deprecated"):
            raise ApiError("InvalidFleetSpec", f"unsupported image status {status!r}", 400)
        try:
            created = parse_iso(entry["creation_time"]) if entry.get("creation_time") else state.now()
        except ValueError as exc:
            raise ApiError("InvalidFleetSpec", str(exc), 400) from None
        tags = {str(k): str(v) for k, v in (entry.get("tags") or {}).items()}
        for k, v in tags.items():
            common.check_tag_key(k)
            common.check_tag_value(v)
        source_id = entry.get("instance_id") or entry.get("source_instance") or ""
        inst = state.table("ecs.instances").get(source_id) if source_id else None
        count = fleet_count(entry.get("count", 1), "images[].count")
        health, detected = _fleet_health(entry)
        for n in range(1, count + 1):
            name = entry.get("name") or ""
            if name and count > 1:
                name = name.replace("{n}", str(n)) if "{n}" in name else f"{name}-{n:03d}"
            if inst is not None:
                disks = [{"DiskId": d["DiskId"], "InstanceId": inst["InstanceId"], "Type": d["Type"],
                          "Size": d["Size"], "Device": d.get("Device", "")} for d in common.disks_of(state, source_id)]
                os_from = _fleet_os(entry, _os_of_instance(state, inst))
            else:
                disks = [{"DiskId": "", "InstanceId": source_id, "Type": "system", "Size": int(entry.get("size", 40)),
                          "Device": "/dev/xvda"}]
                for k, dd in enumerate(entry.get("data_disks") or [], start=1):
                    disks.append({"DiskId": "", "InstanceId": source_id, "Type": "data",
                                  "Size": int(dd.get("size", 100)), "Device": f"/dev/xvd{'bcdefghijklmnop'[k - 1]}"})
                os_from = _fleet_os(entry, {"OSType": "linux", "OSName": "Alibaba Cloud Linux  3.2104 LTS 64位",
                                            "OSNameEn": "Alibaba Cloud Linux  3.2104 LTS 64 bit", "Platform": "Aliyun",
                                            "Architecture": "x86_64", "BootMode": "BIOS"})
            mappings, own = [], []
            system_snapshot = None
            for d in disks:
                source = disks_table.get(d["DiskId"]) or {} if d["DiskId"] else {}
                if d["Type"] == "system" and health is not None:
                    source = health
                snap = snapshots.new_snapshot(state, region=region, size=int(d["Size"]), disk=d if d["DiskId"] else None,
                                              now=created, end=None, usage="image", description="Create for image",
                                              disk_type=d["Type"], source=source)
                snap["InstanceId"] = d["InstanceId"]
                own.append(snap["SnapshotId"])
                mappings.append({"Device": d["Device"], "Size": int(d["Size"]), "SnapshotId": snap["SnapshotId"],
                                 "Type": d["Type"]})
                if d["Type"] == "system":
                    system_snapshot = snap
            img = _new_image(state, region=region, name=name, description=entry.get("description", ""), now=created,
                             status=status, tags=tags, os_from=os_from, mappings=mappings, source=system_snapshot,
                             extra={"SourceInstanceId": source_id, "_own_snapshots": own,
                                    "_detection": dict(detected) if detected else None})
            if status == "CreateFailed":
                _drop_snapshots(state, img)
                img["DiskDeviceMappings"] = []
            ids.append(img["ImageId"])
    return ids
