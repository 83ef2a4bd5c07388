"""Answer Human-in-the-loop tasks of a run under dag.test(), from a thread (dag.test runs tasks in the main one)."""

from __future__ import annotations

import time


def respond(dag_id: str, dag_run_id: str, task_id: str, option: str) -> None:
    """Answer a Required Action as the UI does (Core API ``update_hitl_detail``), for a run under dag.test()."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils import timezone
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=dag_run_id, task_id=task_id).one()
        detail = session.query(HITLDetail).filter_by(ti_id=ti.id).one()
        detail.responded_by = {"id": "tester", "name": "tester"}
        detail.responded_at = timezone.utcnow()
        detail.chosen_options = [option]
        detail.params_input = {}
        session.add(detail)
        handle_event_submit(TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session)


def wait_for_input(dag_id: str, task_id: str, timeout: float = 120) -> str:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with create_session() as session:
            ti = session.query(TaskInstance).filter_by(dag_id=dag_id, task_id=task_id,
                                                       state=TaskInstanceState.AWAITING_INPUT).first()
            if ti is not None:
                return ti.run_id
        time.sleep(0.5)
    raise AssertionError(f"{task_id} never waited for input")
