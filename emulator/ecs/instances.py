"""ECS instances: RunInstances, Describe*, Start/Stop/Reboot/Delete, ReplaceSystemDisk, history events, and the
``instances`` fleet section (security groups: :mod:`emulator.ecs.security_groups`).

Status transitions run on simulated time (``emulator/ecs/timings.py``)::

    RunInstances   Pending --15s--> Starting --40s--> Running
    StartInstance  Stopped -> Starting --40s--> Running
    StopInstance   Running -> Stopping --30s (ForceStop 10s)--> Stopped
    RebootInstance Running -> Starting --20s (ForceStop 10s) + 40s--> Running  (StartTime updated)

Every transition bumps the record's ``_op``; scheduled steps carry the ``_op`` they belong to
and are ignored once superseded (e.g. the instance was deleted or stopped again).
"""

from __future__ import annotations

import re
from typing import Any

from ..clock import iso, parse_iso
from ..errors import ApiError, invalid_parameter, missing_parameter
from ..registry import admin_route, fleet_count, fleet_section
from ..rpc import Call, Params, action
from ..state import State, on_event
from . import agent, common, detection, snapshots, timings
from .disks import CATEGORIES, new_disk
from .regions import PUBLIC_IMAGES, REGIONS

STATUSES = ("Pending", "Starting", "Running", "Stopping", "Stopped")
STATUS_CODES = {"Pending": 0, "Running": 1, "Starting": 2, "Stopping": 64, "Stopped": 80}

# family letter -> GiB of memory per vCPU
_FAMILY_RATIO = {"c": 2, "g": 4, "r": 8, "t": 1, "s": 2, "n": 2, "e": 4, "hf": 2, "u": 4}
_SIZES = {"small": 1, "medium": 1, "large": 2, "xlarge": 4}
_TYPE_RE = re.compile(r"^ecs\.([a-z0-9\-]+)\.(small|medium|large|xlarge|(\d+)xlarge)$")

CYCLE_CODES = {"Scheduled": 24, "Avoided": 16, "Executing": 32, "Executed": 48, "Canceled": 64, "Failed": 65,
               "Inquiring": 33}
EVENT_CODES = {"SystemMaintenance.Reboot": 1, "SystemMaintenance.Redeploy": 2, "SystemFailure.Reboot": 65,
               "SystemMaintenance.Stop": 3, "InstanceFailure.Reboot": 66,
               "UserOperation.Start": 128, "UserOperation.Stop": 129, "UserOperation.Reboot": 130,
               "UserOperation.ReplaceSystemDisk": 131, "UserOperation.Delete": 132}


def instance_type_spec(instance_type: str) -> tuple[int, int]:
    """(vCPUs, memory MiB) of an ``ecs.<family>.<size>`` type; InvalidInstanceType otherwise."""
    m = _TYPE_RE.match(instance_type or "")
    if not m:
        raise ApiError("InvalidInstanceType.ValueNotSupported",
                       f"The specified InstanceType {instance_type!r} does not exist or beyond the permitted range.",
                       400)
    family, size, mult = m.group(1), m.group(2), m.group(3)
    cpu = int(mult) * 4 if mult else _SIZES[size]
    if family.startswith("t6-c1m"):
        ratio = float(family.split("c1m", 1)[1] or 1)
    else:
        letters = re.match(r"[a-z]+", family)
        ratio = _FAMILY_RATIO.get(letters.group(0) if letters else "g", 4)
        if letters and letters.group(0) not in _FAMILY_RATIO:
            ratio = _FAMILY_RATIO.get(letters.group(0)[0], 4)
    return cpu, int(cpu * ratio * 1024)


# -- records ---------------------------------------------------------------------------------
def _default_network(state: State, region: str, zone: str | None = None) -> tuple[dict, dict]:
    vswitch = None
    for vsw in state.table("vpc.vswitches").values():
        if vsw["RegionId"] == region and (zone is None or vsw["ZoneId"] == zone):
            if vsw.get("IsDefault") or vswitch is None:
                vswitch = vsw
                if vsw.get("IsDefault"):
                    break
    if vswitch is None:
        raise ApiError("InvalidVSwitchId.NotFound", f"No vSwitch is available in {zone or region}.", 404)
    group = None
    for sg in state.table("ecs.security_groups").values():
        if sg["RegionId"] == region and sg.get("VpcId") == vswitch["VpcId"]:
            group = sg
            break
    if group is None:
        raise ApiError("InvalidSecurityGroupId.NotFound", f"No security group is available in {region}.", 404)
    return vswitch, group


def _private_ip(state: State, vswitch: dict) -> str:
    key = f"ip:{vswitch['VSwitchId']}"
    n = state.counters.get(key, 0) + 1
    state.counters[key] = n
    base = [int(x) for x in vswitch.get("CidrBlock", "172.16.0.0/24").split("/")[0].split(".")]
    third = (base[2] + (n - 1) // 250) % 256
    return f"{base[0]}.{base[1]}.{third}.{(n - 1) % 250 + 2}"


def new_instance(state: State, *, region: str, vswitch: dict, group: dict, image: dict, instance_type: str,
                 name: str | None, status: str, tags: dict, system_disk: dict, data_disks: list[dict],
                 now: float, description: str = "", host_name: str | None = None) -> dict:
    cpu, memory = instance_type_spec(instance_type)
    instance_id = state.new_id("i")
    rec: dict[str, Any] = {
        "InstanceId": instance_id, "InstanceName": name or instance_id, "Description": description,
        "RegionId": region, "ZoneId": vswitch["ZoneId"], "Status": status, "InstanceType": instance_type,
        "InstanceTypeFamily": instance_type.rsplit(".", 1)[0], "Cpu": cpu, "Memory": memory,
        "ImageId": image["ImageId"], "OSType": image.get("OSType", "linux"), "OSName": image.get("OSName", ""),
        "OSNameEn": image.get("OSNameEn", image.get("OSName", "")),
        "HostName": host_name or f"iZ{instance_id[2:]}Z",
        "VpcAttributes": {"VpcId": vswitch["VpcId"], "VSwitchId": vswitch["VSwitchId"],
                          "PrivateIpAddress": {"IpAddress": [_private_ip(state, vswitch)]}, "NatIpAddress": ""},
        "SecurityGroupIds": [group["SecurityGroupId"]], "Tags": dict(tags), "CreationTime": iso(now),
        "StartTime": iso(now) if status == "Running" else "", "InstanceChargeType": "PostPaid",
        "InternetChargeType": "PayByTraffic", "InstanceNetworkType": "vpc", "StoppedMode":
        "KeepCharging" if status == "Stopped" else "Not-applicable", "ExpiredTime": "2099-12-31T15:59Z",
        "SerialNumber": instance_id[2:], "_created": now, "_op": 0, "_os_boots": not detection.unbootable(image),
    }
    state.table("ecs.instances")[instance_id] = rec
    new_disk(state, rec, kind="system", size=system_disk["size"], category=system_disk["category"],
             image_id=image["ImageId"], now=now, source=image)
    snaps = state.table("ecs.snapshots")
    for n, dd in enumerate(data_disks, start=1):
        snapshot_id = dd.get("snapshot_id", "")
        new_disk(state, rec, kind="data", size=dd["size"], category=dd.get("category", "cloud_essd"), index=n,
                 snapshot_id=snapshot_id, now=now, name=dd.get("name", ""), description=dd.get("description", ""),
                 delete_with_instance=dd.get("delete_with_instance", True), source=snaps.get(snapshot_id))
    if any(dd.get("snapshot_id") for dd in data_disks):
        snapshots.refresh_usage(state, [dd["snapshot_id"] for dd in data_disks if dd.get("snapshot_id")])
    return rec


def instance_out(rec: dict) -> dict:
    return {
        "InstanceId": rec["InstanceId"], "InstanceName": rec.get("InstanceName", ""),
        "Description": rec.get("Description", ""), "Status": rec["Status"], "RegionId": rec["RegionId"],
        "ZoneId": rec["ZoneId"], "ImageId": rec.get("ImageId", ""), "InstanceType": rec.get("InstanceType", ""),
        "InstanceTypeFamily": rec.get("InstanceTypeFamily", ""), "Cpu": rec.get("Cpu", 0),
        "Memory": rec.get("Memory", 0), "OSType": rec.get("OSType", ""), "OSName": rec.get("OSName", ""),
        "OSNameEn": rec.get("OSNameEn", ""), "HostName": rec.get("HostName", ""),
        "VpcAttributes": rec.get("VpcAttributes", {}), "PublicIpAddress": {"IpAddress": []},
        "InnerIpAddress": {"IpAddress": []}, "EipAddress": {"IpAddress": "", "AllocationId": ""},
        "SecurityGroupIds": {"SecurityGroupId": list(rec.get("SecurityGroupIds", []))},
        "Tags": common.tags_out(rec.get("Tags")), "CreationTime": rec.get("CreationTime", ""),
        "StartTime": rec.get("StartTime", ""), "ExpiredTime": rec.get("ExpiredTime", ""),
        "InstanceChargeType": rec.get("InstanceChargeType", "PostPaid"),
        "InternetChargeType": rec.get("InternetChargeType", "PayByTraffic"),
        "InstanceNetworkType": rec.get("InstanceNetworkType", "vpc"), "StoppedMode": rec.get("StoppedMode", ""),
        "SerialNumber": rec.get("SerialNumber", ""), "IoOptimized": True, "DeletionProtection": False,
        "InternetMaxBandwidthIn": 100, "InternetMaxBandwidthOut": 0, "DeviceAvailable": True,
        "OperationLocks": {"LockReason": []}, "ResourceGroupId": "", "KeyPairName": "", "Recyclable": False,
        "GPUAmount": 0, "GPUSpec": "", "SpotStrategy": "NoSpot", "LocalStorageAmount": 0,
        "NetworkInterfaces": {"NetworkInterface": [{
            "Type": "Primary", "NetworkInterfaceId": "eni-" + rec["InstanceId"][2:],
            "MacAddress": "00:16:3e:00:00:01",
            "PrimaryIpAddress": (rec.get("VpcAttributes", {}).get("PrivateIpAddress", {}).get("IpAddress") or [""])[0],
        }]},
        "MetadataOptions": {"HttpEndpoint": "enabled", "HttpTokens": "optional"},
    }


# -- transitions -----------------------------------------------------------------------------
def _begin(state: State, rec: dict, status: str) -> int:
    agent.going_quiet(state, rec)
    rec["_op"] = rec.get("_op", 0) + 1
    rec["Status"] = status
    return rec["_op"]


def _step_later(state: State, at: float, rec: dict, op: int, to: str, then: list[tuple[str, float]]) -> None:
    state.schedule_at(at, "ecs.instance.step", instance_id=rec["InstanceId"], op=op, to=to,
                      then=[list(x) for x in then])


@on_event("ecs.instance.step")
def _apply_step(state: State, event) -> None:
    rec = state.table("ecs.instances").get(event.payload["instance_id"])
    if rec is None or rec.get("_op") != event.payload["op"]:
        return
    to = event.payload["to"]
    rec["Status"] = to
    if to == "Running":
        rec["StartTime"] = iso(event.at)
        rec["StoppedMode"] = "Not-applicable"
        agent.started(rec)
    then = event.payload.get("then") or []
    if then:
        nxt, delay = then[0]
        _step_later(state, event.at + float(delay), rec, rec["_op"], nxt, [tuple(x) for x in then[1:]])


def record_event(state: State, rec: dict, name: str, *, at: float, finish: float | None = None,
                 cycle: str = "Executed", reason: str = "", extended: dict | None = None) -> dict:
    events = state.table("ecs.instance_events")
    event_id = state.new_id("e")
    ev = {
        "EventId": event_id, "InstanceId": rec["InstanceId"], "RegionId": rec["RegionId"],
        "ResourceType": "INSTANCE", "EventType": {"Code": EVENT_CODES.get(name, 0), "Name": name},
        "EventCycleStatus": {"Code": CYCLE_CODES[cycle], "Name": cycle}, "EventPublishTime": iso(at),
        "NotBefore": iso(at), "EventFinishTime": iso(finish) if finish is not None and cycle == "Executed" else "",
        "ImpactLevel": "", "Reason": reason or name, "ReasonCode": "", "ExtendedAttribute": extended or {},
        "_at": at, "_created": at,
    }
    events[event_id] = ev
    return ev


def start(state: State, rec: dict, now: float) -> None:
    if rec["Status"] != "Stopped":
        raise common.incorrect_instance_status(detail=f"Instance {rec['InstanceId']} is {rec['Status']}.")
    op = _begin(state, rec, "Starting")
    rec["_started_at"] = now  # CreateImage of a Stopped instance reads it: started before the snapshot point?
    duration = timings.get(state, "instance_start")
    _step_later(state, now + duration, rec, op, "Running", [])
    record_event(state, rec, "UserOperation.Start", at=now, finish=now + duration, reason="StartInstance")


def stop(state: State, rec: dict, now: float, force: bool = False, stopped_mode: str | None = None) -> None:
    if rec["Status"] != "Running":
        raise common.incorrect_instance_status(detail=f"Instance {rec['InstanceId']} is {rec['Status']}.")
    op = _begin(state, rec, "Stopping")
    rec["StoppedMode"] = "StopCharging" if stopped_mode == "StopCharging" else "KeepCharging"
    duration = timings.get(state, "instance_force_stop" if force else "instance_stop")
    _step_later(state, now + duration, rec, op, "Stopped", [])
    record_event(state, rec, "UserOperation.Stop", at=now, finish=now + duration,
                 reason="StopInstance" + (" (ForceStop)" if force else ""))


# -- RunInstances ----------------------------------------------------------------------------
def _disk_size(p: Params, name: str, default: int, lo: int, hi: int) -> int:
    value = p.str(name)
    if value is None:
        return default
    try:
        size = int(value)
    except ValueError:
        raise invalid_parameter(name, "It must be an integer.") from None
    if not lo <= size <= hi:
        code = "InvalidSystemDiskSize.ValueNotSupported" if name.startswith("SystemDisk") else \
            "InvalidDataDiskSize.ValueNotSupported"
        raise ApiError(code, f"The specified parameter {name} is beyond the permitted range ({lo}-{hi}).", 400)
    return size


def _category(p: Params, name: str) -> str:
    value = p.str(name, "cloud_essd")
    if value not in CATEGORIES:
        code = "InvalidSystemDiskCategory.ValueNotSupported" if name.startswith("SystemDisk") else \
            "InvalidDataDiskCategory.ValueNotSupported"
        raise ApiError(code, f"The specified parameter {name} ({value}) is not valid.", 400)
    return value


def resolve_network(state: State, region: str, vswitch_id: str | None, zone: str | None,
                    group_id: str | None) -> tuple[dict, dict]:
    if vswitch_id:
        vswitch = state.table("vpc.vswitches").get(vswitch_id)
        if vswitch is None or vswitch["RegionId"] != region:
            raise common.not_found("VSwitchId", vswitch_id)
        if zone and vswitch["ZoneId"] != zone:
            raise ApiError("InvalidVSwitchId.NotBelongToZone", "The specified vSwitch is not in the specified zone.",
                           400)
        _, default_group = _default_network(state, region, vswitch["ZoneId"])
    else:
        if zone:
            common.zone_or_error(region, zone)
        vswitch, default_group = _default_network(state, region, zone)
    group = default_group
    if group_id:
        group = state.table("ecs.security_groups").get(group_id)
        if group is None or group["RegionId"] != region:
            raise common.not_found("SecurityGroupId", group_id)
        if group.get("VpcId") and group["VpcId"] != vswitch["VpcId"]:
            raise ApiError("InvalidSecurityGroupId.NotBelongToVpc",
                           "The specified security group and vSwitch are not in the same VPC.", 400)
    return vswitch, group


def _data_disk(state: State, region: str, n: int, dd: dict[str, str]) -> dict:
    """One ``DataDisk.N``: Size (default: the snapshot's size), Category, SnapshotId (any accomplished snapshot of the
    region, an image's system snapshot included), DiskName, Description, DeleteWithInstance (default true)."""
    snapshot_id = dd.get("SnapshotId") or ""
    snap_size = None
    if snapshot_id:
        snap = state.table("ecs.snapshots").get(snapshot_id)
        if snap is None or snap.get("RegionId") != region:
            raise ApiError("InvalidDataDiskSnapshotId.NotFound",
                           f"The specified parameter \"DataDisk.{n}.SnapshotId\" is not valid ({snapshot_id}).", 404)
        if snap["Status"] != "accomplished":
            raise ApiError("InvalidSnapshotId.NotReady", "The specified snapshot has not completed yet.", 403)
        snap_size = int(snap.get("SourceDiskSize") or 20)
    raw_size = dd.get("Size")
    if raw_size in (None, ""):
        if snap_size is None:
            raise missing_parameter(f"DataDisk.{n}.Size")
        size = snap_size
    else:
        try:
            size = int(raw_size)
        except ValueError:
            raise invalid_parameter(f"DataDisk.{n}.Size", "It must be an integer.") from None
        if not 20 <= size <= 32768:
            raise ApiError("InvalidDataDiskSize.ValueNotSupported",
                           f"The specified parameter DataDisk.{n}.Size is beyond the permitted range (20-32768).", 400)
        if snap_size is not None and size < snap_size:
            raise ApiError("InvalidDiskSize.TooSmall",
                           f"Specified disk size is less than the size of snapshot (DataDisk.{n}.Size {size} < "
                           f"{snap_size} GiB of {snapshot_id}).", 403)
    category = dd.get("Category") or "cloud_essd"
    if category not in CATEGORIES:
        raise ApiError("InvalidDataDiskCategory.ValueNotSupported",
                       f"The specified parameter DataDisk.{n}.Category ({category}) is not valid.", 400)
    name = dd.get("DiskName") or ""
    if name and not common.valid_name(name):
        raise ApiError("InvalidDiskName.Malformed",
                       "The specified parameter \"SystemDisk.DiskName or DataDisk.n.DiskName\" is not valid.", 400)
    description = dd.get("Description") or ""
    if description and (len(description) < 2 or len(description) > 256
                        or description.startswith(("http://", "https://"))):
        raise ApiError("InvalidDiskDescription.Malformed", "The specified parameter \"SystemDisk.DiskDescription\" "
                       "or \"DataDisk.n.Description\" is not valid.", 400)
    delete = (dd.get("DeleteWithInstance") or "true").lower()
    if delete not in ("true", "false"):
        raise invalid_parameter(f"DataDisk.{n}.DeleteWithInstance", "It must be true or false.")
    return {"size": size, "category": category, "snapshot_id": snapshot_id, "name": name,
            "description": description, "delete_with_instance": delete == "true"}


@action("ecs", "RunInstances")
def run_instances(call: Call, p: Params) -> dict:
    state = call.state
    region = common.region(call, p)
    key, previous = common.idempotent(call, p, "RunInstances")
    if previous is not None:
        return {"InstanceIdSets": {"InstanceIdSet": previous}, "OrderId": "", "TradePrice": 0.0}
    image_id = p.str("ImageId", required=True)
    instance_type = p.str("InstanceType", required=True)
    instance_type_spec(instance_type)
    amount = p.int("Amount", 1, lo=1, hi=100)
    image = common.get_image(state, region, image_id)
    if image.get("Status") != "Available":
        raise ApiError("InvalidImageId.NotFound" if image.get("Status") in ("CreateFailed",) else "IncorrectImageStatus",
                       f"The specified image {image_id} is not available.", 400)
    vswitch, group = resolve_network(state, region, p.str("VSwitchId"), p.str("ZoneId"),
                                     p.str("SecurityGroupId"))
    tags = common.parse_tags(p)
    image_size = int(image.get("Size") or 20)
    sys_size = _disk_size(p, "SystemDisk.Size", max(40, image_size), 20, 2048)
    if sys_size < image_size:
        raise ApiError("InvalidSystemDiskSize.LessThanImageSize",
                       f"The specified SystemDisk.Size ({sys_size}) is less than the image size ({image_size}).", 400)
    system_disk = {"size": sys_size, "category": _category(p, "SystemDisk.Category")}
    data_disks = [_data_disk(state, region, n, dd) for n, dd in enumerate(p.struct_list("DataDisk"), start=1)]
    if len(data_disks) > 16:
        raise ApiError("InvalidDataDiskSize.CountLimitExceed", "At most 16 data disks can be attached.", 400)
    name = p.str("InstanceName", max_len=128)
    if name is not None and (len(name) < 2 or name.startswith(("http://", "https://"))):
        raise ApiError("InvalidInstanceName.Malformed", "The specified parameter InstanceName is not valid.", 400)
    unique = p.bool("UniqueSuffix")
    description = common.check_description(p.str("Description"))
    common.dry_run(p)
    now = call.now
    ids = []
    for n in range(amount):
        inst_name = f"{name}{n + 1:03d}" if name and unique and amount > 1 else name
        rec = new_instance(state, region=region, vswitch=vswitch, group=group, image=image,
                           instance_type=instance_type, name=inst_name, status="Pending", tags=tags,
                           system_disk=system_disk, data_disks=data_disks, now=now, description=description,
                           host_name=p.str("HostName"))
        op = _begin(state, rec, "Pending")
        _step_later(state, now + timings.get(state, "instance_pending"), rec, op, "Starting",
                    [("Running", timings.get(state, "instance_start"))])
        ids.append(rec["InstanceId"])
    common.remember(call, p, key, ids)
    return {"InstanceIdSets": {"InstanceIdSet": ids}, "OrderId": "", "TradePrice": 0.0}


# -- Describe* -------------------------------------------------------------------------------
def _instances_in(state: State, region: str, ids: list[str] | None = None) -> list[dict]:
    table = state.table("ecs.instances")
    if ids:
        seen, out = set(), []
        for i in ids:
            rec = table.get(i)
            if rec is not None and rec["RegionId"] == region and i not in seen:
                seen.add(i)
                out.append(rec)
        return out
    return [r for r in table.values() if r["RegionId"] == region]


@action("ecs", "DescribeInstances")
def describe_instances(call: Call, p: Params) -> dict:
    region = common.region(call, p)
    ids = common.id_list(p, "InstanceIds")
    if len(ids) > 100:
        raise invalid_parameter("InstanceIds", "At most 100 instance ids are allowed.")
    status = p.str("Status")
    if status is not None and status not in STATUSES:
        raise ApiError("InvalidStatus.ValueNotSupported", f"The specified Status {status!r} is not supported.", 400)
    zone, vpc, vsw = p.str("ZoneId"), p.str("VpcId"), p.str("VSwitchId")
    group, image_id = p.str("SecurityGroupId"), p.str("ImageId")
    itype, family = p.str("InstanceType"), p.str("InstanceTypeFamily")
    name = common.name_matcher(p.str("InstanceName"))
    ips = set(common.id_list(p, "PrivateIpAddresses")) if "PrivateIpAddresses" in p else None
    tags = common.tag_filters(p)
    preds = []
    if status:
        preds.append(lambda r: r["Status"] == status)
    if zone:
        preds.append(lambda r: r["ZoneId"] == zone)
    if vpc:
        preds.append(lambda r: (r.get("VpcAttributes") or {}).get("VpcId") == vpc)
    if vsw:
        preds.append(lambda r: (r.get("VpcAttributes") or {}).get("VSwitchId") == vsw)
    if group:
        preds.append(lambda r: group in r.get("SecurityGroupIds", []))
    if image_id:
        preds.append(lambda r: r.get("ImageId") == image_id)
    if itype:
        preds.append(lambda r: r.get("InstanceType") == itype)
    if family:
        preds.append(lambda r: r.get("InstanceTypeFamily") == family)
    if name:
        preds.append(lambda r: name(r.get("InstanceName", "")))
    if ips is not None:
        preds.append(lambda r: bool(ips & set(((r.get("VpcAttributes") or {}).get("PrivateIpAddress") or {})
                                               .get("IpAddress", []))))
    for key, value in tags:
        if value is None:
            preds.append(lambda r, k=key: k in (r.get("Tags") or {}))
        else:
            preds.append(lambda r, k=key, v=value: (r.get("Tags") or {}).get(k) == v)
    table = call.state.table("ecs.instances")
    if ids:
        source = _instances_in(call.state, region, ids)
    else:
        source = (r for r in table.values() if r["RegionId"] == region)
    if not preds:
        items = list(source)
    elif len(preds) == 1:
        items = list(filter(preds[0], source))
    else:
        items = [r for r in source if all(pred(r) for pred in preds)]
    page, counters = common.paginate(items, p, default_size=10, max_size=100)
    return {"Instances": {"Instance": [instance_out(r) for r in page]}, **counters}


@action("ecs", "DescribeInstanceStatus")
def describe_instance_status(call: Call, p: Params) -> dict:
    region = common.region(call, p)
    zone = p.str("ZoneId")
    ids = p.ids("InstanceId")
    items = [r for r in _instances_in(call.state, region, ids or None) if not zone or r["ZoneId"] == zone]
    page, counters = common.paginate(items, p, default_size=10, max_size=50, token_scheme=False)
    return {"InstanceStatuses": {"InstanceStatus": [{"InstanceId": r["InstanceId"], "Status": r["Status"]}
                                                    for r in page]}, **counters}


def _scheduled_events(state: State, instance_id: str) -> list[dict]:
    return [e for e in state.table("ecs.instance_events").values()
            if e["InstanceId"] == instance_id and e["EventCycleStatus"]["Name"] in ("Scheduled", "Executing")]


def _event_out(e: dict, with_instance: bool = True) -> dict:
    out = {k: v for k, v in e.items() if not k.startswith("_") and k != "RegionId"}
    if not with_instance:
        out.pop("InstanceId", None)
        out.pop("ResourceType", None)
        out.pop("EventFinishTime", None)
        out.pop("ReasonCode", None)
    return out


@action("ecs", "DescribeInstancesFullStatus")
def describe_instances_full_status(call: Call, p: Params) -> dict:
    region = common.region(call, p)
    ids = p.ids("InstanceId")
    if len(ids) > 100:
        raise invalid_parameter("InstanceId", "At most 100 instance ids are allowed.")
    status = p.str("Status")
    health = p.str("HealthStatus")
    event_type = p.str("EventType")
    items = []
    for r in _instances_in(call.state, region, ids or None):
        if status and r["Status"] != status:
            continue
        if health and health != "Ok":
            continue
        events = _scheduled_events(call.state, r["InstanceId"])
        if event_type and not any(e["EventType"]["Name"] == event_type for e in events):
            continue
        items.append((r, events))
    page, counters = common.paginate(items, p, default_size=10, max_size=100, token_scheme=False)
    return {"InstanceFullStatusSet": {"InstanceFullStatusType": [{
        "InstanceId": r["InstanceId"],
        "Status": {"Code": STATUS_CODES.get(r["Status"], 0), "Name": r["Status"]},
        "HealthStatus": {"Code": 0, "Name": "Ok"},
        "ScheduledSystemEventSet": {"ScheduledSystemEventType": [_event_out(e, False) for e in events]},
    } for r, events in page]}, **counters}


@action("ecs", "DescribeInstanceHistoryEvents")
def describe_instance_history_events(call: Call, p: Params) -> dict:
    region = common.region(call, p)
    instance_id = p.str("InstanceId")
    event_ids = set(p.repeat_list("EventId"))
    event_type = p.str("EventType")
    cycles = set(p.repeat_list("InstanceEventCycleStatus")) or ({p.str("EventCycleStatus")} - {None})
    types = set(p.repeat_list("InstanceEventType"))
    resource_ids = set(p.repeat_list("ResourceId"))
    start_s, end_s = p.str("EventPublishTime.Start"), p.str("EventPublishTime.End")
    try:
        start = parse_iso(start_s) if start_s else None
        end = parse_iso(end_s) if end_s else None
    except ValueError:
        raise invalid_parameter("EventPublishTime", "It must be a UTC time like 2024-01-01T00:00:00Z.") from None
    items = []
    for e in call.state.table("ecs.instance_events").values():
        if e["RegionId"] != region:
            continue
        if instance_id and e["InstanceId"] != instance_id:
            continue
        if resource_ids and e["InstanceId"] not in resource_ids:
            continue
        if event_ids and e["EventId"] not in event_ids:
            continue
        if event_type and e["EventType"]["Name"] != event_type:
            continue
        if types and e["EventType"]["Name"] not in types:
            continue
        if cycles and e["EventCycleStatus"]["Name"] not in cycles:
            continue
        if start is not None and e["_at"] < start:
            continue
        if end is not None and e["_at"] > end:
            continue
        items.append(e)
    items.sort(key=lambda e: (-e["_at"], e["EventId"]))
    page, counters = common.paginate(items, p, default_size=10, max_size=100)
    return {"InstanceSystemEventSet": {"InstanceSystemEventType": [_event_out(e) for e in page]}, **counters}


# -- Start / Stop / Reboot / Delete ----------------------------------------------------------
@action("ecs", "StartInstance")
def start_instance(call: Call, p: Params) -> dict:
    rec = common.get_instance(call.state, p.str("InstanceId"), p.str("RegionId"))
    common.dry_run(p)
    start(call.state, rec, call.now)
    return {}


@action("ecs", "StopInstance")
def stop_instance(call: Call, p: Params) -> dict:
    rec = common.get_instance(call.state, p.str("InstanceId"), p.str("RegionId"))
    mode = p.str("StoppedMode", choices=("KeepCharging", "StopCharging"))
    force = p.bool("ForceStop")
    common.dry_run(p)
    stop(call.state, rec, call.now, force, mode)
    return {}


def _batch(call: Call, p: Params, fn) -> dict:
    region = common.region(call, p)
    ids = p.repeat_list("InstanceId")
    if not ids:
        raise missing_parameter("InstanceId")
    if len(ids) > 100:
        raise invalid_parameter("InstanceId", "At most 100 instance ids are allowed.")
    mode = p.str("BatchOptimization", "AllTogether", choices=("AllTogether", "SuccessFirst"))
    recs = [common.get_instance(call.state, i, region) if mode == "AllTogether"
            else call.state.table("ecs.instances").get(i) for i in ids]
    common.dry_run(p)
    if mode == "AllTogether":
        for rec in recs:
            fn(rec, check_only=True)
    out = []
    for rec, i in zip(recs, ids, strict=True):
        if rec is None or rec["RegionId"] != region:
            out.append({"InstanceId": i, "Code": "InvalidInstanceId.NotFound",
                        "Message": "The specified InstanceId does not exist.", "PreviousStatus": "",
                        "CurrentStatus": ""})
            continue
        previous = rec["Status"]
        try:
            fn(rec, check_only=False)
        except ApiError as exc:
            out.append({"InstanceId": i, "Code": exc.code, "Message": exc.message, "PreviousStatus": previous,
                        "CurrentStatus": rec["Status"]})
            continue
        out.append({"InstanceId": i, "Code": "200", "Message": "success", "PreviousStatus": previous,
                    "CurrentStatus": rec["Status"]})
    return {"InstanceResponses": {"InstanceResponse": out}}


@action("ecs", "StartInstances")
def start_instances(call: Call, p: Params) -> dict:
    def fn(rec: dict, check_only: bool) -> None:
        if check_only:
            if rec["Status"] != "Stopped":
                raise common.incorrect_instance_status(detail=f"Instance {rec['InstanceId']} is {rec['Status']}.")
            return
        start(call.state, rec, call.now)

    return _batch(call, p, fn)


@action("ecs", "StopInstances")
def stop_instances(call: Call, p: Params) -> dict:
    force = p.bool("ForceStop")
    mode = p.str("StoppedMode", choices=("KeepCharging", "StopCharging"))

    def fn(rec: dict, check_only: bool) -> None:
        if check_only:
            if rec["Status"] != "Running":
                raise common.incorrect_instance_status(detail=f"Instance {rec['InstanceId']} is {rec['Status']}.")
            return
        stop(call.state, rec, call.now, force, mode)

    return _batch(call, p, fn)


@action("ecs", "RebootInstance")
def reboot_instance(call: Call, p: Params) -> dict:
    state = call.state
    rec = common.get_instance(state, p.str("InstanceId"), p.str("RegionId"))
    force = p.bool("ForceStop")
    common.dry_run(p)
    if rec["Status"] != "Running":
        raise common.incorrect_instance_status(detail=f"Instance {rec['InstanceId']} is {rec['Status']}.")
    now = call.now
    op = _begin(state, rec, "Starting")  # "After this operation is called, the status of the instance changes to
    down = timings.get(state, "instance_force_stop" if force else "instance_reboot_stop")  # Starting." (API docs)
    up = timings.get(state, "instance_start")
    _step_later(state, now + down + up, rec, op, "Running", [])
    record_event(state, rec, "UserOperation.Reboot", at=now, finish=now + down + up,
                 reason="RebootInstance" + (" (ForceStop)" if force else ""))
    return {}


def release_instance(state: State, rec: dict) -> None:
    state.table("ecs.instances").pop(rec["InstanceId"], None)
    disks = state.table("ecs.disks")
    for d in common.disks_of(state, rec["InstanceId"]):
        if d.get("DeleteWithInstance", True):
            disks.pop(d["DiskId"], None)
        else:
            d.update(InstanceId="", Status="Available", Device="")


@action("ecs", "DeleteInstance")
def delete_instance(call: Call, p: Params) -> dict:
    rec = common.get_instance(call.state, p.str("InstanceId"), p.str("RegionId"))
    force = p.bool("Force") or p.bool("ForceStop")
    common.dry_run(p)
    if rec["Status"] != "Stopped" and not (force and rec["Status"] in ("Running", "Stopping", "Starting")):
        raise common.incorrect_instance_status(detail="The instance must be Stopped (or use Force=true).")
    release_instance(call.state, rec)
    return {}


# -- ReplaceSystemDisk -----------------------------------------------------------------------
@action("ecs", "ReplaceSystemDisk")
def replace_system_disk(call: Call, p: Params) -> dict:
    state = call.state
    rec = common.get_instance(state, p.str("InstanceId"), p.str("RegionId"))
    key, previous = common.idempotent(call, p, "ReplaceSystemDisk")
    if previous is not None:
        return {"DiskId": previous}
    image_id = p.str("ImageId", required=True)
    image = common.get_image(state, rec["RegionId"], image_id)
    if image.get("Status") != "Available":
        raise ApiError("IncorrectImageStatus", f"The specified image {image_id} is not available.", 400)
    if rec["Status"] != "Stopped":
        raise common.incorrect_instance_status(detail="The instance must be Stopped to replace its system disk.")
    disks = common.disks_of(state, rec["InstanceId"])
    old = next((d for d in disks if d["Type"] == "system"), None)
    image_size = int(image.get("Size") or 20)
    default = max(image_size, int(old["Size"]) if old else 40)
    size = _disk_size(p, "SystemDisk.Size", default, 20, 2048)
    if size < image_size:
        raise ApiError("InvalidSystemDiskSize.LessThanImageSize",
                       f"The specified SystemDisk.Size ({size}) is less than the image size ({image_size}).", 400)
    now = call.now
    category = old["Category"] if old else "cloud_essd"
    if old:
        state.table("ecs.disks").pop(old["DiskId"], None)
    disk = new_disk(state, rec, kind="system", size=size, category=category, image_id=image["ImageId"], now=now,
                    source=image)
    rec["_os_boots"] = not detection.unbootable(image)
    rec["_op"] = rec.get("_op", 0) + 1
    rec.update(ImageId=image["ImageId"], OSType=image.get("OSType", rec.get("OSType")),
               OSName=image.get("OSName", rec.get("OSName")), OSNameEn=image.get("OSNameEn", rec.get("OSNameEn")))
    record_event(state, rec, "UserOperation.ReplaceSystemDisk", at=now, finish=now, reason="ReplaceSystemDisk",
                 extended={"DiskId": disk["DiskId"], "Device": "/dev/xvda"})
    common.remember(call, p, key, disk["DiskId"])
    return {"DiskId": disk["DiskId"]}


# -- fleet spec ------------------------------------------------------------------------------
@fleet_section("instances", order=50)
def load_instances(state: State, spec: Any) -> list[str]:
    """``[{"region", "zone"?, "name"?, "count"?, "instance_type"?, "status"?, "tags"?, "system_disk_size"?,
    "data_disks"?: [{"size": 100}], "image_id"?}]`` -> ids of the created (Running/Stopped) instances.

    ``name`` may contain ``{n}`` (1-based index within the entry); otherwise entries with count > 1
    get a ``-NNN`` suffix.
    """
    if not isinstance(spec, list):
        raise ApiError("InvalidFleetSpec", "instances must be a list", 400)
    now = state.now()
    ids: list[str] = []
    network_cache: dict[tuple[str, str | None], tuple[dict, dict]] = {}
    for entry in spec:
        if not isinstance(entry, dict) or entry.get("region") not in REGIONS:
            raise ApiError("InvalidFleetSpec", f"instances entry needs a known region: {entry!r}", 400)
        region = entry["region"]
        zone = entry.get("zone")
        if zone is not None and zone not in REGIONS[region]["Zones"]:
            raise ApiError("InvalidFleetSpec", f"unknown zone {zone!r} for {region}", 400)
        status = entry.get("status", "Running")
        if status not in ("Running", "Stopped"):
            raise ApiError("InvalidFleetSpec", "status must be Running or Stopped", 400)
        image = common.find_image(state, region, entry.get("image_id") or PUBLIC_IMAGES[0]["ImageId"])
        if image is None:
            raise ApiError("InvalidFleetSpec", f"unknown image {entry.get('image_id')!r} in {region}", 400)
        tags = {str(k): str(v) for k, v in (entry.get("tags") or {}).items()}
        for k, v in tags.items():
            common.check_tag_key(k)
            common.check_tag_value(v)
        cache_key = (region, zone)
        if cache_key not in network_cache:
            network_cache[cache_key] = _default_network(state, region, zone)
        vswitch, group = network_cache[cache_key]
        count = fleet_count(entry.get("count", 1), "instances[].count")
        base = entry.get("name")
        itype = entry.get("instance_type", "ecs.g7.large")
        sys_disk = {"size": int(entry.get("system_disk_size", max(40, int(image.get("Size") or 20)))),
                    "category": entry.get("system_disk_category", "cloud_essd")}
        data = [{"size": int(d.get("size", 100)), "category": d.get("category", "cloud_essd")}
                for d in entry.get("data_disks") or []]
        for n in range(1, count + 1):
            if base and "{n}" in base:
                name = base.replace("{n}", str(n))
            elif base and count > 1:
                name = f"{base}-{n:03d}"
            else:
                name = base
            rec = new_instance(state, region=region, vswitch=vswitch, group=group, image=image,
                               instance_type=itype, name=name, status=status, tags=tags, system_disk=sys_disk,
                               data_disks=data, now=now)
            if entry.get("creation_time"):
                rec["CreationTime"] = entry["creation_time"]
            ids.append(rec["InstanceId"])
    return ids


@admin_route("POST", "ecs/system-event")
def _inject_system_event(emulator: Any, body: dict, query: dict) -> dict:
    """Schedule a system event: ``{"instance_id", "event_type": "SystemMaintenance.Reboot", "in_seconds": 3600}``.

    It shows in DescribeInstancesFullStatus until ``NotBefore``; then the instance reboots
    (for *.Reboot / *.Redeploy) or stops (*.Stop) and the event becomes Executed history.
    """
    state = emulator.state
    rec = state.table("ecs.instances").get(body.get("instance_id", ""))
    if rec is None:
        raise ApiError("InvalidInstanceId.NotFound", "no such instance", 404)
    name = body.get("event_type", "SystemMaintenance.Reboot")
    now = state.now()
    when = now + float(body.get("in_seconds", 3600))
    ev = record_event(state, rec, name, at=now, cycle="Scheduled", reason=body.get("reason", "System maintenance"))
    ev["NotBefore"] = iso(when)
    ev["ImpactLevel"] = "100"
    state.schedule_at(when, "ecs.instance.system_event", event_id=ev["EventId"])
    return {"EventId": ev["EventId"], "NotBefore": ev["NotBefore"]}


@on_event("ecs.instance.system_event")
def _execute_system_event(state: State, event) -> None:
    ev = state.table("ecs.instance_events").get(event.payload["event_id"])
    if ev is None or ev["EventCycleStatus"]["Name"] != "Scheduled":
        return
    rec = state.table("ecs.instances").get(ev["InstanceId"])
    at = event.at
    ev["EventCycleStatus"] = {"Code": CYCLE_CODES["Executed"], "Name": "Executed"}
    ev["EventFinishTime"] = iso(at)
    ev["_at"] = at
    if rec is None:
        return
    name = ev["EventType"]["Name"]
    if name.endswith(".Stop") and rec["Status"] == "Running":
        op = _begin(state, rec, "Stopping")
        _step_later(state, at + timings.get(state, "instance_stop"), rec, op, "Stopped", [])
    elif rec["Status"] == "Running":
        op = _begin(state, rec, "Stopping")
        _step_later(state, at + timings.get(state, "instance_reboot_stop"), rec, op, "Starting",
                    [("Running", timings.get(state, "instance_start"))])
