"""Identifier rules, one place for DAG forms (JSON schema ``pattern``) and operators (checks before any call).

Example::

    Param([], type="array", items=ids.schema("region"))
    ids.check("rds_instance", "pgm-bp1abc")      # returns the id, or raises ValueError naming the rule
"""

from __future__ import annotations

import re
from typing import Any

PATTERNS: dict[str, tuple[str, str]] = {
    "region": (r"^[a-z]{2,}(-[a-z0-9]+)+$", "an Alibaba Cloud region id (e.g. cn-hangzhou)"),
    "instance": (r"^i-[a-z0-9]+$", "an ECS instance id (i-...)"),
    "image": (r"^m-[a-z0-9]+$", "a custom image id (m-...)"),
    "any_image": (r"^(m-[a-z0-9]+|[A-Za-z0-9][A-Za-z0-9_.-]{1,127})$",
                  "an image id: custom (m-...) or public (e.g. aliyun_3_x64_20G_alibase_20250629.vhd)"),
    "snapshot": (r"^s-[a-z0-9]+$", "a snapshot id (s-...)"),
    "disk": (r"^d-[a-z0-9]+$", "a disk id (d-...)"),
    "instance_type": (r"^ecs\.[a-z0-9-]+\.[a-z0-9]+$", "an ECS instance type (ecs.<family>.<size>, e.g. ecs.g7.large)"),
    "rds_instance": (r"^(rm|pgm|pc)-[a-z0-9]+$", "an RDS instance id (rm-, pgm- or pc-...)"),
    "oss_bucket": (r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$",
                   "an OSS bucket name (3-63 lowercase letters, digits and '-', not starting or ending with '-')"),
}
_COMPILED = {kind: re.compile(pattern) for kind, (pattern, _) in PATTERNS.items()}


def pattern(kind: str) -> str:
    """The regular expression of ``kind`` (``region``, ``instance``, ``image``, ``snapshot``, ``rds_instance``,
    ``oss_bucket``)."""
    return PATTERNS[kind][0]


def schema(kind: str) -> dict[str, str]:
    """A JSON-schema string with the rule, for ``Param(..., items=ids.schema("region"))``."""
    return {"type": "string", "pattern": pattern(kind)}


def matches(kind: str, value: Any) -> bool:
    return isinstance(value, str) and bool(_COMPILED[kind].match(value))


def check(kind: str, value: Any, what: str | None = None) -> str:
    """``value`` if it follows the rule of ``kind``, else ``ValueError`` saying what was expected.

    >>> check("region", "cn-hangzhou")
    'cn-hangzhou'
    """
    if not matches(kind, value):
        raise ValueError(f"{what or kind.replace('_', ' ')} {value!r} does not look like {PATTERNS[kind][1]}")
    return value
