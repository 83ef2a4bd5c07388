"""The cloud's status values, one name each: what ECS and RDS answer in ``Status`` fields, as the library compares
them. Every module reads them from here (a test keeps their string literals out of the rest of the library); our
own per-item vocabulary (``success``/``failed``/...) is :mod:`aliyun_ops.logic.outcome`.

Example::

    from aliyun_ops.logic import statuses as st
    if record["Status"] in st.IMAGE_FAILED: ...
"""

from __future__ import annotations

# -- ECS instances (DescribeInstances Status) -------------------------------------------------------
PENDING = "Pending"
STARTING = "Starting"
RUNNING = "Running"
STOPPING = "Stopping"
STOPPED = "Stopped"
INSTANCE_STATUSES = (PENDING, STARTING, RUNNING, STOPPING, STOPPED)
SETTLED = frozenset({RUNNING, STOPPED})
"""No transition under way."""
STARTED = frozenset({STARTING, RUNNING})
"""A StartInstance(s) was applied, whatever its answer said."""
HEADING_DOWN = frozenset({STOPPING, STOPPED})
"""A StopInstance(s) was applied, whatever its answer said."""

# -- ECS images (DescribeImages Status) -------------------------------------------------------------
IMAGE_CREATING = "Creating"
IMAGE_WAITING = "Waiting"              # a copy queued behind others into the same region
IMAGE_AVAILABLE = "Available"
IMAGE_UNAVAILABLE = "UnAvailable"
IMAGE_CREATE_FAILED = "CreateFailed"
IMAGE_DEPRECATED = "Deprecated"
IMAGE_STATUSES = (IMAGE_CREATING, IMAGE_WAITING, IMAGE_AVAILABLE, IMAGE_UNAVAILABLE, IMAGE_CREATE_FAILED,
                  IMAGE_DEPRECATED)
IMAGE_OK = frozenset({IMAGE_AVAILABLE, IMAGE_DEPRECATED})
IMAGE_FAILED = frozenset({IMAGE_CREATE_FAILED, IMAGE_UNAVAILABLE})
IMAGE_IN_PROGRESS = frozenset({IMAGE_CREATING, IMAGE_WAITING})

# -- ECS image check (DescribeImages DetectionOptions: Status, an item's Value and RiskLevel) ------------
DETECTION_FINISHED = "Finished"
DETECTION_INVALID = "Invalid"          # the SystemImage item: no operating system this check knows
DETECTION_RISK_HIGH = "High"           # an item at this risk keeps the image from booting

# -- ECS snapshots (DescribeSnapshots Status) -------------------------------------------------------
SNAPSHOT_PROGRESSING = "progressing"
SNAPSHOT_ACCOMPLISHED = "accomplished"
SNAPSHOT_FAILED = "failed"

# -- ECS disks (DescribeDisks Status) ---------------------------------------------------------------
DISK_IN_USE = "In_use"
DISK_AVAILABLE = "Available"

# -- Cloud Assistant (DescribeInvocations InvocationStatus) -----------------------------------------
INVOCATION_PENDING = "Pending"
INVOCATION_SCHEDULED = "Scheduled"
INVOCATION_RUNNING = "Running"
INVOCATION_STOPPING = "Stopping"
INVOCATION_IN_PROGRESS = frozenset({INVOCATION_PENDING, INVOCATION_SCHEDULED, INVOCATION_RUNNING, INVOCATION_STOPPING})
INVOCATION_SUCCESS = "Success"
INVOCATION_FAILED = "Failed"
INVOCATION_PARTIAL_FAILED = "PartialFailed"
INVOCATION_STOPPED = "Stopped"
INVOCATION_FINAL = frozenset({INVOCATION_SUCCESS, INVOCATION_FAILED, INVOCATION_PARTIAL_FAILED, INVOCATION_STOPPED})

# -- RDS backups (DescribeBackups BackupStatus) -----------------------------------------------------
BACKUP_SUCCESS = "Success"
BACKUP_FAILED = "Failed"
