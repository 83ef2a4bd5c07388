"""RDS operators: ``from aliyun_ops.operators.rds import CreateRdsBackupOperator, ...``."""

from __future__ import annotations

from .rds_archive import ArchiveRdsBackupsToOssOperator
from .rds_backup import BACKUP_METHODS, CreateRdsBackupOperator, backup_summary

__all__ = ["BACKUP_METHODS", "ArchiveRdsBackupsToOssOperator", "CreateRdsBackupOperator", "backup_summary"]
