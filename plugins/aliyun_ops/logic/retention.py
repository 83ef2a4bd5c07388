"""Retention planning for our backup images: which to keep, which to delete, and why.

The plan can never delete the wrong image:

* only images carrying our ``ops:managed-by`` tag are ever considered;
* only images that are ``Available`` (or ``CreateFailed`` leftovers, if asked) are deletable;
* an image younger than ``retention_days`` is kept;
* the newest ``keep_last`` *complete* images of each (source instance, region) are kept, whatever their age;
* an image in use by an instance, or shared with other accounts, is kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from . import provenance as pv

DAY = 86400.0


@dataclass(frozen=True)
class RetentionPolicy:
    """Example: ``RetentionPolicy(retention_days=7, keep_last=3)``."""

    retention_days: int
    keep_last: int = 1
    delete_failed: bool = False
    policy: str | None = None  # only images tagged with this ops:policy, if set

    def validate(self) -> None:
        if self.retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        if self.keep_last < 1:
            raise ValueError("keep_last must be at least 1: a policy must never delete every backup")


@dataclass(frozen=True)
class ImageFacts:
    """What the planner needs to know about one image (built from DescribeImages).

    Example: ``ImageFacts("m-1", "cn-shanghai", created_at=1.8e9, status="Available", tags=tags)``.
    """

    image_id: str
    region: str
    created_at: float           # epoch seconds
    status: str
    tags: Mapping[str, str]
    in_use: bool = False
    shared: bool = False

    @property
    def source_instance(self) -> str:
        return self.tags.get(pv.SOURCE_INSTANCE, "")

    @property
    def complete(self) -> bool:
        """A source image, or a copy whose completion we tagged."""
        return self.status == "Available" and (pv.SOURCE_IMAGE not in self.tags
                                               or self.tags.get(pv.COPY_STATUS) == pv.COPY_COMPLETE)


@dataclass(frozen=True)
class Decision:
    """Keep or delete one image, and why: ``Decision("m-1", "cn-shanghai", True, "older than 7 days")``."""

    image_id: str
    region: str
    delete: bool
    reason: str


def plan(images: Iterable[ImageFacts], policy: RetentionPolicy, now: float) -> list[Decision]:
    """Decide for every image; decisions are sorted by (region, image id)."""
    policy.validate()
    managed: list[ImageFacts] = []
    decisions: list[Decision] = []
    for img in images:
        if not pv.is_managed(img.tags):
            decisions.append(Decision(img.image_id, img.region, False, "not managed by aliyun-ops"))
        elif policy.policy and img.tags.get(pv.POLICY) != policy.policy:
            decisions.append(Decision(img.image_id, img.region, False, f"policy is not {policy.policy!r}"))
        else:
            managed.append(img)

    newest: dict[tuple[str, str], set[str]] = {}
    groups: dict[tuple[str, str], list[ImageFacts]] = defaultdict(list)
    for img in managed:
        groups[(img.source_instance, img.region)].append(img)
    for key, members in groups.items():
        complete = sorted((m for m in members if m.complete), key=lambda m: (m.created_at, m.image_id), reverse=True)
        newest[key] = {m.image_id for m in complete[: policy.keep_last]}

    cutoff = now - policy.retention_days * DAY
    for img in managed:
        key = (img.source_instance, img.region)
        if img.image_id in newest[key]:
            reason, delete = f"among the newest {policy.keep_last} complete backups", False
        elif img.in_use:
            reason, delete = "in use by an instance", False
        elif img.shared:
            reason, delete = "shared with other accounts", False
        elif img.status == "CreateFailed":
            delete = policy.delete_failed
            reason = "failed build, cleanup enabled" if delete else "failed build (cleanup disabled)"
        elif img.status != "Available":
            reason, delete = f"status {img.status} is not final", False
        elif img.created_at > cutoff:
            reason, delete = f"younger than {policy.retention_days} days", False
        else:
            reason, delete = f"older than {policy.retention_days} days", True
        decisions.append(Decision(img.image_id, img.region, delete, reason))
    decisions.sort(key=lambda d: (d.region, d.image_id))
    return decisions
