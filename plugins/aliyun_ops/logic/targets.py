"""Targets of per-item operators, from the loose forms users pass: pure, no API call.

Instances come as one id (``"i-1"``), a comma-separated string, a list of ids, or a list of objects with
an ``instance_id`` (and optionally ``region``) key, e.g. the output of ``SelectInstancesOperator``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .args import as_list
from .ids import check as check_id
from .outcome import SUCCESS


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


def source_size_gib(rec: Mapping[str, Any]) -> float:
    """All disks of an image (DescribeImages ``DiskDeviceMappings``; ``Size`` is the system disk only)."""
    mappings = (rec.get("DiskDeviceMappings") or {}).get("DiskDeviceMapping") or []
    total = 0.0
    for m in mappings:
        try:
            total += float(m.get("Size") or 0)
        except (TypeError, ValueError):
            pass
    try:
        return total or float(rec.get("Size") or 0)
    except (TypeError, ValueError):
        return 0.0


def normalize_images(images: Any, default_region: str | None, *, id_key: str = "image_id",
                     region_key: str = "region") -> list[dict]:
    """An image id, a list of ids, or a results list -> ``[{"image_id", "region", "upstream": dict|None}]``."""
    out: list[dict] = []
    for item in as_list(images, "images"):
        if isinstance(item, str):
            image_id, region, upstream = item.strip(), default_region, None
        elif isinstance(item, Mapping):
            image_id = str(item.get(id_key) or item.get("ImageId") or "").strip()
            region = item.get(region_key) or item.get("RegionId") or default_region
            upstream = dict(item)
        else:
            raise ValueError(f"images: cannot read an image from {item!r}")
        if image_id:
            check_id("image", image_id, "images:")
        if not image_id and (upstream is None or upstream.get("status") in (None, SUCCESS)):
            raise ValueError(f"images: item without an image id: {item!r}")
        if not region:
            raise ValueError(f"images: no region for {image_id}; pass region=... or give each item a 'region'")
        out.append({"image_id": image_id, "region": str(region), "upstream": upstream})
    return out
