"""DAG integrity for every DAG in dags/, and end-to-end runs of the start/stop and RDS archive DAGs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
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


def iso_days_ago(days: float) -> str:
    return datetime.fromtimestamp(time.time() - days * 86400, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_rds_backups_are_archived_to_oss_once(run_dag, emulator, oss_client):
    emulator.admin.load_fleet({
        "rds_instances": [{"region": "cn-hangzhou", "engine": "MySQL", "engine_version": "8.0",
                           "tags": {"backup": "archive"}, "backup_count": 2, "backup_size": 3 * 1024 * 1024},
                          {"region": "cn-hangzhou", "engine": "MySQL", "engine_version": "8.0",
                           "tags": {"backup": "none"}, "backup_count": 1, "backup_size": 1024}],
        "buckets": [{"name": "ops-archive", "region": "cn-shanghai"}]})   # as on the demo: not the connection's
    conf = {"start": "2020-01-01T00:00Z", "end": "2035-01-01T00:00Z"}
    first = run_dag("rds_backup_archive", conf=conf)
    assert first.state == "success"
    import alibabacloud_oss_v2 as oss

    listing = oss_client("cn-shanghai").list_objects_v2(oss.ListObjectsV2Request(bucket="ops-archive", prefix="rds/"))
    objects = listing.contents or []
    assert len(objects) == 2 and all(o.size == 3 * 1024 * 1024 for o in objects)
    emulator.admin.clear_calls()
    second = run_dag("rds_backup_archive", conf=conf)          # same window again: nothing uploaded twice
    assert second.state == "success"
    assert "oss:PutObject" not in emulator.admin.calls()["counters"]
    assert "oss:UploadPart" not in emulator.admin.calls()["counters"]


def test_rds_archive_defaults_pick_up_what_earlier_nights_missed(run_dag, emulator, oss_client):
    """No window given: every backup of the last 7 days not archived yet, e.g. one still running on its night."""
    import alibabacloud_oss_v2 as oss
    import pendulum

    night = pendulum.datetime(2026, 11, 20, 19, 0, tz="UTC")          # 03:00 Asia/Shanghai
    backups = [{"size": 4096, "start_time": night.subtract(days=d).strftime("%Y-%m-%dT%H:%M:%SZ")} for d in (3, 10)]
    emulator.admin.load_fleet({
        "rds_instances": [{"region": "cn-hangzhou", "engine": "MySQL", "tags": {"backup": "archive"},
                           "backups": backups}],
        "buckets": [{"name": "ops-archive", "region": "cn-hangzhou"}]})
    run = run_dag("rds_backup_archive", logical_date=night)
    assert run.state == "success"
    objects = oss_client("cn-hangzhou").list_objects_v2(
        oss.ListObjectsV2Request(bucket="ops-archive", prefix="rds/")).contents or []
    assert [o.key.split("/")[2] for o in objects] == [night.subtract(days=3).strftime("%Y-%m-%d")]
