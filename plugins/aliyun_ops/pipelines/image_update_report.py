"""Finish a golden-image update: one row per step (what it made or said), files, email, and the run's outcome.

The run is green only when the image was published and everything temporary was released; a failed test (image
deleted), a rejected approval (nothing published) or a step that failed fails it, after the report is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..logic.report import FAILED, SKIPPED, SUCCESS, StepRow
from .report_inputs import failed_rows, task_results
from .report_output import finish_step_report


def _rows_step(rows: list[dict] | None, ok: str) -> tuple[str, str]:
    if rows is None:
        return SKIPPED, "not reached, or it failed before it knew anything (see its log)"
    bad = failed_rows(rows)
    if bad:
        return FAILED, "; ".join(f"{r.get('instance_id') or r.get('resource_id') or r.get('image_id')}: "
                                 f"{r.get('reason')}" for r in bad)
    return SUCCESS, ok.format(n=len(rows))


def _update_step(rows: list[dict] | None) -> tuple[str, str]:
    """The update command's verdict with the end of its output (what a failed update printed matters most)."""
    if not rows:
        return SKIPPED, "not reached, or it failed before it knew anything (see its log)"
    row = rows[0]
    tail = (row.get("output") or "").strip()[-300:]
    status = SUCCESS if row.get("status") == SUCCESS else FAILED
    return status, f"exit {row.get('exit_code')}: {tail}" + ("" if status == SUCCESS else f" ({row.get('reason')})")


def update_steps(ti: Any, answer: str | None) -> list[StepRow]:
    """What each step of ``ecs_update_image`` did, read from its task's XComs (missing = not reached)."""
    plan = ti.xcom_pull(task_ids="plan")
    built = ti.xcom_pull(task_ids="build_instance")
    update = task_results(ti, "update")
    image = ti.xcom_pull(task_ids="create_image")
    tested = task_results(ti, "test_image")
    kept = ti.xcom_pull(task_ids="keep_or_discard")
    published = ti.xcom_pull(task_ids="publish")
    released = task_results(ti, "release_temporary_resources")
    steps = [
        ("plan", (SUCCESS, f"{plan['source_image_id']} -> {plan['image_name']} in {plan['region']}") if plan else
         (FAILED, "the checks failed before anything was made (see the plan task's log)")),
        ("build instance", (SUCCESS, ", ".join(b["instance_id"] for b in built)) if built else
         (SKIPPED, "not made")),
        ("Cloud Assistant", (SUCCESS, str(ti.xcom_pull(task_ids="agent_ready"))) if
         ti.xcom_pull(task_ids="agent_ready") else (SKIPPED, "not checked")),
        ("update", _update_step(update)),
        ("stop", _rows_step(task_results(ti, "stop_build_instance"), "stopped")),
        ("image", (SUCCESS, f"{image['image_id']} ({image['image_name']})") if image else (SKIPPED, "not made")),
        ("test", _rows_step(tested, "booted and healthy") if tested is None or failed_rows(tested) else
         (SUCCESS, str(tested[0].get("reason") or "passed"))),
        ("kept", (SUCCESS, "passed its test") if kept else
         ((FAILED, "failed its test: deleted with its snapshots") if tested and failed_rows(tested) else
          (SKIPPED, "not reached"))),
        ("approval", (SUCCESS, "approved") if answer == "Approve" else
         ((FAILED, "rejected (or no answer): nothing published") if answer == "Reject" else (SKIPPED, "not asked"))),
        ("publish", (SUCCESS, ", ".join(f"{r}: {i}" for r, i in published.items())) if published else
         (SKIPPED, "nothing published")),
        ("release", _rows_step(released, "{n} temporary resource(s) released")),
    ]
    return [StepRow(name, status, detail, n) for n, (name, (status, detail)) in enumerate(steps)]


def finish_update(context: Mapping[str, Any], answer: str | None) -> dict:
    """The DAG's report task: build, write and mail the report; raise unless the image was published and everything
    temporary released."""
    ti = context["ti"]
    published = ti.xcom_pull(task_ids="publish")
    done = finish_step_report(context, update_steps(ti, answer),
                              title=f"Golden image update {context.get('ds') or context['run_id']}",
                              what="golden image not published",
                              missing=None if published else "nothing was published")
    return {**done, "published": published}
