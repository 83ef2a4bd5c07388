"""Mails and Asset events the bundled DAGs send besides their reports."""

from __future__ import annotations

import html
from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import Asset

APPROVAL_HTML = "<p>{question}</p><p>Answer in Airflow's <b>Required Actions</b>: <a href=\"{link}\">{where}</a></p>"


class ApprovalMail(SmtpNotifier):
    """The mail a human approval sends (``smtp_default``): the question and the link to its Required Actions page;
    nothing is sent when ``to`` renders empty (no recipient given in the run's params)."""

    def __init__(self, *, to: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subject", "[aliyun-ops] approval needed: {{ dag.dag_id }} {{ run_id }}")
        super().__init__(to=to, **kwargs)

    def notify(self, context: Any) -> None:
        if not self.to:
            return
        task, ti = context["task"], context["ti"]
        try:  # the HITL operator knows the page's address (from [api] base_url)
            link = task.generate_link_to_ui_from_context(context)
        except (AttributeError, ValueError):
            link = f"/dags/{ti.dag_id}/runs/{context['run_id']}/tasks/{ti.task_id}/required_actions"
        self.html_content = APPROVAL_HTML.format(question=html.escape(str(getattr(task, "subject", ""))), link=link,
                                                 where=html.escape(f"{ti.dag_id} / {context['run_id']} / {ti.task_id}"))
        super().notify(context)


def golden_asset(region: str) -> Asset:
    """The Asset other DAGs schedule on to follow golden images published in ``region``."""
    return Asset(name=f"aliyun-ecs-golden-images-{region}", uri=f"aliyun-ecs://{region}/golden-images")
