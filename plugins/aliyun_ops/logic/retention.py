"""Retention planning for our backup images: which to keep, which to delete, and the rule that decided.

The plan can never delete the wrong image. An image is deleted only when **every** one of these holds:

* it carries our ``ops:managed-by`` tag and an ``ops:policy`` of the run's policy set (any, when the set is
  ``None``/``"any"``; an image with no ``ops:policy`` is covered only then);
* it is ``Available`` (or a ``CreateFailed`` leftover, when ``delete_failed``), not in use by an
  instance, not shared with other accounts, and not the source of a copy in progress;
* its ``CreationTime`` is readable and its ``ops:retention-days`` tag, if any, is a sane number;
* it is not the newest complete backup of its group, nor the newest *verified* one
  (tag ``ops:verified-at``), nor among the newest ``keep_last`` complete ones;
* no grandfather-father-son rule keeps it (``keep_daily``/``keep_weekly``/``keep_monthly``: the newest
  complete backup of each of the last N days/ISO weeks/months that have one, in ``timezone``);
* it is older than its own deadline: ``max(retention_days, its ops:retention-days)``.

A group is ``(ops:policy, ops:source-instance, region)``, so two policies never compete for "newest" or
``keep_last``; an image without a source instance is a group of its own. A managed image whose policy the set
does not cover is kept with the rule ``uncovered`` (``RetentionPlan.uncovered()`` counts them for a warning).
When a region's plan would delete more than ``max_delete_fraction`` of the managed images there, the region is
*held*: its deletions need an explicit approval.

Example::

    p = plan(images, RetentionPolicy(retention_days=7, keep_last=3, keep_weekly=4,
                                     policy=["ecs-cross-region-backup", "ecs-spot-image-cycle"]), now=run_end)
    p.deletions(approved=False)     # what may go without asking anyone
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import provenance as pv
from . import statuses as st
from .policies import ANY
from .report import FAILED, SKIPPED, SUCCESS

DAY = 86400.0
MAX_TAG_DAYS = pv.RETENTION_DAYS_MAX   # the one bound; an image tagged beyond it is kept (guard), never deleted
FINAL_FOR_DELETE = (st.IMAGE_AVAILABLE, st.IMAGE_CREATE_FAILED)
COPY_IN_PROGRESS = tuple(sorted(st.IMAGE_IN_PROGRESS))

# Rules that keep an image (the plan names one per kept image).
GUARD, NEWEST, VERIFIED, LAST, DAILY, WEEKLY, MONTHLY, OWN_TAG, AGE = (
    "guard", "newest", "verified", "keep_last", "daily", "weekly", "monthly", "own-retention", "age")
# Rules that delete one.
EXPIRED, FAILED_BUILD = "expired", "failed-build"
# Kept because the run's policy set does not cover the image's ops:policy (reported with a warning).
UNCOVERED = "uncovered"


def policy_set(value: object) -> tuple[str, ...] | None:
    """The ``ops:policy`` values a run covers, in order and once each; ``None`` means any image we manage.

    Accepts a list of policy names, one name (the old single-policy form), ``"any"`` (alone or in the list) or
    ``None``. ``ValueError`` for an empty list, a blank or over-long name, a list rendered to a string, or
    another type.

    >>> policy_set(["ecs-spot-image-cycle", "ecs-cross-region-backup"]), policy_set("any"), policy_set("nightly")
    (('ecs-spot-image-cycle', 'ecs-cross-region-backup'), None, ('nightly',))
    """
    if value is None:
        return None
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            raise ValueError(f"policy {value!r} is a list rendered to a string: pass a list (in a DAG, "
                             "render_template_as_native_obj=True)")
        names = [value]
    elif isinstance(value, list | tuple | set | frozenset):
        names = list(value)
        if not names:
            raise ValueError(f"policy must name at least one ops:policy, or be {ANY!r} for any image we manage")
    else:
        raise ValueError(f"policy must be a list of ops:policy values, one value, {ANY!r} or null, "
                         f"got {type(value).__name__}")
    for name in names:
        if not isinstance(name, str) or not name.strip() or len(name) > pv.MAX_VALUE_LEN:
            raise ValueError(f"policy: {name!r} is not an ops:policy value (a non-blank string of at most "
                             f"{pv.MAX_VALUE_LEN} characters)")
    if ANY in names:
        return None
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class RetentionPolicy:
    """Example: ``RetentionPolicy(retention_days=7, keep_last=3, keep_monthly=12)``."""

    retention_days: int
    keep_last: int = 1
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    timezone: str = "Asia/Shanghai"
    delete_failed: bool = False
    policy: str | tuple[str, ...] | None = None   # the ops:policy value(s) covered (see policy_set); None: any
    max_delete_fraction: float = 0.5

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if self.retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        if self.keep_last < 1:
            raise ValueError("keep_last must be at least 1: a policy must never delete every backup")
        for name in ("keep_daily", "keep_weekly", "keep_monthly"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more")
        if not 0 < self.max_delete_fraction <= 1:
            raise ValueError("max_delete_fraction must be above 0 and at most 1 (1 turns the guard off)")
        policy_set(self.policy)
        self.zone()

    @property
    def policies(self) -> tuple[str, ...] | None:
        """The covered ``ops:policy`` values (None: any image we manage, with a policy or without)."""
        return policy_set(self.policy)

    def covers(self, tags: Mapping[str, str]) -> bool:
        """Whether the run's policy set covers a managed resource with these tags."""
        covered = self.policies
        return covered is None or tags.get(pv.POLICY, "") in covered

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone (e.g. Asia/Shanghai)") from None


@dataclass(frozen=True)
class ImageFacts:
    """What the planner needs to know about one image (built from DescribeImages).

    Example: ``ImageFacts("m-1", "cn-shanghai", created_at=1.8e9, status="Available", tags=tags)``;
    ``created_at=None`` when the API's ``CreationTime`` could not be read (the image is then kept).
    """

    image_id: str
    region: str
    created_at: float | None     # epoch seconds
    status: str
    tags: Mapping[str, str]
    in_use: bool = False
    shared: bool = False
    copying: bool = False         # the source of a CopyImage still in progress
    name: str = ""

    @property
    def source_instance(self) -> str:
        return self.tags.get(pv.SOURCE_INSTANCE, "")

    @property
    def complete(self) -> bool:
        """A source image, or a copy whose completion we tagged."""
        return self.status == st.IMAGE_AVAILABLE and (pv.SOURCE_IMAGE not in self.tags
                                               or self.tags.get(pv.COPY_STATUS) == pv.COPY_COMPLETE)

    @property
    def verified(self) -> bool:
        return bool(self.tags.get(pv.VERIFIED_AT))

    @property
    def group(self) -> str:
        """``policy/instance/region``; an image with no source instance is its own group."""
        owner = self.source_instance or f"image:{self.image_id}"
        return f"{self.tags.get(pv.POLICY, '')}/{owner}/{self.region}"

    def own_days(self) -> int | None:
        """The image's own ``ops:retention-days`` (None: no tag); ``ValueError`` if the tag is not sane."""
        raw = self.tags.get(pv.RETENTION_DAYS)
        if raw is None or raw == "":
            return None
        try:
            days = int(str(raw).strip())
        except ValueError:
            raise ValueError(f"{pv.RETENTION_DAYS}={raw!r} is not a whole number of days") from None
        if not 1 <= days <= MAX_TAG_DAYS:
            raise ValueError(f"{pv.RETENTION_DAYS}={raw!r} is outside 1..{MAX_TAG_DAYS}")
        return days


@dataclass(frozen=True)
class Decision:
    """Keep or delete one image, and why: ``Decision("m-1", "cn-shanghai", True, "older than 7 days", "expired")``."""

    image_id: str
    region: str
    delete: bool
    reason: str
    rule: str
    group: str = ""
    created_at: float | None = None
    name: str = ""
    policy: str = ""              # the image's ops:policy ("" when it has none)


@dataclass(frozen=True)
class RegionPlan:
    """One region's share: ``managed`` images considered, ``deleting`` planned, ``held`` above the guard."""

    region: str
    managed: int
    deleting: int
    held: bool

    @property
    def fraction(self) -> float:
        return self.deleting / self.managed if self.managed else 0.0


@dataclass
class RetentionPlan:
    """Every decision, and per region whether the fraction guard holds its deletions.

    ``RetentionPlan.from_dict(p.to_dict())`` round-trips (XCom)."""

    decisions: list[Decision]
    regions: dict[str, RegionPlan] = field(default_factory=dict)
    max_delete_fraction: float = 0.5

    @property
    def held_regions(self) -> list[str]:
        return sorted(r for r, rp in self.regions.items() if rp.held)

    def deletions(self, approved: bool = False) -> list[Decision]:
        """The deletions to execute: those of held regions only when ``approved``."""
        held = set() if approved else set(self.held_regions)
        return [d for d in self.decisions if d.delete and d.region not in held]

    def uncovered(self) -> dict[str, dict[str, int]]:
        """``{ops:policy ("" for none): {region: images}}`` of the managed images kept because the run's policy set
        does not cover them."""
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for d in self.decisions:
            if d.rule == UNCOVERED:
                out[d.policy][d.region] += 1
        return {p: dict(sorted(regions.items())) for p, regions in sorted(out.items())}

    def to_dict(self) -> dict:
        return {"decisions": [asdict(d) for d in self.decisions],
                "regions": {r: asdict(rp) for r, rp in self.regions.items()},
                "max_delete_fraction": self.max_delete_fraction}

    @classmethod
    def from_dict(cls, data: Mapping) -> RetentionPlan:
        return cls([Decision(**d) for d in data.get("decisions") or []],
                   {r: RegionPlan(**rp) for r, rp in (data.get("regions") or {}).items()},
                   float(data.get("max_delete_fraction", 0.5)))


# -- planning -------------------------------------------------------------------------------------
def _guard(img: ImageFacts, policy: RetentionPolicy, copying: set[str]) -> str | None:
    """Why an image may never be deleted, whatever its age (None: no guard applies)."""
    if not pv.is_managed(img.tags):
        return "not managed by aliyun-ops"
    if not policy.covers(img.tags):
        return uncovered_reason(img.tags.get(pv.POLICY, ""))
    if img.in_use:
        return "in use by an instance"
    if img.shared:
        return "shared with other accounts"
    if img.copying or img.image_id in copying:
        return "a copy of it is in progress"
    if img.status not in FINAL_FOR_DELETE:
        return f"status {img.status or 'unknown'} is not final"
    if img.created_at is None:
        return "creation time unreadable (fail closed)"
    try:
        img.own_days()
    except ValueError as err:
        return f"{err} (fail closed)"
    return None


def uncovered_reason(image_policy: str) -> str:
    if not image_policy:
        return "no ops:policy: only the policy set 'any' covers it"
    return f"ops:policy {image_policy!r} is not in this run's policy set"


def _period_keys(created_at: float, zone: ZoneInfo) -> dict[str, str]:
    local = datetime.fromtimestamp(created_at, zone)
    year, week, _ = local.isocalendar()
    return {DAILY: local.strftime("%Y-%m-%d"), WEEKLY: f"{year}-W{week:02d}", MONTHLY: local.strftime("%Y-%m")}


def _group_keeps(members: list[ImageFacts], policy: RetentionPolicy, zone: ZoneInfo) -> dict[str, tuple[str, str]]:
    """image id -> (rule, reason) for the images a group's count and calendar rules keep."""
    ranked = sorted((m for m in members if m.complete and m.created_at is not None),
                    key=lambda m: (m.created_at, m.image_id), reverse=True)
    keeps: dict[str, tuple[str, str]] = {}
    if ranked:
        keeps[ranked[0].image_id] = (NEWEST, "newest complete backup of its group")
    else:   # no copy was ever tagged complete (tagging failed): still keep the newest usable one
        usable = sorted((m for m in members if m.status == st.IMAGE_AVAILABLE and m.created_at is not None),
                        key=lambda m: (m.created_at, m.image_id), reverse=True)
        if usable:
            keeps[usable[0].image_id] = (NEWEST, "newest Available image of its group (none is tagged complete)")
    verified = [m for m in ranked if m.verified]
    if verified and verified[0].image_id not in keeps:
        keeps[verified[0].image_id] = (VERIFIED, "newest verified backup of its group")
    for m in ranked[: policy.keep_last]:
        keeps.setdefault(m.image_id, (LAST, f"among the newest {policy.keep_last} complete backups"))
    limits = {DAILY: policy.keep_daily, WEEKLY: policy.keep_weekly, MONTHLY: policy.keep_monthly}
    seen: dict[str, list[str]] = {kind: [] for kind in limits}
    for m in ranked:
        for kind, key in _period_keys(m.created_at, zone).items():   # type: ignore[arg-type]
            if key in seen[kind] or len(seen[kind]) >= limits[kind]:
                continue
            seen[kind].append(key)
            keeps.setdefault(m.image_id, (kind, f"{kind} backup for {key} (keep_{kind} {limits[kind]})"))
    return keeps


def _decide(img: ImageFacts, policy: RetentionPolicy, now: float, keeps: Mapping[str, tuple[str, str]]) \
        -> tuple[bool, str, str]:
    """(delete, reason, rule) for a managed, unguarded image."""
    if img.image_id in keeps:
        rule, reason = keeps[img.image_id]
        return False, reason, rule
    if img.status == st.IMAGE_CREATE_FAILED:
        if policy.delete_failed:
            return True, "failed build", FAILED_BUILD
        return False, "failed build (cleanup disabled)", GUARD
    own = img.own_days()
    deadline = max(policy.retention_days, own or 0)
    age_days = (now - img.created_at) / DAY   # type: ignore[operator]
    if age_days <= deadline:
        if own and own > policy.retention_days and age_days > policy.retention_days:
            return False, f"its own {pv.RETENTION_DAYS}={own} keeps it ({age_days:.0f} days old)", OWN_TAG
        return False, f"younger than {deadline} days", AGE
    return True, f"older than {deadline} days ({age_days:.0f} days old)", EXPIRED


def plan(images: Iterable[ImageFacts], policy: RetentionPolicy, now: float) -> RetentionPlan:
    """Decide for every image (an image listed twice counts once); decisions sorted by (region, group, id)."""
    policy.validate()
    zone = policy.zone()
    unique: dict[tuple[str, str], ImageFacts] = {}
    for img in images:
        unique.setdefault((img.region, img.image_id), img)
    copying = {img.tags.get(pv.SOURCE_IMAGE, "") for img in unique.values() if img.status in COPY_IN_PROGRESS} - {""}
    decisions: list[Decision] = []
    considered: list[ImageFacts] = []
    groups: dict[str, list[ImageFacts]] = defaultdict(list)
    guards: dict[str, str] = {}
    for img in unique.values():
        reason = _guard(img, policy, copying)
        if not pv.is_managed(img.tags):
            decisions.append(Decision(img.image_id, img.region, False, reason, GUARD, "", img.created_at, img.name))
            continue
        if not policy.covers(img.tags):
            decisions.append(Decision(img.image_id, img.region, False, reason, UNCOVERED, img.group, img.created_at,
                                      img.name, img.tags.get(pv.POLICY, "")))
            continue
        considered.append(img)
        groups[img.group].append(img)
        if reason:
            guards[img.image_id] = reason
    keeps: dict[str, tuple[str, str]] = {}
    for members in groups.values():
        keeps.update(_group_keeps(members, policy, zone))
    for img in considered:
        if img.image_id in guards:
            delete, reason, rule = False, guards[img.image_id], GUARD
        else:
            delete, reason, rule = _decide(img, policy, now, keeps)
        decisions.append(Decision(img.image_id, img.region, delete, reason, rule, img.group, img.created_at, img.name,
                                  img.tags.get(pv.POLICY, "")))
    decisions.sort(key=lambda d: (d.region, d.group, d.image_id))
    return RetentionPlan(decisions, _region_plans(considered, decisions, policy.max_delete_fraction),
                         policy.max_delete_fraction)


def _region_plans(considered: list[ImageFacts], decisions: list[Decision], fraction: float) -> dict[str, RegionPlan]:
    managed: dict[str, int] = defaultdict(int)
    deleting: dict[str, int] = defaultdict(int)
    for img in considered:
        managed[img.region] += 1
    for d in decisions:
        if d.delete:
            deleting[d.region] += 1
    return {r: RegionPlan(r, n, deleting[r], deleting[r] > fraction * n) for r, n in sorted(managed.items())}


def decision_rows(plan: RetentionPlan, allowed: set[tuple[str, str]], dry_run: bool) -> list[dict]:
    """One report row per decision, before execution: kept rows are final, allowed deletions pending."""
    held = set(plan.held_regions)
    rows = []
    for d in plan.decisions:
        row = {"region": d.region, "image_id": d.image_id, "name": d.name, "group": d.group, "rule": d.rule,
               "created_at": d.created_at, "snapshot_ids": [], "deleted_snapshots": [], "dry_run": dry_run,
               "action": "keep", "status": SKIPPED, "reason": d.reason}
        if d.delete and (d.region, d.image_id) in allowed:
            row.update(action="delete", status=SUCCESS)
        elif d.delete and d.region in held:
            rp = plan.regions[d.region]
            row.update(action="held", status=SKIPPED if dry_run else FAILED,
                       reason=f"{d.reason}; held: the plan deletes {rp.deleting} of {rp.managed} managed images in "
                              f"{d.region} ({rp.fraction:.0%}), above max_delete_fraction "
                              f"{plan.max_delete_fraction:.0%}: approve it in a manual run or raise the fraction")
        rows.append(row)
    return rows


def parse_creation_time(value: Any) -> float | None:
    """ECS ``CreationTime`` (``2024-01-01T00:00Z`` or with seconds) -> epoch seconds; None if unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def policy_label(policy: str) -> str:
    """How a report names a policy (``""``: images with no ``ops:policy``)."""
    return policy or "(no ops:policy)"


def uncovered_text(policy: str, regions: Mapping[str, int]) -> str:
    """How many images of one uncovered policy were kept, where, and what to do about it."""
    where = ", ".join(f"{region} ({n})" for region, n in regions.items())
    todo = ("only the policy set 'any' covers images without one, and there one without ops:source-instance (such "
            "as undo images of restores before ecs-restore-undo) is its own group's newest: delete those by hand"
            if not policy else
            f"add {policy!r} to the policy param (or use 'any') to prune them")
    return f"{sum(regions.values())} image(s) kept, never deleted: {where}; {todo}"


def uncovered_lines(uncovered: Mapping[str, Mapping[str, int]]) -> list[str]:
    """One warning per ``ops:policy`` the run's set does not cover (``""``: images with no policy)."""
    return [f"managed images of policy {policy_label(policy)} are not covered by this run: "
            f"{uncovered_text(policy, regions)}" for policy, regions in uncovered.items()]
