"""Finish an image repair: one row per step and one per repair item (what the repair command said of it), files,
email, and the run's outcome.

The run is green only when the repaired image is Available, its check does not call the system ``Invalid``, and
everything temporary was released; otherwise it fails after the report is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..logic import statuses as st
from ..logic.report import FAILED, SKIPPED, SUCCESS, StepRow
from .image_repair import COMMAND_KEY
from .report_inputs import failed_rows, task_results
from .report_output import finish_step_report

NOT_REACHED = (SKIPPED, "not reached, or it failed before it knew anything (see its log)")


def _check_step(checked: Mapping[str, Any] | None) -> tuple[str, str]:
    if not checked:
        return NOT_REACHED
    system = checked.get("SystemImage") or {}
    risks = [f"{i.get('Name')}: {i.get('RiskCode') or i.get('Value')}" for i in checked.get("Items") or []
             if i.get("RiskLevel")]
    value = system.get("Value") or "no SystemImage item"
    if checked.get("Status") != st.DETECTION_FINISHED or value == st.DETECTION_INVALID:
        return FAILED, f"check {checked.get('Status')}, system {value}"
    return SUCCESS, f"system {value}" + (f"; still at risk: {', '.join(risks)}" if risks else "; no risk found")


def _command_step(command: Mapping[str, Any] | None) -> tuple[str, str]:
    if not command:
        return NOT_REACHED
    ok = command.get("status") == st.INVOCATION_SUCCESS and str(command.get("exit_code")) in ("0", "None")
    tail = (command.get("output") or "").strip().splitlines()[-1:] or [command.get("error") or ""]
    return (SUCCESS if ok else FAILED), f"exit {command.get('exit_code')}: {tail[0][:300]}"


def repair_steps(ti: Any) -> list[StepRow]:
    """What each step of ``ecs_repair_image`` did, read from its tasks' XComs (missing = not reached)."""
    plan = ti.xcom_pull(task_ids="check")
    instance = ti.xcom_pull(task_ids="launch")
    disk = ti.xcom_pull(task_ids="attached_disk")
    command = ti.xcom_pull(task_ids="repair", key=COMMAND_KEY)
    image = ti.xcom_pull(task_ids="make_image")
    released = task_results(ti, "release_temporary_resources")
    steps = [
        ("check", (SUCCESS, f"{plan['image_id']} ({plan['image_name']}, {plan['architecture']}, "
                            f"{plan['platform'] or 'platform unknown'}): snapshot {plan['snapshot_id']}") if plan
         else (FAILED, "the image cannot be repaired here, or the checks failed (see the check task's log): "
                       "nothing was created")),
        ("repair instance", (SUCCESS, f"{instance['instance_id']} ({instance['instance_type']}) from "
                                      f"{instance['base_image_id']}") if instance else NOT_REACHED),
        ("data disk", (SUCCESS, f"{disk['disk_id']} serial {disk['serial']}") if disk else NOT_REACHED),
        ("repair command", _command_step(command)),
        ("repaired image", (SUCCESS, f"{image['image_id']} ({image['image_name']}) from {image['snapshot_id']}")
         if image else NOT_REACHED),
        ("image check", _check_step(ti.xcom_pull(task_ids="image_check"))),
        ("release", NOT_REACHED if released is None else
         ((FAILED, "; ".join(f"{r['resource_id']}: {r.get('reason')}" for r in failed_rows(released)))
          if failed_rows(released) else (SUCCESS, f"{len(released)} temporary resource(s) released"))),
    ]
    rows = [StepRow(name, status, detail, n) for n, (name, (status, detail)) in enumerate(steps)]
    for n, (item, line) in enumerate(((command or {}).get("items") or {}).items(), start=len(rows)):
        rows.append(StepRow(f"item {item}", SUCCESS if command.get("status") == st.INVOCATION_SUCCESS else SKIPPED, line, n))
    return rows


def finish_repair(context: Mapping[str, Any]) -> dict:
    """The DAG's report task: build, write and mail the report; raise unless the repaired image exists, its check
    passed and everything temporary was released."""
    ti = context["ti"]
    image = ti.xcom_pull(task_ids="make_image")
    done = finish_step_report(context, repair_steps(ti), title=f"Image repair {context['run_id']}",
                              what="image not repaired", missing=None if image else "no repaired image was made")
    return {**done, "image_id": image["image_id"], "image_name": image["image_name"]}
