"""Human approval in our DAGs: who is asked (manual runs only) and what they answered."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def is_manual_run(context: Mapping[str, Any]) -> bool:
    """A run someone triggered by hand (a scheduled run or a backfill never waits for a human)."""
    run_type = getattr(context.get("dag_run"), "run_type", "")
    return str(getattr(run_type, "value", run_type)) == "manual"


def approve_task_state(context: Mapping[str, Any], task_id: str = "approve") -> str | None:
    """The state of this run's approval task (None when unknown): ``success`` without an answer in XCom means
    Reject (ApprovalOperator skips what follows before it writes its XCom)."""
    ti = context["ti"]
    try:
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=[task_id], run_ids=[context["run_id"]])
    except Exception as err:  # noqa: BLE001 - only the report's wording depends on it
        log.info("could not read the state of %s: %s", task_id, err)
        return None
    state = (states.get(context["run_id"]) or {}).get(task_id)
    return str(getattr(state, "value", state)) if state else None


def approval_answer(context: Mapping[str, Any], task_id: str = "approve") -> str | None:
    """What the human chose (``"Approve"``/``"Reject"``), None when nobody was asked or the answer is unknown. A
    Reject leaves no XCom (the operator skips what follows first): a successful approval task without an answer
    is a Reject."""
    chosen = (context["ti"].xcom_pull(task_ids=task_id) or {}).get("chosen_options") or []
    if chosen:
        return chosen[0]
    return "Reject" if approve_task_state(context, task_id) == "success" else None
