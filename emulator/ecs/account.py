"""DescribeAccountAttributes: the account's quotas and usage in a region.

Real attribute names are answered with typical default quotas (fixed) and the usage the emulator
tracks; ``Count`` carries the current usage for the quotas it knows (custom images, security
groups, pay-as-you-go vCPUs) and 1 otherwise. Emulator extensions: ``max-image-count`` (custom
images per region, the quota ``QuotaExceed.Image`` enforces: timing ``image_quota`` or the
``image_quota`` fault) and ``used-image-count``; a real account reads that quota from Quota Center.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ApiError
from ..rpc import Call, Params, action
from ..state import State
from . import common, images, timings

MAX_NAMES = 8

# name -> fixed value (typical defaults of a new account)
FIXED: dict[str, str] = {
    "instance-network-type": "vpc",
    "max-security-groups": "100",
    "max-elastic-network-interfaces": "2000",
    "max-postpaid-instance-vcpu-count": "1000",
    "max-spot-instance-vcpu-count": "800",
    "max-dedicated-hosts": "10",
    "max-axt-command-count": "500",
    "max-axt-invocation-daily": "10000",
    "real-name-authentication": "yes",
    "max-cloud-assistant-activation-count": "5000",
}


def _postpaid_vcpus(state: State, region: str) -> int:
    """vCPUs of the region's pay-as-you-go instances (records without ``Cpu`` count 0)."""
    return sum(int(r.get("Cpu") or 0) for r in state.table("ecs.instances").values()
               if r.get("RegionId") == region and r.get("InstanceChargeType", "PostPaid") == "PostPaid")


def _security_groups(state: State, region: str) -> int:
    return sum(1 for g in state.table("ecs.security_groups").values() if g.get("RegionId") == region)


# name -> (state, region, faults cfg) -> (Value, Count); attributes the emulator computes
Computed = Callable[[State, str, dict], tuple[str, int]]
COMPUTED: dict[str, Computed] = {
    "max-security-groups": lambda s, r, f: (FIXED["max-security-groups"], _security_groups(s, r)),
    "max-postpaid-instance-vcpu-count": lambda s, r, f: (FIXED["max-postpaid-instance-vcpu-count"],
                                                         _postpaid_vcpus(s, r)),
    "used-postpaid-instance-vcpu-count": lambda s, r, f: (str(_postpaid_vcpus(s, r)), 1),
    "used-spot-instance-vcpu-count": lambda s, r, f: ("0", 1),  # the emulator runs no spot instances
    "max-image-count": lambda s, r, f: (str(timings.image_quota(s, r, f)), images.image_count(s, r)),
    "used-image-count": lambda s, r, f: (str(images.image_count(s, r)), 1),
}

SUPPORTED: tuple[str, ...] = tuple(dict.fromkeys([*FIXED, *COMPUTED]))


def _names(p: Params) -> list[str]:
    """The requested attribute names (``AttributeName.N``), checked; none given means all."""
    names = p.ids("AttributeName")
    if len(names) > MAX_NAMES:
        raise ApiError("InvalidParameter", f"The specified parameter \"AttributeName\" is not valid: at most "
                       f"{MAX_NAMES} names, got {len(names)}.", 400)
    for name in names:
        if name not in SUPPORTED:
            raise ApiError("InvalidParameter", f"The specified parameter \"AttributeName\" is not valid: "
                           f"{name!r} is not a supported attribute ({', '.join(SUPPORTED)}).", 400)
    return list(dict.fromkeys(names)) or list(SUPPORTED)


@action("ecs", "DescribeAccountAttributes")
def describe_account_attributes(call: Call, p: Params) -> dict:
    """Quotas and usage of the region (``ZoneId``, if given, is checked and echoed)."""
    region = common.region(call, p)
    zone = p.str("ZoneId")
    if zone is not None:
        common.zone_or_error(region, zone)
    names = _names(p)
    faults = call.extra["emulator"].faults.cfg
    items = []
    for name in names:
        compute = COMPUTED.get(name)
        value, count = compute(call.state, region, faults) if compute else (FIXED[name], 1)
        items.append({"AttributeName": name, "AttributeValues": {"ValueItem": [
            {"Value": value, "Count": count, "ZoneId": zone or ""}]}})
    return {"AccountAttributeItems": {"AccountAttributeItem": items}}
