"""Finish an RDS archive run: one row per backup (archived, already there, pending, failed), files, email, outcome.

The run fails when the backups could not be listed or the archive task left no result, and when a backup failed
beyond ``max_errors`` (the archive task has failed then already; the report still goes out first). Pending
backups are not failures: the next run archives them, and the report says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..exceptions import RunIncomplete
from ..logic.report import FAILED, PENDING, ArchiveRow, Report
from .report_inputs import task_results
from .report_output import send_report_email, write_artifacts

log = logging.getLogger(__name__)


def finish_archive(context: Mapping[str, Any]) -> dict:
    """The DAG's report task: build, write and mail the report; raise if anything promised did not happen."""
    ti = context["ti"]
    rows = task_results(ti, "archive_backups")
    manifest = ti.xcom_pull(task_ids="archive_backups", key="manifest") or {}
    meta = {"dag": ti.dag_id, "run": context["run_id"],
            "manifest": f"oss://{manifest['bucket']}/{manifest['key']} ({manifest['region']})" if manifest
            else "not written (see archive_backups' log)"}
    problems = []
    if rows is None:
        problems.append("the archive task left no result (see archive_backups' log)")
        rows = []
    report = Report.build(rows, row_type=ArchiveRow, meta=meta,
                          title=f"RDS backup archive {context.get('ds') or context['run_id']}")
    paths = write_artifacts(report, ti.dag_id, context["run_id"])
    log.info("archive report (%s):\n%s", report.outcome, report.to_text())
    pending = report.counts.get(PENDING, 0)
    emailed = send_report_email(report, list(context["params"].get("notify_emails") or []), context,
                                note=f", {pending} pending" if pending else "")
    failed = [r for r in report.rows if r.status == FAILED]
    if failed and ti.xcom_pull(task_ids="archive_backups") is None:  # the archive task failed for them
        problems += [f"{r.instance_id} {r.backup_id}: {r.reason}" for r in failed]
    elif failed:
        log.warning("%d backup(s) failed within max_errors: %s", len(failed),
                    "; ".join(f"{r.backup_id}: {r.reason}" for r in failed))
    if problems:
        raise RunIncomplete(f"{len(problems)} problem(s) (report: {paths['html']}):\n- " + "\n- ".join(problems))
    return {"outcome": report.outcome, "counts": report.counts, "files": paths, "emailed": emailed}
