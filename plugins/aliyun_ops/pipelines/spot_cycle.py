"""The spot-instance image cycle (seed 000's OOS job): which instances get a new system disk from their own fresh
image, and the report.

Safer than the seed: when CreateImage fails the disk is **not** replaced (the seed put the base image on it, losing
the data that exists nowhere else); the base image is only the fallback when ReplaceSystemDisk with the fresh
image fails, and the fresh image still holds the data then. A failed start after a good replace keeps the fresh
disk and is reported for that instance.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aliyun_ops.logic import statuses as st

from ..exceptions import RunIncomplete
from ..logic.budget import ErrorBudget
from ..logic.report import FAILED, SUCCESS, Report, RestoreRow
from .report_inputs import describe_rows, failed_rows, task_results
from .report_output import send_report_email, write_artifacts

log = logging.getLogger(__name__)


def stopped_ids(stopped: Sequence[Mapping] | None) -> set[str]:
    """Instances the stop step left Stopped (stopped now, or already); none when the step left no result."""
    return {r["instance_id"] for r in stopped or []
            if r.get("instance_id") and (r.get("instance_status") == st.STOPPED or r.get("status") == SUCCESS)}


def cycle_plans(selected: Sequence[Mapping], created: Sequence[Mapping] | None, base_image_id: str | None,
                stopped: Sequence[Mapping] | None) -> list[dict]:
    """One RestoreSystemDiskOperator plan per instance that is Stopped and whose fresh image is Available: a disk is
    never replaced under a running instance (its stop refused: it keeps its disk, the fresh image its data)."""
    images = {r["instance_id"]: r for r in created or [] if r.get("status") == SUCCESS and r.get("image_id")}
    down = stopped_ids(stopped)
    plans = []
    for inst in selected:
        made = images.get(inst["instance_id"])
        if made is None or inst["instance_id"] not in down:
            continue
        plans.append({"region": inst["region"], "instance_id": inst["instance_id"],
                      "instance_name": inst.get("instance_name", ""), "was_status": inst.get("status", ""),
                      "image_id": made["image_id"], "fallback_image_id": base_image_id or "", "current_disk_id": ""})
    return plans


def cycle_rows(selected: Sequence[Mapping], created: Sequence[Mapping] | None,
               replaced: Sequence[Mapping] | None, stopped: Sequence[Mapping] | None) -> list[RestoreRow]:
    made = {r["instance_id"]: r for r in created or []}
    done = {r["instance_id"]: r for r in replaced or []}
    down = stopped_ids(stopped)
    stop_reason = {r["instance_id"]: r.get("reason") or "" for r in stopped or [] if r.get("instance_id")}
    rows = []
    for inst in selected:
        iid = inst["instance_id"]
        base = {"instance_id": iid, "instance_name": inst.get("instance_name", ""), "region": inst["region"],
                "was_status": inst.get("status", "")}
        image = made.get(iid) or {}
        if image.get("status") != SUCCESS:
            rows.append(RestoreRow(**base, image_id=image.get("image_id", ""), status=FAILED,
                                   reason=f"image not made ({image.get('reason') or 'the image task left no result'}):"
                                          " the disk was left as it was"))
            continue
        if iid not in down:
            rows.append(RestoreRow(**base, image_id=image["image_id"], status=FAILED,
                                   reason=f"not stopped ({stop_reason.get(iid) or 'the stop task left no result'}): "
                                          "the disk was left as it was; the fresh image holds the data"))
            continue
        r = done.get(iid)
        if r is None:
            rows.append(RestoreRow(**base, image_id=image["image_id"], status=FAILED,
                                   reason="the replace left no result (see its log); the fresh image holds the data"))
            continue
        rows.append(RestoreRow(**base, image_id=image["image_id"], undo_snapshot_id=r.get("undo_snapshot_id", ""),
                               fallback_image_id=r.get("fallback_image_id", ""), health=r.get("health", ""),
                               status=r.get("status", FAILED), reason=r.get("reason", "")))
    return rows


def finish_cycle(context: Mapping[str, Any], max_errors: int | str, notify_emails: Sequence[str]) -> dict:
    """The DAG's report task: rows per instance, files, email; raise past ``max_errors`` or if a power state
    could not be restored."""
    ti = context["ti"]
    selected = ti.xcom_pull(task_ids="select_instances")
    if selected is None:
        raise RunIncomplete("instance selection failed: nothing was changed")
    rows = cycle_rows(selected, task_results(ti, "create_images"), task_results(ti, "replace_system_disk"),
                      task_results(ti, "stop_instances"))
    resumed = task_results(ti, "resume_instances")
    not_resumed = failed_rows(resumed)
    meta = {"dag": ti.dag_id, "run": context["run_id"],
            "power state restored": describe_rows(resumed, "resume_instances",
                                                  lambda r: f"{r.get('instance_id')}: {r.get('status')}",
                                                  empty="nothing was stopped by this run")}
    if not_resumed:
        meta["NOT RESUMED"] = "; ".join(f"{r.get('instance_id')}: {r.get('reason')}" for r in not_resumed)
    if not selected:
        meta["instances"] = "none matched the tags or ids given: nothing was done"
    report = Report.build(rows, row_type=RestoreRow, title=f"ECS spot image cycle {context.get('ds') or context['run_id']}",
                          meta=meta)
    paths = write_artifacts(report, ti.dag_id, context["run_id"])
    log.info("spot image cycle report (%s):\n%s", report.outcome, report.to_text())
    emailed = send_report_email(report, notify_emails, context)
    budget = ErrorBudget.of(max_errors, len(rows))
    budget.fail(sum(1 for r in rows if r.status == FAILED))
    if budget.exhausted or not_resumed or resumed is None:
        raise RunIncomplete(f"{report.counts[FAILED]} instance(s) failed (max_errors={max_errors!r}), "
                           f"{len(not_resumed) if resumed is not None else 'UNKNOWN how many'} not resumed; "
                           f"report: {paths['html']}")
    return {"outcome": report.outcome, "counts": report.counts, "files": paths, "emailed": emailed}
