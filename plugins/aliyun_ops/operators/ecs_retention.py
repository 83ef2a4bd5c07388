"""Image retention: survey every region (read only), plan (``logic.retention``), then delete what the plan allows
and sweep the snapshots our deleted images left behind.

Two steps so that a human can look at the plan in between (the DAG puts an approval there when the fraction
guard holds a region); ``PruneBackupImagesOperator`` does both in one task for reuse in other DAGs.

``policy`` is a policy set: a list of ``ops:policy`` values (``logic.policies.PROJECT_POLICIES`` are the ones the
project's DAGs write), one value, or ``"any"``/``None`` for any image we manage. The survey lists every image we
manage in the regions it covers, so an image of a policy outside the set is seen, kept (rule ``uncovered``) and
warned about, never deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aliyun_ops.actions.pool import run_batch
from aliyun_ops.exceptions import AliyunApiError, error_reason
from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.logic import provenance as pv
from aliyun_ops.logic import statuses as st
from aliyun_ops.logic.args import all_static, as_list
from aliyun_ops.logic.outcome import FAILED, SKIPPED, SUCCESS
from aliyun_ops.logic.retention import (
    ImageFacts,
    RetentionPlan,
    RetentionPolicy,
    decision_rows,
    parse_creation_time,  # noqa: F401 - re-exported
    policy_set,
    uncovered_lines,
)
from aliyun_ops.logic.retention import plan as make_plan
from aliyun_ops.operators.base import AliyunBaseOperator, AliyunItemsOperator, aliyun_template_fields
from aliyun_ops.operators.base.image_deletion import ImageDeletionMixin
from aliyun_ops.runtime import run_date

QUOTA_ATTRIBUTE = "max-image-count"
QUOTA_WARN_HEADROOM = 0.2
POLICY_FIELDS = ("retention_days", "keep_last", "keep_daily", "keep_weekly", "keep_monthly", "timezone", "policy",
                 "delete_failed", "max_delete_fraction")


def image_facts(rec: Mapping[str, Any], region: str) -> ImageFacts:
    """One DescribeImages record -> what the planner reads."""
    return ImageFacts(image_id=rec["ImageId"], region=region, created_at=parse_creation_time(rec.get("CreationTime")),
                      status=rec.get("Status", ""), tags=pv.tags_from_api(rec.get("Tags")),
                      in_use=rec.get("Usage") == "instance", shared=str(rec.get("IsSelfShared")) == "True",
                      name=rec.get("ImageName", ""))


@dataclass
class Survey:
    """What one read-only pass over the account found: images, orphan snapshots, quotas, unreadable regions."""

    regions: list[str]
    facts: list[ImageFacts] = field(default_factory=list)
    orphans: list[dict] = field(default_factory=list)
    quotas: dict[str, dict] = field(default_factory=dict)
    unscanned: dict[str, str] = field(default_factory=dict)
    elsewhere: list[str] = field(default_factory=list)   # not surveyed (explicit regions), but holding managed images


class RetentionPolicyMixin:
    """The policy fields shared by the plan and prune operators (templated; validated before any API call)."""

    retention_days: Any
    keep_last: Any
    keep_daily: Any
    keep_weekly: Any
    keep_monthly: Any
    timezone: Any
    policy: Any
    delete_failed: Any
    max_delete_fraction: Any

    def _set_survey_fields(self, *, regions: Any, orphan_grace_hours: Any, now: float | None, **policy: Any) -> None:
        """The regions to survey, the orphan grace, the planning time and the policy fields (validated when static)."""
        self.regions = regions
        self.orphan_grace_hours = orphan_grace_hours
        self.now = now
        for name in POLICY_FIELDS:
            setattr(self, name, policy[name])
        if all_static(*policy.values()):
            self.retention_policy()

    def retention_policy(self) -> RetentionPolicy:
        """The validated policy; ``ValueError`` naming the field otherwise."""
        ints = {}
        for name in ("retention_days", "keep_last", "keep_daily", "keep_weekly", "keep_monthly"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).lstrip("-").isdigit():
                raise ValueError(f"{name} must be a whole number, got {value!r}")
            ints[name] = int(value)
        try:
            fraction = float(self.max_delete_fraction)
        except (TypeError, ValueError):
            raise ValueError(f"max_delete_fraction must be a number, got {self.max_delete_fraction!r}") from None
        if not isinstance(self.delete_failed, bool):
            raise ValueError(f"delete_failed must be true or false, got {self.delete_failed!r}")
        policy = RetentionPolicy(**ints, timezone=str(self.timezone or "Asia/Shanghai"), policy=policy_set(self.policy),
                                 delete_failed=self.delete_failed, max_delete_fraction=fraction)
        policy.validate()
        return policy


class PlanImageRetentionOperator(RetentionPolicyMixin, AliyunBaseOperator):
    """Survey the regions and return the retention plan (no Delete call): the XCom the apply step executes.

    :param regions: region ids to prune; empty/None: every region of the account holding images (or snapshots)
        we manage, found with one tag-filtered probe per region (regions that refuse are listed, not fatal)
    :param retention_days, keep_last, keep_daily, keep_weekly, keep_monthly, timezone, delete_failed,
        max_delete_fraction: the policy (see ``logic.retention``)
    :param policy: the ``ops:policy`` values covered: a list, one value, or ``"any"``/None (default: any image we
        manage); managed images of other policies are kept and warned about
    :param orphan_grace_hours: a managed snapshot whose image is gone is swept only when older than this
    :param image_quota: custom images per region when the account cannot say (DescribeAccountAttributes)
    :param now: plan time (epoch seconds); default the run's logical date, so backfills and re-runs agree

    Returns ``{"plan", "orphans", "quotas", "regions", "unscanned_regions", "uncovered", "now", "policy",
    "summary"}``; ``quotas`` has a row for every region surveyed and every other region holding images we manage.

    Example::

        PlanImageRetentionOperator(task_id="plan", regions=[], retention_days=7, keep_last=3, keep_weekly=4)
    """

    template_fields = (*AliyunBaseOperator.template_fields, "regions", *POLICY_FIELDS, "orphan_grace_hours",
                       "image_quota")
    hook_class = EcsHook

    def __init__(self, *, regions: str | Sequence[str] | None = None, retention_days: int | str = 7,
                 keep_last: int | str = 3, keep_daily: int | str = 0, keep_weekly: int | str = 0,
                 keep_monthly: int | str = 0, timezone: str = "Asia/Shanghai",
                 policy: str | Sequence[str] | None = None, delete_failed: bool | str = False,
                 max_delete_fraction: float | str = 0.5, orphan_grace_hours: float | str = 24,
                 image_quota: int | str | None = None, now: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_quota = image_quota
        self._set_survey_fields(regions=regions, orphan_grace_hours=orphan_grace_hours, now=now,
                                retention_days=retention_days, keep_last=keep_last, keep_daily=keep_daily,
                                keep_weekly=keep_weekly, keep_monthly=keep_monthly, timezone=timezone, policy=policy,
                                delete_failed=delete_failed, max_delete_fraction=max_delete_fraction)
        if all_static(orphan_grace_hours, image_quota):
            sweep_numbers(orphan_grace_hours, image_quota)

    def execute(self, context: Any) -> dict:
        policy = self.retention_policy()
        grace_hours, quota_override = sweep_numbers(self.orphan_grace_hours, self.image_quota)
        now = float(self.now) if self.now is not None else run_date(context).timestamp()
        out = survey_and_plan(self.hook, self.regions, policy, now, grace_hours=grace_hours,
                              quota_override=quota_override, log=self.log)
        self.log.info("Retention plan:\n%s", out["summary"])
        return out


def survey_and_plan(hook: EcsHook, regions: Any, policy: RetentionPolicy, now: float, *, grace_hours: float,
                    quota_override: int | None, log: Any) -> dict:
    """The plan operator's XCom: survey (read only), plan, quotas, and a readable summary."""
    explicit = [r for r in as_list(regions or [], "regions") if r]
    survey = survey_account(hook, explicit, policy, now - grace_hours * 3600, log=log)
    plan = make_plan(survey.facts, policy, now)
    uncovered = plan.uncovered()
    for line in uncovered_lines(uncovered):
        log.warning(line)
    quotas = quota_report(hook, survey.regions, plan, quota_override, log=log, elsewhere=survey.elsewhere)
    out = {"plan": plan.to_dict(), "orphans": survey.orphans, "quotas": quotas, "regions": survey.regions,
           "unscanned_regions": survey.unscanned, "uncovered": uncovered, "now": now, "policy": policy_dict(policy)}
    out["summary"] = plan_summary(plan, out)
    return out


def sweep_numbers(grace_hours: Any, image_quota: Any) -> tuple[float, int | None]:
    """Validated ``(orphan_grace_hours, image_quota)``."""
    try:
        grace = float(grace_hours)
        quota = None if image_quota in (None, "", "None") else int(image_quota)
    except (TypeError, ValueError):
        raise ValueError("orphan_grace_hours must be a number and image_quota a whole number or null") from None
    if grace < 0 or (quota is not None and quota < 1):
        raise ValueError("orphan_grace_hours must be >= 0 and image_quota >= 1")
    return grace, quota


def policy_dict(policy: RetentionPolicy) -> dict:
    """The policy as plain data for the XCom (``policy``: a list of ops:policy values, or None for any)."""
    out = {name: getattr(policy, name) for name in POLICY_FIELDS}
    covered = policy.policies
    out["policy"] = None if covered is None else list(covered)
    return out


# -- the read-only survey -------------------------------------------------------------------------
def managed_filter() -> dict[str, str]:
    """The tag filter of the survey: every image we manage, whatever its policy (the plan decides what the run's
    policy set covers, so an image of another policy is seen and reported, never skipped unseen)."""
    return {pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE}


def survey_account(hook: EcsHook, explicit: Sequence[str], policy: RetentionPolicy, orphan_before: float, *,
                   log: Any) -> Survey:
    """Images and orphan snapshots of ``explicit`` regions (every one must answer), or of every region that holds
    something we manage (a region that refuses is listed in ``unscanned``). With explicit regions, the other
    regions holding images we manage are listed in ``elsewhere`` (their quota is reported, nothing is pruned)."""
    tags = managed_filter()
    survey = Survey(regions=list(dict.fromkeys(explicit)))
    orphans: dict[str, list[dict]] = {}
    if explicit:
        survey.elsewhere = regions_holding_images(hook, set(survey.regions), tags, log)
    else:
        for region in sorted(r["RegionId"] for r in hook.describe_regions()):
            try:
                orphans[region] = find_orphans(hook, region, policy, orphan_before, log)
                if orphans[region] or hook.count_images(region, tags=tags):
                    survey.regions.append(region)
            except AliyunApiError as err:
                log.warning("cannot look for managed images in %s (%s): skipped", region, error_reason(err))
                survey.unscanned[region] = error_reason(err)
        log.info("Regions holding images we manage: %s", ", ".join(survey.regions) or "none")
    for region in survey.regions:
        survey.facts.extend(image_facts(rec, region) for rec in hook.describe_images(region, tags=tags))
        survey.orphans.extend(orphans[region] if region in orphans else
                              find_orphans(hook, region, policy, orphan_before, log))
    return survey


def regions_holding_images(hook: EcsHook, skip: set[str], tags: Mapping[str, str], log: Any) -> list[str]:
    """The regions outside ``skip`` holding an image with ``tags`` (one count per region); a region or an account
    that will not answer is left out with a log line: these regions only add quota rows to the report."""
    try:
        regions = sorted(r["RegionId"] for r in hook.describe_regions())
    except AliyunApiError as err:
        log.warning("cannot list the regions (%s): quota reported for the regions of this run only", error_reason(err))
        return []
    found = []
    for region in regions:
        if region in skip:
            continue
        try:
            if hook.count_images(region, tags=tags):
                found.append(region)
        except AliyunApiError as err:
            log.info("cannot count managed images in %s (%s): no quota row for it", region, error_reason(err))
    if found:
        log.info("Other regions holding images we manage (quota only, not pruned by this run): %s", ", ".join(found))
    return found


def find_orphans(hook: EcsHook, region: str, policy: RetentionPolicy, before: float, log: Any) -> list[dict]:
    """Managed snapshots made for an image (``ops:source-image``) that no longer exists, finished, backing no image
    or disk, created before ``before``: what a failed snapshot delete left behind."""
    candidates = []
    for snap in hook.describe_snapshots(region, tags={pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE}):
        tags = pv.tags_from_api(snap.get("Tags"))
        if not tags.get(pv.SOURCE_IMAGE) or not policy.covers(tags):
            continue
        created = parse_creation_time(snap.get("CreationTime"))
        if snap.get("Status") != st.SNAPSHOT_ACCOMPLISHED or snap.get("Usage", "none") != "none" \
                or created is None or created > before:
            continue
        candidates.append({"snapshot_id": snap["SnapshotId"], "region": region,
                           "source_image": tags[pv.SOURCE_IMAGE], "created": snap.get("CreationTime", "")})
    if not candidates:
        return []
    alive = {rec["ImageId"] for rec in hook.describe_images(
        region, image_ids=sorted({c["source_image"] for c in candidates}), owner=None)}
    orphans = [c for c in candidates if c["source_image"] not in alive]
    if orphans:
        log.info("%s: %d snapshot(s) of deleted images to sweep", region, len(orphans))
    return orphans


def quota_report(hook: EcsHook, regions: Sequence[str], plan: RetentionPlan, override: int | None, *,
                 log: Any, elsewhere: Sequence[str] = ()) -> dict[str, dict]:
    """Per region: custom images now, after this plan, the quota and the headroom left (``warning`` below 20%).

    ``regions`` are those the run surveyed; ``elsewhere`` other regions holding images we manage, reported with
    ``pruned: False`` (after = now): a region filling up is seen whatever the run covers."""
    deleting = {r: rp.deleting for r, rp in plan.regions.items()}
    out: dict[str, dict] = {}
    surveyed = set(regions)
    for region in list(dict.fromkeys([*regions, *elsewhere])):
        quota, source = override, "param image_quota"
        if quota is None:
            try:
                attr = hook.describe_account_attributes(region, [QUOTA_ATTRIBUTE]).get(QUOTA_ATTRIBUTE) or {}
                quota, source = int(attr["value"]), "DescribeAccountAttributes"
            except (AliyunApiError, KeyError, TypeError, ValueError) as err:
                log.info("custom-image quota of %s unknown (%s); pass image_quota to check headroom", region,
                         error_reason(err) if isinstance(err, AliyunApiError) else "not returned")
        images = hook.count_images(region)
        after = images - deleting.get(region, 0)
        row = {"images": images, "after": after, "quota": quota, "source": source if quota else "unknown",
               "headroom": None, "warning": "", "pruned": region in surveyed}
        if quota:
            row["headroom"] = round((quota - after) / quota, 4)
            if row["headroom"] < QUOTA_WARN_HEADROOM:
                when = "after pruning" if row["pruned"] else "(not pruned by this run: not in its regions)"
                row["warning"] = (f"only {max(quota - after, 0)} of {quota} custom images left in {region} {when} "
                                  f"({row['headroom']:.0%} headroom): CreateImage/CopyImage will soon fail "
                                  "with QuotaExceed.Image")
                log.warning(row["warning"])
        out[region] = row
    return out


def plan_summary(plan: RetentionPlan, out: Mapping[str, Any]) -> str:
    """Markdown for the log and the approval form: per region, what goes, what stays, and why it is held."""
    lines = [f"Plan at {datetime.fromtimestamp(out['now'], UTC):%Y-%m-%d %H:%M} UTC, "
             f"max_delete_fraction {plan.max_delete_fraction:.0%}:", ""]
    for region, rp in plan.regions.items():
        state = " **HELD: above the fraction guard**" if rp.held else ""
        lines.append(f"- {region}: delete {rp.deleting} of {rp.managed} managed images ({rp.fraction:.0%}){state}")
    uncovered = out.get("uncovered") or {}
    for region in out["regions"]:
        if region not in plan.regions:
            kept = sum(regions.get(region, 0) for regions in uncovered.values())
            lines.append(f"- {region}: no image of the run's policies" + (f" ({kept} of other policies kept)"
                                                                          if kept else ""))
    for line in uncovered_lines(uncovered):
        lines.append(f"- WARNING: {line}")
    orphans = out.get("orphans") or []
    if orphans:
        lines.append(f"- snapshots of deleted images to sweep: {len(orphans)}")
    doomed = [d for d in plan.decisions if d.delete]
    if doomed:
        lines += ["", "To delete:"] + [f"- {d.region} {d.image_id} {d.name} ({d.group}): {d.reason}"
                                       for d in doomed[:200]]
        if len(doomed) > 200:
            lines.append(f"- ... and {len(doomed) - 200} more (see the plan task's XCom)")
    return "\n".join(lines)


# -- executing a plan -----------------------------------------------------------------------------
class _ApplyRetentionMixin(ImageDeletionMixin):
    """Execute a plan from :class:`PlanImageRetentionOperator`: delete the images it allows (those of held regions
    only when ``approved``), then sweep its orphan snapshots. Every image is described again just before its
    delete (in use, ours) by the delete path. Returns one row per decision and per orphan snapshot, with
    ``action`` (``keep``/``delete``/``held``/``sweep``), ``rule``, ``status`` and ``reason``.

    Example::

        ApplyRetentionPlanOperator(task_id="apply", plan=plan.output, approved=False, dry_run=False)
    """

    template_fields = aliyun_template_fields("plan", "approved", "dry_run", "concurrency", "max_errors")
    template_fields_renderers = {"plan": "json"}

    def __init__(self, *, plan: Any, approved: bool | str = False, **kwargs: Any) -> None:
        super().__init__(images=[], **kwargs)
        self.plan = plan
        self.approved = approved

    def execute(self, context: Any) -> list[dict]:
        self._check_common()
        if not isinstance(self.plan, Mapping) or "plan" not in self.plan:
            raise ValueError("plan must be the output of PlanImageRetentionOperator")
        if not isinstance(self.approved, bool) or not isinstance(self.dry_run, bool):
            raise ValueError("approved and dry_run must be true or false")
        return self.conclude(context, self.apply(context, self.plan))

    def apply(self, context: Any, survey: Mapping[str, Any]) -> list[dict]:
        plan = RetentionPlan.from_dict(survey["plan"])
        to_delete = plan.deletions(approved=self.approved)
        allowed = {(d.region, d.image_id) for d in to_delete}
        rows = decision_rows(plan, allowed, self.dry_run)
        results = {(r["region"], r["image_id"]): r for r in self.delete_images(
            context, [{"image_id": d.image_id, "region": d.region} for d in to_delete])}
        for row in rows:
            done = results.get((row["region"], row["image_id"]))
            if done is not None:
                row.update(status=done["status"], snapshot_ids=done["snapshot_ids"],
                           deleted_snapshots=done["deleted_snapshots"],
                           reason="; ".join(x for x in (row["reason"], done["reason"]) if x))
        return rows + self.sweep(survey.get("orphans") or [])

    def sweep(self, orphans: Sequence[Mapping[str, Any]]) -> list[dict]:
        """Delete orphan snapshots (no Force: the API itself refuses one that still backs an image or a disk)."""
        rows = [{"region": o["region"], "image_id": o["source_image"], "snapshot_ids": [o["snapshot_id"]],
                 "deleted_snapshots": [], "action": "sweep", "rule": "orphan", "group": "", "name": "",
                 "created_at": None, "status": SKIPPED if self.dry_run else SUCCESS,
                 "reason": f"snapshot of deleted image {o['source_image']}"
                           + (" (dry run: not deleted)" if self.dry_run else ""), "dry_run": self.dry_run}
                for o in orphans]
        if self.dry_run or not rows:
            return rows

        def sweep_one(row: dict) -> None:
            sid = row["snapshot_ids"][0]
            try:
                self.hook.delete_snapshot(row["region"], sid)
            except AliyunApiError as err:
                if not err.is_not_found:
                    raise RuntimeError(f"{sid}: {error_reason(err)}") from None
            row["deleted_snapshots"].append(sid)

        outcomes = run_batch(rows, sweep_one, key=lambda r: r["snapshot_ids"][0], concurrency=self.concurrency,
                             max_errors=self.max_errors)
        for row, outcome in zip(rows, outcomes, strict=True):
            if outcome.status in (FAILED, SKIPPED):
                row.update(status=outcome.status, reason=f"{row['reason']}: {outcome.error}")
        return rows


class ApplyRetentionPlanOperator(_ApplyRetentionMixin, AliyunItemsOperator):
    __doc__ = _ApplyRetentionMixin.__doc__

    def __init__(self, **kwargs: Any) -> None:  # its own, so that Airflow applies default_args to it
        super().__init__(**kwargs)


class PruneBackupImagesOperator(RetentionPolicyMixin, _ApplyRetentionMixin, AliyunItemsOperator):
    """Plan and apply in one task (for reuse in other DAGs): every rule of ``logic.retention``, then the sweep.

    Takes the parameters of :class:`PlanImageRetentionOperator` plus ``approved`` and ``dry_run``; held regions
    (above ``max_delete_fraction``) are not pruned unless ``approved``, and count as failed rows.

    Example::

        PruneBackupImagesOperator(task_id="prune", regions=["cn-hangzhou", "cn-shanghai"], retention_days=7,
                                  keep_last=3, policy=["nightly", "weekly"])
    """

    template_fields = aliyun_template_fields("regions", *POLICY_FIELDS, "approved", "dry_run", "concurrency",
                                             "max_errors")

    def __init__(self, *, regions: str | Sequence[str] | None = None, retention_days: int | str = 7,
                 keep_last: int | str = 1, keep_daily: int | str = 0, keep_weekly: int | str = 0,
                 keep_monthly: int | str = 0, timezone: str = "Asia/Shanghai",
                 policy: str | Sequence[str] | None = None, delete_failed: bool | str = False,
                 max_delete_fraction: float | str = 0.5, orphan_grace_hours: float = 24, now: float | None = None,
                 approved: bool | str = False, **kwargs: Any) -> None:
        super().__init__(plan={}, approved=approved, **kwargs)
        self._set_survey_fields(regions=regions, orphan_grace_hours=orphan_grace_hours, now=now,
                                retention_days=retention_days, keep_last=keep_last, keep_daily=keep_daily,
                                keep_weekly=keep_weekly, keep_monthly=keep_monthly, timezone=timezone, policy=policy,
                                delete_failed=delete_failed, max_delete_fraction=max_delete_fraction)

    def execute(self, context: Any) -> list[dict]:
        policy = self.retention_policy()
        grace_hours, _ = sweep_numbers(self.orphan_grace_hours, None)
        now = float(self.now) if self.now is not None else run_date(context).timestamp()
        self.plan = survey_and_plan(self.hook, self.regions, policy, now, grace_hours=grace_hours,
                                    quota_override=None, log=self.log)
        return super().execute(context)
