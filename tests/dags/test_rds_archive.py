"""rds_backup_archive end to end: the demo's defaults, nothing twice, missed nights, manifest, report and email."""

from __future__ import annotations

import json
from pathlib import Path

import alibabacloud_oss_v2 as oss
import pendulum

NIGHT = pendulum.datetime(2026, 11, 20, 19, 0, tz="UTC")          # 03:00 Asia/Shanghai


def objects(oss_client, region, prefix="rds/"):
    return oss_client(region).list_objects_v2(oss.ListObjectsV2Request(bucket="ops-archive", prefix=prefix)).contents or []


def test_rds_backups_are_archived_once_with_a_manifest_report_and_email(run_dag, emulator, oss_client, smtp_server):
    received, got = smtp_server
    emulator.admin.load_fleet({
        "rds_instances": [{"region": "cn-hangzhou", "engine": "MySQL", "engine_version": "8.0",
                           "tags": {"backup": "archive"}, "backup_count": 2, "backup_size": 3 * 1024 * 1024},
                          {"region": "cn-hangzhou", "engine": "MySQL", "engine_version": "8.0",
                           "tags": {"backup": "none"}, "backup_count": 1, "backup_size": 1024}],
        "buckets": [{"name": "ops-archive", "region": "cn-shanghai"}]})   # as on the demo: not the connection's
    conf = {"start": "2020-01-01T00:00Z", "end": "2035-01-01T00:00Z", "notify_emails": ["ops@example.com"],
            "storage_class": "IA"}
    first = run_dag("rds_backup_archive", conf=conf)
    assert first.state == "success"
    archived = objects(oss_client, "cn-shanghai")
    assert len(archived) == 2 and all(o.size == 3 * 1024 * 1024 and o.storage_class == "IA" for o in archived)
    manifests = objects(oss_client, "cn-shanghai", "manifests/rds_backup_archive/")
    assert len(manifests) == 1
    body = oss_client("cn-shanghai").get_object(oss.GetObjectRequest(bucket="ops-archive", key=manifests[0].key))
    doc = json.loads(body.body.read())
    assert sorted(e["key"] for e in doc["entries"] if e["status"] == "success") == sorted(o.key for o in archived)
    assert got.wait(10) and "RDS backup archive" in received[0].content.decode(errors="replace")
    report = first.get_task_instance("report").xcom_pull(task_ids="report")
    assert Path(report["files"]["html"]).read_text().count("<tr") == 3   # header + 2 backups

    emulator.admin.clear_calls()
    second = run_dag("rds_backup_archive", conf=conf)          # same window again: nothing uploaded twice
    assert second.state == "success"
    counters = emulator.admin.calls()["counters"]
    assert counters["oss:PutObject"]["calls"] == 1                          # the second run's manifest only
    assert "oss:UploadPart" not in counters and "oss:InitiateMultipartUpload" not in counters


def test_rds_archive_defaults_pick_up_what_earlier_nights_missed(run_dag, emulator, oss_client):
    """No window given: every backup of the last 7 days not archived yet, e.g. one still running on its night."""
    backups = [{"size": 4096, "start_time": NIGHT.subtract(days=d).strftime("%Y-%m-%dT%H:%M:%SZ")} for d in (3, 10)]
    emulator.admin.load_fleet({
        "rds_instances": [{"region": "cn-hangzhou", "engine": "MySQL", "tags": {"backup": "archive"},
                           "backups": backups}],
        "buckets": [{"name": "ops-archive", "region": "cn-hangzhou"}]})
    run = run_dag("rds_backup_archive", logical_date=NIGHT)
    assert run.state == "success"
    assert [o.key.split("/")[2] for o in objects(oss_client, "cn-hangzhou")] == [
        NIGHT.subtract(days=3).strftime("%Y-%m-%d")]


def test_a_failed_backup_fails_the_run_after_the_report_is_written(run_dag, emulator, oss_client):
    emulator.admin.load_fleet({
        "rds_instances": [{"region": "cn-hangzhou", "engine": "MySQL", "tags": {"backup": "archive"},
                           "backups": [{"size": 9 * 1024 * 1024,
                                        "start_time": NIGHT.subtract(days=1).strftime("%Y-%m-%dT%H:%M:%SZ")}]}],
        "buckets": [{"name": "ops-archive", "region": "cn-hangzhou"}]})
    emulator.admin.set_faults({"rules": [{"action": "oss:UploadPart", "kind": "corrupt", "rate": 1.0}]})
    run = run_dag("rds_backup_archive", logical_date=NIGHT)
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["archive_backups"] == "failed" and states["report"] == "failed"
    assert objects(oss_client, "cn-hangzhou") == []
    assert len(objects(oss_client, "cn-hangzhou", "manifests/")) == 1
