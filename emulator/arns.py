"""The resources a call names, as RAM ARNs, for :meth:`emulator.ram.Policy.decide`.

``acs:<service>:<region>:<account-id>:<type>/<id>``, as Alibaba Cloud documents each API's RAM authorization:

* ECS ``instance/<id>``, ``image/<id>``, ``snapshot/<id>``, ``disk/<id>``, ``securitygroup/<id>`` (RunInstances,
  DeleteSecurityGroup, DescribeSecurityGroupAttribute, Authorize/RevokeSecurityGroup[Egress]),
  ``command/<id>`` (a public command by its name: ``command/ACS-ECS-ImageRepair-for-linux.sh``); VPC ``vswitch/<id>``, ``vpc/<id>``; RDS ``dbinstance/<id>``; STS AssumeRole the role's own ARN
  (``acs:ram::<account>:role/<name>``); OSS ``acs:oss:*:<account>:<bucket>`` and ``...:<bucket>/<key>``
  (``acs:oss:*:<account>:*`` for ListBuckets).
* ``<type>/*`` for a resource the call creates (CreateImage's image, RunInstances' instances, CopyImage's copy in
  the *destination* region, CreateSnapshot's snapshot, RunCommand's command, CreateSecurityGroup's group, which also
  names its VPC ``acs:vpc:<region>:<account>:vpc/<id>``) and for list calls
  (DescribeInstances ``instance/*``, DescribeDBInstances ``dbinstance/*``...), whatever their filters.
* The region is the call's ``RegionId`` (an RDS call without one: the instance's region); the account is the
  emulator's (:data:`emulator.keys.ACCOUNT_ID`, what STS GetCallerIdentity answers).
* An action not in :data:`RPC_RESOURCES` (DescribeRegions, DescribeInvocations, DescribeAccountAttributes...)
  names ``acs:<service>:<region>:<account>:*``: only ``*``-wide patterns authorise it.

Ids are read from the request as the SDKs send them: ``Name``, ``Name.N``, a JSON array or a comma list, and
``Struct.N.Field`` for ids inside repeated structures. Tags of existing ECS and RDS resources are read from the
state only when a tag condition asks (:class:`emulator.ram.Named`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from .errors import ApiError
from .keys import ACCOUNT_ID
from .ram import GONE, Named, Tags
from .rpc import Params


class Part(NamedTuple):
    """Resources of one type a call names."""

    kind: str                    # resource type; "" = the one the ResourceType parameter names (tag APIs)
    ids: tuple[str, ...] = ()    # parameters naming the ids; () = a new resource, or all of them (list call)
    optional: bool = False       # absent ids name nothing (else they name <type>/*, left to the handler to refuse)
    region: str = "RegionId"     # the parameter naming the region
    service: str = "ecs"


INSTANCES = ("InstanceId", "InstanceIds")
_INSTANCE, _IMAGE = Part("instance", INSTANCES), Part("image", ("ImageId",))
_DB = Part("dbinstance", ("DBInstanceId",), service="rds")
_TAGGED = (Part("", ("ResourceId",)),)

RPC_RESOURCES: dict[str, tuple[Part, ...]] = {
    **{f"ecs:{a}": (_INSTANCE,) for a in (
        "StartInstance", "StartInstances", "StopInstance", "StopInstances", "RebootInstance", "RebootInstances",
        "DeleteInstance", "DeleteInstances")},
    "ecs:ReplaceSystemDisk": (Part("instance", ("InstanceId",)), _IMAGE, Part("disk", ("DiskId",), True)),
    "ecs:RunInstances": (Part("instance"), _IMAGE, Part("securitygroup", ("SecurityGroupId", "SecurityGroupIds"), True),
                         Part("vswitch", ("VSwitchId",), True, service="vpc"),
                         Part("snapshot", ("DataDisk.N.SnapshotId",), True)),
    "ecs:CreateImage": (Part("image"), Part("instance", ("InstanceId",), True), Part("snapshot", ("SnapshotId",), True),
                        Part("snapshot", ("DiskDeviceMapping.N.SnapshotId",), True)),
    "ecs:CopyImage": (_IMAGE, Part("image", region="DestinationRegionId")),
    **{f"ecs:{a}": (_IMAGE,) for a in (
        "CancelCopyImage", "DeleteImage", "ModifyImageSharePermission", "DescribeImageSharePermission")},
    "ecs:CreateSnapshot": (Part("disk", ("DiskId",)), Part("snapshot")),
    "ecs:DeleteSnapshot": (Part("snapshot", ("SnapshotId",)),),
    "ecs:TagResources": _TAGGED, "ecs:UntagResources": _TAGGED, "ecs:ListTagResources": _TAGGED,
    "ecs:RunCommand": (Part("instance", INSTANCES), Part("command")),
    "ecs:InvokeCommand": (Part("command", ("CommandId",)), Part("instance", INSTANCES)),
    "ecs:CreateCommand": (Part("command"),),
    "ecs:DescribeCommands": (Part("command"),),  # a list call: command/*, your commands and public ones alike
    # the agent: the instances named (DescribeCloudAssistantStatus without InstanceId.N: instance/*)
    "ecs:DescribeCloudAssistantStatus": (Part("instance", ("InstanceId",)),),
    "ecs:InstallCloudAssistant": (Part("instance", ("InstanceId",)),),
    "ecs:DescribeInstances": (Part("instance"),), "ecs:DescribeInstanceStatus": (Part("instance"),),
    "ecs:DescribeInstancesFullStatus": (Part("instance"),),
    "ecs:DescribeInstanceHistoryEvents": (Part("instance"),),
    "ecs:DescribeImages": (Part("image"),), "ecs:DescribeSnapshots": (Part("snapshot"),),
    "ecs:DescribeDisks": (Part("disk"),), "ecs:DescribeSecurityGroups": (Part("securitygroup"),),
    # CreateSecurityGroup names the new group and (as Alibaba documents it) the VPC it is created in
    "ecs:CreateSecurityGroup": (Part("securitygroup"), Part("vpc", ("VpcId",), True, service="vpc")),
    **{f"ecs:{a}": (Part("securitygroup", ("SecurityGroupId",)),) for a in (
        "DeleteSecurityGroup", "DescribeSecurityGroupAttribute", "AuthorizeSecurityGroup",
        "AuthorizeSecurityGroupEgress", "RevokeSecurityGroup", "RevokeSecurityGroupEgress")},
    "vpc:DescribeVpcs": (Part("vpc", service="vpc"),), "vpc:DescribeVSwitches": (Part("vswitch", service="vpc"),),
    "rds:DescribeDBInstances": (Part("dbinstance", service="rds"),),
    "rds:DescribeBackups": (_DB,), "rds:CreateBackup": (_DB,), "rds:DescribeBackupTasks": (_DB,),
}

# resource type -> the state table its records (with their "Tags" and "RegionId") live in
TABLES = {"instance": "ecs.instances", "image": "ecs.images", "snapshot": "ecs.snapshots", "disk": "ecs.disks",
          "securitygroup": "ecs.security_groups", "dbinstance": "rds.instances"}


def arn(service: str, region: str, relative: str) -> str:
    return f"acs:{service}:{region}:{ACCOUNT_ID}:{relative}"


def call_resources(state: Any, action: str, params: Mapping[str, str]) -> list[Named]:
    """Every resource an RPC call names (at least one)."""
    if action == "sts:AssumeRole" and params.get("RoleArn"):
        return [Named(params["RoleArn"])]
    parts = RPC_RESOURCES.get(action)
    if parts is None:
        service = action.partition(":")[0]
        return [Named(arn(service, params.get("RegionId", ""), "*"))]
    out: dict[str, Named] = {}
    for part in parts:
        for named in _part_resources(state, part, params):
            out.setdefault(named.arn, named)
    return list(out.values())


def _part_resources(state: Any, part: Part, params: Mapping[str, str]) -> list[Named]:
    kind = part.kind or params.get("ResourceType", "").lower()
    region = params.get(part.region, "")
    ids = [i for name in part.ids for i in ids_of(params, name)]
    if not ids:
        return [] if part.optional else [Named(arn(part.service, region, f"{kind}/*"))]
    table = TABLES.get(kind)
    return [Named(arn(part.service, region or _region_of(state, table, i), f"{kind}/{i}"),
                  _tag_reader(state, table, i) if table else None) for i in dict.fromkeys(ids)]


def _region_of(state: Any, table: str | None, rid: str) -> str:
    rec = state.table(table).get(rid) if table else None
    return str(rec.get("RegionId") or "") if rec else ""


def _tag_reader(state: Any, table: str, rid: str):
    def read() -> Tags:
        rec = state.table(table).get(rid)
        return GONE if rec is None else dict(rec.get("Tags") or {})

    return read


def ids_of(params: Mapping[str, str], name: str) -> list[str]:
    """The ids parameter ``name`` gives, read as the handlers read them (:meth:`emulator.rpc.Params.ids`: a JSON
    array, a comma list or ``Name.N``); ``Struct.N.Field`` names a field of a repeated structure. A malformed
    value names nothing here: the handler answers it with InvalidParameter."""
    p = Params(dict(params))
    try:
        if ".N." in name:
            struct, _, field = name.partition(".N.")
            return [d[field] for d in p.struct_list(struct) if d.get(field)]
        return p.ids(name)
    except ApiError:
        return []


def oss_resources(bucket: str | None, key: str | None = None) -> list[Named]:
    """The OSS resource of a request: the object, else the bucket, else (ListBuckets) every bucket."""
    relative = "*" if bucket is None else bucket if key is None else f"{bucket}/{key}"
    return [Named(arn("oss", "*", relative))]
