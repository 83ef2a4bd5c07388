"""What the VPC actions share: the owner id they answer, page numbers, tags in answers and tag filters."""

from __future__ import annotations

from ..rpc import Params

ACCOUNT_OWNER_ID = 1234567890123456


def page_of(p: Params, default_size: int = 10, max_size: int = 50) -> tuple[int, int]:
    number = p.int("PageNumber", 1, lo=1, hi=10**9)
    size = p.int("PageSize", default_size, lo=1, hi=max_size)
    return number, size  # type: ignore[return-value]


def tags_view(record: dict) -> dict:
    return {"Tag": [{"Key": k, "Value": v} for k, v in (record.get("Tags") or {}).items()]}


def tag_filter(p: Params) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in p.struct_list("Tag") if t.get("Key")}


def matches_tags(record: dict, wanted: dict[str, str]) -> bool:
    tags = record.get("Tags") or {}
    return all(k in tags and (v == "" or tags[k] == v) for k, v in wanted.items())
