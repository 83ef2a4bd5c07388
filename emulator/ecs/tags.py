"""ECS tag APIs: TagResources, UntagResources, ListTagResources (instance, disk, snapshot, image, securitygroup)."""

from __future__ import annotations

from ..errors import ApiError, missing_parameter
from ..rpc import Call, Params, action
from ..state import State
from . import common

RESOURCE_TABLES = {
    "instance": ("ecs.instances", "InstanceId"),
    "disk": ("ecs.disks", "DiskId"),
    "snapshot": ("ecs.snapshots", "SnapshotId"),
    "image": ("ecs.images", "ImageId"),
    "securitygroup": ("ecs.security_groups", "SecurityGroupId"),
}
LIST_PAGE_SIZE = 50


def _resource_type(p: Params) -> str:
    value = p.str("ResourceType")
    if not value:
        raise missing_parameter("ResourceType")
    kind = value.lower()
    if kind not in RESOURCE_TABLES:
        raise ApiError("InvalidResourceType.NotFound", "The ResourceType provided does not exist in our records.", 404)
    return kind


def _resources(state: State, kind: str, region: str, ids: list[str]) -> list[dict]:
    table = state.table(RESOURCE_TABLES[kind][0])
    out = []
    for rid in ids:
        rec = table.get(rid)
        if rec is None or rec.get("RegionId") != region:
            raise ApiError("InvalidResourceId.NotFound",
                           f"The specified ResourceIds are not found in our records ({rid}).", 404)
        out.append(rec)
    return out


def _resource_ids(p: Params) -> list[str]:
    ids = p.repeat_list("ResourceId")
    if not ids:
        raise missing_parameter("ResourceId")
    if len(ids) > 50:
        raise ApiError("NumberExceed.ResourceIds", "The ResourceIds parameter's number is exceed , Valid : 50", 400)
    return list(dict.fromkeys(ids))


@action("ecs", "TagResources")
def tag_resources(call: Call, p: Params) -> dict:
    region = common.region(call, p)
    kind = _resource_type(p)
    ids = _resource_ids(p)
    tags = common.parse_tags(p)
    if not tags:
        raise missing_parameter("Tag")
    recs = _resources(call.state, kind, region, ids)
    for rec in recs:  # check every quota before changing anything
        if len(set(rec.get("Tags") or {}) | set(tags)) > common.MAX_TAGS_PER_RESOURCE:
            raise ApiError("OperationDenied.QuotaExceed", "The quota of tags on resource is beyond permitted range.",
                           400)
    for rec in recs:
        common.merge_tags(rec, tags)
    return {}


@action("ecs", "UntagResources")
def untag_resources(call: Call, p: Params) -> dict:
    region = common.region(call, p)
    kind = _resource_type(p)
    ids = _resource_ids(p)
    keys = p.repeat_list("TagKey")
    if len(keys) > 20:
        raise ApiError("NumberExceed.Tags", "The Tags parameter's number is exceed , Valid : 20", 400)
    remove_all = p.bool("All")
    for rec in _resources(call.state, kind, region, ids):
        current = rec.setdefault("Tags", {})
        if remove_all and not keys:
            current.clear()
        for key in keys:
            current.pop(key, None)
    return {}


@action("ecs", "ListTagResources")
def list_tag_resources(call: Call, p: Params) -> dict:
    state = call.state
    region = common.region(call, p)
    kind = _resource_type(p)
    ids = p.repeat_list("ResourceId")
    if len(ids) > 50:
        raise ApiError("NumberExceed.ResourceIds", "The ResourceIds parameter's number is exceed , Valid : 50", 400)
    wanted = [(t.get("Key"), t.get("Value")) for t in p.struct_list("Tag") if t.get("Key")]
    tag_filters = p.struct_list("TagFilter")
    table_name, id_key = RESOURCE_TABLES[kind]
    table = state.table(table_name)
    if ids:
        recs = [table[i] for i in dict.fromkeys(ids) if i in table and table[i].get("RegionId") == region]
    else:
        recs = [r for k, r in table.items() if r.get("RegionId") == region and "/" not in k]
    pairs = []
    for rec in recs:
        tags = rec.get("Tags") or {}
        if wanted and not all(k in tags and (v in (None, "") or tags[k] == v) for k, v in wanted):
            continue
        if tag_filters:
            ok = True
            for f in tag_filters:
                key = f.get("TagKey")
                values = [v for k, v in f.items() if k.startswith("TagValues.")]
                if key and (key not in tags or (values and tags[key] not in values)):
                    ok = False
            if not ok:
                continue
        for key, value in tags.items():
            pairs.append({"ResourceId": rec[id_key], "ResourceType": kind, "TagKey": key, "TagValue": value})
    page, token = common.token_page(pairs, p, LIST_PAGE_SIZE)
    return {"TagResources": {"TagResource": page}, "NextToken": token}
