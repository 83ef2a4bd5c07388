"""ECS sensors: ``from aliyun_ops.sensors.ecs import WaitForImageAvailableSensor, ...``."""

from __future__ import annotations

from .ecs_images import WaitForImageAvailableSensor
from .ecs_instances import WaitForInstanceStatusSensor

__all__ = ["WaitForImageAvailableSensor", "WaitForInstanceStatusSensor"]
