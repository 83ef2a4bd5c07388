"""ArchiveRdsBackupsToOssOperator against the emulator: nothing missed, bounded streaming, verified, manifests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aliyun_ops.exceptions import TooManyItemFailures
from aliyun_ops.hooks.oss import MAX_PARTS, MIN_PART_SIZE, OssHook, part_size_for, read_into
from aliyun_ops.logic.report import PENDING, SKIPPED
from aliyun_ops.operators.rds import ArchiveRdsBackupsToOssOperator
from aliyun_ops.operators.rds_archive import classify_backups, existing_verdict

HZ = "cn-hangzhou"
DB = "rm-test0001"
BUCKET = "db-archive"
MIB = 1024 * 1024
SMALL, BIG = 300 * 1024, 3 * MIB + 17
WINDOW = {"start": "2024-01-01T00:00Z", "end": "2024-01-31T00:00Z"}


class FakeTI:
    dag_id, task_id, map_index, try_number = "rds_dag", "archive_backups", -1, 1

    def __init__(self):
        self.xcom = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value


def ctx(run_id="manual__1"):
    return {"ti": FakeTI(), "run_id": run_id}


def calls(emu, key):
    return emu.admin.calls()["counters"].get(key, {}).get("calls", 0)


def archive(**kwargs) -> ArchiveRdsBackupsToOssOperator:
    args = {"instance_ids": [DB], "region": HZ, "bucket": BUCKET, "part_size": MIB, **WINDOW, **kwargs}
    return ArchiveRdsBackupsToOssOperator(task_id="archive_backups", **args)


@pytest.fixture
def emu(aliyun_env):
    emu = aliyun_env()
    emu.admin.load_fleet({
        "rds_instances": [{"region": HZ, "id": DB, "engine": "MySQL", "backup_size": SMALL,
                           "backups": [{"size": SMALL, "start_time": "2024-01-01T01:00:00Z"},
                                       {"size": BIG, "start_time": "2024-01-02T01:00:00Z"},
                                       {"size": 1000, "start_time": "2024-01-03T01:00:00Z", "status": "Failed"}]}],
        "buckets": [{"name": BUCKET, "region": HZ}],
    })
    emu.admin.clear_calls()
    return emu


@pytest.fixture
def oss_hook(emu):
    return OssHook(region=HZ)


def manifest(hook, run_id="manual__1"):
    return hook.get_json(BUCKET, f"manifests/rds_dag/{run_id}.json")


def keys(hook, prefix="rds/"):
    return sorted(o["Key"] for o in hook.list_objects(BUCKET, prefix=prefix))


# -- validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"bucket": "Bad_Bucket"}, "bucket"),
    ({"key_template": "rds/{instance_id}.tar"}, "backup_id"),
    ({"key_template": "rds/{nope}/{backup_id}"}, "unknown fields"),
    ({"start": "2024-02-01", "end": "2024-01-01"}, "before start"),
    ({"start": "yesterday"}, "ISO"),
    ({"instance_ids": []}, "empty"),
    ({"part_size": 10}, "part_size"),
    ({"parallel_num": 0}, "parallel_num"),
    ({"storage_class": "Glacier"}, "storage_class"),
    ({"transition_days": 0}, "transition_days"),
    ({"transition_days": 30, "key_template": "{instance_id}/{backup_id}"}, "fixed prefix"),
    ({"manifest_key": "manifests/latest.json"}, "run_id"),
    ({"max_errors": "ten"}, "max_errors"),
])
def test_bad_input_is_refused_before_any_call(emu, kwargs, match):
    with pytest.raises(ValueError, match=match):
        archive(**kwargs).execute(ctx())
    assert emu.admin.calls()["counters"] == {}


def test_template_fields_exist():
    op = archive()
    assert all(hasattr(op, name) for name in op.template_fields)


# -- happy path, idempotency -------------------------------------------------------------------------
def test_archive_streams_verifies_and_writes_the_manifest(emu, oss_hook):
    c = ctx()
    out = archive(concurrency=2, storage_class="IA").execute(c)
    by_status = {r["backup_id"]: r["status"] for r in out}
    assert sorted(by_status.values()) == ["skipped", "success", "success"]     # the Failed backup: nothing to do
    failed_in_rds = next(r for r in out if r["status"] == SKIPPED)
    assert "failed in RDS" in failed_in_rds["reason"]
    archived = [r for r in out if r["status"] == "success"]
    for r in archived:
        head = oss_hook.head_object(BUCKET, r["key"])
        assert head["ContentLength"] == r["size"] and str(head["HashCrc64"]) == r["crc64"]
        assert head["StorageClass"] == "IA"
        meta = head["Metadata"]
        assert meta["rds-backup-id"] == r["backup_id"] and meta["rds-instance-id"] == DB
        assert meta["rds-backup-size"] == str(r["size"]) and meta["rds-backup-method"] == "Physical"
        assert meta["rds-backup-start"] == r["backup_start"] and meta["rds-backup-end"] == r["backup_end"]
        assert meta["archive-manifest"] == "manifests/rds_dag/manual__1.json"
    assert oss_hook.head_object(BUCKET, next(r["key"] for r in archived if r["size"] == BIG))["ETag"].endswith('-4"')
    doc = manifest(oss_hook)
    listed = {e["backup_id"]: e for e in doc["entries"] if e["status"] == "success"}
    assert set(listed) == {r["backup_id"] for r in archived}                   # exactly what was archived
    assert all(listed[r["backup_id"]]["crc64"] == r["crc64"] for r in archived)
    assert c["ti"].xcom["manifest"] == {"bucket": BUCKET, "key": "manifests/rds_dag/manual__1.json", "region": HZ}
    assert c["ti"].xcom["rows"] == out
    assert oss_hook.list_multipart_uploads(BUCKET) == []

    emu.admin.clear_calls()
    again = archive().execute(ctx("manual__2"))                                # a later run: nothing twice
    assert sorted(r["status"] for r in again) == ["skipped"] * 3
    assert all("already archived by manifests/rds_dag/manual__1.json" in r["reason"]
               for r in again if r["key"])
    for action in ("oss:PutObject", "oss:UploadPart", "oss:InitiateMultipartUpload"):
        assert calls(emu, action) == (1 if action == "oss:PutObject" else 0)  # only the new manifest
    assert calls(emu, "oss:GetObject") == 1                                     # manifest 1 read once
    third = archive().execute(ctx("manual__3"))                                 # vouched for by a chain of manifests
    assert all(r["status"] == SKIPPED for r in third)


def test_anything_not_vouched_for_is_replaced(emu, oss_hook, oss_client):
    import alibabacloud_oss_v2 as oss

    first = archive().execute(ctx())
    small, big = sorted((r for r in first if r["key"]), key=lambda r: r["size"])
    client = oss_client()
    client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=small["key"], body=b"truncated"))   # someone else's
    oss_hook.delete_object(BUCKET, "manifests/rds_dag/manual__1.json")                            # manifest lost
    out = {r["backup_id"]: r for r in archive().execute(ctx("manual__2"))}
    assert out[small["backup_id"]]["status"] == "success"
    assert "not this backup's archive" in out[small["backup_id"]]["reason"]
    assert out[big["backup_id"]]["status"] == "success" and "no manifest vouches" in out[big["backup_id"]]["reason"]
    assert oss_hook.head_object(BUCKET, small["key"])["ContentLength"] == SMALL


def test_an_upload_left_open_by_a_killed_try_is_aborted(emu, oss_hook, oss_client):
    import alibabacloud_oss_v2 as oss

    key = f"rds/{DB}/2024-01-02/3000000002.tar"
    oss_client().initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=BUCKET, key=key))
    assert len(oss_hook.list_multipart_uploads(BUCKET)) == 1
    archive().execute(ctx())
    assert oss_hook.list_multipart_uploads(BUCKET) == []
    assert calls(emu, "oss:AbortMultipartUpload") == 1


# -- nothing missed ------------------------------------------------------------------------------------
def test_a_backup_still_running_is_pending_then_archived_by_the_next_run(emu, oss_hook, rds_client):
    from alibabacloud_rds20140815 import models

    now = datetime.fromtimestamp(emu.admin.clock()["now"], UTC)
    rds_client().create_backup(models.CreateBackupRequest(dbinstance_id=DB, backup_method="Physical"))
    window = {"start": (now - timedelta(days=1)).isoformat(), "end": (now + timedelta(seconds=5)).isoformat()}
    first = archive(**window).execute(ctx())
    assert [r["status"] for r in first] == [PENDING] and "still running" in first[0]["reason"]
    assert manifest(oss_hook)["entries"][0]["status"] == PENDING
    emu.admin.advance(3600)                                   # the backup ends after the first run's window
    same_window = archive(**window).execute(ctx("manual__1b"))
    assert [r["status"] for r in same_window] == [PENDING]   # a run's choice does not depend on when it ran
    assert "after this run's window" in same_window[0]["reason"]
    later = {"start": window["start"], "end": (now + timedelta(days=1)).isoformat()}
    second = archive(**later).execute(ctx("manual__2"))
    assert [r["status"] for r in second] == ["success"]
    assert keys(oss_hook) == [second[0]["key"]]


# -- faults ---------------------------------------------------------------------------------------------
def test_a_corrupted_part_fails_that_backup_only_and_leaves_nothing_open(emu, oss_hook):
    """Every UploadPart corrupted: the multipart backup fails (the SDK's retries see the same corruption), the small
    one (a single PutObject) is archived, no object or open upload is left, the manifest says what happened."""
    emu.admin.set_faults({"rules": [{"action": "oss:UploadPart", "kind": "corrupt", "rate": 1.0}]})
    c = ctx()
    with pytest.raises(TooManyItemFailures, match="1 of 2 backups failed") as err:
        archive(concurrency=2).execute(c)
    assert "CRC" in str(err.value) or "crc" in str(err.value).lower()
    rows = {r["size"]: r for r in c["ti"].xcom["rows"] if r["key"]}
    assert rows[SMALL]["status"] == "success" and rows[BIG]["status"] == "failed"
    assert keys(oss_hook) == [rows[SMALL]["key"]]
    assert oss_hook.list_multipart_uploads(BUCKET) == []
    entries = {e["backup_id"]: e["status"] for e in manifest(oss_hook)["entries"]}
    assert entries[rows[BIG]["backup_id"]] == "failed" and entries[rows[SMALL]["backup_id"]] == "success"


def test_a_corruption_healed_by_a_retry_is_archived_intact(emu, oss_hook):
    emu.admin.set_faults({"rules": [{"action": "oss:UploadPart", "kind": "corrupt", "count": 1}]})
    out = archive().execute(ctx())
    assert sorted(r["status"] for r in out) == ["skipped", "success", "success"]
    big = next(r for r in out if r["size"] == BIG)
    assert str(oss_hook.head_object(BUCKET, big["key"])["HashCrc64"]) == big["crc64"]


def test_a_failed_part_stops_the_download_and_aborts_the_upload(emu, oss_hook):
    emu.admin.set_faults({"rules": [{"action": "oss:UploadPart", "kind": "error", "status": 403,
                                     "code": "AccessDenied", "count": 1}]})
    c = ctx()
    with pytest.raises(TooManyItemFailures, match="AccessDenied"):
        archive(parallel_num=1, max_errors=0).execute(c)
    assert calls(emu, "oss:UploadPart") <= 2          # of 4 parts: the rest of the source was never read
    assert calls(emu, "oss:AbortMultipartUpload") == 1
    assert oss_hook.list_multipart_uploads(BUCKET) == []


def test_throttling_5xx_and_lost_answers_change_nothing(emu, oss_hook):
    emu.admin.set_faults({"rules": [
        {"action": "rds:DescribeBackups", "kind": "throttle", "count": 2, "retry_after_ms": 10},
        {"action": "rds:DescribeBackupTasks", "kind": "error", "status": 503, "count": 1},
        {"action": "oss:UploadPart", "kind": "error", "status": 503, "count": 2},
        {"action": "oss:HeadObject", "kind": "drop", "count": 1},
        {"action": "oss:CompleteMultipartUpload", "kind": "drop_after", "count": 1}]})
    out = archive().execute(ctx())
    assert sorted(r["status"] for r in out) == ["skipped", "success", "success"]
    for r in out:
        if r["status"] == "success":
            assert str(oss_hook.head_object(BUCKET, r["key"])["HashCrc64"]) == r["crc64"]
    assert oss_hook.list_multipart_uploads(BUCKET) == []


def test_per_backup_failures_respect_max_errors_and_the_manifest_is_still_written(emu, oss_hook):
    emu.admin.set_faults({"rules": [
        {"action": "oss:PutObject", "kind": "error", "status": 403, "code": "AccessDenied", "count": 1},
        {"action": "oss:InitiateMultipartUpload", "kind": "error", "status": 403, "code": "AccessDenied", "count": 1}]})
    out = archive(max_errors="100%").execute(ctx())
    assert sorted(r["status"] for r in out) == ["failed", "failed", "skipped"]
    assert {e["status"] for e in manifest(oss_hook)["entries"]} == {"failed", "skipped"}
    assert keys(oss_hook) == []


# -- storage class, lifecycle -------------------------------------------------------------------------
def test_lifecycle_rule_is_installed_once_and_other_rules_are_kept(emu, oss_hook, oss_client):
    import alibabacloud_oss_v2 as oss

    client = oss_client()
    client.put_bucket_lifecycle(oss.PutBucketLifecycleRequest(
        bucket=BUCKET, lifecycle_configuration=oss.LifecycleConfiguration(rules=[oss.LifecycleRule(
            id="logs-expire", prefix="logs/", status="Enabled", expiration=oss.LifecycleRuleExpiration(days=30))])))
    archive(transition_days=30, transition_storage_class="ColdArchive").execute(ctx())
    archive(transition_days=30, transition_storage_class="ColdArchive").execute(ctx("manual__2"))
    assert calls(emu, "oss:PutBucketLifecycle") == 2                    # the user's, then ours once
    rules = {r.id: r for r in client.get_bucket_lifecycle(
        oss.GetBucketLifecycleRequest(bucket=BUCKET)).lifecycle_configuration.rules}
    assert set(rules) == {"logs-expire", "aliyun-ops-rds"}
    mine = rules["aliyun-ops-rds"]
    assert mine.prefix == "rds/" and mine.transitions[0].days == 30
    assert str(mine.transitions[0].storage_class) == "ColdArchive"


# -- pure logic ------------------------------------------------------------------------------------------
END = datetime(2024, 1, 10, tzinfo=UTC)
backups = st.lists(st.fixed_dictionaries({
    "BackupId": st.integers(1, 30).map(str),
    "BackupStatus": st.sampled_from(["Success", "Failed", "Running"]),
    "BackupEndTime": st.one_of(st.none(), st.integers(-5, 5).map(
        lambda d: (END + timedelta(hours=d)).strftime("%Y-%m-%dT%H:%M:%SZ"))),
}), max_size=25)
jobs = st.lists(st.fixed_dictionaries({"BackupJobId": st.integers(1, 9).map(str), "BackupStatus": st.just("Uploading"),
                                       "BackupId": st.just("")}), max_size=3)


@given(backups, jobs)
def test_classify_every_backup_once_and_only_finished_successes(found, running):
    todo, rows = classify_backups(found, running, END)
    ids = [b["BackupId"] for b in todo] + [r.backup_id for r in rows if r.backup_id]
    assert sorted(ids) == sorted({b["BackupId"] for b in found})            # each once, none lost
    first = {}
    for b in found:
        first.setdefault(b["BackupId"], b)
    for b in todo:
        assert first[b["BackupId"]] is not None and b["BackupStatus"] == "Success"
        assert datetime.fromisoformat(b["BackupEndTime"].replace("Z", "+00:00")) <= END
    assert sum(1 for r in rows if not r.backup_id) == len(running)           # every running job reported
    assert all(r.status == PENDING for r in rows if not r.backup_id)


@given(st.integers(0, 10), st.integers(0, 10), st.sampled_from(["1", "2"]), st.one_of(st.none(), st.just("7"),
                                                                                   st.just("8")))
def test_skip_only_when_id_size_and_crc_match(size, expected, backup_id, manifest_crc):
    head = {"ContentLength": size, "HashCrc64": "7", "Metadata": {"Rds-Backup-Id": "1"}}
    entry = None if manifest_crc is None else {"crc64": manifest_crc, "size": size}
    done, why = existing_verdict(head, {"BackupId": backup_id, "BackupSize": expected}, entry)
    assert done == (backup_id == "1" and size == expected and manifest_crc == "7")
    assert why


def test_manifest_is_json_with_window(emu, oss_hook):
    archive().execute(ctx())
    doc = manifest(oss_hook)
    assert doc["bucket"] == BUCKET and doc["window"]["start"].startswith("2024-01-01")
    json.dumps(doc)


# -- bounded memory -------------------------------------------------------------------------------------
@given(st.integers(0, 200 * 1024**3), st.integers(100 * 1024, 256 * MIB), st.integers(1, 16))
def test_part_size_keeps_the_parts_in_the_budget_unless_10000_parts_forbid(size, budget, buffers):
    part, needed, share = part_size_for(size, budget, buffers), -(-size // MAX_PARTS), budget // buffers
    assert part >= MIN_PART_SIZE and part * MAX_PARTS >= size    # OSS's limits
    assert part <= max(8 * MIB, needed + 64 * 1024)               # 8 MiB at most, unless 10,000 parts need more
    if share >= max(MIN_PART_SIZE, needed + 64 * 1024):
        assert part * buffers <= budget                           # the budget holds whenever it can


def test_parts_are_sized_from_the_memory_budget_and_the_streams():
    op = archive(part_size=None)
    assert (op._parallel_num(1), op._parallel_num(4)) == (2, 1)          # alone: download and upload overlap
    assert op._part_size(5 * 1024**3, 4, 1) == 6 * MIB                    # 4 streams x 6 MiB = the 24 MiB budget
    assert op._part_size(5 * 1024**3, 1, 2) == 8 * MIB                    # never above the old 8 MiB default
    assert op._part_size(100 * 1024**3, 4, 1) * 10_000 >= 100 * 1024**3   # over budget rather than > 10,000 parts
    assert archive(part_size=MIB)._part_size(5 * 1024**3, 4, 1) == MIB


class Trickle:
    """A source that answers at most ``step`` bytes per call, with or without ``readinto``."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.pos = data, step, 0

    def read(self, n: int = -1) -> bytes:
        chunk = self.data[self.pos:self.pos + min(n, self.step)]
        self.pos += len(chunk)
        return chunk


class TrickleInto(Trickle):
    def readinto(self, buffer: memoryview) -> int:
        chunk = self.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("source", [Trickle, TrickleInto])
def test_a_part_is_filled_from_a_source_that_answers_in_pieces(source):
    data = bytes(range(256)) * 40
    stream, buffer = source(data, 7), bytearray(4096)
    assert read_into(stream, buffer) == 4096 and bytes(buffer) == data[:4096]
    assert read_into(stream, buffer) == 4096 and bytes(buffer) == data[4096:8192]
    assert read_into(stream, buffer) == len(data) - 8192 and bytes(buffer[:len(data) - 8192]) == data[8192:]
    assert read_into(stream, buffer) == 0
