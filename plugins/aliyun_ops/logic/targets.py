"""Targets of per-item operators, from the loose forms users pass: pure, no API call.

Instances come as one id (``"i-1"``), a comma-separated string, a list of ids, or a list of objects with
an ``instance_id`` (and optionally ``region``) key, e.g. the output of ``SelectInstancesOperator``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .ids import check as check_id


def check_region(region: Any, what: str = "region") -> str:
    return check_id("region", region, what)


def normalize_instances(instances: Any, default_region: str | None, *, with_names: bool = False) -> list[dict]:
    """Loose instance input -> ``[{"instance_id", "region"}]`` (order kept, duplicates removed); with
    ``with_names`` each also has the ``instance_name`` its object gave ("" for a bare id).

    >>> normalize_instances("i-1, i-2", "cn-hangzhou")[1]
    {'instance_id': 'i-2', 'region': 'cn-hangzhou'}
    """
    if instances is None:
        return []
    if isinstance(instances, str):
        instances = [s.strip() for s in instances.split(",") if s.strip()]
    elif isinstance(instances, Mapping):
        instances = [instances]
    if not isinstance(instances, Iterable):
        raise ValueError(f"instances must be ids or objects with 'instance_id', got {type(instances).__name__}")
    out: list[dict] = []
    seen: set[str] = set()
    for item in instances:
        if isinstance(item, str):
            iid, name, region = item.strip(), "", default_region
        elif isinstance(item, Mapping):
            iid = item.get("instance_id") or item.get("InstanceId")
            name = str(item.get("instance_name") or item.get("InstanceName") or "")
            region = item.get("region") or item.get("RegionId") or default_region
        else:
            raise ValueError(f"cannot read an instance id from {item!r}")
        check_id("instance", iid, "instance id")
        if not region:
            raise ValueError(f"no region for {iid}: pass region=... or give each item a 'region'")
        check_region(region)
        if iid not in seen:
            seen.add(iid)
            out.append({"instance_id": iid, "instance_name": name, "region": region} if with_names
                       else {"instance_id": iid, "region": region})
    return out


def by_region(items: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        out.setdefault(item["region"], []).append(item["instance_id"])
    return out


def normalize_regions(regions: Any) -> list[str]:
    if regions is None:
        return []
    if isinstance(regions, str):
        regions = [r.strip() for r in regions.split(",") if r.strip()]
    if not isinstance(regions, Iterable):
        raise ValueError("regions must be a list of region ids")
    return list(dict.fromkeys(check_region(r) for r in regions))
