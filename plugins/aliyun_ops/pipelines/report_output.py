"""Where run reports go: ``<report dir>/<dag>/<run>.{json,html,txt}`` files and an email."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..logic.report import FAILED, Report


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
