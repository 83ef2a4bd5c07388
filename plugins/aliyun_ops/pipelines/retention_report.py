"""Finish a retention run: one report row per decision and swept snapshot, quota headroom, files, email, outcome.

The report is written whatever happened upstream; the run then fails if anything it promised did not happen
(a failed delete or sweep, a region held by the fraction guard and not approved, a plan that never came).
Images of a policy the run does not cover are kept and warned about (a meta line per policy and a log warning);
they do not fail the run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..exceptions import RunIncomplete, denied
from ..logic.report import FAILED, Report, RetentionRow
from ..logic.retention import RetentionPlan, decision_rows, policy_label, uncovered_lines, uncovered_text
from .approval import approve_task_state, is_manual_run
from .report_output import send_report_email, write_artifacts

log = logging.getLogger(__name__)


def retention_rows(plan: RetentionPlan, results: Sequence[Mapping] | None, *, dry_run: bool, approval: str,
                   timezone: str) -> list[RetentionRow]:
    """Rows from the apply step's results; without them (apply skipped or lost), from the plan, each deletion
    marked as not done and why."""
    if results is None:
        why = "not approved: nothing deleted" if approval == "rejected" else \
            "not deleted: the apply task left no results (see its log)"
        results = decision_rows(plan, {(d.region, d.image_id) for d in plan.deletions(approved=True)}, dry_run)
        for r in results:
            if r["action"] == "delete":
                r.update(status=FAILED, reason=f"{r['reason']}; {why}")
    zone = ZoneInfo(timezone)
    rows = []
    for r in results:
        created = r.get("created_at")
        snaps = r.get("deleted_snapshots") or r.get("snapshot_ids") or []
        rows.append(RetentionRow(
            region=r.get("region", ""), group=r.get("group", ""), image_id=r.get("image_id", ""),
            name=r.get("name", ""), action=r.get("action", "keep"), rule=r.get("rule", ""),
            status=r.get("status", FAILED), reason=r.get("reason", ""), snapshots=" ".join(snaps),
            created=datetime.fromtimestamp(created, zone).strftime("%Y-%m-%d %H:%M") if created else ""))
    return rows


def quota_notes(quotas: Mapping[str, Mapping]) -> tuple[dict[str, str], list[str]]:
    """``({"quota <region>": "..."}, [warnings])`` for the report's summary."""
    notes: dict[str, str] = {}
    warnings: list[str] = []
    for region, q in sorted(quotas.items()):
        after = f"{q['after']} after pruning" if q.get("pruned", True) else "not pruned by this run"
        if q.get("quota"):
            text = f"{q['images']} custom images, {after}, quota {q['quota']} ({q['headroom']:.0%} headroom)"
        else:
            text = f"{q['images']} custom images, {after}, quota unknown"
        if q.get("warning"):
            text += " WARNING: below 20% headroom"
            warnings.append(q["warning"])
        notes[f"quota {region}"] = text
    return notes, warnings


def policy_text(policy: Mapping[str, Any]) -> str:
    """The run's policy fields for the report; ``policy`` as its set (``any`` for None)."""
    def show(name: str, value: Any) -> str:
        if name == "policy":
            names = value if isinstance(value, list | tuple) else [value]
            return "any" if value is None else "[" + " ".join(names) + "]"
        return str(value)

    return ", ".join(f"{k}={show(k, v)}" for k, v in policy.items())


def uncovered_notes(uncovered: Mapping[str, Mapping[str, int]]) -> dict[str, str]:
    """``{"not covered <policy>": "N kept in ...; what to do"}``, one per policy the run's set leaves out."""
    return {f"not covered {policy_label(policy)}": uncovered_text(policy, regions)
            for policy, regions in uncovered.items()}


def finish_retention(context: Mapping[str, Any], survey: Mapping[str, Any] | None, results: Sequence[Mapping] | None,
                     *, dry_run: bool, approval: str, notify_emails: Sequence[str] = ()) -> dict:
    """Build, write and mail the report; raise if the run did not do everything it promised.

    ``approval``: ``"not needed"``, ``"approved"``, ``"rejected"`` or ``"not asked (scheduled run)"``."""
    if survey is None:
        raise RunIncomplete("the plan task failed or left no plan: nothing was deleted (see its log)")
    plan = RetentionPlan.from_dict(survey["plan"])
    policy = survey.get("policy") or {}
    rows = retention_rows(plan, results, dry_run=dry_run, approval=approval,
                          timezone=policy.get("timezone") or "Asia/Shanghai")
    meta: dict[str, Any] = {
        "dag": context["ti"].dag_id, "run": context["run_id"],
        "planned at": datetime.fromtimestamp(survey["now"], UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "policy": policy_text(policy),
        "regions": ", ".join(survey.get("regions") or []) or "none holds images we manage",
        "dry run": dry_run, "approval": approval, "created (column)": f"local time in {policy.get('timezone')}"}
    if plan.held_regions:
        meta["held by max_delete_fraction"] = ", ".join(plan.held_regions)
    for region, reason in (survey.get("unscanned_regions") or {}).items():
        meta[f"not scanned {region}"] = reason
    uncovered = survey.get("uncovered") or {}
    meta.update(uncovered_notes(uncovered))
    notes, warnings = quota_notes(survey.get("quotas") or {})
    meta.update(notes)
    ds = context.get("ds") or context["run_id"]
    report = Report.build(rows, row_type=RetentionRow, title=f"ECS image retention {ds}", meta=meta)
    paths = write_artifacts(report, context["ti"].dag_id, context["run_id"])
    log.info("retention report (%s):\n%s\n%s", report.outcome, "\n".join(f"{k}: {v}" for k, v in meta.items()),
             report.to_text())
    for warning in [*uncovered_lines(uncovered), *warnings]:
        log.warning(warning)
    emailed = send_report_email(report, notify_emails, context, note=" QUOTA WARNING" if warnings else "")
    summary = {"outcome": report.outcome, "counts": report.counts, "files": paths, "emailed": emailed,
               "quota_warnings": warnings, "held_regions": plan.held_regions,
               "uncovered": {policy: sum(regions.values()) for policy, regions in uncovered.items()},
               "deleted": sum(1 for r in rows if r.action == "delete" and r.status == "success"),
               "swept": sum(1 for r in rows if r.action == "sweep" and r.status == "success")}
    failed = [f"{r.region} {r.image_id or r.snapshots}: {r.reason}" for r in rows if r.status == FAILED]
    # a region we may not read was not pruned: that is a broken promise, unlike a region closed to the account
    failed += [f"{region} not scanned: {reason}" for region, reason in (survey.get("unscanned_regions") or {}).items()
               if denied(reason)]
    if failed:
        raise RunIncomplete(f"{len(failed)} retention step(s) did not happen (report: {paths['html']}):\n"
                           + "\n".join(f"- {line}" for line in failed[:20]))
    return summary


def needs_approval(survey: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """True when a region is held by the fraction guard, the run is manual and not a dry run."""
    held = RetentionPlan.from_dict(survey["plan"]).held_regions
    dry_run = bool(context["params"].get("dry_run"))
    if held:
        log.warning("regions held by max_delete_fraction: %s (%s)", ", ".join(held),
                    "dry run: reported only" if dry_run else "asking for approval" if is_manual_run(context)
                    else "scheduled run: not deleted there, the run will fail")
    return bool(held) and not dry_run and is_manual_run(context)


def approval_state(survey: Mapping[str, Any] | None, answer: Mapping[str, Any] | None, context: Mapping) -> str:
    """How the fraction guard was settled, for the report."""
    if answer:
        return "approved" if list(answer.get("chosen_options") or []) == ["Approve"] else "rejected"
    if approve_task_state(context) == "success":    # a Reject skips downstream before any XCom is written
        return "rejected"
    if not survey or not RetentionPlan.from_dict(survey["plan"]).held_regions:
        return "not needed"
    if context["params"].get("dry_run"):
        return "not asked (dry run)"
    return "not asked (manual run: see the approve task)" if is_manual_run(context) else "not asked (scheduled run)"


def finish_retention_run(context: Mapping[str, Any]) -> dict:
    """The DAG's report task: pull the plan, the approval and the apply results, then :func:`finish_retention`."""
    ti = context["ti"]
    survey = ti.xcom_pull(task_ids="plan")
    answer = ti.xcom_pull(task_ids="approve")
    results = ti.xcom_pull(task_ids="apply", key="results")
    params = context["params"]
    return finish_retention(context, survey, results, dry_run=bool(params.get("dry_run")),
                            approval=approval_state(survey, answer, context),
                            notify_emails=list(params.get("notify_emails") or []))
