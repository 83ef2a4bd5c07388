"""The fleet-spec section ``rds_instances``: RDS instances and their existing backups::

    rds_instances:
      - {region: cn-hangzhou, id: rm-demo01, engine: MySQL, engine_version: "8.0", tags: {env: prod},
         backups: [{size: 2167808, start_time: "2024-01-01T00:00:00Z", method: Physical}]}
      - {region: cn-beijing, engine: PostgreSQL, engine_version: "16.0", backup_count: 7, backup_size: 1048576}

``backup_size`` (1 GiB by default) is also the size of the backups CreateBackup makes for the instance.
"""

from __future__ import annotations

from typing import Any

from ..clock import iso, parse_iso
from ..ecs.regions import REGIONS
from ..errors import ApiError
from ..registry import fleet_count, fleet_section
from ..state import State
from .common import (
    BACKUP_OVERHEAD,
    BACKUP_RATE,
    BACKUPS,
    DEFAULT_BACKUP_SIZE,
    ENGINES,
    INSTANCES,
    METHODS,
    next_number,
)


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
            backup_id = next_number(state, "rds.backup", 3_000_000_000)
            status = spec_b.get("status", "Success")
            state.table(BACKUPS)[backup_id] = {
                "BackupId": backup_id, "DBInstanceId": instance_id, "BackupStatus": status,
                "StartTime": start, "EndTime": start + BACKUP_OVERHEAD + size / BACKUP_RATE, "BackupSize": size,
                "BackupMethod": method, "BackupMode": spec_b.get("mode", "Automated"), "BackupType": "FullBackup"}
            instances[instance_id]["BackupSize"] = size
        ids.append(instance_id)
    return ids
