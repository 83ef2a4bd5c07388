"""The base every aliyun-ops operator builds on (what sensors share with it is in :mod:`aliyun_ops.tasks`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from ..tasks import DEFAULT_CONN_ID, AliyunOperatorMixin, aliyun_template_fields, run_key

__all__ = ["DEFAULT_CONN_ID", "AliyunBaseOperator", "AliyunOperatorMixin", "aliyun_template_fields", "run_key"]


class AliyunBaseOperator(AliyunOperatorMixin, BaseOperator):
    """Base operator: ``aliyun_conn_id`` (default ``aliyun_default``) and an optional ``region``.

    Example::

        class RebootOperator(AliyunBaseOperator):
            hook_class = EcsHook
            def execute(self, context):
                region = self.resolve_region()
                ...
    """

    template_fields: Sequence[str] = aliyun_template_fields()
    ui_color = "#ffd8b5"

    def __init__(self, *, aliyun_conn_id: str = DEFAULT_CONN_ID, region: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aliyun_conn_id = aliyun_conn_id
        self.region = region
