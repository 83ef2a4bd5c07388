"""A run is green only if its undo happened: for every DAG that pauses an instance, a resume teardown that cannot
finish (here: the pause tags cannot be removed) fails the run, and the report names the instance left.

(The verification DAG's teardowns, which release temporary instances and groups, are tested in
``test_verify_backups.py``.)
"""

from __future__ import annotations

import pendulum
import pytest

from aliyun_ops.logic import pause
from tests.dags.reports import report_json

REGION = "cn-hangzhou"
UNTAG_REFUSED = {"rules": [{"action": "ecs:UntagResources", "kind": "error", "status": 400,
                            "code": "OperationDenied", "message": "The operation is not permitted now.",
                            "rate": 1.0}]}


def one_instance(emulator, tags: dict[str, str]) -> str:
    return emulator.admin.load_fleet({"instances": [
        {"region": REGION, "name": "app", "count": 1, "status": "Running", "tags": tags}]})["instances"][0]


def image_of(emulator, iid: str) -> dict:
    emulator.admin.load_fleet({"images": [
        {"region": REGION, "name": "app-backup", "creation_time": "2026-11-19T00:00:00Z",
         "tags": {"ops:managed-by": "airflow-aliyun-ops", "ops:source-instance": iid}}]})
    return next(i for i in emulator.admin.table("ecs.images").values() if i.get("ImageName") == "app-backup")


def dag_case(name: str, emulator) -> tuple[str, dict, str]:
    """(dag id, conf, instance id) of a run that pauses one instance and should otherwise succeed."""
    if name == "ecs_cross_region_backup":
        iid = one_instance(emulator, {"backup": "daily"})
        return name, {"consistency": "stop", "destination_regions": ["cn-shanghai"], "poll_interval": 1}, iid
    if name == "ecs_restore_system_disk":
        iid = one_instance(emulator, {})
        image_of(emulator, iid)
        return name, {"instance_id": iid, "confirm_instance_id": iid, "require_approval": False,
                      "poll_interval": 1}, iid
    iid = one_instance(emulator, {"spot-image-cycle": "true"})
    return name, {"poll_interval": 1}, iid


@pytest.mark.parametrize("name", ["ecs_cross_region_backup", "ecs_restore_system_disk", "ecs_spot_image_cycle"])
def test_a_resume_that_cannot_finish_fails_the_run_and_the_report_names_the_instance(run_dag, emulator, name):
    dag_id, conf, iid = dag_case(name, emulator)
    emulator.admin.set_faults(UNTAG_REFUSED)
    run = run_dag(dag_id, conf=conf, logical_date=pendulum.datetime(2026, 11, 20, 4, tz="UTC"), retries=0)
    assert run.state == "failed"
    rec = emulator.admin.table("ecs.instances")[iid]
    assert rec["Status"] == "Running"                               # started again ...
    assert pause.PAUSED_BY in rec["Tags"]                           # ... but the undo did not finish: said so
    report = report_json(dag_id, run)
    lines = [str(v) for v in report["meta"].values()] + [f"{r['instance_id']} {r['reason']}" for r in report["rows"]]
    assert any(iid in line and "pause tags not removed" in line for line in lines), report
