"""Security groups through the ECS SDK: create (ClientToken, VPC check, tags), authorize and revoke rules in both
directions (Permissions.N and the deprecated top-level fields), DescribeSecurityGroupAttribute, delete (refused
while an instance uses the group), RuleCount, RunInstances into a created group, RAM resource ARNs."""

from __future__ import annotations

import pytest
from alibabacloud_ecs20140526 import models as m

from .helpers import api_error, fleet

HZ = "cn-hangzhou"
Perm = m.AuthorizeSecurityGroupRequestPermissions
EgressPerm = m.AuthorizeSecurityGroupEgressRequestPermissions
RevokePerm = m.RevokeSecurityGroupRequestPermissions


def default_vpc(client, region: str = HZ) -> str:
    (group,) = client.describe_security_groups(m.DescribeSecurityGroupsRequest(
        region_id=region, security_group_name="default")).body.security_groups.security_group
    return group.vpc_id


def create(client, vpc_id: str, **kw) -> str:
    return client.create_security_group(m.CreateSecurityGroupRequest(region_id=HZ, vpc_id=vpc_id, **kw)).body \
        .security_group_id


@pytest.fixture
def sg(ecs_client):
    client = ecs_client()
    return client, create(client, default_vpc(client), security_group_name="verify-closed")


def rules(client, group_id: str, direction: str | None = None):
    body = client.describe_security_group_attribute(m.DescribeSecurityGroupAttributeRequest(
        region_id=HZ, security_group_id=group_id, direction=direction)).body
    return body.permissions.permission


def group(client, group_id: str):
    (g,) = client.describe_security_groups(m.DescribeSecurityGroupsRequest(
        region_id=HZ, security_group_id=group_id)).body.security_groups.security_group
    return g


def authorize(client, group_id: str, *perms, **kw):
    return client.authorize_security_group(m.AuthorizeSecurityGroupRequest(
        region_id=HZ, security_group_id=group_id, permissions=list(perms) or None, **kw))


def authorize_egress(client, group_id: str, *perms, **kw):
    return client.authorize_security_group_egress(m.AuthorizeSecurityGroupEgressRequest(
        region_id=HZ, security_group_id=group_id, permissions=list(perms) or None, **kw))


def revoke(client, group_id: str, *perms, **kw):
    return client.revoke_security_group(m.RevokeSecurityGroupRequest(
        region_id=HZ, security_group_id=group_id, permissions=list(perms) or None, **kw))


# -- CreateSecurityGroup ---------------------------------------------------------------------
def test_create_gives_an_empty_group_in_the_vpc(emulator, ecs_client):
    client = ecs_client()
    vpc = default_vpc(client)
    gid = create(client, vpc, security_group_name="verify-closed", description="no way in",
                 security_group_type="normal", resource_group_id="rg-ignored",
                 tag=[m.CreateSecurityGroupRequestTag(key="ops:temporary", value="true")])
    g = group(client, gid)
    assert (g.security_group_name, g.description, g.vpc_id, g.security_group_type) == \
        ("verify-closed", "no way in", vpc, "normal")
    assert g.rule_count == 0 and [(t.tag_key, t.tag_value) for t in g.tags.tag] == [("ops:temporary", "true")]
    body = client.describe_security_group_attribute(m.DescribeSecurityGroupAttributeRequest(
        region_id=HZ, security_group_id=gid)).body
    assert (body.security_group_id, body.vpc_id, body.inner_access_policy, body.permissions.permission) == \
        (gid, vpc, "Accept", [])
    assert len(client.describe_security_groups(m.DescribeSecurityGroupsRequest(region_id=HZ)).body
               .security_groups.security_group) == 2
    # tags of a created group work like any other resource's
    client.untag_resources(m.UntagResourcesRequest(region_id=HZ, resource_type="securitygroup", resource_id=[gid],
                                                   tag_key=["ops:temporary"]))
    assert group(client, gid).tags.tag == []


def test_create_client_token_is_idempotent(emulator, ecs_client):
    client = ecs_client()
    vpc = default_vpc(client)
    first = create(client, vpc, security_group_name="verify", client_token="run-1-verify")
    assert create(client, vpc, security_group_name="verify", client_token="run-1-verify") == first
    assert api_error(create, client, vpc, security_group_name="other", client_token="run-1-verify") == \
        ("IdempotenceParamNotMatch", 400)
    assert len(client.describe_security_groups(m.DescribeSecurityGroupsRequest(
        region_id=HZ, security_group_name="verify")).body.security_groups.security_group) == 1


def test_create_refuses_a_vpc_that_is_not_in_the_region(emulator, ecs_client):
    client = ecs_client()
    assert api_error(create, client, "vpc-nope") == ("InvalidVpcId.NotFound", 404)
    assert api_error(create, client, default_vpc(client, "cn-beijing")) == ("InvalidVpcId.NotFound", 404)
    assert api_error(client.create_security_group, m.CreateSecurityGroupRequest(region_id=HZ)) == \
        ("InvalidVpcId.NotFound", 403)
    vpc = default_vpc(client)
    assert api_error(create, client, vpc, security_group_name="1starts-with-a-digit") == \
        ("InvalidSecurityGroupName.Malformed", 400)
    assert api_error(create, client, vpc, description="http://x") == ("InvalidDescription.Malformed", 400)
    assert api_error(create, client, vpc, security_group_type="premium") == ("InvalidParams.GroupType", 400)
    assert api_error(create, client, vpc, tag=[m.CreateSecurityGroupRequestTag(key="acs:x", value="y")]) == \
        ("InvalidTagKey.Malformed", 400)


def test_create_quota(emulator, ecs_client):
    client = ecs_client()
    vpc = default_vpc(client)
    for _ in range(99):  # the default group is the 100th
        create(client, vpc)
    assert api_error(create, client, vpc) == ("QuotaExceed.SecurityGroup", 403)


# -- Authorize / DescribeSecurityGroupAttribute ------------------------------------------------
def test_authorize_ingress_and_egress_and_describe_them(sg):
    client, gid = sg
    authorize(client, gid, Perm(ip_protocol="tcp", port_range="22/22", source_cidr_ip="10.0.0.0/8",
                                description="ssh from the office"),
              Perm(ip_protocol="ICMP", port_range="-1/-1", source_cidr_ip="192.168.1.7", policy="Drop", priority="5"))
    authorize_egress(client, gid, EgressPerm(ip_protocol="all", port_range="-1/-1", dest_cidr_ip="0.0.0.0/0",
                                             policy="drop", priority="100"))
    ingress = rules(client, gid, "ingress")
    assert [(r.ip_protocol, r.port_range, r.source_cidr_ip, r.policy, r.priority, r.direction, r.nic_type)
            for r in ingress] == [("TCP", "22/22", "10.0.0.0/8", "Accept", "1", "ingress", "intranet"),
                                  ("ICMP", "-1/-1", "192.168.1.7", "Drop", "5", "ingress", "intranet")]
    assert ingress[0].description == "ssh from the office" and ingress[0].create_time.endswith("Z")
    assert all(r.security_group_rule_id.startswith("sgr-") for r in ingress)
    (egress,) = rules(client, gid, "egress")
    assert (egress.ip_protocol, egress.dest_cidr_ip, egress.policy, egress.priority, egress.source_cidr_ip) == \
        ("ALL", "0.0.0.0/0", "Drop", "100", "")
    assert len(rules(client, gid)) == 3  # Direction all (the default)
    assert group(client, gid).rule_count == 3


def test_authorize_legacy_top_level_fields(sg):
    client, gid = sg
    client.authorize_security_group(m.AuthorizeSecurityGroupRequest(
        region_id=HZ, security_group_id=gid, ip_protocol="udp", port_range="53/53", source_cidr_ip="10.1.0.0/16",
        nic_type="intranet", policy="accept", priority="10", description="dns"))
    client.authorize_security_group_egress(m.AuthorizeSecurityGroupEgressRequest(
        region_id=HZ, security_group_id=gid, ip_protocol="tcp", port_range="443/443", dest_cidr_ip="0.0.0.0/0"))
    assert [(r.direction, r.ip_protocol, r.port_range, r.priority, r.description) for r in rules(client, gid)] == \
        [("ingress", "UDP", "53/53", "10", "dns"), ("egress", "TCP", "443/443", "1", "")]


def test_a_duplicate_rule_is_added_once(sg):
    client, gid = sg
    rule = Perm(ip_protocol="tcp", port_range="80/80", source_cidr_ip="0.0.0.0/0")
    authorize(client, gid, rule)
    first = rules(client, gid)[0].security_group_rule_id
    authorize(client, gid, rule, Perm(ip_protocol="TCP", port_range="80/80", source_cidr_ip="0.0.0.0/0",
                                      policy="Accept", description="same rule, other words"))
    assert [r.security_group_rule_id for r in rules(client, gid)] == [first]
    authorize(client, gid, Perm(ip_protocol="tcp", port_range="80/80", source_cidr_ip="0.0.0.0/0", priority="2"))
    assert len(rules(client, gid)) == 2  # another priority is another rule


def test_authorize_with_a_client_token_after_a_lost_answer(sg):
    client, gid = sg
    rule = Perm(ip_protocol="tcp", port_range="22/22", source_cidr_ip="10.0.0.0/8")
    authorize(client, gid, rule, client_token="tok-a")
    authorize(client, gid, rule, client_token="tok-a")
    assert len(rules(client, gid)) == 1
    assert api_error(authorize, client, gid, Perm(ip_protocol="tcp", port_range="23/23", source_cidr_ip="10.0.0.0/8"),
                     client_token="tok-a") == ("IdempotenceParamNotMatch", 400)


def test_group_to_group_rules(emulator, ecs_client):
    client = ecs_client()
    vpc = default_vpc(client)
    a, b = create(client, vpc), create(client, vpc)
    authorize(client, a, Perm(ip_protocol="tcp", port_range="5432/5432", source_group_id=b, nic_type="intranet"))
    authorize_egress(client, b, EgressPerm(ip_protocol="tcp", port_range="5432/5432", dest_group_id=a))
    (rule,) = rules(client, a)
    assert (rule.source_group_id, rule.source_cidr_ip) == (b, "")
    assert group(client, a).group_to_group_rule_count == 1
    assert api_error(authorize, client, a, Perm(ip_protocol="tcp", port_range="1/2", source_group_id="sg-nope")) == \
        ("InvalidSourceGroupId.NotFound", 404)
    assert api_error(authorize, client, a, Perm(ip_protocol="tcp", port_range="1/2", source_group_id=a)) == \
        ("InvalidParamter.Conflict", 403)
    assert api_error(authorize_egress, client, b, EgressPerm(ip_protocol="tcp", port_range="1/2",
                                                              dest_group_id="sg-nope")) == \
        ("InvalidDestGroupId.NotFound", 404)
    # a group other groups' rules name cannot be deleted
    assert api_error(client.delete_security_group, m.DeleteSecurityGroupRequest(region_id=HZ, security_group_id=b)) \
        == ("DependencyViolation", 403)


BAD_RULES = [
    (dict(ip_protocol="sctp", port_range="1/2", source_cidr_ip="10.0.0.0/8"), ("InvalidIpProtocol.ValueNotSupported",
                                                                                400)),
    (dict(port_range="1/2", source_cidr_ip="10.0.0.0/8"), ("InvalidIpProtocol.ValueNotSupported", 400)),
    (dict(ip_protocol="tcp", port_range="22", source_cidr_ip="10.0.0.0/8"), ("InvalidParam.PortRange", 400)),
    (dict(ip_protocol="tcp", port_range="0/22", source_cidr_ip="10.0.0.0/8"), ("InvalidParam.PortRange", 400)),
    (dict(ip_protocol="tcp", port_range="100/22", source_cidr_ip="10.0.0.0/8"), ("InvalidParam.PortRange", 400)),
    (dict(ip_protocol="udp", port_range="1/65536", source_cidr_ip="10.0.0.0/8"), ("InvalidParam.PortRange", 400)),
    (dict(ip_protocol="tcp", source_cidr_ip="10.0.0.0/8"), ("InvalidPortRange.Malformed", 400)),
    (dict(ip_protocol="tcp", port_range="-1/-1", source_cidr_ip="10.0.0.0/8"), ("OperationDenied", 400)),
    (dict(ip_protocol="icmp", port_range="22/22", source_cidr_ip="10.0.0.0/8"), ("OperationDenied", 400)),
    (dict(ip_protocol="all", port_range="1/65535", source_cidr_ip="10.0.0.0/8"), ("OperationDenied", 400)),
    (dict(ip_protocol="tcp", port_range="1/2", source_cidr_ip="10.0.0.300/8"), ("InvalidSourceCidrIp.Malformed", 400)),
    (dict(ip_protocol="tcp", port_range="1/2", source_cidr_ip="10.0.0.0/33"), ("InvalidSourceCidrIp.Malformed", 400)),
    (dict(ip_protocol="tcp", port_range="1/2", source_cidr_ip="anywhere"), ("InvalidSourceCidrIp.Malformed", 400)),
    (dict(ip_protocol="tcp", port_range="1/2", source_cidr_ip="10.0.0.0/8", dest_cidr_ip="x"),
     ("InvalidDestCidrIp.Malformed", 400)),
    (dict(ip_protocol="tcp", port_range="1/2"), ("MissingParameter.Source", 400)),
    (dict(ip_protocol="tcp", port_range="1/2", source_cidr_ip="10.0.0.0/8", policy="allow"),
     ("InvalidPolicy.Malformed", 400)),
    (dict(ip_protocol="tcp", port_range="1/2", source_cidr_ip="10.0.0.0/8", priority="high"),
     ("InvalidPriority.Malformed", 400)),
    (dict(ip_protocol="tcp", port_range="1/2", source_cidr_ip="10.0.0.0/8", priority="101"),
     ("InvalidPriority.ValueNotSupported", 400)),
    (dict(ip_protocol="tcp", port_range="1/2", source_cidr_ip="10.0.0.0/8", nic_type="wifi"),
     ("InvalidNicType.ValueNotSupported", 400)),
    (dict(ip_protocol="tcp", port_range="1/2", source_cidr_ip="10.0.0.0/8", description="d" * 513),
     ("InvalidSecurityGroupDiscription.Malformed", 400)),
    (dict(ip_protocol="tcp", port_range="1/2", source_prefix_list_id="pl-x"), ("InvalidPrefixListId.NotFound", 404)),
]


@pytest.mark.parametrize(("fields", "error"), BAD_RULES, ids=[e[0] + ":" + ",".join(f) for f, e in BAD_RULES])
def test_a_bad_rule_is_refused_and_nothing_is_added(sg, fields, error):
    client, gid = sg
    good = Perm(ip_protocol="tcp", port_range="443/443", source_cidr_ip="0.0.0.0/0")
    assert api_error(authorize, client, gid, good, Perm(**fields)) == error
    assert rules(client, gid) == []


def test_egress_needs_a_destination_and_unknown_groups_are_not_found(sg):
    client, gid = sg
    assert api_error(authorize_egress, client, gid, EgressPerm(ip_protocol="tcp", port_range="1/2")) == \
        ("MissingParameter.Dest", 400)
    good = Perm(ip_protocol="tcp", port_range="1/2", source_cidr_ip="10.0.0.0/8")
    assert api_error(authorize, client, "sg-nope", good) == ("InvalidSecurityGroupId.NotFound", 404)
    assert api_error(client.describe_security_group_attribute, m.DescribeSecurityGroupAttributeRequest(
        region_id=HZ, security_group_id="sg-nope")) == ("InvalidSecurityGroupId.NotFound", 404)
    assert api_error(client.describe_security_group_attribute, m.DescribeSecurityGroupAttributeRequest(
        region_id="cn-beijing", security_group_id=gid)) == ("InvalidSecurityGroupId.NotFound", 404)
    assert api_error(client.describe_security_group_attribute, m.DescribeSecurityGroupAttributeRequest(
        region_id=HZ, security_group_id=gid, direction="sideways")) == ("InvalidParameter.Direction", 400)
    # Permissions.N and the deprecated top-level fields cannot be mixed
    assert api_error(client.authorize_security_group, m.AuthorizeSecurityGroupRequest(
        region_id=HZ, security_group_id=gid, permissions=[good], ip_protocol="tcp")) == ("InvalidParam.Permissions", 400)


def test_describe_attribute_pages_with_max_results(sg):
    client, gid = sg
    authorize(client, gid, *[Perm(ip_protocol="tcp", port_range=f"{p}/{p}", source_cidr_ip="10.0.0.0/8")
                             for p in range(1000, 1015)])
    req = m.DescribeSecurityGroupAttributeRequest(region_id=HZ, security_group_id=gid, max_results=10)
    first = client.describe_security_group_attribute(req).body
    assert len(first.permissions.permission) == 10 and first.next_token
    req.next_token = first.next_token
    second = client.describe_security_group_attribute(req).body
    assert len(second.permissions.permission) == 5 and second.next_token == ""


# -- Revoke ----------------------------------------------------------------------------------
def test_revoke_by_fields_and_by_rule_id(sg):
    client, gid = sg
    ssh = Perm(ip_protocol="tcp", port_range="22/22", source_cidr_ip="10.0.0.0/8")
    web = Perm(ip_protocol="tcp", port_range="80/80", source_cidr_ip="0.0.0.0/0")
    authorize(client, gid, ssh, web)
    authorize_egress(client, gid, EgressPerm(ip_protocol="all", port_range="-1/-1", dest_cidr_ip="0.0.0.0/0"))
    revoke(client, gid, RevokePerm(ip_protocol="TCP", port_range="22/22", source_cidr_ip="10.0.0.0/8",
                                   policy="accept"))
    assert [r.port_range for r in rules(client, gid, "ingress")] == ["80/80"]
    assert api_error(revoke, client, gid, RevokePerm(ip_protocol="tcp", port_range="22/22",
                                                     source_cidr_ip="10.0.0.0/8")) == \
        ("InvalidSecurityGroupRule.RuleNotExist", 400)
    (web_rule,) = rules(client, gid, "ingress")
    (egress_rule,) = rules(client, gid, "egress")
    # an egress rule's id is not an ingress rule
    assert api_error(revoke, client, gid, security_group_rule_id=[egress_rule.security_group_rule_id]) == \
        ("InvalidSecurityGroupRuleId.NotFound", 404)
    assert api_error(revoke, client, gid, security_group_rule_id=["sgr-nope"]) == \
        ("InvalidSecurityGroupRuleId.NotFound", 404)
    assert api_error(revoke, client, gid, RevokePerm(ip_protocol="tcp", port_range="80/80", source_cidr_ip="0.0.0.0/0"),
                     security_group_rule_id=[web_rule.security_group_rule_id]) == ("InvalidParam.Permissions", 400)
    revoke(client, gid, security_group_rule_id=[web_rule.security_group_rule_id])
    assert rules(client, gid, "ingress") == []
    client.revoke_security_group_egress(m.RevokeSecurityGroupEgressRequest(
        region_id=HZ, security_group_id=gid, security_group_rule_id=[egress_rule.security_group_rule_id]))
    assert rules(client, gid) == [] and group(client, gid).rule_count == 0


def test_revoke_egress_by_legacy_fields_and_a_retried_revoke(sg):
    client, gid = sg
    authorize_egress(client, gid, EgressPerm(ip_protocol="tcp", port_range="443/443", dest_cidr_ip="0.0.0.0/0"))
    req = m.RevokeSecurityGroupEgressRequest(region_id=HZ, security_group_id=gid, ip_protocol="tcp",
                                             port_range="443/443", dest_cidr_ip="0.0.0.0/0", client_token="undo-1")
    client.revoke_security_group_egress(req)
    client.revoke_security_group_egress(req)  # the same token: the first answer, not RuleNotExist
    assert rules(client, gid) == []


def test_revoke_validates_like_authorize(sg):
    client, gid = sg
    assert api_error(revoke, client, gid, RevokePerm(ip_protocol="tcp", port_range="1/70000",
                                                     source_cidr_ip="10.0.0.0/8")) == ("InvalidParam.PortRange", 400)
    assert api_error(revoke, client, gid) == ("InvalidIpProtocol.ValueNotSupported", 400)
    assert api_error(revoke, client, "sg-nope", security_group_rule_id=["sgr-1"]) == \
        ("InvalidSecurityGroupId.NotFound", 404)


# -- DeleteSecurityGroup and instances -------------------------------------------------------
def test_run_instances_into_a_created_group_and_delete_once_released(frozen, ecs_client):
    client = ecs_client()
    gid = create(client, default_vpc(client), security_group_name="verify-closed")
    (iid,) = client.run_instances(m.RunInstancesRequest(
        region_id=HZ, image_id="aliyun_3_x64_20G_alibase_20250629.vhd", instance_type="ecs.g7.large",
        security_group_id=gid)).body.instance_id_sets.instance_id_set
    (inst,) = client.describe_instances(m.DescribeInstancesRequest(
        region_id=HZ, instance_ids=f'["{iid}"]')).body.instances.instance
    assert inst.security_group_ids.security_group_id == [gid]
    counted = client.describe_security_groups(m.DescribeSecurityGroupsRequest(
        region_id=HZ, security_group_id=gid, is_query_ecs_count=True)).body.security_groups.security_group[0]
    assert counted.ecs_count == 1
    delete = m.DeleteSecurityGroupRequest(region_id=HZ, security_group_id=gid)
    assert api_error(client.delete_security_group, delete) == ("DependencyViolation", 403)  # Pending
    frozen.admin.advance(60)
    assert api_error(client.delete_security_group, delete) == ("DependencyViolation", 403)  # Running
    client.stop_instance(m.StopInstanceRequest(instance_id=iid))
    frozen.admin.advance(30)
    assert api_error(client.delete_security_group, delete) == ("DependencyViolation", 403)  # Stopped
    client.delete_instance(m.DeleteInstanceRequest(instance_id=iid))
    client.delete_security_group(delete)
    assert client.describe_security_groups(m.DescribeSecurityGroupsRequest(
        region_id=HZ, security_group_id=gid)).body.security_groups.security_group == []
    assert api_error(client.delete_security_group, delete) == ("InvalidSecurityGroupId.NotFound", 404)
    assert api_error(client.describe_security_group_attribute, m.DescribeSecurityGroupAttributeRequest(
        region_id=HZ, security_group_id=gid)) == ("InvalidSecurityGroupId.NotFound", 404)
    assert api_error(client.run_instances, m.RunInstancesRequest(
        region_id=HZ, image_id="aliyun_3_x64_20G_alibase_20250629.vhd", instance_type="ecs.g7.large",
        security_group_id=gid)) == ("InvalidSecurityGroupId.NotFound", 404)


def test_delete_the_default_group_while_fleet_instances_use_it(emulator, ecs_client):
    fleet(emulator, instances=[{"region": HZ, "status": "Stopped"}])
    client = ecs_client()
    (g,) = client.describe_security_groups(m.DescribeSecurityGroupsRequest(region_id=HZ)).body \
        .security_groups.security_group
    assert api_error(client.delete_security_group, m.DeleteSecurityGroupRequest(
        region_id=HZ, security_group_id=g.security_group_id)) == ("DependencyViolation", 403)


# -- RAM -------------------------------------------------------------------------------------
def test_ram_resource_arns_of_the_security_group_actions(emulator, ecs_client):
    client = ecs_client()
    vpc = default_vpc(client)
    mine, other = create(client, vpc), create(client, vpc)
    emulator.admin.request("POST", "keys", {"keys": [{
        "access_key_id": "RamTestSgKey", "access_key_secret": "RamTestSgKey-secret",
        "policy": {"Version": "1", "Statement": [
            {"Effect": "Allow", "Action": ["ecs:CreateSecurityGroup"],
             "Resource": ["acs:ecs:cn-hangzhou:*:securitygroup/*", f"acs:vpc:cn-hangzhou:*:vpc/{vpc}"]},
            {"Effect": "Allow", "Action": ["ecs:AuthorizeSecurityGroup*", "ecs:RevokeSecurityGroup*",
                                           "ecs:DescribeSecurityGroupAttribute", "ecs:DeleteSecurityGroup"],
             "Resource": f"acs:ecs:cn-hangzhou:*:securitygroup/{mine}"}]}}]})
    limited = ecs_client(access_key_id="RamTestSgKey", access_key_secret="RamTestSgKey-secret")
    rule = Perm(ip_protocol="tcp", port_range="22/22", source_cidr_ip="10.0.0.0/8")
    authorize(limited, mine, rule)
    assert len(rules(limited, mine)) == 1
    assert api_error(authorize, limited, other, rule) == ("Forbidden.RAM", 403)
    assert api_error(rules, limited, other) == ("Forbidden.RAM", 403)
    assert create(limited, vpc)
    # CreateSecurityGroup names the VPC too: another VPC is not allowed
    assert api_error(create, limited, default_vpc(client, "cn-beijing")) == ("Forbidden.RAM", 403)
    limited.delete_security_group(m.DeleteSecurityGroupRequest(region_id=HZ, security_group_id=mine))


# -- persistence -----------------------------------------------------------------------------
def test_groups_and_rules_survive_a_restart(tmp_path):
    from alibabacloud_ecs20140526.client import Client
    from alibabacloud_tea_openapi.models import Config

    from emulator.control import EmulatorProcess

    def client_for(emu):
        return Client(Config(access_key_id=emu.access_key_id, access_key_secret=emu.access_key_secret,
                             region_id=HZ, endpoint=emu.endpoint, protocol="http"))

    with EmulatorProcess(time_scale=1000, data_dir=tmp_path / "emu") as emu:
        client = client_for(emu)
        gid = create(client, default_vpc(client), security_group_name="kept", client_token="keep-1")
        authorize(client, gid, Perm(ip_protocol="tcp", port_range="22/22", source_cidr_ip="10.0.0.0/8"))
        (before,) = rules(client, gid)
    with EmulatorProcess(time_scale=1000, data_dir=tmp_path / "emu") as emu:
        client = client_for(emu)
        (after,) = rules(client, gid)
        assert after.to_map() == before.to_map()
        assert create(client, default_vpc(client), security_group_name="kept", client_token="keep-1") == gid
