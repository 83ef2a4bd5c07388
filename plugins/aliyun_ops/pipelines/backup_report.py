"""Finish a backup run: report rows, artifact files, email, Asset events, run outcome."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Asset, AssetAlias

from ..logic.budget import ErrorBudget
from ..logic.report import FAILED, Report, backup_rows
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
        from airflow.sdk.exceptions import AirflowException

        still = f"; STILL PAUSED (stopped or frozen): {', '.join(not_resumed)}" if not_resumed else \
            "; whether paused instances were resumed is UNKNOWN" if resume_unknown else ""
        why = f" ({upstream_error}: see its task log)" if upstream_error else ""
        raise AirflowException(f"backup {report.outcome}{why}: {len(failed_instances)} instance(s) failed "
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
