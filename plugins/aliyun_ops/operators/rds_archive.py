"""Archive RDS backup sets to OSS: nothing missed, bounded memory, verified end to end, one manifest per run.

What is archived is decided by what is already there, not by a fixed window: every ``Success`` backup of the
window that is not archived yet. An object counts as archived only when its size equals the backup's and its
CRC-64 (``x-oss-hash-crc64ecma``) equals the CRC-64 the manifest of the run that wrote it recorded while
streaming (the object's ``archive-manifest`` metadata names that manifest).
"""

from __future__ import annotations

import string
import threading
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from aliyun_ops.actions.pool import run_batch
from aliyun_ops.exceptions import AliyunApiError, ItemSkipped
from aliyun_ops.hooks.oss import MAX_PART_SIZE, MIB, MIN_PART_SIZE, STORAGE_CLASSES, OssHook, part_size_for
from aliyun_ops.hooks.rds import RdsHook, parse_rds_time
from aliyun_ops.logic import statuses as st
from aliyun_ops.logic.budget import check_concurrency, resolve_concurrency, resolve_count
from aliyun_ops.logic.ids import check as check_id
from aliyun_ops.logic.report import PENDING, SKIPPED, SUCCESS, ArchiveRow
from aliyun_ops.operators.base import AliyunItemsOperator, aliyun_template_fields

KEY_FIELDS = frozenset({"instance_id", "backup_id", "date", "datetime", "region", "method", "mode", "type"})
DEFAULT_KEY_TEMPLATE = "rds/{instance_id}/{date}/{backup_id}.tar"
DEFAULT_MANIFEST_KEY = "manifests/{dag_id}/{run_id}.json"
MANIFEST_FIELDS = frozenset({"dag_id", "run_id"})
META_MANIFEST = "archive-manifest"
# part buffers of all streams together: with Airflow, the SDKs and the operator imported a worker holds 155-158
# MiB before the first byte, so 24 MiB keeps one at concurrency 4 under 200 MB (bench/README.md)
DEFAULT_MEMORY_BUDGET = 24 * MIB


def as_datetime(value: Any, name: str) -> datetime | None:
    """datetime, ISO string (``2024-01-01T00:00Z``, ``2024-01-01``) or None -> aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name}={value!r} is not an ISO date/time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"{name} must be a datetime or an ISO string, got {type(value).__name__}")


def row_of(backup: Mapping[str, Any], **fields: Any) -> ArchiveRow:
    """The report row of a DescribeBackups record."""
    return ArchiveRow(instance_id=str(backup.get("DBInstanceId", "")), backup_id=str(backup.get("BackupId", "")),
                      size=int(backup.get("BackupSize") or 0), method=str(backup.get("BackupMethod") or ""),
                      backup_start=str(backup.get("BackupStartTime") or ""),
                      backup_end=str(backup.get("BackupEndTime") or ""), **fields)


def classify_backups(backups: Iterable[Mapping[str, Any]], jobs: Iterable[Mapping[str, Any]],
                     end: datetime | None) -> tuple[list[dict], list[ArchiveRow]]:
    """Split a window's backups into those to archive now and report rows for the rest.

    ``Success`` backups that ended by ``end`` are archived; one that ended after it, or a job still running
    (DescribeBackupTasks), is ``pending`` (a later run archives it: a run's choice does not depend on when it
    ran); a ``Failed`` backup has nothing to archive (``skipped``). A backup listed twice counts once.

    >>> todo, rows = classify_backups([{"BackupId": "1", "BackupStatus": "Failed"}], [], None)
    >>> (todo, rows[0].status)
    ([], 'skipped')
    """
    todo: list[dict] = []
    rows: list[ArchiveRow] = []
    seen: set[str] = set()
    for b in backups:
        backup_id = str(b.get("BackupId"))
        if backup_id in seen:
            continue
        seen.add(backup_id)
        status = b.get("BackupStatus")
        ended = parse_rds_time(b.get("BackupEndTime"))
        if status == st.BACKUP_SUCCESS and (end is None or (ended is not None and ended <= end)):
            todo.append(dict(b))
        elif status == st.BACKUP_SUCCESS:
            rows.append(row_of(b, status=PENDING, reason=f"finished {b.get('BackupEndTime') or '(no end time)'}, "
                                                         f"after this run's window: the next run archives it"))
        elif status == st.BACKUP_FAILED:
            rows.append(row_of(b, status=SKIPPED, reason="the backup failed in RDS: nothing to archive"))
        else:
            rows.append(row_of(b, status=PENDING, reason=f"backup status {status}: the next run archives it"))
    for job in jobs:
        if job.get("BackupId") and str(job["BackupId"]) in seen:
            continue
        rows.append(ArchiveRow(instance_id=str(job.get("DBInstanceId", "")), status=PENDING,
                               reason=f"backup job {job.get('BackupJobId')} still running "
                                      f"({job.get('BackupStatus')}, {job.get('Process') or 0}%): the next run "
                                      f"archives it"))
    return todo, rows


def existing_verdict(head: Mapping[str, Any], backup: Mapping[str, Any],
                     entry: Mapping[str, Any] | None) -> tuple[bool, str]:
    """``(already archived, why)`` for an object found at a backup's key and its manifest entry (or None).

    >>> existing_verdict({"ContentLength": 5, "HashCrc64": "7", "Metadata": {"rds-backup-id": "1"}},
    ...                  {"BackupId": "1", "BackupSize": 5}, {"crc64": "7", "size": 5})
    (True, 'size and CRC-64 match the manifest')
    """
    size, expected = int(head.get("ContentLength") or 0), int(backup.get("BackupSize") or 0)
    meta = {str(k).lower(): v for k, v in (head.get("Metadata") or {}).items()}
    if str(meta.get("rds-backup-id", "")) != str(backup.get("BackupId")):
        return False, "replacing an object that is not this backup's archive (no matching rds-backup-id)"
    if size != expected:
        return False, f"replacing an incomplete object ({size} of {expected} bytes)"
    if entry is None:
        return False, (f"replacing an object no manifest vouches for ({meta.get(META_MANIFEST) or 'none named'} "
                       "is missing or does not list it)")
    if str(entry.get("crc64")) != str(head.get("HashCrc64")) or str(entry.get("size")) != str(size):
        return False, f"replacing an object whose CRC-64 {head.get('HashCrc64')} is not the archived {entry.get('crc64')}"
    return True, "size and CRC-64 match the manifest"


class ManifestReader:
    """Earlier runs' manifests, each read once (thread safe): ``reader.entry(key, backup_id)``."""

    def __init__(self, oss: OssHook, bucket: str) -> None:
        self.oss, self.bucket = oss, bucket
        self._cache: dict[str, dict[str, dict]] = {}
        self._lock = threading.Lock()

    def entry(self, manifest_key: str | None, backup_id: str) -> dict | None:
        if not manifest_key:
            return None
        with self._lock:
            if manifest_key not in self._cache:
                doc = self.oss.get_json(self.bucket, manifest_key) or {}
                self._cache[manifest_key] = {str(e.get("backup_id")): e for e in doc.get("entries") or []
                                             if e.get("crc64") and e.get("status") in (SUCCESS, SKIPPED)}
            return self._cache[manifest_key].get(str(backup_id))


class ArchiveRdsBackupsToOssOperator(AliyunItemsOperator):
    """Copy RDS backup sets into OSS: every backup of the window not archived yet, streamed and verified.

    For every instance, ``DescribeBackups`` lists the backups started in ``[start, end]`` and
    ``DescribeBackupTasks`` the jobs still running. ``Success`` backups that ended by ``end`` are archived under
    ``key_template`` (fields: instance_id, backup_id, date, datetime, region, method, mode, type); backups not
    finished by ``end`` are reported ``pending`` and archived by a later run (give ``start`` a few days before
    ``end``: the DAG looks back 7 days). What is already archived (same size, and the CRC-64 recorded in the
    manifest of the run that wrote it) is ``skipped``; anything else at the key is replaced.

    Each backup is streamed from its download URL straight into a multipart upload holding at most
    ``parallel_num`` parts of ``part_size`` bytes (memory: ``concurrency x parallel_num x part_size``), read
    straight into reused buffers. Without ``parallel_num``, a backup streamed alone has 2 parts in flight (its
    download and upload overlap) and backups streamed side by side have 1 each (they overlap each other). Without
    ``part_size``, it is derived from ``memory_budget`` (all streams' parts together, 24 MiB: 6 MiB parts at
    ``concurrency=4``, at most 8 MiB), but never so small that a backup would need more than 10,000 parts (a
    backup over ~60 GiB at ``concurrency=4`` then takes more memory, logged). The CRC-64 computed while
    streaming must match OSS's for every part and for the object; on any failure the download stops, the upload
    is aborted and a mismatching object deleted. Objects carry metadata (instance, backup id, method, size,
    start/end, the manifest) and ``storage_class``. With ``transition_days``, a lifecycle rule moves the key
    prefix to ``transition_storage_class`` after that many days.

    The run's manifest (``manifest_key``, fields dag_id and run_id) lists every backup with its key, size,
    CRC-64, times and status; it is written even when backups failed, before the task fails for them
    (``max_errors``: a number or a percentage, as in OOS).

    Returns one :class:`~aliyun_ops.logic.report.ArchiveRow` dict per backup (also pushed as XCom ``results``, even
    when the task fails); XCom ``manifest`` says where the manifest is.

    Example::

        ArchiveRdsBackupsToOssOperator(task_id="archive", instance_ids=["rm-bp1abc"], region="cn-hangzhou",
                                       bucket="db-archive", start="{{ macros.ds_add(ds, -7) }}",
                                       end="{{ data_interval_end }}", storage_class="IA", concurrency=2)
    """

    template_fields = aliyun_template_fields("instance_ids", "bucket", "start", "end", "key_template", "oss_region",
                                             "concurrency", "max_errors", "storage_class", "transition_days",
                                             "transition_storage_class", "manifest_key")
    hook_class = RdsHook
    item_noun = "backups"
    result_key_fields = ("instance_id", "backup_id")
    state_field = "key"

    def __init__(self, *, instance_ids: Sequence[str] | str, bucket: str, start: Any = None, end: Any = None,
                 key_template: str = DEFAULT_KEY_TEMPLATE, oss_region: str | None = None,
                 part_size: int | None = None, parallel_num: int | None = None, concurrency: int | str = 2,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 max_errors: int | str = 0, download_timeout: float = 60.0, storage_class: str | None = None,
                 transition_days: int | None = None, transition_storage_class: str = "Archive",
                 manifest_key: str = DEFAULT_MANIFEST_KEY, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instance_ids = instance_ids
        self.bucket = bucket
        self.start = start
        self.end = end
        self.key_template = key_template
        self.oss_region = oss_region
        self.part_size = part_size
        self.parallel_num = parallel_num
        self.memory_budget = memory_budget
        self.concurrency = concurrency
        self.max_errors = max_errors
        self.download_timeout = download_timeout
        self.storage_class = storage_class
        self.transition_days = transition_days
        self.transition_storage_class = transition_storage_class
        self.manifest_key = manifest_key

    # -- input -----------------------------------------------------------------------------------------------
    @staticmethod
    def _fields(template: str, name: str) -> set[str]:
        try:
            return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        except (ValueError, TypeError):
            raise ValueError(f"{name} {template!r} is malformed") from None

    def validate(self) -> tuple[list[str], datetime | None, datetime | None]:
        ids = self.instance_ids
        if isinstance(ids, str):
            ids = [s.strip() for s in ids.split(",") if s.strip()]
        ids = [check_id("rds_instance", i, "DB instance id") for i in (ids or [])]
        if not ids:
            raise ValueError("instance_ids is empty")
        check_id("oss_bucket", self.bucket, "bucket")
        fields = self._fields(self.key_template, "key_template")
        if fields - KEY_FIELDS:
            raise ValueError(f"key_template uses unknown fields {sorted(fields - KEY_FIELDS)}; "
                             f"allowed: {sorted(KEY_FIELDS)}")
        if "backup_id" not in fields:
            raise ValueError("key_template must contain {backup_id} (one object per backup)")
        if self._fields(self.manifest_key, "manifest_key") - MANIFEST_FIELDS or "{run_id}" not in self.manifest_key:
            raise ValueError(f"manifest_key must contain {{run_id}} and may use {sorted(MANIFEST_FIELDS)}, "
                             f"got {self.manifest_key!r}")
        start, end = as_datetime(self.start, "start"), as_datetime(self.end, "end")
        if start and end and end < start:
            raise ValueError("end is before start")
        if self.part_size is not None and not (MIN_PART_SIZE <= int(self.part_size) <= MAX_PART_SIZE):
            raise ValueError("part_size must be 100 KiB - 5 GiB")
        if int(self.memory_budget) < MIN_PART_SIZE:
            raise ValueError("memory_budget must be at least 100 KiB")
        if self.parallel_num is not None and int(self.parallel_num) < 1:
            raise ValueError("parallel_num must be at least 1")
        if self.storage_class not in (None, "", *STORAGE_CLASSES):
            raise ValueError(f"storage_class must be one of {list(STORAGE_CLASSES)}, got {self.storage_class!r}")
        if self.transition_days not in (None, ""):
            if int(self.transition_days) < 1:
                raise ValueError("transition_days must be at least 1")
            if self.transition_storage_class not in STORAGE_CLASSES[1:]:
                raise ValueError(f"transition_storage_class must be one of {list(STORAGE_CLASSES[1:])}")
            if not self.key_prefix():
                raise ValueError("transition_days needs a key_template that starts with a fixed prefix (e.g. rds/): "
                                 "a lifecycle rule on the whole bucket would move the manifests too")
        check_concurrency(self.concurrency)
        resolve_count(self.max_errors, 100, name="max_errors")
        return ids, start, end

    def key_prefix(self) -> str:
        """The fixed part of ``key_template`` before its first field (the lifecycle rule's prefix)."""
        return self.key_template.split("{", 1)[0].lstrip("/")

    def object_key(self, backup: Mapping[str, Any], region: str) -> str:
        started = parse_rds_time(backup.get("BackupStartTime")) or datetime.now(UTC)
        values = {"instance_id": backup.get("DBInstanceId", ""), "backup_id": str(backup.get("BackupId")),
                  "date": started.strftime("%Y-%m-%d"), "datetime": started.strftime("%Y%m%dT%H%M%SZ"),
                  "region": region, "method": backup.get("BackupMethod", ""), "mode": backup.get("BackupMode", ""),
                  "type": backup.get("BackupType", "")}
        return self.key_template.format(**values).lstrip("/")

    # -- run -------------------------------------------------------------------------------------------------
    def execute(self, context: Any) -> list[dict]:
        ids, start, end = self.validate()
        ti = context["ti"]
        manifest_key = self.manifest_key.format(dag_id=ti.dag_id, run_id=str(context["run_id"]).replace("/", "_"))
        region = self.resolve_region()
        oss_region = self.oss_region or OssHook(aliyun_conn_id=self.aliyun_conn_id).bucket_region(self.bucket)
        oss = OssHook(aliyun_conn_id=self.aliyun_conn_id, region=oss_region)
        if self.transition_days:
            oss.put_lifecycle_rule(self.bucket, f"aliyun-ops-{self.key_prefix().strip('/').replace('/', '-')}",
                                   self.key_prefix(), transition_days=int(self.transition_days),
                                   storage_class=self.transition_storage_class)
        backups, jobs = [], []
        for instance_id in ids:
            found = self.hook.describe_backups(instance_id, start=start, end=end, region=region)
            running = self.hook.describe_backup_tasks(instance_id, region=region)
            self.log.info("%s: %d backup(s) in the window, %d job(s) running", instance_id, len(found), len(running))
            backups += found
            jobs += [{**j, "DBInstanceId": instance_id} for j in running]
        todo, rows = classify_backups(backups, jobs, end)
        items = [{"backup": b, "key": self.object_key(b, region)} for b in todo]
        reader = ManifestReader(oss, self.bucket)
        earlier: dict[str, dict] = {}
        meta = {"dag": ti.dag_id, "run": str(context["run_id"]), "manifest": manifest_key}

        streams = min(len(items), resolve_concurrency(self.concurrency, len(items)))

        def archive(item: dict) -> dict:
            return self._archive_one(oss, reader, item, meta, earlier, streams)

        batch = run_batch(items, archive, key=lambda i: str(i["backup"]["BackupId"]), concurrency=self.concurrency,
                          max_errors=self.max_errors)
        for item, res in zip(items, batch, strict=True):
            value = res.value or earlier.get(str(item["backup"]["BackupId"])) or {}
            rows.append(row_of(item["backup"], key=item["key"], status=res.status, crc64=str(value.get("crc64") or ""),
                               storage_class=value.get("storage_class") or "",
                               reason=res.error or value.get("note") or ""))
        rows.sort(key=ArchiveRow.sort_key)
        out = [asdict(r) for r in rows]
        ti.xcom_push(key="rows", value=out)  # deprecated name of XCom "results", kept for one release
        self._write_manifest(oss, manifest_key, rows, start, end, oss_region)
        ti.xcom_push(key="manifest", value={"bucket": self.bucket, "key": manifest_key, "region": oss_region})
        self.log.info("oss://%s (%s): manifest %s", self.bucket, oss_region, manifest_key)
        tried = {str(i["backup"]["BackupId"]) for i in items}     # the budget counts what this run tried
        return self.conclude(context, out, title=f"archive to oss://{self.bucket}",
                             counted=[r for r in out if r["backup_id"] in tried])

    def _parallel_num(self, streams: int) -> int:
        """``parallel_num`` if given, else 2 for a backup streamed alone and 1 for backups streamed side by side."""
        if self.parallel_num is not None:
            return int(self.parallel_num)
        return 1 if streams > 1 else 2

    def _part_size(self, size: int, streams: int, parallel_num: int) -> int:
        """``part_size`` if given, else the largest that keeps ``streams`` backups' parts in ``memory_budget``
        (see :func:`~aliyun_ops.hooks.oss.part_size_for`)."""
        if self.part_size is not None:
            return int(self.part_size)
        buffers = max(1, streams) * parallel_num
        part_size = part_size_for(size, int(self.memory_budget), buffers)
        if part_size * buffers > int(self.memory_budget):
            self.log.warning("a %d-byte backup needs %d-byte parts (10,000 at most): %d streams x %d parts take "
                             "%d MiB, over memory_budget", size, part_size, streams, parallel_num,
                             part_size * buffers // MIB)
        return part_size

    def _archive_one(self, oss: OssHook, reader: ManifestReader, item: dict, meta: Mapping[str, str],
                     earlier: dict[str, dict], streams: int) -> dict:
        backup, key = item["backup"], item["key"]
        backup_id = str(backup.get("BackupId"))
        note = ""
        head = oss.head_object(self.bucket, key)
        if head is not None:
            manifest = {str(k).lower(): v for k, v in (head.get("Metadata") or {}).items()}.get(META_MANIFEST)
            entry = reader.entry(manifest, backup_id)
            done, note = existing_verdict(head, backup, entry)
            if done:
                earlier[backup_id] = {"crc64": str(head.get("HashCrc64") or ""),
                                      "storage_class": head.get("StorageClass") or ""}
                raise ItemSkipped(f"already archived by {manifest} ({note})")
            self.log.warning("%s: %s", key, note)
        for upload in oss.list_multipart_uploads(self.bucket, prefix=key):
            if upload["Key"] == key:  # left open by a try that was killed: nothing may stay open
                oss.abort_upload(self.bucket, key, upload["UploadId"])
        url = backup.get("BackupDownloadURL")
        if not url:
            raise RuntimeError("the backup has no download URL")
        expected = int(backup.get("BackupSize") or 0)
        metadata = {"rds-instance-id": str(backup.get("DBInstanceId")), "rds-backup-id": backup_id,
                    "rds-backup-method": str(backup.get("BackupMethod") or ""), "rds-backup-size": str(expected),
                    "rds-backup-start": str(backup.get("BackupStartTime") or ""),
                    "rds-backup-end": str(backup.get("BackupEndTime") or ""),
                    "archived-by": f"{meta['dag']}/{meta['run']}", META_MANIFEST: meta["manifest"]}
        with urllib.request.urlopen(url, timeout=float(self.download_timeout)) as response:  # noqa: S310
            length = response.headers.get("Content-Length")
            if length is not None and int(length) != expected:
                raise RuntimeError(f"the download is {length} bytes, DescribeBackups says {expected}")
            parallel_num = self._parallel_num(streams)
            result = oss.upload_stream(self.bucket, key, response,
                                       part_size=self._part_size(expected, streams, parallel_num),
                                       parallel_num=parallel_num, metadata=metadata,
                                       storage_class=self.storage_class or None)
        if result["size"] != expected:
            self._delete_quietly(oss, key)
            raise RuntimeError(f"streamed {result['size']} bytes, DescribeBackups says {expected} (object deleted)")
        self.log.info("oss://%s/%s: %d bytes in %d part(s), crc64 %s", self.bucket, key, result["size"],
                      result["parts"], result["crc64"])
        return {"crc64": result["crc64"], "storage_class": self.storage_class or "Standard", "note": note}

    def _delete_quietly(self, oss: OssHook, key: str) -> None:
        try:
            oss.delete_object(self.bucket, key)
        except AliyunApiError as err:
            self.log.error("could not delete oss://%s/%s: %s", self.bucket, key, err)

    def _write_manifest(self, oss: OssHook, key: str, rows: list[ArchiveRow], start: datetime | None,
                        end: datetime | None, oss_region: str) -> None:
        doc = {"bucket": self.bucket, "region": oss_region, "window": {"start": start and start.isoformat(),
                                                                       "end": end and end.isoformat()},
               "written_at": datetime.now(UTC).isoformat(), "entries": [asdict(r) for r in rows]}
        oss.put_json(self.bucket, key, doc)


__all__ = ["ArchiveRdsBackupsToOssOperator", "classify_backups", "existing_verdict"]
