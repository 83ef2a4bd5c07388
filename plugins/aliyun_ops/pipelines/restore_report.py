"""Finish a restore run: one report row per instance, files, email, and the run's outcome.

Written whatever happened upstream; the run fails unless the restore itself succeeded (a fallback that saved
the instance is still a failed restore, and a rejected approval restored nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..exceptions import RunIncomplete
from ..logic.report import FAILED, SKIPPED, Report, RestoreRow
from .report_inputs import describe_rows, failed_rows, task_results, unknown
from .report_output import send_report_email, write_artifacts

log = logging.getLogger(__name__)


def restore_row(plan: Mapping[str, Any] | None, results: list[dict] | None, params: Mapping[str, Any],
                approve_state: str | None, stopped: list[dict] | None = None) -> RestoreRow:
    """The instance's row from the check, the restore results, the approval and the stop step (lease, power)."""
    base = {"instance_id": params.get("instance_id") or "", "region": params.get("region") or ""}
    if plan:
        base.update(instance_id=plan["instance_id"], instance_name=plan.get("instance_name", ""),
                    region=plan["region"], was_status=plan.get("was_status", ""), image_id=plan.get("image_id", ""))
    if results:
        r = results[0]
        base["was_status"] = r.get("was_status") or base.get("was_status", "")   # read when it was stopped
        return RestoreRow(**base, undo_snapshot_id=r.get("undo_snapshot_id", ""),
                          fallback_image_id=r.get("fallback_image_id", ""), health=r.get("health", ""),
                          status=r.get("status", FAILED), reason=r.get("reason", ""))
    if plan is None:
        return RestoreRow(**base, reason="the check failed before any change (see the check task's log)")
    if approve_state == "success":      # a Reject skips what follows: nothing was changed
        return RestoreRow(**base, reason="not approved: nothing was changed")
    refused = failed_rows(stopped)
    if refused:                         # the stop step refused (another run's lease) or failed: nothing replaced
        return RestoreRow(**base, reason=f"not stopped ({refused[0].get('reason')}): the disk was not replaced")
    return RestoreRow(**base, reason="the restore did not run or left no result (see its log)")


def finish_restore(context: Mapping[str, Any], approve_state: str | None) -> dict:
    """The DAG's report task: build, write and mail the report; raise unless the restore succeeded."""
    ti = context["ti"]
    params = context["params"]
    plan = ti.xcom_pull(task_ids="check")
    row = restore_row(plan, task_results(ti, "restore"), params, approve_state, task_results(ti, "stop_instance"))
    resumed = task_results(ti, "resume_instances")
    meta = {"dag": ti.dag_id, "run": context["run_id"],
            "current image": (plan or {}).get("current_image_id", ""),
            "power state restored": describe_rows(resumed, "resume_instances",
                                                  lambda r: f"{r.get('instance_id')}: {r.get('status')}",
                                                  empty="nothing was stopped by this run")}
    not_resumed = failed_rows(resumed)
    if not_resumed:
        meta["NOT RESUMED"] = "; ".join(f"{r.get('instance_id')}: {r.get('reason')}" for r in not_resumed)
    report = Report.build([row], row_type=RestoreRow, title=f"ECS system disk restore {row.instance_id}", meta=meta)
    paths = write_artifacts(report, ti.dag_id, context["run_id"])
    log.info("restore report (%s):\n%s", report.outcome, report.to_text())
    emailed = send_report_email(report, list(params.get("notify_emails") or []), context)
    if row.status in (FAILED, SKIPPED):
        raise RunIncomplete(f"{row.instance_id}: {row.reason} (report: {paths['html']})")
    if not_resumed:  # the restore worked, but the power state or the pause tags were not put back: say so
        raise RunIncomplete(f"restored, but not resumed: {meta['NOT RESUMED']} (report: {paths['html']})")
    if resumed is None:
        raise RunIncomplete(f"restored, but whether the power state was put back is {unknown('resume_instances')} "
                            f"(report: {paths['html']})")
    return {"outcome": report.outcome, "row": report.to_dict()["rows"][0], "files": paths, "emailed": emailed}
