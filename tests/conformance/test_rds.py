"""RDS: DescribeDBInstances, DescribeBackups, CreateBackup, DescribeBackupTasks (official SDK) and backup downloads (plain HTTP)."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request

import pytest
from alibabacloud_rds20140815 import models as m
from Tea.exceptions import TeaException

from emulator.rds import content_slice

MiB = 1024**2


def api_error(call) -> TeaException:
    with pytest.raises(TeaException) as err:
        call()
    return err.value


@pytest.fixture
def rds_fleet(emulator):
    emulator.admin.clock(freeze=True)
    spec = [
        {"region": "cn-hangzhou", "id": "rm-prod01", "engine": "MySQL", "engine_version": "8.0",
         "tags": {"env": "prod", "team": "data"},
         "backups": [{"size": 2167808, "start_time": "2024-01-01T00:00:00Z", "method": "Physical"},
                     {"size": 3 * MiB + 17, "start_time": "2024-01-02T00:00:00Z", "method": "Snapshot"}]},
        {"region": "cn-hangzhou", "id": "rm-test01", "engine": "PostgreSQL", "tags": {"env": "test"},
         "backup_count": 35, "backup_size": 1000},
        {"region": "cn-beijing", "id": "rm-bj01", "engine": "MySQL", "engine_version": "5.7"},
    ]
    ids = emulator.admin.load_fleet({"rds_instances": spec})["rds_instances"]
    assert ids == ["rm-prod01", "rm-test01", "rm-bj01"]
    return ids


# -- DescribeDBInstances ----------------------------------------------------------------------
def test_describe_db_instances(rds_client, rds_fleet):
    client = rds_client()
    body = client.describe_dbinstances(m.DescribeDBInstancesRequest(region_id="cn-hangzhou")).body
    assert body.total_record_count == 2 and body.page_record_count == 2 and body.page_number == 1
    assert isinstance(body.total_record_count, int)
    by_id = {i.dbinstance_id: i for i in body.items.dbinstance}
    prod = by_id["rm-prod01"]
    assert prod.engine == "MySQL" and prod.engine_version == "8.0" and prod.dbinstance_status == "Running"
    assert prod.region_id == "cn-hangzhou" and prod.zone_id.startswith("cn-hangzhou") and prod.connection_string
    assert prod.vpc_id.startswith("vpc-") and prod.v_switch_id.startswith("vsw-")

    def ids(**kw):
        req = m.DescribeDBInstancesRequest(region_id=kw.pop("region_id", "cn-hangzhou"), **kw)
        return sorted(i.dbinstance_id for i in client.describe_dbinstances(req).body.items.dbinstance)

    assert ids(dbinstance_id="rm-prod01,rm-bj01") == ["rm-prod01"]
    assert ids(engine="PostgreSQL") == ["rm-test01"]
    assert ids(dbinstance_status="Stopped") == []
    assert ids(tags=json.dumps({"env": "prod"})) == ["rm-prod01"]
    assert ids(tags=json.dumps({"env": "test", "team": "data"})) == ["rm-prod01", "rm-test01"]  # any tag matches
    assert ids(region_id="cn-beijing") == ["rm-bj01"]
    assert ids(dbinstance_id="rm-nope") == []


def test_describe_db_instances_pages(rds_client, rds_fleet):
    client = rds_client()
    p2 = client.describe_dbinstances(m.DescribeDBInstancesRequest(region_id="cn-hangzhou", page_size=1,
                                                                  page_number=2)).body
    assert p2.page_number == 2 and p2.page_record_count == 1 and p2.total_record_count == 2
    first = client.describe_dbinstances(m.DescribeDBInstancesRequest(region_id="cn-hangzhou", max_results=1)).body
    assert len(first.items.dbinstance) == 1 and first.next_token
    second = client.describe_dbinstances(m.DescribeDBInstancesRequest(
        region_id="cn-hangzhou", max_results=1, next_token=first.next_token)).body
    assert len(second.items.dbinstance) == 1 and not second.next_token
    assert first.items.dbinstance[0].dbinstance_id != second.items.dbinstance[0].dbinstance_id


def test_describe_db_instances_errors(rds_client, rds_fleet):
    client = rds_client()
    err = api_error(lambda: client.describe_dbinstances(m.DescribeDBInstancesRequest(region_id="mars-1")))
    assert err.code == "InvalidRegionId.NotFound"
    err = api_error(lambda: client.describe_dbinstances(m.DescribeDBInstancesRequest(region_id="cn-hangzhou",
                                                                                     page_size=101)))
    assert err.code == "InvalidPageSize.Malformed"
    err = api_error(lambda: client.describe_dbinstances(m.DescribeDBInstancesRequest(region_id="cn-hangzhou",
                                                                                     tags="not json")))
    assert err.code.startswith("Invalid") and err.data["statusCode"] == 400


# -- DescribeBackups --------------------------------------------------------------------------
def test_describe_backups(emulator, rds_client, rds_fleet):
    body = rds_client().describe_backups(m.DescribeBackupsRequest(dbinstance_id="rm-prod01")).body
    assert (body.total_record_count, body.page_record_count, body.page_number) == ("2", "2", "1")  # strings
    newest, oldest = body.items.backup
    assert newest.backup_start_time == "2024-01-02T00:00:00Z" and newest.backup_method == "Snapshot"
    assert oldest.backup_size == 2167808 and isinstance(oldest.backup_size, int)
    assert oldest.backup_status == "Success" and oldest.backup_mode == "Automated"
    assert oldest.backup_type == "FullBackup" and oldest.dbinstance_id == "rm-prod01"
    assert oldest.backup_download_url.startswith(f"{emulator.base_url}/_emulator/download/rds/{oldest.backup_id}?")
    assert oldest.backup_intranet_download_url.startswith(emulator.base_url)
    assert oldest.backup_end_time > oldest.backup_start_time


def test_describe_backups_filters_and_pages(rds_client, rds_fleet):
    client = rds_client()

    def get(**kw):
        return client.describe_backups(m.DescribeBackupsRequest(**kw)).body

    window = get(dbinstance_id="rm-prod01", start_time="2024-01-01T12:00Z", end_time="2024-01-03T00:00Z")
    assert [b.backup_start_time for b in window.items.backup] == ["2024-01-02T00:00:00Z"]
    assert get(dbinstance_id="rm-prod01", backup_status="Failed").total_record_count == "0"
    assert get(dbinstance_id="rm-prod01", backup_mode="Manual").total_record_count == "0"
    one = get(dbinstance_id="rm-prod01").items.backup[0].backup_id
    assert [b.backup_id for b in get(dbinstance_id="rm-prod01", backup_id=one).items.backup] == [one]

    page1 = get(dbinstance_id="rm-test01")
    assert page1.total_record_count == "35" and page1.page_record_count == "30"
    page2 = get(dbinstance_id="rm-test01", page_number=2)
    assert page2.page_record_count == "5" and page2.page_number == "2"
    ids = [b.backup_id for b in page1.items.backup + page2.items.backup]
    assert len(set(ids)) == 35


@pytest.mark.parametrize("kwargs, code, status", [
    (dict(dbinstance_id="rm-nope"), "InvalidDBInstanceId.NotFound", 404),
    (dict(), "MissingDBInstanceId", 400),
    (dict(dbinstance_id="rm-prod01", page_size=20), "InvalidPageSize.Malformed", 400),
    (dict(dbinstance_id="rm-prod01", page_size=101), "InvalidPageSize.Malformed", 400),
    (dict(dbinstance_id="rm-prod01", page_number=0), "InvalidPageNumber.Malformed", 400),
    (dict(dbinstance_id="rm-prod01", start_time="2024-01-01"), "InvalidStartTime.Malformed", 400),
    (dict(dbinstance_id="rm-prod01", start_time="2024-01-02T00:00Z", end_time="2024-01-01T00:00Z"),
     "InvalidEndTime.Malformed", 400),
])
def test_describe_backups_errors(rds_client, rds_fleet, kwargs, code, status):
    err = api_error(lambda: rds_client().describe_backups(m.DescribeBackupsRequest(**kwargs)))
    assert (err.code, err.data["statusCode"]) == (code, status)


# -- CreateBackup -----------------------------------------------------------------------------
def test_create_backup_appears_after_simulated_time(emulator, rds_client, rds_fleet):
    client = rds_client()
    job = client.create_backup(m.CreateBackupRequest(dbinstance_id="rm-prod01", backup_method="Physical")).body
    assert job.backup_job_id and job.backup_job_id.isdigit()
    err = api_error(lambda: client.create_backup(m.CreateBackupRequest(dbinstance_id="rm-prod01")))
    assert err.code == "OperationDenied.BackupJobExists" and err.data["statusCode"] == 403
    # another instance may back up meanwhile
    assert client.create_backup(m.CreateBackupRequest(dbinstance_id="rm-test01")).body.backup_job_id

    assert client.describe_backups(m.DescribeBackupsRequest(dbinstance_id="rm-prod01",
                                                            backup_mode="Manual")).body.total_record_count == "0"
    emulator.admin.advance(60 + 3 * MiB / (50 * MiB) + 1)
    manual = client.describe_backups(m.DescribeBackupsRequest(dbinstance_id="rm-prod01", backup_mode="Manual")).body
    assert manual.total_record_count == "1"
    b = manual.items.backup[0]
    assert b.backup_status == "Success" and b.backup_size == 3 * MiB + 17 and b.backup_method == "Physical"
    # the job is over: a new backup may start
    assert client.create_backup(m.CreateBackupRequest(dbinstance_id="rm-prod01")).body.backup_job_id


def test_describe_backup_tasks_lists_running_jobs_and_finds_a_finished_one(emulator, rds_client, rds_fleet):
    client = rds_client()
    job_id = client.create_backup(m.CreateBackupRequest(dbinstance_id="rm-prod01")).body.backup_job_id
    emulator.admin.advance(30)
    jobs = client.describe_backup_tasks(m.DescribeBackupTasksRequest(dbinstance_id="rm-prod01")).body.items.backup_job
    assert [(j.backup_job_id, j.backup_status, j.job_mode, j.backup_id) for j in jobs] == [
        (job_id, "Uploading", "Manual", "")]
    assert 0 < int(jobs[0].process) < 100
    assert client.describe_backup_tasks(m.DescribeBackupTasksRequest(
        dbinstance_id="rm-prod01", backup_job_status="NoStart")).body.items.backup_job == []
    emulator.admin.advance(3600)
    assert client.describe_backup_tasks(m.DescribeBackupTasksRequest(
        dbinstance_id="rm-prod01")).body.items.backup_job == []                 # finished: not listed
    done = client.describe_backup_tasks(m.DescribeBackupTasksRequest(
        dbinstance_id="rm-prod01", backup_job_id=int(job_id))).body.items.backup_job
    assert done[0].backup_status == "Finished" and done[0].backup_id and done[0].process == "100"
    err = api_error(lambda: client.describe_backup_tasks(m.DescribeBackupTasksRequest(
        dbinstance_id="rm-prod01", backup_job_status="Running")))
    assert err.code == "InvalidBackupJobStatus.ValueNotSupport" and err.data["statusCode"] == 400


def test_create_backup_errors_and_injected_failure(emulator, rds_client, rds_fleet):
    client = rds_client()
    err = api_error(lambda: client.create_backup(m.CreateBackupRequest(dbinstance_id="rm-nope")))
    assert err.code == "InvalidDBInstanceId.NotFound" and err.data["statusCode"] == 404
    err = api_error(lambda: client.create_backup(m.CreateBackupRequest(dbinstance_id="rm-prod01",
                                                                       backup_method="Tape")))
    assert err.code == "InvalidBackupMethod.ValueNotSupport"
    err = api_error(lambda: client.create_backup(m.CreateBackupRequest()))
    assert err.code == "MissingDBInstanceId"

    emulator.admin.set_faults({"rds_backup_fail": {"rate": 1.0, "instance_ids": ["rm-bj01"]}})
    client.create_backup(m.CreateBackupRequest(dbinstance_id="rm-bj01"))
    emulator.admin.advance(3600)
    failed = client.describe_backups(m.DescribeBackupsRequest(dbinstance_id="rm-bj01", backup_status="Failed")).body
    assert failed.total_record_count == "1" and failed.items.backup[0].backup_download_url == ""


# -- downloads --------------------------------------------------------------------------------
def _backup(rds_client, instance="rm-prod01", index=-1):
    return rds_client().describe_backups(m.DescribeBackupsRequest(dbinstance_id=instance)).body.items.backup[index]


def _get(url, headers=None, method="GET"):
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_full_download_is_deterministic(rds_client, rds_fleet):
    b = _backup(rds_client, index=0)  # 3 MiB + 17 bytes: several chunks and a partial pattern block
    status, headers, data = _get(b.backup_download_url)
    assert status == 200 and len(data) == b.backup_size == int(headers["Content-Length"])
    assert headers["ETag"] and headers["Accept-Ranges"] == "bytes"
    status2, headers2, data2 = _get(b.backup_intranet_download_url)
    assert status2 == 200 and hashlib.sha256(data2).digest() == hashlib.sha256(data).digest()
    assert headers2["ETag"] == headers["ETag"]
    assert data == content_slice(b.backup_id, 0, b.backup_size)
    other = _backup(rds_client, index=1)
    assert _get(other.backup_download_url)[2][:4096] != data[:4096]  # the content depends on the backup id


def test_ranged_download(rds_client, rds_fleet):
    b = _backup(rds_client, index=0)
    size = b.backup_size
    full = _get(b.backup_download_url)[2]
    for rng, first, last in [("bytes=0-99", 0, 99), (f"bytes={size - 10}-", size - 10, size - 1),
                             ("bytes=-5", size - 5, size - 1), ("bytes=65530-65545", 65530, 65545),
                             (f"bytes=100-{size + 1000}", 100, size - 1)]:
        status, headers, data = _get(b.backup_download_url, {"Range": rng})
        assert status == 206, rng
        assert headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert int(headers["Content-Length"]) == last - first + 1 == len(data)
        assert data == full[first:last + 1]
    status, headers, _ = _get(b.backup_download_url, {"Range": f"bytes={size}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    status, _, data = _get(b.backup_download_url, {"Range": "bytes=junk"})  # invalid: ignored
    assert status == 200 and len(data) == size


def test_head_and_errors(emulator, rds_client, rds_fleet):
    b = _backup(rds_client)
    status, headers, data = _get(b.backup_download_url, method="HEAD")
    assert status == 200 and int(headers["Content-Length"]) == b.backup_size and data == b""
    base = b.backup_download_url.split("?")[0]
    assert _get(base.rsplit("/", 1)[0] + "/999?expires=99999999999")[0] == 404
    assert _get(base)[0] == 403  # no expires
    emulator.admin.advance(7201)
    status, _, body = _get(b.backup_download_url)
    assert status == 403 and json.loads(body)["Code"] == "AccessDenied"


def test_fleet_validation(emulator):
    with pytest.raises(RuntimeError, match="400"):
        emulator.admin.load_fleet({"rds_instances": [{"region": "mars-1"}]})
    with pytest.raises(RuntimeError, match="400"):
        emulator.admin.load_fleet({"rds_instances": [{"region": "cn-hangzhou", "engine": "Oracle"}]})
