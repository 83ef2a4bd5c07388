"""Read a DAG run's report as its report task wrote it (``<report dir>/<dag>/<run>.json``)."""

from __future__ import annotations

import json


def report_json(dag_id: str, dag_run) -> dict:
    from aliyun_ops.pipelines.report_output import report_dir

    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in dag_run.run_id)
    return json.loads((report_dir() / dag_id / f"{safe}.json").read_text())
