"""Where run reports go: ``<report dir>/<dag>/<run>.{json,html,txt}`` files and an email."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..exceptions import RunIncomplete
from ..logic.report import FAILED, Report, StepRow

log = logging.getLogger(__name__)


def report_dir() -> Path:
    base = os.environ.get("ALIYUN_OPS_REPORT_DIR") or os.path.join(
        os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "reports")
    return Path(base)


def write_artifacts(report: Report, dag_id: str, run_id: str) -> dict[str, str]:
    """Write ``<report dir>/<dag>/<run>.{json,html,txt}``; returns the paths."""
    safe_run = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
    folder = report_dir() / dag_id
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for ext, content in (("json", json.dumps(report.to_dict(), indent=2, default=str)),
                         ("html", report.to_html()), ("txt", report.to_text())):
        path = folder / f"{safe_run}.{ext}"
        path.write_text(content, encoding="utf-8")
        paths[ext] = str(path)
    return paths


def send_report_email(report: Report, recipients: Sequence[str], context: Mapping[str, Any], *,
                      note: str = "") -> bool:
    """Email the HTML table with ``SmtpNotifier`` (connection ``smtp_default``); False if nobody to tell."""
    if not recipients:
        return False
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    subject = f"[aliyun-ops] {report.title}: {report.outcome.upper()} ({report.counts[FAILED]} failed){note}"
    notifier = SmtpNotifier(to=list(recipients), subject=subject, html_content=report.to_html(),
                            from_email=os.environ.get("ALIYUN_OPS_MAIL_FROM", "aliyun-ops@localhost"))
    notifier.notify(dict(context))
    return True


def finish_step_report(context: Mapping[str, Any], rows: Sequence[Any], *, title: str, what: str,
                       missing: str | None = None) -> dict:
    """End a one-thing pipeline (``StepRow`` rows): write the report, mail it to the ``notify_emails`` param, log
    it; then raise ``RunIncomplete`` ("<what> (report: ...)" and each failed step, plus ``missing`` when given:
    the promised result that is absent) or return ``{"outcome", "files", "emailed"}``."""
    ti = context["ti"]
    report = Report.build(list(rows), row_type=StepRow, meta={"dag": ti.dag_id, "run": context["run_id"]},
                          title=title)
    paths = write_artifacts(report, ti.dag_id, context["run_id"])
    log.info("%s (%s):\n%s", title, report.outcome, report.to_text())
    emailed = send_report_email(report, list(context["params"].get("notify_emails") or []), context)
    problems = [f"{r.step}: {r.detail}" for r in rows if r.status == FAILED] + ([missing] if missing else [])
    if problems:
        raise RunIncomplete(f"{what} (report: {paths['html']}):\n- " + "\n- ".join(problems))
    return {"outcome": report.outcome, "files": paths, "emailed": emailed}
