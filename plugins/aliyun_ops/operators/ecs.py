"""ECS operators: ``from aliyun_ops.operators.ecs import CreateImageOperator, ...``."""

from __future__ import annotations

from .ecs_commands import RunCommandOperator
from .ecs_images import (
    CopyImageOperator,
    CreateImageOperator,
    CreateSnapshotOperator,
    DeleteImagesOperator,
    PruneBackupImagesOperator,
)
from .ecs_instances import (
    DeleteInstancesOperator,
    ReplaceSystemDiskOperator,
    RunInstancesOperator,
    SelectInstancesOperator,
    StartInstancesOperator,
    StopInstancesOperator,
)

__all__ = [
    "CopyImageOperator",
    "CreateImageOperator",
    "CreateSnapshotOperator",
    "DeleteImagesOperator",
    "DeleteInstancesOperator",
    "PruneBackupImagesOperator",
    "ReplaceSystemDiskOperator",
    "RunCommandOperator",
    "RunInstancesOperator",
    "SelectInstancesOperator",
    "StartInstancesOperator",
    "StopInstancesOperator",
]
