"""Image look-ups several operators share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def describe_by_region(hook: Any, wanted: Mapping[str, Iterable[str]]) -> dict[str, dict]:
    """``{region: [image ids]}`` -> ``{image_id: record}`` (one batched DescribeImages per region)."""
    out: dict[str, dict] = {}
    for region, ids in wanted.items():
        ids = list(dict.fromkeys(ids))
        if ids:
            for rec in hook.describe_images(region, image_ids=ids):
                out[rec["ImageId"]] = rec
    return out
