"""Finish a backup run: report rows, artifact files, email, Asset events, run outcome."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Asset, AssetAlias

from aliyun_ops.logic import statuses as st

from ..exceptions import RunIncomplete
from ..logic.budget import ErrorBudget
from ..logic.report import FAILED, Report, achieved_rpo, backup_rows
from .report_output import send_report_email, write_artifacts

log = logging.getLogger(__name__)

BACKUP_ASSET_ALIAS = "aliyun-ecs-backup-copies"


def backup_asset(destination_region: str) -> Asset:
    """The Asset other DAGs schedule on to follow backups landing in ``destination_region``."""
    return Asset(name=f"aliyun-ecs-backups-{destination_region}",
                 uri=f"aliyun-ecs://{destination_region}/backup-images")


def finish_backup(context: Mapping[str, Any], config: Mapping[str, Any], selected: Sequence[Mapping] | None,
                  created: Sequence[Mapping] | None, copies: Sequence[Mapping] | None,
                  prepared: Sequence[Mapping] | None = None, *, resumed: Sequence[Mapping] | None = None,
                  resumed_earlier: Sequence[Mapping] | None = None) -> dict:
    """Build the report, write it, mail it, announce assets; raise if failures exceed ``max_errors`` or if
    anything paused (by this run or left by an earlier one) could not be resumed."""
    destinations = list(config.get("destination_regions") or [])
    upstream_error = "" if selected is not None else "instance selection failed"
    rows = backup_rows(selected or [], created, copies, destinations, upstream_error, prepared, resumed)
    ti = context["ti"]
    meta = {"dag": ti.dag_id, "run": context["run_id"], "sources": ", ".join(config.get("source_regions") or []),
            "destinations": ", ".join(destinations)}
    meta.update(resume_notes(resumed, resumed_earlier))
    meta.update(add_verified_rpo(rows, destinations, config.get("policy"), context))
    resume_unknown = bool(config.get("pauses")) and selected is not None and resumed is None
    if resume_unknown:
        meta["paused by this run"] = "UNKNOWN: the resume task left no results (see resume_instances' log)"
    report = Report.build(rows, title=f"ECS cross-region backup {context.get('ds') or context['run_id']}",
                          meta=meta)
    paths = write_artifacts(report, ti.dag_id, context["run_id"])
    log.info("backup report (%s):\n%s", report.outcome, report.to_text())
    emailed = send_report_email(report, config.get("notify_emails") or [], context)
    outlet_events = context.get("outlet_events")
    if outlet_events is not None:
        for dest in destinations:
            done = [r.copy_image_id for r in report.rows if r.destination_region == dest and r.status == "success"]
            if done:
                outlet_events[AssetAlias(BACKUP_ASSET_ALIAS)].add(
                    backup_asset(dest), extra={"run_id": context["run_id"], "image_ids": done})
    summary = {**report.to_dict(), "artifacts": paths, "emailed": emailed}
    ti.xcom_push(key="report", value=summary)  # kept even when the run is failed below
    failed_instances = {r.instance_id for r in report.rows if r.status == FAILED}
    budget = ErrorBudget.of(config.get("max_errors", 0), len({r.instance_id for r in report.rows}))
    budget.fail(len(failed_instances))
    not_resumed = sorted(r["instance_id"] for r in [*(resumed or []), *(resumed_earlier or [])]
                         if r.get("status") != "success")
    if not_resumed or resume_unknown or upstream_error or budget.exhausted or \
            (report.rows and report.outcome == "failure"):
        still = f"; STILL PAUSED (stopped or frozen): {', '.join(not_resumed)}" if not_resumed else \
            "; whether paused instances were resumed is UNKNOWN" if resume_unknown else ""
        why = f" ({upstream_error}: see its task log)" if upstream_error else ""
        raise RunIncomplete(f"backup {report.outcome}{why}: {len(failed_instances)} instance(s) failed "
                            f"(max_errors={config.get('max_errors', 0)}){still}; report: {paths.get('txt')}")
    return summary


def resume_notes(resumed: Sequence[Mapping] | None, resumed_earlier: Sequence[Mapping] | None) -> dict[str, str]:
    """Report meta lines about resumes: what this run paused and resumed, and what earlier runs had left paused."""
    notes: dict[str, str] = {}
    if resumed:
        ok = [r for r in resumed if r.get("status") == "success"]
        times = [r["paused_seconds"] for r in ok if r.get("paused_seconds") is not None]
        longest = f", longest {max(times):.0f} s" if times else ""
        notes["paused by this run"] = f"{len(resumed)} instance(s), {len(ok)} resumed{longest}"
    for r in resumed_earlier or []:
        what = "resumed" if r.get("status") == "success" else "COULD NOT RESUME"
        notes[f"left paused by run {r.get('paused_by') or '?'}: {r['instance_id']}"] = (
            f"{what} ({r.get('mode') or '?'} since {r.get('paused_at') or '?'}, {r.get('action') or ''}: "
            f"{r.get('reason') or ''})")
    return notes


def add_verified_rpo(rows: Sequence[Any], destinations: Sequence[str], policy: str | None,
                     context: Mapping[str, Any]) -> dict[str, str]:
    """Fill each row's ``verified_rpo_hours`` (age of the newest copy of that instance in that region that
    ``ecs_verify_backups`` proved bootable) and return a summary line. Read only; a region that cannot be read
    leaves blanks and says so, it never fails the report."""
    from ..hooks.ecs import EcsHook
    from ..logic import provenance as pv
    from ..logic.retention import parse_creation_time
    from ..runtime import run_date

    if not rows or not destinations:
        return {}
    hook, found, unreadable = EcsHook(), [], []
    tags = {pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE, **({pv.POLICY: policy} if policy else {})}
    for region in destinations:
        try:
            for img in hook.describe_images(region, status=st.IMAGE_AVAILABLE, tags=tags):
                t = pv.tags_from_api(img.get("Tags"))
                found.append({"instance_id": t.get(pv.SOURCE_INSTANCE, ""), "region": region,
                              "created": parse_creation_time(img.get("CreationTime")),
                              "verified": bool(t.get(pv.VERIFIED_AT))})
        except Exception as err:  # noqa: BLE001 - the RPO line is informative; the backup's outcome is not
            log.warning("achieved RPO: cannot read images in %s: %s", region, err)
            unreadable.append(region)
    rpo = achieved_rpo(found, run_date(context).timestamp())
    for row in rows:
        row.verified_rpo_hours = rpo.get((row.instance_id, row.destination_region))
    never = sorted({f"{r.instance_id}->{r.destination_region}" for r in rows if r.verified_rpo_hours is None})
    worst = max(rpo.values(), default=None)
    line = f"worst {worst} h" if worst is not None else "no copy verified yet"
    if never:
        line += f"; never verified: {len(never)} (run ecs_verify_backups)"
    if unreadable:
        line += f"; not read: {', '.join(unreadable)}"
    return {"achieved RPO (verified copies)": line}
