"""RDS API (2014-08-15): DescribeDBInstances, DescribeBackups, CreateBackup, DescribeBackupTasks, backup downloads.

Tables: ``rds.instances`` (DBInstanceId -> record), ``rds.backups`` (BackupId -> record),
``rds.backup_jobs`` (BackupJobId -> record). Instances and their existing backups come from the
fleet section ``rds_instances``::

    rds_instances:
      - {region: cn-hangzhou, id: rm-demo01, engine: MySQL, engine_version: "8.0", tags: {env: prod},
         backups: [{size: 2167808, start_time: "2024-01-01T00:00:00Z", method: Physical}]}
      - {region: cn-beijing, engine: PostgreSQL, engine_version: "16.0", backup_count: 7, backup_size: 1048576}

CreateBackup answers a BackupJobId at once; the backup set appears (BackupMode Manual) after
``60 s + size / 50 MiB/s`` of simulated time, with the size of the instance's latest backup
(``backup_size`` of the fleet entry, 1 GiB by default). A second CreateBackup while one runs on the
same instance gives ``OperationDenied.BackupJobExists``. Fault knob (``PUT /_emulator/faults``):
``{"rds_backup_fail": {"rate": 0.5, "instance_ids": [...]}}`` makes new backups end ``Failed``.

Backup download URLs point at the emulator itself
(``GET|HEAD /_emulator/download/rds/<BackupId>?expires=<sim epoch>``): deterministic bytes of
exactly ``BackupSize`` (a 64 KiB pattern derived from the backup id, repeated), streamed in chunks,
with ``Range`` support (206, 416), ``Content-Length``, ``ETag`` and ``Last-Modified``. URLs expire
after two simulated hours (403 ``AccessDenied``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from typing import Any

from aiohttp import web

from .clock import iso, iso_minutes, parse_iso
from .ecs.regions import REGIONS, region_or_error
from .errors import ApiError
from .registry import fleet_count, fleet_section, raw_route
from .rpc import Call, Params, action
from .state import State, on_event

INSTANCES, BACKUPS, JOBS = "rds.instances", "rds.backups", "rds.backup_jobs"
ENGINES = {"MySQL": ("8.0", "mysql"), "PostgreSQL": ("16.0", "pg"), "SQLServer": ("2019_std_ha", "mssql"),
           "MariaDB": ("10.3", "mariadb")}
METHODS = ("Physical", "Logical", "Snapshot")
DEFAULT_BACKUP_SIZE = 1024**3
BACKUP_RATE = 50 * 1024**2  # bytes per simulated second
BACKUP_OVERHEAD = 60.0
URL_TTL = 7200
PATTERN_BLOCKS = 2048  # 2048 x 32-byte SHA-256 digests = a 64 KiB pattern
CHUNK = 1024**2
DOWNLOAD_PREFIX = "/_emulator/download/rds/"


def _err(code: str, message: str, status: int = 400) -> ApiError:
    return ApiError(code, message, status)


def _instance_not_found(instance_id: str) -> ApiError:
    return _err("InvalidDBInstanceId.NotFound", f"Specified instance does not exist or not support. ({instance_id})",
                404)


def _next_number(state: State, name: str, base: int) -> str:
    n = state.counters.get(name, 0) + 1
    state.counters[name] = n
    return str(base + n)


def _instance(call: Call, instance_id: str | None) -> dict:
    if not instance_id:
        raise _err("MissingDBInstanceId", "DBInstanceId is mandatory for this action.")
    rec = call.state.table(INSTANCES).get(instance_id)
    if rec is None:
        raise _instance_not_found(instance_id)
    return rec


# -- DescribeDBInstances --------------------------------------------------------------------------
def _instance_view(state: State, rec: dict) -> dict:
    return {
        "DBInstanceId": rec["DBInstanceId"], "DBInstanceDescription": rec.get("DBInstanceDescription", ""),
        "DBInstanceStatus": rec["DBInstanceStatus"], "DBInstanceType": "Primary", "Engine": rec["Engine"],
        "EngineVersion": rec["EngineVersion"], "RegionId": rec["RegionId"], "ZoneId": rec["ZoneId"],
        "DBInstanceClass": rec.get("DBInstanceClass", "mysql.n2.medium.1"), "DBInstanceNetType": "Intranet",
        "InstanceNetworkType": "VPC", "PayType": rec.get("PayType", "Postpaid"), "ConnectionMode": "Standard",
        "ConnectionString": f"{rec['DBInstanceId']}.{ENGINES.get(rec['Engine'], ('', 'mysql'))[1]}.rds.aliyuncs.com",
        "CreateTime": rec["CreateTime"], "ExpireTime": "", "DestroyTime": "", "LockMode": "Unlock", "LockReason": "",
        "MutriORsignle": False, "Category": rec.get("Category", "HighAvailability"),
        "DBInstanceStorageType": "cloud_essd", "VpcId": rec.get("VpcId", ""), "VSwitchId": rec.get("VSwitchId", ""),
        "VpcCloudInstanceId": rec["DBInstanceId"], "ResourceGroupId": "rg-default", "DeletionProtection": False,
        "MasterInstanceId": "", "GuardDBInstanceId": "", "TempDBInstanceId": "", "Tips": "", "TipsLevel": 0,
        "DBInstanceCPU": "2", "DBInstanceMemory": 4096, "GeneralGroupName": "",
        "ReadOnlyDBInstanceIds": {"ReadOnlyDBInstanceId": []},
    }


def _int_param(p: Params, name: str, default: int, lo: int, hi: int) -> int:
    value = p.str(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = lo - 1
    if not lo <= number <= hi:
        raise _err(f"Invalid{name}.Malformed", f"Specified {name} is not valid.")
    return number


@action("rds", "DescribeDBInstances")
def describe_db_instances(call: Call, p: Params) -> dict:
    region = region_or_error(p.str("RegionId"))
    ids = set(p.csv("DBInstanceId"))
    engine, status = p.str("Engine"), p.str("DBInstanceStatus")
    engine_version, zone, vpc_id = p.str("EngineVersion"), p.str("ZoneId"), p.str("VpcId")
    search = (p.str("SearchKey") or "").lower()
    tags: dict[str, str] = {}
    if "Tags" in p:
        raw = p.json("Tags")
        if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
            raise _err("InvalidTags.Malformed", "The specified parameter Tags is not valid.")
        if len(raw) > 5:
            raise _err("InvalidTags.Malformed", "You can specify up to 5 tags.")
        tags = {k: str(v) for k, v in raw.items()}
    rows = []
    for rec in call.state.table(INSTANCES).values():
        if rec["RegionId"] != region:
            continue
        if ids and rec["DBInstanceId"] not in ids:
            continue
        if engine and rec["Engine"].lower() != engine.lower():
            continue
        if engine_version and rec["EngineVersion"] != engine_version:
            continue
        if status and rec["DBInstanceStatus"] != status:
            continue
        if zone and rec["ZoneId"] != zone:
            continue
        if vpc_id and rec.get("VpcId") != vpc_id:
            continue
        if search and search not in rec["DBInstanceId"].lower() and search not in rec.get(
                "DBInstanceDescription", "").lower():
            continue
        if tags and not any(rec.get("Tags", {}).get(k) == v for k, v in tags.items()):
            continue
        rows.append(rec)
    rows.sort(key=lambda r: (r["CreateTime"], r["DBInstanceId"]))
    body: dict[str, Any]
    if "MaxResults" in p or "NextToken" in p:
        size = _int_param(p, "MaxResults", 30, 1, 100)
        token = p.str("NextToken")
        start = 0
        if token:
            if not (token.isascii() and token.isdigit()):
                raise _err("InvalidNextToken.Malformed", "Specified NextToken is not valid.")
            start = int(token)
        page = rows[start:start + size]
        nxt = str(start + size) if start + size < len(rows) else ""
        body = {"PageNumber": 1, "PageRecordCount": len(page), "TotalRecordCount": len(page), "NextToken": nxt}
    else:
        number = _int_param(p, "PageNumber", 1, 1, 2**31 - 1)
        size = _int_param(p, "PageSize", 30, 1, 100)
        page = rows[(number - 1) * size: number * size]
        body = {"PageNumber": number, "PageRecordCount": len(page), "TotalRecordCount": len(rows), "NextToken": ""}
    body["Items"] = {"DBInstance": [_instance_view(call.state, r) for r in page]}
    return body


# -- backups ------------------------------------------------------------------------------------
def _backup_view(call: Call, instance: dict, b: dict) -> dict:
    expires = int(call.now + URL_TTL)
    url = f"{call.base_url}{DOWNLOAD_PREFIX}{b['BackupId']}?expires={expires}"
    success = b["BackupStatus"] == "Success"
    return {
        "BackupId": b["BackupId"], "DBInstanceId": b["DBInstanceId"], "BackupStatus": b["BackupStatus"],
        "BackupStartTime": iso(b["StartTime"]), "BackupEndTime": iso(b["EndTime"]),
        "BackupType": b.get("BackupType", "FullBackup"), "BackupMode": b["BackupMode"],
        "BackupMethod": b["BackupMethod"], "BackupSize": int(b["BackupSize"]),
        "BackupDownloadURL": url if success else "",
        "BackupIntranetDownloadURL": (url + "&network=intranet") if success else "",
        "BackupLocation": "OSS", "BackupExtractionStatus": "", "BackupScale": "DBInstance", "BackupDBNames": "",
        "TotalBackupSize": int(b["BackupSize"]), "BackupInitiator": "User" if b["BackupMode"] == "Manual" else "System",
        "ConsistentTime": int(b["EndTime"]), "StoreStatus": "Disabled", "MetaStatus": "OK",
        "Engine": instance["Engine"], "EngineVersion": instance["EngineVersion"],
        "HostInstanceID": instance.get("HostInstanceID", "1001"), "IsAvail": 1 if success else 0, "Checksum": "",
        "Encryption": "{}", "StorageClass": "0", "CopyOnlyBackup": "0", "ExpectExpireTime": "",
        "BackupDownloadLinkByDB": {"BackupDownloadLinkByDB": []},
    }


def _parse_minutes(p: Params, name: str) -> float | None:
    value = p.str(name)
    if value is None:
        return None
    if not re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?Z$", value):
        raise _err(f"Invalid{name}.Malformed", f"Specified {name} is not valid.")
    try:
        return parse_iso(value)
    except ValueError:
        raise _err(f"Invalid{name}.Malformed", f"Specified {name} is not valid.") from None


@action("rds", "DescribeBackups")
def describe_backups(call: Call, p: Params) -> dict:
    instance = _instance(call, p.str("DBInstanceId"))  # no RegionId on the wire: ids are global
    backup_id, status, mode = p.str("BackupId"), p.str("BackupStatus"), p.str("BackupMode")
    backup_type = p.str("BackupType")
    start, end = _parse_minutes(p, "StartTime"), _parse_minutes(p, "EndTime")
    if start is not None and end is not None and end < start:
        raise _err("InvalidEndTime.Malformed", "The end time must be later than the start time.")
    number = _int_param(p, "PageNumber", 1, 1, 2**31 - 1)
    size = _int_param(p, "PageSize", 30, 30, 100)
    rows = []
    for b in call.state.table(BACKUPS).values():
        if b["DBInstanceId"] != instance["DBInstanceId"]:
            continue
        if backup_id and b["BackupId"] != backup_id:
            continue
        if status and b["BackupStatus"] != status:
            continue
        if mode and b["BackupMode"] != mode:
            continue
        if backup_type and b.get("BackupType", "FullBackup") != backup_type:
            continue
        if start is not None and b["StartTime"] < start:
            continue
        if end is not None and b["StartTime"] > end + 59:  # minute precision, inclusive
            continue
        rows.append(b)
    rows.sort(key=lambda b: (-b["StartTime"], -int(b["BackupId"])))
    page = rows[(number - 1) * size: number * size]
    return {"Items": {"Backup": [_backup_view(call, instance, b) for b in page]}, "PageNumber": str(number),
            "PageRecordCount": str(len(page)), "TotalRecordCount": str(len(rows)), "TotalEcsSnapshotSize": 0}


@action("rds", "CreateBackup")
def create_backup(call: Call, p: Params) -> dict:
    instance = _instance(call, p.str("DBInstanceId"))
    method = p.str("BackupMethod") or "Physical"
    if method not in METHODS:
        raise _err("InvalidBackupMethod.ValueNotSupport", "The specified parameter BackupMethod is not valid.")
    backup_type = p.str("BackupType") or "Auto"
    if backup_type not in ("Auto", "FullBackup", "IncrementalBackup"):
        raise _err("InvalidBackupType.ValueNotSupport", "The specified parameter BackupType is not valid.")
    strategy = p.str("BackupStrategy")
    if strategy is not None and strategy not in ("db", "instance"):
        raise _err("InvalidBackupStrategy.ValueNotSupport", "The specified parameter BackupStrategy is not valid.")
    if instance["DBInstanceStatus"] != "Running":
        raise _err("IncorrectDBInstanceState", "Current DB instance state does not support this operation.", 403)
    state = call.state
    if any(j["DBInstanceId"] == instance["DBInstanceId"] and j["Status"] == "Running"
           for j in state.table(JOBS).values()):
        raise _err("OperationDenied.BackupJobExists", "The operation is not permitted due to backup job exist.", 403)
    job_id = _next_number(state, "rds.backup_job", 1_000_000)
    size = int(instance.get("BackupSize", DEFAULT_BACKUP_SIZE))
    fail_cfg = call.extra["emulator"].faults.get("rds_backup_fail", {}) if "emulator" in call.extra else {}
    targets = fail_cfg.get("instance_ids")
    fails = (not targets or instance["DBInstanceId"] in targets) and state.rng("rds_backup_fail").random() < float(
        fail_cfg.get("rate", 0.0))
    state.table(JOBS)[job_id] = {"BackupJobId": job_id, "DBInstanceId": instance["DBInstanceId"], "Status": "Running",
                                 "BackupMethod": method, "BackupType": "FullBackup", "Size": size,
                                 "StartTime": call.now, "Fail": fails, "BackupId": ""}
    state.schedule(BACKUP_OVERHEAD + size / BACKUP_RATE, "rds.backup.done", job_id=job_id)
    state.dirty = True
    return {"BackupJobId": job_id}


@action("rds", "DescribeBackupTasks")
def describe_backup_tasks(call: Call, p: Params) -> dict:
    """Backup jobs not finished yet (``BackupJobStatus`` NoStart/Progressing); with ``BackupJobId``, that job in any
    state (``Finished`` jobs name their ``BackupId``, as the real API documents)."""
    instance = _instance(call, p.str("DBInstanceId"))
    job_id, mode, wanted = p.str("BackupJobId"), p.str("BackupMode"), p.str("BackupJobStatus")
    if job_id is not None and not (job_id.isascii() and job_id.isdigit()):
        raise _err("InvalidBackupJobId.Malformed", "The specified parameter BackupJobId is not valid.")
    if mode is not None and mode not in ("Automated", "Manual"):
        raise _err("InvalidBackupMode.ValueNotSupport", "The specified parameter BackupMode is not valid.")
    if wanted is not None and wanted not in ("NoStart", "Progressing"):
        raise _err("InvalidBackupJobStatus.ValueNotSupport", "The specified parameter BackupJobStatus is not valid.")
    jobs = []
    for job in call.state.table(JOBS).values():
        if job["DBInstanceId"] != instance["DBInstanceId"] or (job_id and job["BackupJobId"] != job_id):
            continue
        running = job["Status"] == "Running"
        if not running and not job_id:
            continue
        if mode and mode != "Manual":  # every emulated job is a manual CreateBackup
            continue
        if wanted == "NoStart":  # jobs start at once here
            continue
        duration = BACKUP_OVERHEAD + job["Size"] / BACKUP_RATE
        progress = min(99, int(100 * (call.now - job["StartTime"]) / duration)) if running else 100
        status = "Uploading" if running else job["Status"]
        jobs.append({"BackupJobId": job["BackupJobId"], "BackupStatus": status, "BackupProgressStatus": status,
                     "JobMode": "Manual", "Process": str(progress), "TaskAction": "NormalBackupTask",
                     "BackupId": job.get("BackupId", "")})
    jobs.sort(key=lambda j: int(j["BackupJobId"]))
    return {"Items": {"BackupJob": jobs}}


@on_event("rds.backup.done")
def _backup_done(state: State, event) -> None:
    job = state.table(JOBS).get(event.payload["job_id"])
    if job is None or job["Status"] != "Running":
        return
    backup_id = _next_number(state, "rds.backup", 3_000_000_000)
    status = "Failed" if job["Fail"] else "Success"
    state.table(BACKUPS)[backup_id] = {
        "BackupId": backup_id, "DBInstanceId": job["DBInstanceId"], "BackupStatus": status,
        "StartTime": job["StartTime"], "EndTime": event.at, "BackupSize": job["Size"] if status == "Success" else 0,
        "BackupMethod": job["BackupMethod"], "BackupMode": "Manual", "BackupType": job["BackupType"],
        "JobId": job["BackupJobId"]}
    job.update(Status="Finished" if status == "Success" else "Failed", BackupId=backup_id)


# -- fleet --------------------------------------------------------------------------------------
@fleet_section("rds_instances", order=70)
def load_rds_instances(state: State, spec: Any) -> list[str]:
    if not isinstance(spec, list):
        raise ApiError("InvalidFleetSpec", "rds_instances must be a list", 400)
    now = state.now()
    instances = state.table(INSTANCES)
    ids = []
    for entry in spec:
        if not isinstance(entry, dict) or entry.get("region") not in REGIONS:
            raise ApiError("InvalidFleetSpec", f"rds_instances entry needs a known region: {entry!r}", 400)
        region = entry["region"]
        engine = entry.get("engine", "MySQL")
        if engine not in ENGINES:
            raise ApiError("InvalidFleetSpec", f"unknown RDS engine {engine!r} (one of {', '.join(ENGINES)})", 400)
        instance_id = str(entry.get("id") or state.new_id("rm", 22))
        if instance_id in instances:
            raise ApiError("InvalidFleetSpec", f"RDS instance {instance_id} already exists", 400)
        zones = REGIONS[region]["Zones"]
        zone = entry.get("zone") or zones[0]
        if zone not in zones:
            raise ApiError("InvalidFleetSpec", f"zone {zone!r} is not in {region}", 400)
        vpc = next((v for v in state.table("vpc.vpcs").values() if v["RegionId"] == region and v.get("IsDefault")),
                   {})
        vsw = next((v for v in state.table("vpc.vswitches").values() if v.get("ZoneId") == zone), {})
        tags = entry.get("tags") or {}
        if not isinstance(tags, dict):
            raise ApiError("InvalidFleetSpec", "tags must be a mapping", 400)
        backups = entry.get("backups")
        count = fleet_count(entry.get("backup_count", 0), "rds_instances[].backup_count")
        default_size = int(entry.get("backup_size", DEFAULT_BACKUP_SIZE))
        if backups is None:
            backups = [{"size": default_size} for _ in range(count)]
        if not isinstance(backups, list):
            raise ApiError("InvalidFleetSpec", "backups must be a list", 400)
        instances[instance_id] = {
            "DBInstanceId": instance_id, "RegionId": region, "ZoneId": zone, "Engine": engine,
            "EngineVersion": str(entry.get("engine_version") or ENGINES[engine][0]),
            "DBInstanceStatus": entry.get("status", "Running"),
            "DBInstanceClass": entry.get("class", "mysql.n2.medium.1"),
            "DBInstanceDescription": entry.get("description", instance_id), "Tags": {str(k): str(v) for k, v in
                                                                                     tags.items()},
            "CreateTime": iso(now - 86400 * (len(backups) + 1)), "VpcId": vpc.get("VpcId", ""),
            "VSwitchId": vsw.get("VSwitchId", ""), "BackupSize": default_size,
        }
        for i, spec_b in enumerate(backups):
            if not isinstance(spec_b, dict) or int(spec_b.get("size", default_size)) < 0:
                raise ApiError("InvalidFleetSpec", f"bad backup entry {spec_b!r}", 400)
            size = int(spec_b.get("size", default_size))
            start = parse_iso(spec_b["start_time"]) if spec_b.get("start_time") else now - 86400 * (len(backups) - i)
            method = spec_b.get("method", "Physical")
            if method not in METHODS:
                raise ApiError("InvalidFleetSpec", f"backup method must be one of {', '.join(METHODS)}", 400)
            backup_id = _next_number(state, "rds.backup", 3_000_000_000)
            status = spec_b.get("status", "Success")
            state.table(BACKUPS)[backup_id] = {
                "BackupId": backup_id, "DBInstanceId": instance_id, "BackupStatus": status,
                "StartTime": start, "EndTime": start + BACKUP_OVERHEAD + size / BACKUP_RATE, "BackupSize": size,
                "BackupMethod": method, "BackupMode": spec_b.get("mode", "Automated"), "BackupType": "FullBackup"}
            instances[instance_id]["BackupSize"] = size
        ids.append(instance_id)
    return ids


# -- downloads ----------------------------------------------------------------------------------
_PATTERNS: OrderedDict[str, bytes] = OrderedDict()


def pattern(backup_id: str) -> bytes:
    """The 64 KiB block a backup's content repeats (deterministic per id)."""
    block = _PATTERNS.get(backup_id)
    if block is None:
        block = b"".join(hashlib.sha256(f"rds-backup:{backup_id}:{n}".encode()).digest()
                         for n in range(PATTERN_BLOCKS))
        _PATTERNS[backup_id] = block
        while len(_PATTERNS) > 16:
            _PATTERNS.popitem(last=False)
    else:
        _PATTERNS.move_to_end(backup_id)
    return block


def content_slice(backup_id: str, offset: int, length: int) -> bytes:
    """Bytes ``offset .. offset+length-1`` of a backup file (for tests and the download route)."""
    block = pattern(backup_id)
    parts = []
    pos = offset % len(block)
    remaining = length
    while remaining > 0:
        take = min(len(block) - pos, remaining)
        parts.append(block[pos:pos + take])
        remaining -= take
        pos = 0
    return b"".join(parts)


def _parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """``(first, last)``, None to serve everything, or ``"unsatisfiable"``."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # invalid or multi-range: ignore the header (RFC 9110)
    if m.group(1):
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else size - 1
        if m.group(2) and last < first:
            return None
        if first >= size:
            return "unsatisfiable"
        return first, min(last, size - 1)
    suffix = int(m.group(2))
    if suffix == 0 or size == 0:
        return "unsatisfiable"
    return max(0, size - suffix), size - 1


def _plain_error(status: int, code: str, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"Code": code, "Message": message}).encode(),
                        content_type="application/json")


@raw_route("GET", DOWNLOAD_PREFIX)
async def download_backup(emulator, request: web.Request) -> web.StreamResponse:
    backup_id = request.path[len(DOWNLOAD_PREFIX):].strip("/")
    state = emulator.state
    backup = state.table(BACKUPS).get(backup_id)
    if backup is None or backup["BackupStatus"] != "Success":
        return _plain_error(404, "NoSuchKey", f"backup {backup_id!r} does not exist")
    expires = request.query.get("expires", "")
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 15):
        return _plain_error(403, "AccessDenied", "the download URL has no valid expires parameter")
    if state.now() > int(expires):
        return _plain_error(403, "AccessDenied", "Request has expired.")
    size = int(backup["BackupSize"])
    etag = '"' + hashlib.md5(f"{backup_id}:{size}".encode()).hexdigest().upper() + '"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
               "Last-Modified": _http_date(backup["EndTime"]),
               "Content-Disposition": f'attachment; filename="hins{backup_id}_{iso_minutes(backup["EndTime"])}.tar"'}
    first, last, status = 0, size - 1, 200
    if request.headers.get("Range"):
        parsed = _parse_range(request.headers["Range"], size)
        if parsed == "unsatisfiable":
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
        if isinstance(parsed, tuple):
            first, last = parsed
            status = 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    length = max(0, last - first + 1)
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = length
    await resp.prepare(request)
    if request.method == "HEAD":
        await resp.write_eof()
        return resp
    offset = first
    while offset <= last:
        n = min(CHUNK, last - offset + 1)
        await resp.write(content_slice(backup_id, offset, n))
        offset += n
    await resp.write_eof()
    return resp


def _http_date(ts: float) -> str:
    from email.utils import formatdate

    return formatdate(ts, usegmt=True)
