"""Finish a batch command run: one row per instance (exit code, output, the agent offline), files, email, outcome.

The run fails when the instances could not be selected, when the command task left no result, or when failures
passed ``max_errors`` (the command task has failed then already; the report still goes out first). A rejected
approval ran nothing: the report says so and the run fails.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..exceptions import RunIncomplete
from ..logic.budget import ErrorBudget
from ..logic.commands import AGENT_OFFLINE_CODES
from ..logic.report import FAILED, SKIPPED, CommandRow, Report
from .report_inputs import task_results, unknown
from .report_output import send_report_email, write_artifacts

log = logging.getLogger(__name__)

COMMAND_TASK = "run_command"


def command_rows(selected: Sequence[Mapping[str, Any]], results: Sequence[Mapping[str, Any]] | None,
                 not_run: str) -> list[CommandRow]:
    """A row per selected instance from the command's results; ``not_run`` is the reason of an instance the command
    task never reported on (not approved, or the task left nothing)."""
    done = {r["instance_id"]: r for r in results or []}
    rows = []
    for inst in selected:
        base = {"instance_id": inst["instance_id"], "instance_name": inst.get("instance_name", ""),
                "region": inst.get("region", "")}
        r = done.get(inst["instance_id"])
        if r is None:
            rows.append(CommandRow(**base, status=SKIPPED if "not approved" in not_run else FAILED, reason=not_run))
            continue
        offline = r.get("error_code") in AGENT_OFFLINE_CODES
        rows.append(CommandRow(**base, invoke_id=r.get("invoke_id", ""), invocation_status=r.get("invocation_status", ""),
                               exit_code=r.get("exit_code"), agent="offline" if offline else
                               ("online" if r.get("invoke_id") else ""), output=r.get("output", ""),
                               status=r.get("status", FAILED), reason=r.get("reason", "")))
    return rows


def finish_command(context: Mapping[str, Any], answer: str | None) -> dict:
    """The DAG's report task: build, write and mail the report; raise past ``max_errors`` or when nothing ran."""
    ti, params = context["ti"], context["params"]
    selected = ti.xcom_pull(task_ids="select_instances")
    if selected is None:
        raise RunIncomplete("instance selection failed: nothing was run (see select_instances' log)")
    results = task_results(ti, COMMAND_TASK)
    rejected = answer == "Reject"
    not_run = "not approved: nothing was run" if rejected else unknown(COMMAND_TASK)
    rows = command_rows(selected, results, not_run)
    offline = [r.instance_id for r in rows if r.agent == "offline"]
    meta = {"dag": ti.dag_id, "run": context["run_id"], "instances": str(len(rows)),
            "command": (params.get("script") or "the command param"),
            "agent offline (command not run)": ", ".join(offline) or "none"}
    if not selected:
        meta["selection"] = "no instance matched: nothing was run"
    report = Report.build(rows, row_type=CommandRow, meta=meta,
                          title=f"ECS batch command {context.get('ds') or context['run_id']}")
    paths = write_artifacts(report, ti.dag_id, context["run_id"])
    log.info("batch command report (%s):\n%s", report.outcome, report.to_text())
    emailed = send_report_email(report, list(params.get("notify_emails") or []), context)
    if rejected:
        raise RunIncomplete(f"not approved: the command ran on none of {len(rows)} instance(s) (report: {paths['html']})")
    budget = ErrorBudget.after([r.status for r in rows], params.get("max_errors", 0))
    if results is None and selected:
        raise RunIncomplete(f"the command task left no result: {unknown(COMMAND_TASK)} (report: {paths['html']})")
    if budget.exhausted:
        raise RunIncomplete(f"{report.counts[FAILED]} of {len(rows)} instance(s) failed, more than max_errors="
                            f"{params.get('max_errors')!r} allows (report: {paths['html']})")
    return {"outcome": report.outcome, "counts": report.counts, "files": paths, "emailed": emailed}
