"""ECS operators: ``from aliyun_ops.operators.ecs import CreateImageOperator, ...``."""

from __future__ import annotations

from .ecs_commands import RunCommandOperator
from .ecs_image_cleanup import DeleteImagesOperator
from .ecs_images import CopyImageOperator, CreateImageOperator
from .ecs_instances import (
    DeleteInstancesOperator,
    ReplaceSystemDiskOperator,
    RunInstancesOperator,
    SelectInstancesOperator,
    StartInstancesOperator,
    StopInstancesOperator,
)
from .ecs_pause import ResumePausedOperator
from .ecs_restore import RestoreSystemDiskOperator
from .ecs_retention import ApplyRetentionPlanOperator, PlanImageRetentionOperator, PruneBackupImagesOperator
from .ecs_snapshots import CreateSnapshotOperator
from .ecs_temporary import ReleaseTemporaryResourcesOperator
from .ecs_verify import VerifyBackupsOperator

__all__ = [
    "ApplyRetentionPlanOperator",
    "CopyImageOperator",
    "CreateImageOperator",
    "CreateSnapshotOperator",
    "DeleteImagesOperator",
    "DeleteInstancesOperator",
    "PlanImageRetentionOperator",
    "PruneBackupImagesOperator",
    "ReleaseTemporaryResourcesOperator",
    "ReplaceSystemDiskOperator",
    "RestoreSystemDiskOperator",
    "ResumePausedOperator",
    "RunCommandOperator",
    "RunInstancesOperator",
    "SelectInstancesOperator",
    "StartInstancesOperator",
    "StopInstancesOperator",
    "VerifyBackupsOperator",
]
