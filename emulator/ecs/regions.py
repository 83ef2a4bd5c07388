"""Regions, zones, the default VPC/vSwitch/security group of each region, public images."""

from __future__ import annotations

from ..errors import ApiError
from ..registry import on_init
from ..rpc import Call, Params, action
from ..state import State

REGIONS: dict[str, dict] = {
    "cn-hangzhou": {"LocalName": "华东1（杭州）", "Zones": ["cn-hangzhou-h", "cn-hangzhou-i", "cn-hangzhou-j"]},
    "cn-shanghai": {"LocalName": "华东2（上海）", "Zones": ["cn-shanghai-e", "cn-shanghai-f", "cn-shanghai-g"]},
    "cn-beijing": {"LocalName": "华北2（北京）", "Zones": ["cn-beijing-g", "cn-beijing-h", "cn-beijing-i"]},
    "cn-shenzhen": {"LocalName": "华南1（深圳）", "Zones": ["cn-shenzhen-d", "cn-shenzhen-e", "cn-shenzhen-f"]},
    "ap-southeast-1": {"LocalName": "新加坡", "Zones": ["ap-southeast-1a", "ap-southeast-1b", "ap-southeast-1c"]},
    "cn-qingdao": {"LocalName": "华北1（青岛）", "Zones": ["cn-qingdao-b", "cn-qingdao-c"]},
    "cn-zhangjiakou": {"LocalName": "华北3（张家口）", "Zones": ["cn-zhangjiakou-a", "cn-zhangjiakou-b",
                                                             "cn-zhangjiakou-c"]},
}

PUBLIC_IMAGES = [
    {"ImageId": "aliyun_3_x64_20G_alibase_20250629.vhd", "ImageName": "Alibaba Cloud Linux 3.2104 LTS 64 bit",
     "OSName": "Alibaba Cloud Linux  3.2104 LTS 64位", "OSNameEn": "Alibaba Cloud Linux  3.2104 LTS 64 bit",
     "OSType": "linux", "Platform": "Aliyun", "Architecture": "x86_64", "Size": 20},
    {"ImageId": "ubuntu_22_04_x64_20G_alibase_20250619.vhd", "ImageName": "Ubuntu  22.04 64 bit",
     "OSName": "Ubuntu  22.04 64位", "OSNameEn": "Ubuntu  22.04 64 bit",
     "OSType": "linux", "Platform": "Ubuntu", "Architecture": "x86_64", "Size": 20},
    # the arm64 base image ACS-ECS-RepairImage offers for repairing arm64 images
    {"ImageId": "aliyun_3_arm64_20G_alibase_20250629.vhd", "ImageName": "Alibaba Cloud Linux 3.2104 LTS 64 bit ARM",
     "OSName": "Alibaba Cloud Linux  3.2104 LTS 64位 ARM版", "OSNameEn": "Alibaba Cloud Linux  3.2104 LTS 64 bit ARM",
     "OSType": "linux", "Platform": "Aliyun", "Architecture": "arm64", "BootMode": "UEFI", "Size": 20},
]


def region_or_error(region_id: str | None) -> str:
    """Validate a RegionId (required) and return it."""
    if not region_id:
        raise ApiError("MissingParameter.RegionId",
                       "The input parameter \"RegionId\" that is mandatory for processing this request is not supplied.",
                       400)
    if region_id not in REGIONS:
        raise ApiError("InvalidRegionId.NotFound", f"The specified RegionId {region_id!r} does not exist.", 404)
    return region_id


@on_init(order=10)
def seed_networks(state: State) -> None:
    """Each region gets a default VPC, one vSwitch per zone and a default security group."""
    vpcs, vswitches, groups = state.table("vpc.vpcs"), state.table("vpc.vswitches"), state.table("ecs.security_groups")
    images = state.table("ecs.images")
    for n, (region, info) in enumerate(REGIONS.items()):
        vpc_id = state.new_id("vpc")
        vpcs[vpc_id] = {"VpcId": vpc_id, "RegionId": region, "VpcName": "default", "IsDefault": True,
                        "CidrBlock": "172.16.0.0/12", "Status": "Available", "CreationTime": "2024-01-01T00:00:00Z"}
        for z, zone in enumerate(info["Zones"]):
            vsw_id = state.new_id("vsw")
            vswitches[vsw_id] = {"VSwitchId": vsw_id, "VpcId": vpc_id, "RegionId": region, "ZoneId": zone,
                                 "CidrBlock": f"172.{16 + z}.{n}.0/24", "VSwitchName": f"default-{zone}",
                                 "IsDefault": True, "Status": "Available", "CreationTime": "2024-01-01T00:00:00Z"}
        sg_id = state.new_id("sg")
        groups[sg_id] = {"SecurityGroupId": sg_id, "VpcId": vpc_id, "RegionId": region,
                         "SecurityGroupName": "default", "SecurityGroupType": "normal",
                         "Description": "default security group", "CreationTime": "2024-01-01T00:00:00Z"}
        for image in PUBLIC_IMAGES:
            key = f"{region}/{image['ImageId']}"
            images[key] = {**image, "RegionId": region, "ImageOwnerAlias": "system", "Status": "Available",
                           "Progress": "100%", "CreationTime": "2025-06-29T00:00:00Z", "IsCopied": False,
                           "Usage": "instance", "Tags": {}, "DiskDeviceMappings": [], "ImageVersion": "",
                           "Description": image["ImageName"], "IsPublic": True, "IsSelfShared": "",
                           "ImageFamily": "", "BootMode": image.get("BootMode", "BIOS"), "IsSupportCloudinit": True,
                           "IsSupportIoOptimized": True}


@action("ecs", "DescribeRegions")
def describe_regions(call: Call, p: Params) -> dict:
    return {"Regions": {"Region": [
        {"RegionId": r, "LocalName": info["LocalName"], "RegionEndpoint": f"ecs.{r}.aliyuncs.com",
         "Status": "available"} for r, info in REGIONS.items()]}}


@action("ecs", "DescribeZones")
def describe_zones(call: Call, p: Params) -> dict:
    region = region_or_error(p.str("RegionId"))
    return {"Zones": {"Zone": [
        {"ZoneId": z, "LocalName": z, "AvailableResourceCreation": {"ResourceTypes": ["Instance", "Disk"]},
         "AvailableInstanceTypes": {"InstanceTypes": ["ecs.g7.large", "ecs.g7.xlarge", "ecs.c7.large",
                                                      "ecs.t6-c1m1.large"]},
         "AvailableDiskCategories": {"DiskCategories": ["cloud_essd", "cloud_efficiency", "cloud_ssd"]}}
        for z in REGIONS[region]["Zones"]]}}
