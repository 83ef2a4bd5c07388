"""ECS security groups: CreateSecurityGroup, DeleteSecurityGroup, DescribeSecurityGroups,
DescribeSecurityGroupAttribute, AuthorizeSecurityGroup(Egress), RevokeSecurityGroup(Egress).

Groups live in ``state.table("ecs.security_groups")`` (one default group per region is seeded by
:mod:`emulator.ecs.regions`); a group's rules are plain dicts in its ``Rules`` list::

    {"SecurityGroupRuleId": "sgr-...", "Direction": "ingress", "IpProtocol": "TCP", "PortRange": "22/22",
     "SourcePortRange": "", "SourceCidrIp": "10.0.0.0/8", "Ipv6SourceCidrIp": "", "SourceGroupId": "",
     "DestCidrIp": "", "Ipv6DestCidrIp": "", "DestGroupId": "", "Policy": "Accept", "Priority": 1,
     "NicType": "intranet", "Description": "", "CreateTime": "2026-01-01T00:00:00Z"}

A rule is identified by everything but its id, description and creation time: authorizing a rule that
exists adds nothing (and succeeds), as ECS does. Rules come in the ``Permissions.N.*`` form the SDKs
send or in the deprecated top-level fields (``IpProtocol``, ``PortRange``...); mixing both is refused.
Error codes and messages are those of Alibaba's API reference (AuthorizeSecurityGroup,
AuthorizeSecurityGroupEgress, RevokeSecurityGroup, DeleteSecurityGroup, CreateSecurityGroup).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ..clock import iso
from ..errors import ApiError, invalid_parameter, missing_parameter
from ..rpc import Call, Params, action
from ..state import State
from . import common

GROUPS = "ecs.security_groups"
MAX_GROUPS_PER_REGION = 100      # DescribeAccountAttributes max-security-groups
MAX_RULES_PER_GROUP = 200        # ingress and egress together
MAX_PERMISSIONS_PER_CALL = 100
PROTOCOLS = ("TCP", "UDP", "ICMP", "GRE", "ALL")
_NAME_RE = re.compile(r"^[A-Za-z\u4e00-\u9fa5][A-Za-z0-9\u4e00-\u9fa5:_.\-]{1,127}$")
_PORTS_RE = re.compile(r"^(-?\d{1,6})/(-?\d{1,6})$")

# the fields of a rule, as the SDK names them (Permissions.N.<field> or top level)
RULE_FIELDS = ("IpProtocol", "PortRange", "SourcePortRange", "SourceCidrIp", "Ipv6SourceCidrIp", "SourceGroupId",
               "SourceGroupOwnerAccount", "SourceGroupOwnerId", "SourcePrefixListId", "DestCidrIp", "Ipv6DestCidrIp",
               "DestGroupId", "DestGroupOwnerAccount", "DestGroupOwnerId", "DestPrefixListId", "Policy", "Priority",
               "NicType", "Description", "PortRangeListId")
# what makes two rules the same rule
IDENTITY = ("Direction", "IpProtocol", "PortRange", "SourcePortRange", "SourceCidrIp", "Ipv6SourceCidrIp",
            "SourceGroupId", "DestCidrIp", "Ipv6DestCidrIp", "DestGroupId", "Policy", "Priority", "NicType")


def err(code: str, message: str, status: int = 400) -> ApiError:
    return ApiError(code, message, status)


def group_not_found() -> ApiError:
    return err("InvalidSecurityGroupId.NotFound", "The specified SecurityGroupId does not exist.", 404)


def get_group(state: State, region: str, group_id: str | None) -> dict:
    if not group_id:
        raise missing_parameter("SecurityGroupId")
    group = state.table(GROUPS).get(group_id)
    if group is None or group.get("RegionId") != region:
        raise group_not_found()
    return group


def rules_of(group: dict) -> list[dict]:
    return group.setdefault("Rules", [])


# -- CreateSecurityGroup ---------------------------------------------------------------------
@action("ecs", "CreateSecurityGroup")
def create_security_group(call: Call, p: Params) -> dict:
    state = call.state
    region = common.region(call, p)
    key, previous = common.idempotent(call, p, "CreateSecurityGroup")
    if previous is not None:
        return {"SecurityGroupId": previous}
    vpc_id = p.str("VpcId")
    if not vpc_id:  # every emulated region is VPC-only, as new accounts are
        raise err("InvalidVpcId.NotFound", "The VpcId must not empty when only support vpc vm.", 403)
    vpc = state.table("vpc.vpcs").get(vpc_id)
    if vpc is None or vpc.get("RegionId") != region:
        raise err("InvalidVpcId.NotFound", "Specified VPC does not exist.", 404)
    name = p.str("SecurityGroupName")
    if name is not None and (not _NAME_RE.match(name) or name.startswith(("http://", "https://"))):
        raise err("InvalidSecurityGroupName.Malformed", "Specified security group name is not valid.")
    description = common.check_description(p.str("Description"))
    kind = p.str("SecurityGroupType", "normal")
    if kind not in ("normal", "enterprise"):
        raise err("InvalidParams.GroupType", "The specified security group type is not valid.")
    tags = common.parse_tags(p)
    groups = state.table(GROUPS)
    if sum(1 for g in groups.values() if g.get("RegionId") == region) >= MAX_GROUPS_PER_REGION:
        raise err("QuotaExceed.SecurityGroup", "The maximum number of security groups is reached.", 403)
    common.dry_run(p)
    group_id = state.new_id("sg")
    groups[group_id] = {"SecurityGroupId": group_id, "VpcId": vpc_id, "RegionId": region,
                        "SecurityGroupName": name or "", "SecurityGroupType": kind, "Description": description,
                        "CreationTime": iso(call.now), "Tags": tags, "Rules": []}
    common.remember(call, p, key, group_id)
    return {"SecurityGroupId": group_id}


# -- DeleteSecurityGroup ---------------------------------------------------------------------
@action("ecs", "DeleteSecurityGroup")
def delete_security_group(call: Call, p: Params) -> dict:
    state = call.state
    region = common.region(call, p)
    group = get_group(state, region, p.str("SecurityGroupId"))
    group_id = group["SecurityGroupId"]
    if any(group_id in (r.get("SecurityGroupIds") or []) for r in state.table("ecs.instances").values()):
        raise err("DependencyViolation", "There is still instance(s) in the specified security group.", 403)
    for other in state.table(GROUPS).values():
        if other is not group and any(group_id in (r.get("SourceGroupId"), r.get("DestGroupId"))
                                      for r in other.get("Rules") or []):
            raise err("DependencyViolation", "The specified security group has been authorized in another one.", 403)
    common.dry_run(p)
    state.table(GROUPS).pop(group_id, None)
    return {}


# -- DescribeSecurityGroups ------------------------------------------------------------------
@action("ecs", "DescribeSecurityGroups")
def describe_security_groups(call: Call, p: Params) -> dict:
    region = common.region(call, p)
    vpc = p.str("VpcId")
    one = p.str("SecurityGroupId")
    ids = set(common.id_list(p, "SecurityGroupIds"))
    name = p.str("SecurityGroupName")
    kind = p.str("SecurityGroupType")
    if kind is not None and kind not in ("normal", "enterprise"):
        raise err("InvalidParameter.SecurityGroupType", "The specified SecurityGroupType is not valid.")
    tags = common.tag_filters(p)
    items = []
    for g in call.state.table(GROUPS).values():
        if g["RegionId"] != region or (vpc and g.get("VpcId") != vpc):
            continue
        if one and g["SecurityGroupId"] != one:
            continue
        if ids and g["SecurityGroupId"] not in ids:
            continue
        if name and g.get("SecurityGroupName") != name:
            continue
        if kind and g.get("SecurityGroupType", "normal") != kind:
            continue
        if tags and not common.match_tags(g.get("Tags"), tags):
            continue
        items.append(g)
    page, counters = common.paginate(items, p, default_size=10, max_size=100)
    count: dict[str, int] = {}
    if p.bool("IsQueryEcsCount"):
        for r in call.state.table("ecs.instances").values():
            if r.get("RegionId") == region:
                for sg in r.get("SecurityGroupIds", []):
                    count[sg] = count.get(sg, 0) + 1
    return {"RegionId": region, "SecurityGroups": {"SecurityGroup": [{
        "SecurityGroupId": g["SecurityGroupId"], "SecurityGroupName": g.get("SecurityGroupName", ""),
        "Description": g.get("Description", ""), "VpcId": g.get("VpcId", ""),
        "SecurityGroupType": g.get("SecurityGroupType", "normal"), "CreationTime": g.get("CreationTime", ""),
        "Tags": common.tags_out(g.get("Tags")), "ResourceGroupId": "", "ServiceManaged": False,
        "EcsCount": count.get(g["SecurityGroupId"], 0), "AvailableInstanceAmount": 2000,
        "RuleCount": len(g.get("Rules") or []),
        "GroupToGroupRuleCount": sum(1 for r in g.get("Rules") or [] if r.get("SourceGroupId") or r.get("DestGroupId")),
    } for g in page]}, **counters}


# -- DescribeSecurityGroupAttribute ----------------------------------------------------------
def _group_names(state: State) -> dict[str, str]:
    return {gid: g.get("SecurityGroupName", "") for gid, g in state.table(GROUPS).items()}


def rule_out(rule: dict, names: dict[str, str]) -> dict:
    return {
        "SecurityGroupRuleId": rule["SecurityGroupRuleId"], "Direction": rule["Direction"],
        "IpProtocol": rule["IpProtocol"], "PortRange": rule["PortRange"], "SourcePortRange": rule["SourcePortRange"],
        "SourceCidrIp": rule["SourceCidrIp"], "Ipv6SourceCidrIp": rule["Ipv6SourceCidrIp"],
        "SourceGroupId": rule["SourceGroupId"], "SourceGroupName": names.get(rule["SourceGroupId"], ""),
        "SourceGroupOwnerAccount": "", "SourcePrefixListId": "", "SourcePrefixListName": "",
        "DestCidrIp": rule["DestCidrIp"], "Ipv6DestCidrIp": rule["Ipv6DestCidrIp"],
        "DestGroupId": rule["DestGroupId"], "DestGroupName": names.get(rule["DestGroupId"], ""),
        "DestGroupOwnerAccount": "", "DestPrefixListId": "", "DestPrefixListName": "",
        "Policy": rule["Policy"], "Priority": str(rule["Priority"]), "NicType": rule["NicType"],
        "Description": rule.get("Description", ""), "CreateTime": rule.get("CreateTime", ""),
        "PortRangeListId": "", "PortRangeListName": "",
    }


@action("ecs", "DescribeSecurityGroupAttribute")
def describe_security_group_attribute(call: Call, p: Params) -> dict:
    region = common.region(call, p)
    group = get_group(call.state, region, p.str("SecurityGroupId"))
    direction = p.str("Direction", "all")
    if direction not in ("ingress", "egress", "all"):
        raise invalid_parameter("Direction", "Valid values: ingress, egress, all.")
    p.str("NicType", choices=("internet", "intranet"))  # a VPC group's rules are all intranet
    rules = [r for r in rules_of(group) if direction == "all" or r["Direction"] == direction]
    body: dict[str, Any] = {}
    if "MaxResults" in p or "NextToken" in p:
        size = p.int("MaxResults", 500, lo=10, hi=1000)
        rules, body["NextToken"] = common.token_page(rules, p, size or 500)
    names = _group_names(call.state)
    kind = group.get("SecurityGroupType", "normal")
    return {"RegionId": region, "SecurityGroupId": group["SecurityGroupId"],
            "SecurityGroupName": group.get("SecurityGroupName", ""), "Description": group.get("Description", ""),
            "VpcId": group.get("VpcId", ""), "InnerAccessPolicy": "Drop" if kind == "enterprise" else "Accept",
            "Permissions": {"Permission": [rule_out(r, names) for r in rules]}, **body}


# -- rules: parsing and validation -----------------------------------------------------------
def _permissions(p: Params, *, allow_rule_ids: bool = False) -> tuple[list[tuple[str, dict]], list[str]]:
    """``[(where, fields)]`` of the request's rules (``Permissions.N.*`` or the deprecated top-level fields) and
    the ``SecurityGroupRuleId.N`` it names (revoke only)."""
    structs = p.struct_list("Permissions")
    legacy = {f: p.raw[f] for f in RULE_FIELDS if f in p}
    rule_ids = p.repeat_list("SecurityGroupRuleId") if allow_rule_ids else []
    if sum(map(bool, (structs, legacy, rule_ids))) > 1:
        raise err("InvalidParam.Permissions", "The specified parameter Permissions cannot coexist with other "
                  "parameters.")
    if len(structs) > MAX_PERMISSIONS_PER_CALL or len(rule_ids) > MAX_PERMISSIONS_PER_CALL:
        raise err("InvalidParam.Permissions", f"The specified parameter Permissions is not valid: at most "
                  f"{MAX_PERMISSIONS_PER_CALL} rules per request.")
    if structs:
        return [(f"Permissions.{n}", fields) for n, fields in enumerate(structs, start=1)], []
    if legacy:
        return [("the request", legacy)], []
    return [], rule_ids


def _ports(value: str | None, protocol: str, field: str, required: bool) -> str:
    if value in (None, ""):
        if protocol in ("TCP", "UDP"):
            if required:
                raise err("InvalidPortRange.Malformed", f"The specified parameter {field} must set.")
            return ""
        return "-1/-1" if required else ""
    m = _PORTS_RE.match(value)
    if not m:
        raise err("InvalidSourcePortRange.Malformed" if field == "SourcePortRange" else "InvalidParam.PortRange",
                  f"The specified parameter {field} is not valid. It should be two integers less than 65535 in "
                  "?/? format.")
    start, end = int(m.group(1)), int(m.group(2))
    if protocol in ("TCP", "UDP"):
        if (start, end) == (-1, -1):
            raise err("OperationDenied", "The specified IpProtocol does not exist or IpProtocol and PortRange do "
                      "not match.")
        if not 1 <= start <= end <= 65535:
            raise err("InvalidSourcePortRange.Malformed" if field == "SourcePortRange" else "InvalidParam.PortRange",
                      f"The specified parameter {field} is not valid. It should be two integers less than 65535 "
                      "in ?/? format.")
    elif (start, end) != (-1, -1):
        raise err("OperationDenied", "The specified IpProtocol does not exist or IpProtocol and PortRange do not "
                  "match.")
    return f"{start}/{end}"


def _cidr(value: str | None, field: str, version: int) -> str:
    if value in (None, ""):
        return ""
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        net = None
    if net is None or net.version != version:
        if version == 4:
            raise err(f"Invalid{field}.Malformed", f"The specified parameter \"{field}\" is not valid.")
        raise err(f"InvalidParam.{field}", f"The specified parameter {field} is not valid.")
    return value


def _other_group(state: State, group: dict, other_id: str, direction: str) -> str:
    ingress = direction == "ingress"
    other = state.table(GROUPS).get(other_id)
    if other is None or other.get("RegionId") != group["RegionId"]:
        raise err("InvalidSourceGroupId.NotFound" if ingress else "InvalidDestGroupId.NotFound",
                  f"The {'SourceGroupId' if ingress else 'DestGroupId'} provided does not exist in our records.", 404)
    if other_id == group["SecurityGroupId"]:
        if ingress:
            raise err("InvalidParamter.Conflict", "The specified SecurityGroupId should be different from the "
                      "SourceGroupId.", 403)
        raise err("InvalidSecurityGroup.IsSame", "The authorized SecurityGroupId should be different from the "
                  "DestGroupId.", 403)
    if other.get("VpcId") != group.get("VpcId"):
        raise err("InvalidSourceGroupId.Mismatch" if ingress else "InvalidDestGroupId.Mismatch",
                  f"Specified security group and {'source' if ingress else 'destination'} group are not in the "
                  "same VPC.")
    if group.get("SecurityGroupType") == "enterprise":
        raise err("InvalidGroupAuthParameter.OperationDenied", "The security group can not authorize to enterprise "
                  "level security group.")
    return other_id


def normalise_rule(state: State, group: dict, direction: str, where: str, fields: dict[str, str]) -> dict:
    """One rule of a request, validated as ECS does and in the stored form (see the module docstring)."""
    protocol = (fields.get("IpProtocol") or "").upper()
    if protocol not in PROTOCOLS:
        raise err("InvalidIpProtocol.ValueNotSupported", "The parameter IpProtocol must be specified with case "
                  "insensitive TCP, UDP, ICMP, GRE or All.")
    rule: dict[str, Any] = {"Direction": direction, "IpProtocol": protocol,
                            "PortRange": _ports(fields.get("PortRange"), protocol, "PortRange", True),
                            "SourcePortRange": _ports(fields.get("SourcePortRange"), protocol, "SourcePortRange",
                                                      False)}
    source4 = _cidr(fields.get("SourceCidrIp"), "SourceCidrIp", 4)
    source6 = _cidr(fields.get("Ipv6SourceCidrIp"), "Ipv6SourceCidrIp", 6)
    dest4 = _cidr(fields.get("DestCidrIp"), "DestCidrIp", 4)
    dest6 = _cidr(fields.get("Ipv6DestCidrIp"), "Ipv6DestCidrIp", 6)
    if source4 and source6:
        raise err("InvalidParam.SourceIp", f"The Parameters SourceCidrIp and Ipv6SourceCidrIp in {where} cannot be "
                  "set at the same time.")
    if dest4 and dest6:
        raise err("InvalidParam.DestIp", f"The Parameters DestCidrIp and Ipv6DestCidrIp in {where} cannot be set at "
                  "the same time.")
    for prefix_list in ("SourcePrefixListId", "DestPrefixListId"):
        if fields.get(prefix_list):
            raise err("InvalidPrefixListId.NotFound", "The specified prefix list was not found.", 404)
    if fields.get("PortRangeListId") and not fields.get("PortRange"):
        raise err("InvalidPortRangeListId.NotFound", "The specified port range list was not found.")
    source_group = fields.get("SourceGroupId") or ""
    dest_group = fields.get("DestGroupId") or ""
    if direction == "ingress":
        dest_group = ""
        if not (source4 or source6 or source_group):
            raise err("MissingParameter.Source", f"One of the parameters SourceCidrIp, Ipv6SourceCidrIp, "
                      f"SourceGroupId or SourcePrefixListId in {where} must be specified.")
        if source_group:
            _other_group(state, group, source_group, direction)
    else:
        source_group = ""
        if not (dest4 or dest6 or dest_group):
            raise err("MissingParameter.Dest", "Either DestCidrIp or DestGroupId must be specified.")
        if dest_group:
            _other_group(state, group, dest_group, direction)
    policy = (fields.get("Policy") or "accept").lower()
    if policy not in ("accept", "drop"):
        raise err("InvalidPolicy.Malformed", "The specified parameter \"Policy\" is not valid.")
    if policy == "drop" and group.get("SecurityGroupType") == "enterprise":
        raise err("InvalidGroupParameter.OperationDenied", "The attributes Policy, SourceGroupId, DestGroupId of "
                  "enterprise level security groups are not allowed to be set or modified.")
    raw_priority = fields.get("Priority") or "1"
    try:
        priority = int(raw_priority)
    except ValueError:
        raise err("InvalidPriority.Malformed", "The parameter Priority is invalid.") from None
    if not 1 <= priority <= 100:
        raise err("InvalidPriority.ValueNotSupported", "The parameter Priority is invalid.")
    nic_type = fields.get("NicType") or "intranet"
    if nic_type not in ("internet", "intranet"):
        raise err("InvalidNicType.ValueNotSupported", "The specified NicType does not exist.")
    description = fields.get("Description") or ""
    if len(description) > 512 or description.startswith(("http://", "https://")):
        raise err("InvalidSecurityGroupDiscription.Malformed", "The specified security group rule description is "
                  "not valid.")
    rule.update(SourceCidrIp=source4, Ipv6SourceCidrIp=source6, SourceGroupId=source_group, DestCidrIp=dest4,
                Ipv6DestCidrIp=dest6, DestGroupId=dest_group, Policy=policy.capitalize(), Priority=priority,
                NicType="intranet",  # a VPC group's rules are intranet whatever is asked (the emulator has no classic)
                Description=description)
    return rule


def identity(rule: dict) -> tuple:
    return tuple(rule.get(k) for k in IDENTITY)


# -- Authorize -------------------------------------------------------------------------------
def _authorize(call: Call, p: Params, direction: str, action_name: str) -> dict:
    state = call.state
    region = common.region(call, p)
    group = get_group(state, region, p.str("SecurityGroupId"))
    key, previous = common.idempotent(call, p, action_name)
    if previous is not None:
        return {}
    permissions, _ = _permissions(p)
    if not permissions:  # nothing names a rule: the protocol is the first thing ECS misses
        raise err("InvalidIpProtocol.ValueNotSupported", "The parameter IpProtocol must be specified with case "
                  "insensitive TCP, UDP, ICMP, GRE or All.")
    wanted = [normalise_rule(state, group, direction, where, fields) for where, fields in permissions]
    rules = rules_of(group)
    have = {identity(r) for r in rules}
    new = []
    for rule in wanted:
        if identity(rule) not in have:  # an existing rule (or one twice in the request) is added once
            have.add(identity(rule))
            new.append(rule)
    if len(rules) + len(new) > MAX_RULES_PER_GROUP:
        raise err("AuthorizationLimitExceed", "The limit of authorization records in the security group reaches.",
                  403)
    common.dry_run(p)
    for rule in new:
        rule["SecurityGroupRuleId"] = state.new_id("sgr")
        rule["CreateTime"] = iso(call.now)
        rules.append(rule)
    common.remember(call, p, key, True)
    return {}


@action("ecs", "AuthorizeSecurityGroup")
def authorize_security_group(call: Call, p: Params) -> dict:
    return _authorize(call, p, "ingress", "AuthorizeSecurityGroup")


@action("ecs", "AuthorizeSecurityGroupEgress")
def authorize_security_group_egress(call: Call, p: Params) -> dict:
    return _authorize(call, p, "egress", "AuthorizeSecurityGroupEgress")


# -- Revoke ----------------------------------------------------------------------------------
def _revoke(call: Call, p: Params, direction: str, action_name: str) -> dict:
    state = call.state
    region = common.region(call, p)
    group = get_group(state, region, p.str("SecurityGroupId"))
    key, previous = common.idempotent(call, p, action_name)
    if previous is not None:  # a retry of a revoke that was done: done
        return {}
    permissions, rule_ids = _permissions(p, allow_rule_ids=True)
    rules = rules_of(group)
    if rule_ids:
        if len(set(rule_ids)) != len(rule_ids):
            raise err("InvalidParam.SecurityGroupRuleIdRepeated", "The specified parameter SecurityGroupRuleId is "
                      "repeated.")
        by_id = {r["SecurityGroupRuleId"]: r for r in rules if r["Direction"] == direction}
        missing = [i for i in rule_ids if i not in by_id]
        if missing:
            raise err("InvalidSecurityGroupRuleId.NotFound", "The specified SecurityGroupRuleId is not exists.", 404)
        doomed = set(rule_ids)
    elif permissions:
        wanted = [identity(normalise_rule(state, group, direction, where, fields)) for where, fields in permissions]
        if len(set(wanted)) != len(wanted):
            raise err("InvalidParam.DuplicatePermissions", "There are duplicate permissions in the specified "
                      "parameter Permissions.")
        by_identity = {identity(r): r["SecurityGroupRuleId"] for r in rules}
        if any(w not in by_identity for w in wanted):
            raise err("InvalidSecurityGroupRule.RuleNotExist", "The specified rule does not exist.")
        doomed = {by_identity[w] for w in wanted}
    else:
        raise err("InvalidIpProtocol.ValueNotSupported", "The parameter IpProtocol must be specified with case "
                  "insensitive TCP, UDP, ICMP, GRE or All.")
    common.dry_run(p)
    group["Rules"] = [r for r in rules if r["SecurityGroupRuleId"] not in doomed]
    common.remember(call, p, key, True)
    return {}


@action("ecs", "RevokeSecurityGroup")
def revoke_security_group(call: Call, p: Params) -> dict:
    return _revoke(call, p, "ingress", "RevokeSecurityGroup")


@action("ecs", "RevokeSecurityGroupEgress")
def revoke_security_group_egress(call: Call, p: Params) -> dict:
    return _revoke(call, p, "egress", "RevokeSecurityGroupEgress")
