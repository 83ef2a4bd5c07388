"""What every aliyun-ops task shares, operator or sensor, at run time: connection, region, hook, run identity (key,
date, name fields), idempotency tokens, resumable state. Sensors build on this module, never on an operator module.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from .logic.naming import client_token

DEFAULT_CONN_ID = "aliyun_default"


def run_key(context: Any) -> str:
    """What identifies "this run" for idempotency.

    The logical date when the run has one, so that a re-run, a backfill or a second manual run of
    the same night finds what the first one made instead of making it again; otherwise the run id.
    """
    logical = context.get("logical_date") if hasattr(context, "get") else None
    if logical is not None:
        return logical.isoformat()
    return str(context["run_id"])


def task_client_token(context: Any, *parts: str) -> str:
    """Stable per (DAG, run key, task, map index, parts): a retried try or a re-run sends the same token."""
    ti = context["ti"]
    return client_token(ti.dag_id, run_key(context), ti.task_id, str(getattr(ti, "map_index", -1)), *parts)


def run_info(context: Any) -> dict[str, str]:
    """The run's identity: ``dag_id``, ``run_id``, ``run_key`` (:func:`run_key`), ``task_id``."""
    ti = context["ti"]
    return {"dag_id": str(ti.dag_id), "run_id": str(context["run_id"]), "run_key": run_key(context),
            "task_id": str(ti.task_id)}


def run_date(context: Any) -> datetime:
    """The run's logical date (stable across retries); now for runs without one."""
    for key in ("logical_date", "data_interval_end"):
        value = context.get(key) if hasattr(context, "get") else None
        if isinstance(value, datetime):
            return value
    dag_run = context.get("dag_run") if hasattr(context, "get") else None
    value = getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None)
    if isinstance(value, datetime):
        return value
    return datetime.now(UTC)


def naming_values(context: Any) -> dict[str, str]:
    """The run's fields of a name template: ``date``, ``datetime`` (of the logical date), ``run_id``, ``dag_id``."""
    info = run_info(context)
    date = run_date(context)
    return {"date": date.strftime("%Y%m%d"), "datetime": date.strftime("%Y%m%d-%H%M%S"), "run_id": info["run_id"],
            "dag_id": info["dag_id"]}


class AliyunOperatorMixin:
    """Connection, region, hook, idempotency tokens and resumable state for our operators.

    Subclasses set ``hook_class``. Example::

        class MyOperator(AliyunBaseOperator):
            hook_class = EcsHook
            def execute(self, context):
                region = self.resolve_region()
                token = self.client_token(context, "create-image", instance_id)
    """

    hook_class: type = None  # type: ignore[assignment]
    aliyun_conn_id: str
    region: str | None

    @cached_property
    def hook(self):
        if self.hook_class is None:
            raise TypeError(f"{type(self).__name__} must set hook_class")
        return self.hook_class(aliyun_conn_id=self.aliyun_conn_id, region=self.region)

    def resolve_region(self, region: str | None = None) -> str:
        """The explicit region, else the operator's, else the connection's default region."""
        resolved = region or self.region or self.hook.region
        if not resolved:
            raise ValueError(f"{type(self).__name__}: no region given and connection "
                             f"{self.aliyun_conn_id!r} has no default region")
        return resolved

    @staticmethod
    def client_token(context: Any, *parts: str) -> str:
        """Stable per (DAG, run key, task, map index, parts): a retried try or a re-run sends the same token."""
        return task_client_token(context, *parts)

    @staticmethod
    def recall(context: Any, key: str, default: Any = None) -> Any:
        """Read what an earlier try of this task stored (Airflow's task state store), if available."""
        store = context.get("task_state_store") if hasattr(context, "get") else None
        if store is None:
            return default
        try:
            return store.get(key, default)
        except Exception:  # state store unavailable (e.g. dag.test without the supervisor)
            return default

    @staticmethod
    def remember(context: Any, key: str, value: Any) -> None:
        """Store ``value`` so a retried try can pick up where this one stopped."""
        store = context.get("task_state_store") if hasattr(context, "get") else None
        if store is None or value is None:
            return
        try:
            store.set(key, value)
        except Exception:
            pass


def aliyun_template_fields(*fields: str) -> Sequence[str]:
    """``template_fields`` of a task: the connection and region, then ``fields``.

    >>> aliyun_template_fields("image_ids")
    ('aliyun_conn_id', 'region', 'image_ids')
    """
    return ("aliyun_conn_id", "region", *fields)
