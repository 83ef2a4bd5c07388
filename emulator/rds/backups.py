"""RDS backups: DescribeBackups, CreateBackup (a job that ends in a backup set), DescribeBackupTasks.

CreateBackup answers a BackupJobId at once; the backup set appears (BackupMode Manual) after
``60 s + size / 50 MiB/s`` of simulated time, with the size of the instance's latest backup. A second CreateBackup
while one runs on the same instance gives ``OperationDenied.BackupJobExists``. Fault knob ``rds_backup_fail``
(``{"rate": 0.5, "instance_ids": [...]}``) makes new backups end ``Failed``.
"""

from __future__ import annotations

import re

from ..clock import iso, parse_iso
from ..rpc import Call, Params, action
from ..state import State, on_event
from .common import (
    BACKUP_OVERHEAD,
    BACKUP_RATE,
    BACKUPS,
    DEFAULT_BACKUP_SIZE,
    JOBS,
    METHODS,
    err,
    instance_of,
    int_param,
    next_number,
)
from .downloads import download_url


def _backup_view(call: Call, instance: dict, b: dict) -> dict:
    url = download_url(call, b["BackupId"])
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
        raise err(f"Invalid{name}.Malformed", f"Specified {name} is not valid.")
    try:
        return parse_iso(value)
    except ValueError:
        raise err(f"Invalid{name}.Malformed", f"Specified {name} is not valid.") from None


@action("rds", "DescribeBackups")
def describe_backups(call: Call, p: Params) -> dict:
    instance = instance_of(call, p.str("DBInstanceId"))  # no RegionId on the wire: ids are global
    backup_id, status, mode = p.str("BackupId"), p.str("BackupStatus"), p.str("BackupMode")
    backup_type = p.str("BackupType")
    start, end = _parse_minutes(p, "StartTime"), _parse_minutes(p, "EndTime")
    if start is not None and end is not None and end < start:
        raise err("InvalidEndTime.Malformed", "The end time must be later than the start time.")
    number = int_param(p, "PageNumber", 1, 1, 2**31 - 1)
    size = int_param(p, "PageSize", 30, 30, 100)
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
    instance = instance_of(call, p.str("DBInstanceId"))
    method = p.str("BackupMethod") or "Physical"
    if method not in METHODS:
        raise err("InvalidBackupMethod.ValueNotSupport", "The specified parameter BackupMethod is not valid.")
    backup_type = p.str("BackupType") or "Auto"
    if backup_type not in ("Auto", "FullBackup", "IncrementalBackup"):
        raise err("InvalidBackupType.ValueNotSupport", "The specified parameter BackupType is not valid.")
    strategy = p.str("BackupStrategy")
    if strategy is not None and strategy not in ("db", "instance"):
        raise err("InvalidBackupStrategy.ValueNotSupport", "The specified parameter BackupStrategy is not valid.")
    if instance["DBInstanceStatus"] != "Running":
        raise err("IncorrectDBInstanceState", "Current DB instance state does not support this operation.", 403)
    state = call.state
    if any(j["DBInstanceId"] == instance["DBInstanceId"] and j["Status"] == "Running"
           for j in state.table(JOBS).values()):
        raise err("OperationDenied.BackupJobExists", "The operation is not permitted due to backup job exist.", 403)
    job_id = next_number(state, "rds.backup_job", 1_000_000)
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
    instance = instance_of(call, p.str("DBInstanceId"))
    job_id, mode, wanted = p.str("BackupJobId"), p.str("BackupMode"), p.str("BackupJobStatus")
    if job_id is not None and not (job_id.isascii() and job_id.isdigit()):
        raise err("InvalidBackupJobId.Malformed", "The specified parameter BackupJobId is not valid.")
    if mode is not None and mode not in ("Automated", "Manual"):
        raise err("InvalidBackupMode.ValueNotSupport", "The specified parameter BackupMode is not valid.")
    if wanted is not None and wanted not in ("NoStart", "Progressing"):
        raise err("InvalidBackupJobStatus.ValueNotSupport", "The specified parameter BackupJobStatus is not valid.")
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
    backup_id = next_number(state, "rds.backup", 3_000_000_000)
    status = "Failed" if job["Fail"] else "Success"
    state.table(BACKUPS)[backup_id] = {
        "BackupId": backup_id, "DBInstanceId": job["DBInstanceId"], "BackupStatus": status,
        "StartTime": job["StartTime"], "EndTime": event.at, "BackupSize": job["Size"] if status == "Success" else 0,
        "BackupMethod": job["BackupMethod"], "BackupMode": "Manual", "BackupType": job["BackupType"],
        "JobId": job["BackupJobId"]}
    job.update(Status="Finished" if status == "Success" else "Failed", BackupId=backup_id)
