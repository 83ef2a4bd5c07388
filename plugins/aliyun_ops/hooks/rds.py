"""RDS hook: DescribeDBInstances, DescribeBackups, CreateBackup, DescribeBackupTasks, as plain dicts.

RDS speaks the same tea-openapi transport as ECS; page counters come back as strings
(``"PageNumber": "1"``) and are converted here. Example::

    hook = RdsHook()
    backups = hook.describe_backups("rm-123", start=datetime(2024, 1, 1, tzinfo=UTC), status="Success")
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aliyun_ops.hooks.base import AliyunBaseHook
from aliyun_ops.hooks.ecs import _body, _items, chunks

if TYPE_CHECKING:
    from alibabacloud_rds20140815.client import Client as RdsClient

MAX_DB_IDS_PER_CALL = 30
RDS_PAGE_SIZE = 100


def rds_time(value: datetime | str | None) -> str | None:
    """RDS wants ``yyyy-MM-ddTHH:mmZ`` in UTC; strings are passed through, naive datetimes are taken as UTC."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def parse_rds_time(value: str | None) -> datetime | None:
    """``2024-01-01T01:00:00Z`` (as DescribeBackups answers) -> aware datetime; None when empty or unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class RdsHook(AliyunBaseHook):
    """RDS calls; ``region`` defaults to the hook's / connection's region.

    Example::

        hook = RdsHook(region="cn-hangzhou")
        backups = hook.describe_backups("rm-bp1xxxx", start="2026-11-01T00:00Z", end="2026-11-02T00:00Z")
    """

    service_name = "RDS"

    def __init__(self, aliyun_conn_id: str = AliyunBaseHook.default_conn_name, region: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(aliyun_conn_id=aliyun_conn_id, region=region, **kwargs)

    def new_client(self, region: str) -> RdsClient:
        from alibabacloud_rds20140815.client import Client

        return Client(self.openapi_config(region))

    def get_conn(self) -> RdsClient:
        return self.get_client()

    def _do(self, action: str, method: str, region: str | None, request: Any) -> dict:
        region = self.resolve_region(region)
        return _body(self.call(action, getattr(self.get_client(region), method), request, region=region))

    def _pages(self, action: str, method: str, region: str | None, make: Callable[[int], Any],
               items_path: Sequence[str]) -> list[dict]:
        out: list[dict] = []
        page = 1
        while True:
            body = self._do(action, method, region, make(page))
            items = _items(body, *items_path)
            out.extend(items)
            total = _int(body.get("TotalRecordCount"))
            if not items or len(items) < RDS_PAGE_SIZE or len(out) >= total:
                return out
            page += 1

    def describe_db_instances(self, region: str | None = None, instance_ids: Sequence[str] | None = None, *,
                              engine: str | None = None, status: str | None = None,
                              tags: Mapping[str, str] | None = None) -> list[dict]:
        """All matching DB instances: ``[{"DBInstanceId", "DBInstanceStatus", "Engine", ...}]``."""
        from alibabacloud_rds20140815 import models as m

        region = self.resolve_region(region)
        if instance_ids is not None and not instance_ids:
            return []
        out: list[dict] = []
        for ids in (chunks(instance_ids, MAX_DB_IDS_PER_CALL) if instance_ids else [None]):
            def make(page: int, ids=ids):
                return m.DescribeDBInstancesRequest(
                    region_id=region, dbinstance_id=",".join(ids) if ids else None, engine=engine,
                    dbinstance_status=status, tags=json.dumps(dict(tags)) if tags else None,
                    page_number=page, page_size=RDS_PAGE_SIZE)

            out.extend(self._pages("DescribeDBInstances", "describe_dbinstances", region, make,
                                   ("Items", "DBInstance")))
        return out

    def describe_backups(self, instance_id: str, start: datetime | str | None = None,
                         end: datetime | str | None = None, status: str | None = None, *,
                         region: str | None = None, backup_mode: str | None = None,
                         backup_id: str | None = None) -> list[dict]:
        """Every backup of ``instance_id`` in ``[start, end]`` (all pages).

        :param status: ``Success`` / ``Failed`` (None: all)
        :param backup_mode: ``Automated`` / ``Manual`` (None: all)
        """
        from alibabacloud_rds20140815 import models as m

        def make(page: int):
            return m.DescribeBackupsRequest(dbinstance_id=instance_id, start_time=rds_time(start),
                                            end_time=rds_time(end), backup_status=status, backup_mode=backup_mode,
                                            backup_id=backup_id, page_number=page, page_size=RDS_PAGE_SIZE)

        return self._pages("DescribeBackups", "describe_backups", region, make, ("Items", "Backup"))

    def create_backup(self, instance_id: str, *, region: str | None = None, backup_method: str | None = "Physical",
                      backup_type: str | None = None, backup_strategy: str | None = None,
                      db_name: str | None = None) -> str:
        """CreateBackup; returns the ``BackupJobId`` (as a string). Poll it with :meth:`describe_backup_tasks`."""
        from alibabacloud_rds20140815 import models as m

        body = self._do("CreateBackup", "create_backup", region, m.CreateBackupRequest(
            dbinstance_id=instance_id, backup_method=backup_method, backup_type=backup_type,
            backup_strategy=backup_strategy, dbname=db_name))
        return str(body.get("BackupJobId"))

    def describe_backup_tasks(self, instance_id: str, backup_job_id: str | int | None = None, *,
                              region: str | None = None) -> list[dict]:
        """Running/recent backup tasks: ``[{"BackupJobId", "BackupStatus", "Process", "JobMode", ...}]``."""
        from alibabacloud_rds20140815 import models as m

        body = self._do("DescribeBackupTasks", "describe_backup_tasks", region, m.DescribeBackupTasksRequest(
            dbinstance_id=instance_id, backup_job_id=int(backup_job_id) if backup_job_id is not None else None))
        return _items(body, "Items", "BackupJob")
