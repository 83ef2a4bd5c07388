"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations


def get_provider_info() -> dict:
    return {
        "package-name": "aliyun-ops",
        "name": "Alibaba Cloud operations (aliyun-ops)",
        "description": "ECS, RDS and OSS hooks, operators, sensors and triggers for Alibaba Cloud.",
        "versions": ["0.1.0"],
        "connection-types": [
            {"connection-type": "aliyun", "hook-class-name": "aliyun_ops.hooks.base.AliyunBaseHook"},
        ],
    }
