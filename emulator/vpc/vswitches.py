"""VPC DescribeVSwitches over the vSwitches ECS seeds (table ``vpc.vswitches``): by region, VPC, ids, zone,
name, default flag, tags; pages."""

from __future__ import annotations

from ..clock import iso
from ..ecs.regions import region_or_error
from ..rpc import Call, Params, action
from .common import ACCOUNT_OWNER_ID, matches_tags, page_of, tag_filter, tags_view


def _vswitch_view(call: Call, vsw: dict) -> dict:
    return {
        "VSwitchId": vsw["VSwitchId"],
        "VpcId": vsw["VpcId"],
        "Status": vsw.get("Status", "Available"),
        "CidrBlock": vsw.get("CidrBlock", ""),
        "Ipv6CidrBlock": "",
        "ZoneId": vsw.get("ZoneId", ""),
        "AvailableIpAddressCount": int(vsw.get("AvailableIpAddressCount", 252)),
        "Description": vsw.get("Description", ""),
        "VSwitchName": vsw.get("VSwitchName", ""),
        "CreationTime": vsw.get("CreationTime") or iso(call.now),
        "IsDefault": bool(vsw.get("IsDefault", False)),
        "ResourceGroupId": vsw.get("ResourceGroupId", "rg-default"),
        "NetworkAclId": "",
        "OwnerId": ACCOUNT_OWNER_ID,
        "ShareType": "Sharing",
        "RouteTable": {"RouteTableId": "vtb-" + vsw["VpcId"].split("-", 1)[-1], "RouteTableType": "System"},
        "Tags": tags_view(vsw),
    }


@action("vpc", "DescribeVSwitches")
def describe_vswitches(call: Call, p: Params) -> dict:
    vpc_id = p.str("VpcId")
    vsw_ids = p.csv("VSwitchId")
    region_param = p.str("RegionId")
    region = region_or_error(region_param) if region_param or not (vpc_id or vsw_ids) else None
    zone = p.str("ZoneId")
    name = p.str("VSwitchName")
    is_default = p.bool("IsDefault") if "IsDefault" in p else None
    tags = tag_filter(p)
    number, size = page_of(p)
    rows = []
    for vsw in call.state.table("vpc.vswitches").values():
        if region is not None and vsw.get("RegionId") != region:
            continue
        if vpc_id and vsw.get("VpcId") != vpc_id:
            continue
        if vsw_ids and vsw["VSwitchId"] not in vsw_ids:
            continue
        if zone and vsw.get("ZoneId") != zone:
            continue
        if name is not None and vsw.get("VSwitchName") != name:
            continue
        if is_default is not None and bool(vsw.get("IsDefault")) != is_default:
            continue
        if tags and not matches_tags(vsw, tags):
            continue
        rows.append(vsw)
    rows.sort(key=lambda v: (v.get("ZoneId", ""), v["VSwitchId"]))
    page = rows[(number - 1) * size: number * size]
    return {"VSwitches": {"VSwitch": [_vswitch_view(call, v) for v in page]}, "TotalCount": len(rows),
            "PageNumber": number, "PageSize": size}
