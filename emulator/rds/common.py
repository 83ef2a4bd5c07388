"""What every RDS module shares: table names, engines and backup timings, errors, instance lookup, paging numbers.

Tables: ``rds.instances`` (DBInstanceId -> record), ``rds.backups`` (BackupId -> record), ``rds.backup_jobs``
(BackupJobId -> record).
"""

from __future__ import annotations

from ..errors import ApiError
from ..rpc import Call, Params
from ..state import State

INSTANCES, BACKUPS, JOBS = "rds.instances", "rds.backups", "rds.backup_jobs"
ENGINES = {"MySQL": ("8.0", "mysql"), "PostgreSQL": ("16.0", "pg"), "SQLServer": ("2019_std_ha", "mssql"),
           "MariaDB": ("10.3", "mariadb")}
METHODS = ("Physical", "Logical", "Snapshot")
DEFAULT_BACKUP_SIZE = 1024**3
BACKUP_RATE = 50 * 1024**2  # bytes per simulated second
BACKUP_OVERHEAD = 60.0


def err(code: str, message: str, status: int = 400) -> ApiError:
    return ApiError(code, message, status)


def instance_not_found(instance_id: str) -> ApiError:
    return err("InvalidDBInstanceId.NotFound", f"Specified instance does not exist or not support. ({instance_id})",
               404)


def next_number(state: State, name: str, base: int) -> str:
    """The next number of the counter ``name`` (job and backup ids are numbers), as a string."""
    n = state.counters.get(name, 0) + 1
    state.counters[name] = n
    return str(base + n)


def instance_of(call: Call, instance_id: str | None) -> dict:
    """The instance record, or ``MissingDBInstanceId`` / ``InvalidDBInstanceId.NotFound``."""
    if not instance_id:
        raise err("MissingDBInstanceId", "DBInstanceId is mandatory for this action.")
    rec = call.state.table(INSTANCES).get(instance_id)
    if rec is None:
        raise instance_not_found(instance_id)
    return rec


def int_param(p: Params, name: str, default: int, lo: int, hi: int) -> int:
    """An integer parameter from ``lo`` to ``hi`` (``default`` when absent), else ``Invalid<name>.Malformed``."""
    value = p.str(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = lo - 1
    if not lo <= number <= hi:
        raise err(f"Invalid{name}.Malformed", f"Specified {name} is not valid.")
    return number
