"""ECS triggers (run in the triggerer; batched polling)."""

from __future__ import annotations

from .ecs_images import ImagesAvailableTrigger, SnapshotsReadyTrigger
from .ecs_instances import InstanceStatusTrigger, InvocationTrigger

__all__ = ["ImagesAvailableTrigger", "InstanceStatusTrigger", "InvocationTrigger", "SnapshotsReadyTrigger"]
