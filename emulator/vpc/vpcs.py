"""VPC DescribeVpcs over the VPCs ECS seeds (table ``vpc.vpcs``): ids, default flag, name, tags, pages."""

from __future__ import annotations

from ..clock import iso
from ..ecs.regions import region_or_error
from ..errors import ApiError
from ..rpc import Call, Params, action
from .common import ACCOUNT_OWNER_ID, matches_tags, page_of, tag_filter, tags_view


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
        "Tags": tags_view(vpc),
    }


@action("vpc", "DescribeVpcs")
def describe_vpcs(call: Call, p: Params) -> dict:
    region = region_or_error(p.str("RegionId"))
    ids = p.csv("VpcId")
    if len(ids) > 20:
        raise ApiError("InvalidVpcId.Malformed", "You can specify at most 20 VPC IDs.", 400)
    is_default = p.bool("IsDefault") if "IsDefault" in p else None
    name = p.str("VpcName")
    tags = tag_filter(p)
    number, size = page_of(p)
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
        if tags and not matches_tags(vpc, tags):
            continue
        rows.append(vpc)
    rows.sort(key=lambda v: (v.get("CreationTime", ""), v["VpcId"]))
    page = rows[(number - 1) * size: number * size]
    return {"Vpcs": {"Vpc": [_vpc_view(call, v) for v in page]}, "TotalCount": len(rows),
            "PageNumber": number, "PageSize": size}
