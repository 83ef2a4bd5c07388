"""DAG integrity for every DAG in dags/, and end-to-end runs of the start/stop DAG."""

from __future__ import annotations

from pathlib import Path

DAGS = Path(__file__).resolve().parent.parent.parent / "dags"
MANAGED = {"ops:managed-by": "airflow-aliyun-ops", "ops:policy": "ecs-cross-region-backup"}


def test_every_dag_imports_cleanly_and_calls_nothing_at_parse_time(aliyun_conn):
    from airflow.dag_processing.dagbag import DagBag

    aliyun_conn.admin.clear_calls()
    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    assert {"ecs_cross_region_backup", "ecs_start_stop_by_tag", "ecs_image_retention", "ecs_restore_system_disk",
            "ecs_verify_backups"} <= set(bag.dags)
    assert aliyun_conn.admin.calls()["counters"] == {}
    for dag in bag.dags.values():
        assert dag.catchup is False
        for name, param in dag.params.items():   # defaults satisfy their own schema
            assert param.schema, f"{dag.dag_id}.{name} has no JSON schema"
            if param.has_value:                   # required fields (no default) are filled in the form
                param.resolve(param.value)


def statuses(emulator):
    return {i["InstanceId"]: i["Status"] for i in emulator.admin.table("ecs.instances").values()}


def test_stop_then_start_by_tag(run_dag, emulator):
    emulator.admin.load_fleet({"instances": [
        {"region": "cn-hangzhou", "name": "t", "count": 3, "status": "Running", "tags": {"env": "test"}},
        {"region": "cn-hangzhou", "name": "t-off", "count": 1, "status": "Stopped", "tags": {"env": "test"}},
        {"region": "cn-hangzhou", "name": "p", "count": 2, "status": "Running", "tags": {"env": "prod"}},
    ]})
    tagged = [i["InstanceId"] for i in emulator.admin.table("ecs.instances").values() if i["Tags"]["env"] == "test"]
    prod = [i["InstanceId"] for i in emulator.admin.table("ecs.instances").values() if i["Tags"]["env"] == "prod"]
    run = run_dag("ecs_start_stop_by_tag", conf={"action": "stop", "tags": {"env": "test"}})
    assert run.state == "success"
    emulator.admin.advance(120)
    now = statuses(emulator)
    assert all(now[i] == "Stopped" for i in tagged) and all(now[i] == "Running" for i in prod)
    assert emulator.admin.calls()["counters"]["ecs:StopInstances"]["calls"] == 1   # one batched call
    run = run_dag("ecs_start_stop_by_tag", conf={"action": "start", "tags": {"env": "test"}})
    assert run.state == "success"
    emulator.admin.advance(120)
    now = statuses(emulator)
    assert all(now[i] == "Running" for i in tagged + prod)
