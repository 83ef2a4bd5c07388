"""Target selection over plain instance records (as ECS DescribeInstances returns them)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from . import ids as id_rules
from . import statuses as st
from .provenance import tags_from_api

INSTANCE_STATUSES = st.INSTANCE_STATUSES


@dataclass(frozen=True)
class Criteria:
    """What to select. Empty fields mean "no constraint"; at least one of tags/ids/name is required.

    Example::

        Criteria(regions=("cn-hangzhou",), tags={"backup": "daily"}, statuses=("Running", "Stopped"))
    """

    regions: tuple[str, ...]
    tags: Mapping[str, str] = field(default_factory=dict)
    instance_ids: tuple[str, ...] = ()
    name_pattern: str | None = None
    statuses: tuple[str, ...] = ()

    def validate(self) -> None:
        if not self.regions:
            raise ValueError("at least one region is required")
        if not (self.tags or self.instance_ids or self.name_pattern):
            raise ValueError("select by tags, instance_ids or name_pattern: refusing to select every instance")
        bad = [s for s in self.statuses if s not in INSTANCE_STATUSES]
        if bad:
            raise ValueError(f"unknown instance status {bad}; expected some of {list(INSTANCE_STATUSES)}")
        for iid in self.instance_ids:
            id_rules.check("instance", iid, "instance id")


@dataclass
class Selection:
    """What :func:`select` found: ``select(instances, criteria).selected`` is the list to act on."""

    selected: list[dict]
    missing_ids: list[str]       # asked for by id but not found in any region
    excluded: list[dict]         # found but filtered out, with a reason


def compact(instance: Mapping) -> dict:
    """The small JSON-safe view of an instance we pass between tasks."""
    return {
        "instance_id": instance["InstanceId"],
        "instance_name": instance.get("InstanceName", ""),
        "region": instance.get("RegionId", ""),
        "zone": instance.get("ZoneId", ""),
        "status": instance.get("Status", ""),
        "tags": tags_from_api(instance.get("Tags")),
    }


def matches(instance: Mapping, criteria: Criteria) -> str | None:
    """``None`` if the instance matches, else the reason it does not."""
    tags = tags_from_api(instance.get("Tags"))
    for key, value in criteria.tags.items():
        if tags.get(key) != value:
            return f"tag {key}={value} not set"
    if criteria.instance_ids and instance.get("InstanceId") not in criteria.instance_ids:
        return "not in instance_ids"
    if criteria.name_pattern and not fnmatch.fnmatchcase(instance.get("InstanceName", ""), criteria.name_pattern):
        return f"name does not match {criteria.name_pattern!r}"
    if criteria.statuses and instance.get("Status") not in criteria.statuses:
        return f"status {instance.get('Status')} not in {list(criteria.statuses)}"
    return None


def select(instances: Iterable[Mapping], criteria: Criteria) -> Selection:
    """Apply ``criteria`` to instance records; dedupe by id; stable order (region, name, id)."""
    seen: dict[str, Mapping] = {}
    for inst in instances:
        seen.setdefault(inst["InstanceId"], inst)
    selected, excluded = [], []
    for inst in seen.values():
        reason = matches(inst, criteria)
        (excluded if reason else selected).append({**compact(inst), **({"reason": reason} if reason else {})})
    selected.sort(key=lambda r: (r["region"], r["instance_name"], r["instance_id"]))
    missing = sorted(set(criteria.instance_ids) - set(seen))
    return Selection(selected, missing, excluded)


def chunks(items: Sequence, size: int) -> list[Sequence]:
    """Split ``items`` into consecutive chunks of at most ``size``."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    return [items[i:i + size] for i in range(0, len(items), size)]
