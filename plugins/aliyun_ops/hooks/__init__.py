"""Hooks: the ``aliyun`` connection, credentials, SDK clients, retries and rate limits (ECS, RDS, OSS).

Import the hook you need from its module (``aliyun_ops.hooks.ecs.EcsHook``); this package does not
import the SDKs eagerly.
"""

from __future__ import annotations

__all__ = ["AliyunBaseHook", "ConnectionSettings", "EcsHook", "OssHook", "RdsHook"]


def __getattr__(name: str):
    if name in ("AliyunBaseHook", "ConnectionSettings"):
        from aliyun_ops.hooks import base

        return getattr(base, name)
    if name == "EcsHook":
        from aliyun_ops.hooks.ecs import EcsHook

        return EcsHook
    if name == "RdsHook":
        from aliyun_ops.hooks.rds import RdsHook

        return RdsHook
    if name == "OssHook":
        from aliyun_ops.hooks.oss import OssHook

        return OssHook
    raise AttributeError(name)
