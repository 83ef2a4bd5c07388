"""Helpers shared by the ECS modules: tags, pagination, id lookups, validation, idempotency.

Records keep tags as a plain dict (``{"env": "dev"}``); :func:`tags_out` renders the API shape
``{"Tag": [{"TagKey": ..., "TagValue": ...}]}``.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from ..clock import iso, parse_iso
from ..errors import ApiError, invalid_parameter, missing_parameter
from ..rpc import Call, Params
from ..state import State
from .regions import REGIONS, region_or_error

MAX_TAGS_PER_RESOURCE = 20
RESERVED_TAG_PREFIXES = ("aliyun", "acs:")

# Parameters that carry no meaning for idempotency (legacy v2 signing puts them in the query).
_COMMON_PARAMS = {"Action", "Version", "Format", "Timestamp", "SignatureNonce", "SignatureMethod",
                  "SignatureVersion", "AccessKeyId", "Signature", "SecurityToken", "ClientToken", "RegionId"}


# -- errors ----------------------------------------------------------------------------------
def err(code: str, message: str, status: int = 400) -> ApiError:
    return ApiError(code, message, status)


def not_found(kind: str, value: str | None = None) -> ApiError:
    """``InvalidInstanceId.NotFound`` and friends, 404."""
    what = {"InstanceId": "instance", "ImageId": "image", "SnapshotId": "snapshot", "DiskId": "disk",
            "SecurityGroupId": "security group", "VSwitchId": "vSwitch", "ZoneId": "zone"}.get(kind, kind)
    suffix = f" ({value})" if value else ""
    return ApiError(f"Invalid{kind}.NotFound", f"The specified {what} does not exist{suffix}.", 404)


def incorrect_instance_status(status: int = 403, detail: str = "") -> ApiError:
    msg = "The current status of the resource does not support this operation."
    return ApiError("IncorrectInstanceStatus", msg + (f" {detail}" if detail else ""), status)


def dry_run(p: Params) -> None:
    if p.bool("DryRun"):
        raise ApiError("DryRunOperation", "Request validation has been passed with DryRun flag set.", 400)


# -- regions ---------------------------------------------------------------------------------
def region(call: Call, p: Params, *, required: bool = True) -> str | None:
    value = p.str("RegionId")
    if value is None and not required:
        return None
    return region_or_error(value)


def zone_or_error(region_id: str, zone: str) -> str:
    if zone not in REGIONS[region_id]["Zones"]:
        raise not_found("ZoneId", zone)
    return zone


# -- lookups ---------------------------------------------------------------------------------
def _lookup(state: State, table: str, kind: str, rid: str | None, region_id: str | None) -> dict:
    if not rid:
        raise missing_parameter(kind)
    rec = state.table(table).get(rid)
    if rec is None or (region_id and rec.get("RegionId") != region_id):
        raise not_found(kind, rid)
    return rec


def get_instance(state: State, instance_id: str | None, region_id: str | None = None) -> dict:
    """The instance record; ids are unique across regions, so ``region_id`` is optional."""
    return _lookup(state, "ecs.instances", "InstanceId", instance_id, region_id)


def get_disk(state: State, disk_id: str | None, region_id: str | None = None) -> dict:
    return _lookup(state, "ecs.disks", "DiskId", disk_id, region_id)


def get_snapshot(state: State, snapshot_id: str | None, region_id: str | None = None) -> dict:
    return _lookup(state, "ecs.snapshots", "SnapshotId", snapshot_id, region_id)


def find_image(state: State, region_id: str, image_id: str) -> dict | None:
    """A custom image of the region (keyed by id) or a public one (keyed ``region/id``)."""
    images = state.table("ecs.images")
    rec = images.get(image_id)
    if rec is not None and rec.get("RegionId") == region_id:
        return rec
    return images.get(f"{region_id}/{image_id}")


def get_image(state: State, region_id: str, image_id: str | None) -> dict:
    if not image_id:
        raise missing_parameter("ImageId")
    rec = find_image(state, region_id, image_id)
    if rec is None:
        raise not_found("ImageId", image_id)
    return rec


def custom_images(state: State, region_id: str | None = None) -> Iterable[dict]:
    for key, rec in state.table("ecs.images").items():
        if "/" in key:
            continue
        if region_id is None or rec.get("RegionId") == region_id:
            yield rec


def disks_of(state: State, instance_id: str) -> list[dict]:
    """The instance's disks, system disk first, then data disks in device order."""
    disks = [d for d in state.table("ecs.disks").values() if d.get("InstanceId") == instance_id]
    disks.sort(key=lambda d: (d.get("Type") != "system", d.get("Device", ""), d["DiskId"]))
    return disks


def id_list(p: Params, name: str) -> list[str]:
    """A JSON-array id parameter (``InstanceIds=["i-1","i-2"]``); a comma list or ``Name.N`` is tolerated."""
    value = p.str(name)
    if value is not None and value.lstrip().startswith(("{", '"')):
        raise invalid_parameter(name, "It must be a JSON array of ids.")
    return p.ids(name)


# -- tags ------------------------------------------------------------------------------------
def tags_out(tags: dict | None) -> dict:
    return {"Tag": [{"TagKey": k, "TagValue": v} for k, v in (tags or {}).items()]}


def check_tag_key(key: str | None) -> str:
    if key is None or key == "" or len(key) > 128 or key.lower().startswith(RESERVED_TAG_PREFIXES) \
            or "http://" in key or "https://" in key:
        raise ApiError("InvalidTagKey.Malformed",
                       f"The specified Tag.n.Key is not valid ({key!r}): 1-128 characters, it cannot start "
                       "with aliyun or acs: and cannot contain http:// or https://.", 400)
    return key


def check_tag_value(value: str | None) -> str:
    value = value or ""
    if len(value) > 128 or value.lower().startswith("acs:") or "http://" in value or "https://" in value:
        raise ApiError("InvalidTagValue.Malformed",
                       f"The specified Tag.n.Value is not valid ({value!r}): up to 128 characters, it cannot "
                       "start with acs: and cannot contain http:// or https://.", 400)
    return value


def parse_tags(p: Params, name: str = "Tag") -> dict[str, str]:
    """Tags to set (``Tag.N.Key`` / ``Tag.N.Value``), validated like ECS does."""
    items = p.struct_list(name)
    if len(items) > MAX_TAGS_PER_RESOURCE:
        raise ApiError("NumberExceed.Tags", f"The Tags parameter's number is exceed , Valid : {MAX_TAGS_PER_RESOURCE}",
                       400)
    tags: dict[str, str] = {}
    for item in items:
        key = check_tag_key(item.get("Key"))
        if key in tags:
            raise ApiError("Duplicate.TagKey", "The Tag.N.Key contain duplicate key.", 400)
        tags[key] = check_tag_value(item.get("Value"))
    return tags


def tag_filters(p: Params, name: str = "Tag") -> list[tuple[str, str | None]]:
    """Describe* filters: every ``Tag.N.Key`` must be present, with ``Tag.N.Value`` if given."""
    filters = []
    for item in p.struct_list(name):
        key = item.get("Key")
        if not key:
            if item.get("Value"):
                raise ApiError("InvalidTag.Mismatch", "The specified Tag.n.Key and Tag.n.Value are not match.", 400)
            continue
        value = item.get("Value")
        filters.append((key, value if value not in (None, "") else None))
    if len(filters) > MAX_TAGS_PER_RESOURCE:
        raise ApiError("InvalidTagCount", "The specified tags are beyond the permitted range.", 400)
    return filters


def match_tags(tags: dict | None, filters: list[tuple[str, str | None]]) -> bool:
    tags = tags or {}
    for key, value in filters:
        if key not in tags or (value is not None and tags[key] != value):
            return False
    return True


def merge_tags(rec: dict, new: dict[str, str]) -> None:
    current = rec.setdefault("Tags", {})
    if len(set(current) | set(new)) > MAX_TAGS_PER_RESOURCE:
        raise ApiError("OperationDenied.QuotaExceed", "The quota of tags on resource is beyond permitted range.", 400)
    current.update(new)


# -- filters ---------------------------------------------------------------------------------
def name_matcher(pattern: str | None) -> Callable[[str], bool] | None:
    """InstanceName / ImageName filters: ``*`` is a wildcard, otherwise an exact match."""
    if not pattern:
        return None
    if "*" in pattern or "?" in pattern:
        return lambda name: fnmatch.fnmatchcase(name or "", pattern)
    return lambda name: name == pattern


def creation_filters(p: Params) -> tuple[float | None, float | None]:
    """``Filter.N.Key`` = CreationStartTime / CreationEndTime (``yyyy-MM-ddTHH:mmZ``)."""
    start = end = None
    for item in p.struct_list("Filter"):
        key, value = item.get("Key"), item.get("Value")
        if key not in ("CreationStartTime", "CreationEndTime") or not value:
            continue
        try:
            ts = parse_iso(value)
        except ValueError:
            raise invalid_parameter("Filter", f"{key} must be a UTC time like 2024-01-01T00:00Z.") from None
        if key == "CreationStartTime":
            start = ts
        else:
            end = ts
    return start, end


# -- pagination ------------------------------------------------------------------------------
def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = int(data["o"])
        if offset < 0:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError):
        raise ApiError("InvalidParameter.NextToken", "The specified parameter NextToken is not valid.", 400) from None


def paginate(items: list, p: Params, *, default_size: int = 10, max_size: int = 100,
             token_scheme: bool = True, max_results_max: int | None = None) -> tuple[list, dict]:
    """Apply MaxResults/NextToken (if the caller uses them and ``token_scheme``) or PageNumber/PageSize.

    Returns the page and the response counters (``TotalCount``, ``PageNumber``, ``PageSize``,
    and ``NextToken`` for the token scheme; empty string on the last page).
    """
    total = len(items)
    if token_scheme and ("MaxResults" in p or "NextToken" in p):
        size = p.int("MaxResults", default_size, lo=1, hi=max_results_max or max_size)
        token = p.str("NextToken")
        offset = _decode_token(token) if token else 0
        page = items[offset: offset + size]
        nxt = offset + size
        return page, {"TotalCount": total, "NextToken": _encode_token(nxt) if nxt < total else "",
                      "PageSize": size, "PageNumber": offset // size + 1 if size else 1}
    number = p.int("PageNumber", 1, lo=1, hi=10**9)
    size = p.int("PageSize", default_size, lo=1, hi=max_size)
    start = (number - 1) * size
    counters = {"TotalCount": total, "PageNumber": number, "PageSize": size}
    if token_scheme:
        counters["NextToken"] = ""
    return items[start: start + size], counters


def token_page(items: list, p: Params, size: int) -> tuple[list, str]:
    """NextToken-only pagination (ListTagResources)."""
    token = p.str("NextToken")
    offset = _decode_token(token) if token else 0
    nxt = offset + size
    return items[offset:nxt], (_encode_token(nxt) if nxt < len(items) else "")


# -- validation ------------------------------------------------------------------------------
_NAME_RE = re.compile(r"^[A-Za-z\u4e00-\u9fa5][\w.:\-\u4e00-\u9fa5 ()/@,\[\]]*$")


def valid_name(name: str) -> bool:
    """Alibaba's image/snapshot name rule: 2-128 chars, starts with a letter, no http(s)://."""
    return (2 <= len(name) <= 128 and bool(_NAME_RE.match(name))
            and not name.startswith(("http://", "https://")) and "http://" not in name and "https://" not in name)


def check_description(value: str | None) -> str:
    if value is None or value == "":
        return ""
    if len(value) < 2 or len(value) > 256 or value.startswith(("http://", "https://")):
        raise ApiError("InvalidDescription.Malformed", "The specified description is wrongly formed.", 400)
    return value


# -- idempotency -----------------------------------------------------------------------------
def _fingerprint(p: Params) -> str:
    items = sorted((k, v) for k, v in p.raw.items() if k not in _COMMON_PARAMS)
    return hashlib.sha1(json.dumps(items).encode()).hexdigest()


def idempotent(call: Call, p: Params, action: str) -> tuple[str | None, Any]:
    """``(key, previous result)`` for the request's ClientToken; ``(None, None)`` without one.

    A repeat with the same token and the same parameters returns the first result; different
    parameters give ``IdempotenceParamNotMatch`` like ECS.
    """
    token = p.str("ClientToken")
    if not token:
        return None, None
    if len(token) > 64:
        raise invalid_parameter("ClientToken", "The length must not exceed 64.")
    key = f"{action}:{token}"
    seen = call.state.table("ecs.client_tokens").get(key)
    if seen is None:
        return key, None
    if seen["fingerprint"] != _fingerprint(p):
        raise ApiError("IdempotenceParamNotMatch",
                       "Request uses a client token in a previous request but is not identical to that request.", 400)
    return key, seen["result"]


def remember(call: Call, p: Params, key: str | None, result: Any) -> None:
    if key:
        call.state.table("ecs.client_tokens")[key] = {"fingerprint": _fingerprint(p), "result": result,
                                                      "at": call.now}


# -- time ------------------------------------------------------------------------------------
def progress(rec: dict, now: float) -> str:
    """Progress of a timed operation from its ``_start``/``_end`` (never 100% before it ends)."""
    start, end = rec.get("_start"), rec.get("_end")
    if start is None or end is None:
        return "0%"
    if end <= start:
        return "99%"
    pct = int(100 * (now - start) / (end - start))
    return f"{max(0, min(99, pct))}%"


def remain_time(rec: dict, now: float) -> int:
    end = rec.get("_end")
    return max(0, int(end - now)) if end is not None else 0


def created_ts(rec: dict) -> float:
    ts = rec.get("_created")
    if ts is not None:
        return float(ts)
    try:
        return parse_iso(rec.get("CreationTime") or "1970-01-01T00:00:00Z")
    except ValueError:
        return 0.0


__all__ = ["iso"]
