"""Create a manual RDS backup and wait until the backup set is listed (``CreateRdsBackupOperator``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aliyun_ops.exceptions import AliyunApiError, WaitFailed
from aliyun_ops.hooks.rds import RdsHook, parse_rds_time
from aliyun_ops.logic import statuses as st
from aliyun_ops.logic.ids import check as check_id
from aliyun_ops.operators.base import AliyunBaseOperator, aliyun_template_fields
from aliyun_ops.waiting.drivers import wait_until

BACKUP_METHODS = ("Physical", "Logical", "Snapshot")


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

    template_fields = aliyun_template_fields("instance_id", "backup_method")
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
                       if (parse_rds_time(b.get("BackupStartTime")) or since) >= since - timedelta(minutes=1)]
            done = [b for b in earlier if b.get("BackupStatus") == st.BACKUP_SUCCESS]
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
            return {"backup_id": None, "instance_id": self.instance_id, "status": st.RUNNING, "job_id":
                    state["job_id"], "reused": reused}
        backup = self._wait(datetime.fromisoformat(state["since"]), set(state["known"]))
        if backup.get("BackupStatus") != st.BACKUP_SUCCESS:
            raise WaitFailed(f"backup {backup.get('BackupId')} of {self.instance_id} ended "
                             f"{backup.get('BackupStatus')}")
        return {**backup_summary(backup), "job_id": state["job_id"], "reused": reused}

    def _wait(self, since: datetime, known: set[str]) -> dict:
        """The newest backup of the instance started since ``since`` that is not in ``known``, once listed."""
        def newest() -> dict | None:
            fresh = [b for b in self._manual(since) if str(b.get("BackupId")) not in known]
            return max(fresh, key=lambda b: b.get("BackupStartTime") or "") if fresh else None

        event = wait_until(newest, poll_interval=float(self.poll_interval),
                           deadline=time.time() + float(self.wait_timeout), what=f"backup of {self.instance_id}",
                           log=self.log)
        if event.get("value") is None:
            raise WaitFailed(f"no new backup of {self.instance_id} after {self.wait_timeout}s: {event['message']}")
        return event["value"]


__all__ = ["CreateRdsBackupOperator"]
