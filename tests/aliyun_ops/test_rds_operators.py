"""RDS operators against the emulator: CreateBackup + wait, archive backup sets to OSS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aliyun_ops.exceptions import TooManyItemFailures
from aliyun_ops.operators.rds import ArchiveRdsBackupsToOssOperator, CreateRdsBackupOperator

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
        "buckets": [{"name": "db-archive", "region": HZ}],
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


@pytest.mark.parametrize("kwargs, match", [
    ({"bucket": "Bad_Bucket"}, "bucket"),
    ({"key_template": "rds/{instance_id}.tar"}, "backup_id"),
    ({"key_template": "rds/{nope}/{backup_id}"}, "unknown fields"),
    ({"start": "2024-02-01", "end": "2024-01-01"}, "before start"),
    ({"start": "yesterday"}, "ISO"),
    ({"instance_ids": []}, "empty"),
    ({"part_size": 10}, "part_size"),
])
def test_archive_validation(emu, kwargs, match):
    args = {"instance_ids": [DB], "bucket": "db-archive", **kwargs}
    with pytest.raises(ValueError, match=match):
        ArchiveRdsBackupsToOssOperator(task_id="a", region=HZ, **args).execute(ctx())
    assert emu.admin.calls()["counters"] == {}


def test_template_fields():
    for op in (CreateRdsBackupOperator(task_id="b", instance_id=DB),
               ArchiveRdsBackupsToOssOperator(task_id="a", instance_ids=[DB], bucket="b-1")):
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


# -- archive -------------------------------------------------------------------------------------------
def _head(oss_client, key):
    import alibabacloud_oss_v2 as oss

    return oss_client().head_object(oss.HeadObjectRequest(bucket="db-archive", key=key))


def test_archive_streams_verifies_and_reruns_idempotently(emu, oss_client):
    op = ArchiveRdsBackupsToOssOperator(task_id="a", instance_ids=[DB], region=HZ, bucket="db-archive",
                                        start="2024-01-01T00:00Z", end="2024-01-31T00:00Z",
                                        part_size=1024 * 1024, concurrency=2)
    out = op.execute(ctx())
    assert len(out) == 2                                     # the Failed backup is not listed
    assert all(r["status"] == "success" and r["crc64"] for r in out)
    keys = sorted(r["key"] for r in out)
    assert keys[0].startswith(f"rds/{DB}/2024-01-01/") and keys[0].endswith(".tar")
    for r in out:
        head = _head(oss_client, r["key"])
        assert head.content_length == r["size"] and str(head.hash_crc64) == r["crc64"]
    big = next(r for r in out if r["size"] > 6 * 1024 * 1024)
    assert _head(oss_client, big["key"]).object_type == "Multipart"
    again = op.execute(ctx())
    assert [r["status"] for r in again] == ["skipped", "skipped"]
    assert all(r["reason"] == "already archived (same size)" for r in again)


def test_archive_replaces_a_partial_object_and_window(emu, oss_client):
    import alibabacloud_oss_v2 as oss

    op = ArchiveRdsBackupsToOssOperator(task_id="a", instance_ids=DB, region=HZ, bucket="db-archive",
                                        start="2024-01-01", end="2024-01-01T23:59Z")
    first = op.execute(ctx())
    assert len(first) == 1
    oss_client().put_object(oss.PutObjectRequest(bucket="db-archive", key=first[0]["key"], body=b"truncated"))
    again = op.execute(ctx())
    assert again[0]["status"] == "success"
    assert _head(oss_client, first[0]["key"]).content_length == first[0]["size"]


def test_archive_survives_throttling_and_reports_per_backup(emu):
    emu.admin.set_faults({"rules": [{"action": "rds:DescribeBackups", "kind": "throttle", "count": 2},
                                    {"action": "oss:PutObject", "kind": "error", "status": 403, "code": "AccessDenied",
                                     "count": 50},
                                    {"action": "oss:InitiateMultipartUpload", "kind": "error", "status": 403,
                                     "code": "AccessDenied", "count": 50}]})
    op = ArchiveRdsBackupsToOssOperator(task_id="a", instance_ids=[DB], region=HZ, bucket="db-archive",
                                        start="2024-01-01T00:00Z", end="2024-01-31T00:00Z", max_errors=5)
    out = op.execute(ctx())
    assert len(out) == 2 and all(r["status"] == "failed" for r in out)
    with pytest.raises(TooManyItemFailures, match="failed to archive"):
        ArchiveRdsBackupsToOssOperator(task_id="a", instance_ids=[DB], region=HZ, bucket="db-archive",
                                       start="2024-01-01T00:00Z", end="2024-01-31T00:00Z").execute(ctx())


def test_a_missing_bucket_is_a_clear_error_before_any_rds_call(emu):
    with pytest.raises(ValueError, match="bucket 'no-such-bucket' does not exist"):
        ArchiveRdsBackupsToOssOperator(task_id="a", instance_ids=[DB], region=HZ,
                                       bucket="no-such-bucket").execute(ctx())
    assert calls(emu, "rds:DescribeBackups") == 0


def test_archive_finds_the_bucket_region_by_itself(emu, oss_client):
    """The bucket is in cn-shanghai, the connection in cn-hangzhou, no oss_region: GetBucketLocation says where."""
    emu.admin.load_fleet({"buckets": [{"name": "dr-archive", "region": "cn-shanghai"}]})
    op = ArchiveRdsBackupsToOssOperator(task_id="a", instance_ids=[DB], region=HZ, bucket="dr-archive",
                                        start="2024-01-01T00:00Z", end="2024-01-31T00:00Z", part_size=1024 * 1024)
    out = op.execute(ctx())
    assert len(out) == 2 and all(r["status"] == "success" for r in out)
    assert calls(emu, "oss:GetBucketLocation") == 1
