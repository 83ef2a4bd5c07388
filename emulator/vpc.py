"""VPC API (2016-04-28): DescribeVpcs and DescribeVSwitches over the networks ECS seeds.

The records live in the tables ``vpc.vpcs`` and ``vpc.vswitches`` (seeded by
:mod:`emulator.ecs.regions`, one default VPC per region and one default vSwitch per zone).
Unknown ids in filters give an empty page, as the real API does.
"""

from __future__ import annotations

from .clock import iso
from .ecs.regions import region_or_error
from .errors import ApiError
from .rpc import Call, Params, action

ACCOUNT_OWNER_ID = 1234567890123456


def _page(p: Params, default_size: int = 10, max_size: int = 50) -> tuple[int, int]:
    number = p.int("PageNumber", 1, lo=1, hi=10**9)
    size = p.int("PageSize", default_size, lo=1, hi=max_size)
    return number, size  # type: ignore[return-value]


def _tags(record: dict) -> dict:
    return {"Tag": [{"Key": k, "Value": v} for k, v in (record.get("Tags") or {}).items()]}


def _tag_filter(p: Params) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in p.struct_list("Tag") if t.get("Key")}


def _matches_tags(record: dict, wanted: dict[str, str]) -> bool:
    tags = record.get("Tags") or {}
    return all(k in tags and (v == "" or tags[k] == v) for k, v in wanted.items())


def _vpc_view(call: Call, vpc: dict) -> dict:
    vswitches = sorted(v["VSwitchId"] for v in call.state.table("vpc.vswitches").values()
                       if v.get("VpcId") == vpc["VpcId"])
    return {
        "VpcId": vpc["VpcId"],
        "RegionId": vpc["RegionId"],
        "Status": vpc.get("Status", "Available"),
        "VpcName": vpc.get("VpcName", ""),
        "CreationTime": vpc.get("CreationTime") or iso(call.now),
        "CidrBlock": vpc.get("CidrBlock", "172.16.0.0/12"),
        "Ipv6CidrBlock": "",
        "IsDefault": bool(vpc.get("IsDefault", False)),
        "Description": vpc.get("Description", ""),
        "VRouterId": vpc.get("VRouterId", "vrt-" + vpc["VpcId"].split("-", 1)[-1]),
        "ResourceGroupId": vpc.get("ResourceGroupId", "rg-default"),
        "OwnerId": ACCOUNT_OWNER_ID,
        "CenStatus": "Detached",
        "DhcpOptionsSetId": "",
        "DhcpOptionsSetStatus": "Available",
        "DnsHostnameStatus": "DISABLED",
        "VSwitchIds": {"VSwitchId": vswitches},
        "UserCidrs": {"UserCidr": []},
        "SecondaryCidrBlocks": {"SecondaryCidrBlock": []},
        "RouterTableIds": {"RouterTableIds": []},
        "NatGatewayIds": {"NatGatewayIds": []},
        "Tags": _tags(vpc),
    }


@action("vpc", "DescribeVpcs")
def describe_vpcs(call: Call, p: Params) -> dict:
    region = region_or_error(p.str("RegionId"))
    ids = p.csv("VpcId")
    if len(ids) > 20:
        raise ApiError("InvalidVpcId.Malformed", "You can specify at most 20 VPC IDs.", 400)
    is_default = p.bool("IsDefault") if "IsDefault" in p else None
    name = p.str("VpcName")
    tags = _tag_filter(p)
    number, size = _page(p)
    rows = []
    for vpc in call.state.table("vpc.vpcs").values():
        if vpc.get("RegionId") != region:
            continue
        if ids and vpc["VpcId"] not in ids:
            continue
        if is_default is not None and bool(vpc.get("IsDefault")) != is_default:
            continue
        if name is not None and vpc.get("VpcName") != name:
            continue
        if tags and not _matches_tags(vpc, tags):
            continue
        rows.append(vpc)
    rows.sort(key=lambda v: (v.get("CreationTime", ""), v["VpcId"]))
    page = rows[(number - 1) * size: number * size]
    return {"Vpcs": {"Vpc": [_vpc_view(call, v) for v in page]}, "TotalCount": len(rows),
            "PageNumber": number, "PageSize": size}


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
        "Tags": _tags(vsw),
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
    tags = _tag_filter(p)
    number, size = _page(p)
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
        if tags and not _matches_tags(vsw, tags):
            continue
        rows.append(vsw)
    rows.sort(key=lambda v: (v.get("ZoneId", ""), v["VSwitchId"]))
    page = rows[(number - 1) * size: number * size]
    return {"VSwitches": {"VSwitch": [_vswitch_view(call, v) for v in page]}, "TotalCount": len(rows),
            "PageNumber": number, "PageSize": size}
