"""RDS DescribeDBInstances: filters (engine, version, status, zone, VPC, search key, tags), page numbers or
NextToken."""

from __future__ import annotations

from typing import Any

from ..ecs.regions import region_or_error
from ..rpc import Call, Params, action
from ..state import State
from .common import ENGINES, INSTANCES, err, int_param


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
            raise err("InvalidTags.Malformed", "The specified parameter Tags is not valid.")
        if len(raw) > 5:
            raise err("InvalidTags.Malformed", "You can specify up to 5 tags.")
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
        size = int_param(p, "MaxResults", 30, 1, 100)
        token = p.str("NextToken")
        start = 0
        if token:
            if not (token.isascii() and token.isdigit()):
                raise err("InvalidNextToken.Malformed", "Specified NextToken is not valid.")
            start = int(token)
        page = rows[start:start + size]
        nxt = str(start + size) if start + size < len(rows) else ""
        body = {"PageNumber": 1, "PageRecordCount": len(page), "TotalRecordCount": len(page), "NextToken": nxt}
    else:
        number = int_param(p, "PageNumber", 1, 1, 2**31 - 1)
        size = int_param(p, "PageSize", 30, 1, 100)
        page = rows[(number - 1) * size: number * size]
        body = {"PageNumber": number, "PageRecordCount": len(page), "TotalRecordCount": len(rows), "NextToken": ""}
    body["Items"] = {"DBInstance": [_instance_view(call.state, r) for r in page]}
    return body
