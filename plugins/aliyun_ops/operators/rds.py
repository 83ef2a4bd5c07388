"""RDS operators: create a backup and wait for it; archive backup sets to OSS (streamed, verified, idempotent)."""

from __future__ import annotations

import io
import string
import time
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aliyun_ops.batch import run_batch
from aliyun_ops.exceptions import AliyunApiError, TooManyItemFailures
from aliyun_ops.hooks.oss import OssHook
from aliyun_ops.hooks.rds import RdsHook
from aliyun_ops.logic.budget import check_concurrency, resolve_count
from aliyun_ops.logic.ids import check as check_id
from aliyun_ops.operators.base import AliyunBaseOperator

BACKUP_METHODS = ("Physical", "Logical", "Snapshot")
KEY_FIELDS = frozenset({"instance_id", "backup_id", "date", "datetime", "region", "method", "mode", "type"})
DEFAULT_KEY_TEMPLATE = "rds/{instance_id}/{date}/{backup_id}.tar"


def _as_datetime(value: Any, name: str) -> datetime | None:
    """datetime, ISO string (``2024-01-01T00:00Z``, ``2024-01-01``) or None -> aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not an ISO date/time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"{name} must be a datetime or an ISO string, got {type(value).__name__}")


def _parse_api_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def backup_summary(b: Mapping[str, Any]) -> dict:
    """The small JSON-safe view of a DescribeBackups record."""
    return {"backup_id": str(b.get("BackupId")), "instance_id": b.get("DBInstanceId"),
            "status": b.get("BackupStatus"), "size": int(b.get("BackupSize") or 0),
            "method": b.get("BackupMethod"), "mode": b.get("BackupMode"),
            "start_time": b.get("BackupStartTime"), "end_time": b.get("BackupEndTime")}


class CreateRdsBackupOperator(AliyunBaseOperator):
    """Start a manual RDS backup (CreateBackup) and wait until the backup set exists.

    Idempotent within a DAG run: the job and the backups that existed before it are kept in the task
    state store, and without it a Manual backup of the instance started since the DAG run began is
    reused (success) or waited for (still running: ``OperationDenied.BackupJobExists``) instead of
    starting a second one. The wait polls ``DescribeBackups`` in the worker every ``poll_interval``
    (a backup takes minutes; this operator is not deferrable).

    Returns ``{"backup_id", "instance_id", "status", "size", "method", "mode", "start_time", "end_time",
    "job_id", "reused"}``.

    Example::

        CreateRdsBackupOperator(task_id="backup_db", instance_id="rm-bp1abc", region="cn-hangzhou",
                                backup_method="Physical", wait_timeout=3600)
    """

    template_fields = ("aliyun_conn_id", "region", "instance_id", "backup_method")
    hook_class = RdsHook

    def __init__(self, *, instance_id: str, backup_method: str = "Physical", backup_type: str | None = None,
                 backup_strategy: str | None = None, db_name: str | None = None, wait_for_completion: bool = True,
                 poll_interval: float = 30.0, wait_timeout: float = 7200.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instance_id = instance_id
        self.backup_method = backup_method
        self.backup_type = backup_type
        self.backup_strategy = backup_strategy
        self.db_name = db_name
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout

    def validate(self) -> None:
        check_id("rds_instance", self.instance_id, "DB instance id")
        if self.backup_method not in BACKUP_METHODS:
            raise ValueError(f"backup_method must be one of {list(BACKUP_METHODS)}, got {self.backup_method!r}")
        if self.backup_type not in (None, "Auto", "FullBackup", "IncrementalBackup"):
            raise ValueError(f"backup_type {self.backup_type!r} is not Auto, FullBackup or IncrementalBackup")
        if self.backup_strategy not in (None, "db", "instance"):
            raise ValueError("backup_strategy must be 'db' or 'instance'")
        if self.backup_strategy == "db" and not self.db_name:
            raise ValueError("backup_strategy='db' needs db_name")
        if not isinstance(self.poll_interval, (int, float)) or self.poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        if not isinstance(self.wait_timeout, (int, float)) or self.wait_timeout <= 0:
            raise ValueError("wait_timeout must be positive")

    @staticmethod
    def _run_start(context: Any) -> datetime:
        dag_run = context.get("dag_run") if hasattr(context, "get") else None
        start = getattr(dag_run, "start_date", None) if dag_run is not None else None
        if isinstance(start, datetime):
            return start if start.tzinfo else start.replace(tzinfo=UTC)
        return datetime.now(UTC)

    def _manual(self, since: datetime) -> list[dict]:
        # DescribeBackups has minute precision: look one minute back, then compare exactly
        return self.hook.describe_backups(self.instance_id, start=since - timedelta(minutes=1),
                                          backup_mode="Manual", region=self.region)

    def execute(self, context: Any) -> dict:
        self.validate()
        state = self.recall(context, "rds_backup") or {}
        reused = bool(state)
        if not state:
            since = self._run_start(context)
            earlier = [b for b in self._manual(since)
                       if (_parse_api_time(b.get("BackupStartTime")) or since) >= since - timedelta(minutes=1)]
            done = [b for b in earlier if b.get("BackupStatus") == "Success"]
            if done:
                self.log.info("reusing backup %s started earlier in this run", done[0]["BackupId"])
                return {**backup_summary(done[0]), "job_id": None, "reused": True}
            known = [str(b.get("BackupId")) for b in earlier]
            started = datetime.now(UTC) if not earlier else since
            try:
                job_id = self.hook.create_backup(self.instance_id, region=self.region,
                                                 backup_method=self.backup_method, backup_type=self.backup_type,
                                                 backup_strategy=self.backup_strategy, db_name=self.db_name)
                self.log.info("CreateBackup %s: job %s", self.instance_id, job_id)
            except AliyunApiError as err:
                if err.code != "OperationDenied.BackupJobExists":
                    raise
                self.log.info("a backup job is already running on %s (an earlier try?): waiting for it",
                              self.instance_id)
                job_id, reused, started = None, True, since
            state = {"job_id": job_id, "since": started.isoformat(), "known": known}
            self.remember(context, "rds_backup", state)
        if not self.wait_for_completion:
            return {"backup_id": None, "instance_id": self.instance_id, "status": "Running", "job_id":
                    state["job_id"], "reused": reused}
        backup = self._wait(datetime.fromisoformat(state["since"]), set(state["known"]))
        if backup.get("BackupStatus") != "Success":
            raise RuntimeError(f"backup {backup.get('BackupId')} of {self.instance_id} ended "
                               f"{backup.get('BackupStatus')}")
        return {**backup_summary(backup), "job_id": state["job_id"], "reused": reused}

    def _wait(self, since: datetime, known: set[str]) -> dict:
        deadline = time.time() + float(self.wait_timeout)
        while True:
            fresh = [b for b in self._manual(since) if str(b.get("BackupId")) not in known]
            if fresh:
                fresh.sort(key=lambda b: b.get("BackupStartTime") or "")
                return fresh[-1]
            if time.time() >= deadline:
                raise TimeoutError(f"no new backup of {self.instance_id} after {self.wait_timeout}s")
            self.log.info("waiting for the backup of %s", self.instance_id)
            time.sleep(float(self.poll_interval))


class _CrcReader(io.RawIOBase):
    """A read-only stream that computes CRC-64/ECMA (OSS's ``x-oss-hash-crc64ecma``) and counts bytes."""

    def __init__(self, raw: Any) -> None:
        from alibabacloud_oss_v2.crc import Crc64

        self._raw = raw
        self.crc = Crc64(0)
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read() if size is None or size < 0 else self._raw.read(size)
        if data:
            self.crc.update(data)
            self.size += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class ArchiveRdsBackupsToOssOperator(AliyunBaseOperator):
    """Copy RDS backup sets of a time window into OSS: streamed, verified, and skipped when already there.

    For every instance, ``DescribeBackups`` lists the backups started in ``[start, end]`` with
    ``backup_status`` (default ``Success``); each backup's download URL is streamed (constant memory)
    through the OSS v2 uploader (multipart above ``part_size``) to ``bucket`` under ``key_template``
    (fields: instance_id, backup_id, date, datetime, region, method, mode, type; default
    ``rds/{instance_id}/{date}/{backup_id}.tar``). An object that already exists with the backup's size
    is ``skipped`` (a re-run uploads nothing). After an upload the object's size must equal
    ``BackupSize`` and its CRC-64 must equal the CRC computed while streaming; otherwise the object is
    deleted and the backup fails. ``concurrency``/``max_errors`` as in OOS.

    Returns one entry per backup: ``{"instance_id", "backup_id", "key", "status", "reason", "size",
    "crc64"}`` (``status``: success/failed/skipped).

    Example::

        ArchiveRdsBackupsToOssOperator(task_id="archive", instance_ids=["rm-bp1abc"], region="cn-hangzhou",
                                       bucket="db-archive", start="{{ data_interval_start }}",
                                       end="{{ data_interval_end }}", concurrency=2)
    """

    template_fields = ("aliyun_conn_id", "region", "instance_ids", "bucket", "start", "end", "key_template",
                       "oss_region", "concurrency", "max_errors")
    hook_class = RdsHook

    def __init__(self, *, instance_ids: Sequence[str] | str, bucket: str, start: Any = None, end: Any = None,
                 key_template: str = DEFAULT_KEY_TEMPLATE, backup_status: str | None = "Success",
                 oss_region: str | None = None, part_size: int | None = None, parallel_num: int | None = None,
                 concurrency: int | str = 2, max_errors: int | str = 0, download_timeout: float = 60.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instance_ids = instance_ids
        self.bucket = bucket
        self.start = start
        self.end = end
        self.key_template = key_template
        self.backup_status = backup_status
        self.oss_region = oss_region
        self.part_size = part_size
        self.parallel_num = parallel_num
        self.concurrency = concurrency
        self.max_errors = max_errors
        self.download_timeout = download_timeout

    def validate(self) -> tuple[list[str], datetime | None, datetime | None]:
        ids = self.instance_ids
        if isinstance(ids, str):
            ids = [s.strip() for s in ids.split(",") if s.strip()]
        ids = [check_id("rds_instance", i, "DB instance id") for i in (ids or [])]
        if not ids:
            raise ValueError("instance_ids is empty")
        check_id("oss_bucket", self.bucket, "bucket")
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(self.key_template) if name is not None}
        except (ValueError, TypeError):
            raise ValueError(f"key_template {self.key_template!r} is malformed") from None
        if fields - KEY_FIELDS:
            raise ValueError(f"key_template uses unknown fields {sorted(fields - KEY_FIELDS)}; "
                             f"allowed: {sorted(KEY_FIELDS)}")
        if "backup_id" not in fields:
            raise ValueError("key_template must contain {backup_id} (one object per backup)")
        start, end = _as_datetime(self.start, "start"), _as_datetime(self.end, "end")
        if start and end and end < start:
            raise ValueError("end is before start")
        if self.part_size is not None and not (100 * 1024 <= int(self.part_size) <= 5 * 1024**3):
            raise ValueError("part_size must be 100 KiB - 5 GiB")
        check_concurrency(self.concurrency)
        resolve_count(self.max_errors, 100, name="max_errors")
        return ids, start, end

    def object_key(self, backup: Mapping[str, Any], region: str) -> str:
        started = _parse_api_time(backup.get("BackupStartTime")) or datetime.now(UTC)
        values = {"instance_id": backup.get("DBInstanceId", ""), "backup_id": str(backup.get("BackupId")),
                  "date": started.strftime("%Y-%m-%d"), "datetime": started.strftime("%Y%m%dT%H%M%SZ"),
                  "region": region, "method": backup.get("BackupMethod", ""), "mode": backup.get("BackupMode", ""),
                  "type": backup.get("BackupType", "")}
        return self.key_template.format(**values).lstrip("/")

    def execute(self, context: Any) -> list[dict]:
        ids, start, end = self.validate()
        region = self.resolve_region()
        oss_region = self.oss_region or OssHook(aliyun_conn_id=self.aliyun_conn_id).bucket_region(self.bucket)
        oss = OssHook(aliyun_conn_id=self.aliyun_conn_id, region=oss_region)
        backups: list[dict] = []
        for instance_id in ids:
            found = self.hook.describe_backups(instance_id, start=start, end=end, status=self.backup_status,
                                               region=region)
            self.log.info("%s: %d backup(s) in the window", instance_id, len(found))
            backups.extend(found)
        items = [{"backup": b, "key": self.object_key(b, region)} for b in backups]

        def already_there(item: dict) -> str | None:
            head = oss.head_object(self.bucket, item["key"])
            if head is not None and int(head.get("ContentLength") or -1) == int(item["backup"].get("BackupSize") or 0):
                return "already archived (same size)"
            return None

        batch = run_batch(items, lambda item: self._archive(oss, item), key=lambda i: str(i["backup"]["BackupId"]),
                          concurrency=self.concurrency, max_errors=self.max_errors, skip=already_there)
        results = []
        for item, res in zip(items, batch, strict=True):
            b = item["backup"]
            value = res.value or {}
            results.append({"instance_id": b.get("DBInstanceId"), "backup_id": str(b.get("BackupId")),
                            "key": item["key"], "status": res.status, "reason": res.error or "",
                            "size": int(b.get("BackupSize") or 0), "crc64": value.get("crc64")})
        counts = {s: sum(1 for r in results if r["status"] == s) for s in ("success", "skipped", "failed")}
        self.log.info("archived to oss://%s: %s", self.bucket, counts)
        for r in results:
            self.log.info("  %s %s -> %s: %s %s", r["instance_id"], r["backup_id"], r["key"], r["status"], r["reason"])
        failed = counts["failed"]
        if failed > resolve_count(self.max_errors, len(results), name="max_errors"):
            raise TooManyItemFailures(f"{failed} of {len(results)} backups failed to archive (max_errors="
                               f"{self.max_errors!r}): " + "; ".join(f"{r['backup_id']}: {r['reason']}"
                                                                     for r in results if r["status"] == "failed"))
        return results

    def _archive(self, oss: OssHook, item: dict) -> dict:
        backup, key = item["backup"], item["key"]
        url = backup.get("BackupDownloadURL")
        if not url:
            raise RuntimeError("the backup has no download URL")
        expected = int(backup.get("BackupSize") or 0)
        with urllib.request.urlopen(url, timeout=float(self.download_timeout)) as response:  # noqa: S310
            length = response.headers.get("Content-Length")
            if length is not None and expected and int(length) != expected:
                raise RuntimeError(f"download is {length} bytes, DescribeBackups says {expected}")
            reader = _CrcReader(response)
            oss.put_object_from_stream(self.bucket, key, reader, part_size=self.part_size,
                                       parallel_num=self.parallel_num,
                                       metadata={"rds-instance": str(backup.get("DBInstanceId")),
                                                 "rds-backup-id": str(backup.get("BackupId"))})
        crc = str(reader.crc.sum64())
        head = oss.head_object(self.bucket, key) or {}
        size = int(head.get("ContentLength") or -1)
        problems = []
        if size != reader.size or (expected and size != expected):
            problems.append(f"size {size} != streamed {reader.size} / expected {expected}")
        if head.get("HashCrc64") and str(head["HashCrc64"]) != crc:
            problems.append(f"CRC-64 {head['HashCrc64']} != streamed {crc}")
        if problems:
            try:
                oss.delete_object(self.bucket, key)
            except AliyunApiError as err:
                self.log.error("could not delete the bad object oss://%s/%s: %s", self.bucket, key, err)
            raise RuntimeError(f"verification failed for oss://{self.bucket}/{key}: {'; '.join(problems)}")
        self.log.info("oss://%s/%s: %d bytes, crc64 %s", self.bucket, key, size, crc)
        return {"size": size, "crc64": crc}


__all__ = ["ArchiveRdsBackupsToOssOperator", "CreateRdsBackupOperator"]
