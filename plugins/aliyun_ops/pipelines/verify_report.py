"""Finish a backup verification run: one row per copy (verified, failed, not tried), files, email, outcome.

The run fails when a copy did not prove restorable, when the verification itself did not run, or when a
temporary instance could not be released: each is something an operator must look at.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..exceptions import RunIncomplete
from ..logic.report import FAILED, SUCCESS, Report, VerifyRow
from .report_inputs import describe_rows, failed_rows, task_results, unknown
from .report_output import send_report_email, write_artifacts

log = logging.getLogger(__name__)

SWEEP = "release_temporary_resources"
LEFTOVERS = "sweep_leftovers"


def verify_rows(copies: list[dict] | None, results: list[dict] | None) -> list[VerifyRow]:
    """Rows from the verify results; copies it never reported on are failed rows that say so."""
    done = {(r["region"], r["image_id"]): r for r in results or []}
    rows = []
    for c in copies or []:
        r = done.get((c["region"], c["image_id"]))
        if r is None:
            rows.append(VerifyRow(c["region"], c.get("instance_id", ""), c["image_id"], c.get("image_name", ""),
                                  reason="not verified: the verify task left no result (see its log)"))
            continue
        rows.append(VerifyRow(r["region"], r.get("instance_id", ""), r["image_id"], r.get("image_name", ""),
                              r.get("verify_instance", ""), r.get("boot_seconds"), r.get("status", FAILED),
                              r.get("reason", "")))
    return rows


def finish_verify(context: Mapping[str, Any]) -> dict:
    """The DAG's report task: build, write and mail the report; raise if anything promised did not happen."""
    ti = context["ti"]
    copies = ti.xcom_pull(task_ids="select_copies")
    rows = verify_rows(copies, task_results(ti, "verify"))
    released = task_results(ti, SWEEP)
    left = failed_rows(released)
    gone = None if released is None else [r for r in released if r not in left]
    meta = {"dag": ti.dag_id, "run": context["run_id"],
            "temporary resources released": describe_rows(
                gone, SWEEP, lambda r: f"{r.get('resource_type')} {r.get('resource_id')}",
                empty="none" if left else "none left over")}
    if left:
        meta["NOT RELEASED"] = "; ".join(f"{r.get('resource_type')} {r.get('resource_id')} ({r.get('region')}): "
                                         f"{r.get('reason')}" for r in left)
    earlier = task_results(ti, LEFTOVERS) or []
    swept = [r for r in earlier if r.get("status") != FAILED]
    if swept:
        meta["left by earlier runs, released"] = ", ".join(f"{r.get('resource_type')} {r.get('resource_id')} "
                                                           f"(run {r.get('run_id')})" for r in swept)
    report = Report.build(rows, row_type=VerifyRow, title=f"ECS backup verification {context.get('ds') or context['run_id']}",
                          meta=meta)
    paths = write_artifacts(report, ti.dag_id, context["run_id"])
    log.info("verification report (%s):\n%s", report.outcome, report.to_text())
    emailed = send_report_email(report, list(context["params"].get("notify_emails") or []), context)
    problems = []
    if copies is None:
        problems.append("the copies could not be selected (see select_copies' log)")
    problems += [f"{r.region} {r.image_id} ({r.instance_id}): {r.reason}" for r in rows if r.status != SUCCESS]
    problems += [f"temporary {r.get('resource_type')} {r.get('resource_id')} ({r.get('region')}) NOT RELEASED, "
                 f"it may still be running: {r.get('reason')}" for r in left]
    problems += [f"left by run {r.get('run_id')}: {r.get('resource_type')} {r.get('resource_id')} "
                 f"({r.get('region')}) could not be released: {r.get('reason')}" for r in failed_rows(earlier)]
    if released is None:
        problems.append(f"temporary resources: {unknown(SWEEP)}; look for resources tagged with this run's "
                        "ops:run-id in the DR regions")
    if problems:
        raise RunIncomplete(f"{len(problems)} problem(s) (report: {paths['html']}):\n- " + "\n- ".join(problems))
    return {"outcome": report.outcome, "verified": len(rows), "files": paths, "emailed": emailed}
