"""ECS operators: ``from aliyun_ops.operators.ecs import CreateImageOperator, ...``."""

from __future__ import annotations

from .ecs_commands import RunCommandOperator
from .ecs_image_cleanup import DeleteImagesOperator, PruneBackupImagesOperator
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
from .ecs_snapshots import CreateSnapshotOperator

__all__ = [
    "CopyImageOperator",
    "CreateImageOperator",
    "CreateSnapshotOperator",
    "DeleteImagesOperator",
    "DeleteInstancesOperator",
    "PruneBackupImagesOperator",
    "ReplaceSystemDiskOperator",
    "ResumePausedOperator",
    "RunCommandOperator",
    "RunInstancesOperator",
    "SelectInstancesOperator",
    "StartInstancesOperator",
    "StopInstancesOperator",
]
