"""RDS API (2014-08-15): DescribeDBInstances, DescribeBackups, CreateBackup, DescribeBackupTasks, backup downloads.

Modules, one concern each:

* :mod:`~emulator.rds.instances`: DescribeDBInstances;
* :mod:`~emulator.rds.backups`: DescribeBackups, CreateBackup (a job ending in a backup set after
  ``60 s + size / 50 MiB/s`` of simulated time; fault knob ``rds_backup_fail``), DescribeBackupTasks;
* :mod:`~emulator.rds.downloads`: the backup download URLs, served by the emulator itself
  (``GET|HEAD /_emulator/download/rds/<BackupId>?expires=<sim epoch>``: deterministic bytes, ranges, expiry);
* :mod:`~emulator.rds.fleet`: the fleet section ``rds_instances`` (instances and their existing backups);
* :mod:`~emulator.rds.common`: tables (``rds.instances``, ``rds.backups``, ``rds.backup_jobs``), engines,
  backup timings, errors, instance lookup.
"""

from . import backups, common, downloads, fleet, instances  # noqa: F401  (actions and routes register on import)
from .downloads import content_slice, pattern

__all__ = ["content_slice", "pattern"]
