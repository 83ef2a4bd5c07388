"""CreateRdsBackupOperator against the emulator (the archive to OSS: test_rds_archive.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aliyun_ops.operators.rds import CreateRdsBackupOperator

HZ = "cn-hangzhou"
DB = "rm-test0001"


class FakeTI:
    dag_id, task_id, map_index, try_number = "rds_dag", "task", -1, 1

    def xcom_push(self, key, value):
        pass


class FakeStore(dict):
    def set(self, key, value):
        self[key] = value


class FakeDagRun:
    def __init__(self, start_date):
        self.start_date = start_date


def ctx(store=None, dag_run=None):
    return {"ti": FakeTI(), "run_id": "manual__1", "task_state_store": store, "dag_run": dag_run}


def calls(emu, key):
    return emu.admin.calls()["counters"].get(key, {}).get("calls", 0)


@pytest.fixture
def emu(aliyun_env):
    emu = aliyun_env()
    emu.admin.load_fleet({
        "rds_instances": [{"region": HZ, "id": DB, "engine": "MySQL", "backup_size": 300 * 1024,
                           "backups": [{"size": 300 * 1024, "start_time": "2024-01-01T01:00:00Z"},
                                       {"size": 6 * 1024 * 1024 + 17, "start_time": "2024-01-02T01:00:00Z"},
                                       {"size": 1000, "start_time": "2024-01-03T01:00:00Z", "status": "Failed"}]}],
    })
    emu.admin.clear_calls()
    return emu


# -- validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"instance_id": "db1"}, "RDS instance id"),
    ({"backup_method": "Copy"}, "backup_method"),
    ({"backup_strategy": "db"}, "db_name"),
    ({"poll_interval": 0}, "poll_interval"),
])
def test_create_backup_validation(emu, kwargs, match):
    args = {"instance_id": DB, **kwargs}
    with pytest.raises(ValueError, match=match):
        CreateRdsBackupOperator(task_id="b", region=HZ, **args).execute(ctx())
    assert emu.admin.calls()["counters"] == {}


def test_template_fields():
    op = CreateRdsBackupOperator(task_id="b", instance_id=DB)
    for name in op.template_fields:
        assert hasattr(op, name)


# -- create backup -----------------------------------------------------------------------------------
def test_create_backup_waits_and_is_idempotent(emu):
    store = FakeStore()
    op = CreateRdsBackupOperator(task_id="b", instance_id=DB, region=HZ, poll_interval=0.1, wait_timeout=30)
    first = op.execute(ctx(store))
    assert first["status"] == "Success" and first["mode"] == "Manual" and first["size"] > 0
    assert calls(emu, "rds:CreateBackup") == 1
    again = op.execute(ctx(store))                       # retry with the state store
    assert again["backup_id"] == first["backup_id"] and calls(emu, "rds:CreateBackup") == 1
    run_start = datetime.now(UTC) - timedelta(hours=1)   # retry without the store: found by time
    third = op.execute(ctx(dag_run=FakeDagRun(run_start)))
    assert third["backup_id"] == first["backup_id"] and third["reused"] is True
    assert calls(emu, "rds:CreateBackup") == 1


def test_create_backup_joins_a_running_job(emu, rds_client):
    from alibabacloud_rds20140815 import models

    rds_client().create_backup(models.CreateBackupRequest(dbinstance_id=DB, backup_method="Physical"))
    emu.admin.clear_calls()
    out = CreateRdsBackupOperator(task_id="b", instance_id=DB, region=HZ, poll_interval=0.1,
                                  wait_timeout=30).execute(ctx())
    assert out["status"] == "Success" and out["reused"] is True
    assert emu.admin.calls()["counters"]["rds:CreateBackup"]["errors"] == 1


def test_create_backup_failure_is_reported(emu):
    emu.admin.set_faults({"rds_backup_fail": {"rate": 1.0}})
    with pytest.raises(RuntimeError, match="ended Failed"):
        CreateRdsBackupOperator(task_id="b", instance_id=DB, region=HZ, poll_interval=0.1,
                                wait_timeout=30).execute(ctx())
