"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point.

The connection form is declared here (``conn-fields`` / ``ui-field-behaviour``), which is what
Airflow 3.2+ reads without importing the hook or wtforms; the hook's
``get_connection_form_widgets``/``get_ui_field_behaviour`` say the same for older UIs.
"""

from __future__ import annotations

_STRING = {"type": ["string", "null"]}

CONN_FIELDS = {
    "region": {"label": "Region", "schema": _STRING, "description": "Default region, e.g. cn-hangzhou"},
    "endpoint": {"label": "Endpoint override", "schema": _STRING,
                 "description": "Base URL replacing every service endpoint (ECS, VPC, RDS, OSS, STS), "
                                "e.g. http://127.0.0.1:9100 for the bundled emulator"},
    "ram_role_arn": {"label": "RAM role ARN", "schema": _STRING,
                     "description": "Assume this role (STS AssumeRole) with the key pair or the credentials chain"},
    "security_token": {"label": "STS security token", "schema": {"type": ["string", "null"], "format": "password"},
                       "description": "Only with a temporary (STS.) AccessKey pair"},
}

UI_FIELD_BEHAVIOUR = {
    "hidden-fields": ["host", "schema", "port"],
    "relabeling": {"login": "AccessKey ID", "password": "AccessKey Secret"},
    "placeholders": {
        "login": "LTAI... (empty: credentials chain / RAM role)",
        "password": "AccessKey Secret",
        "extra": '{"region": "cn-hangzhou", "endpoint": "http://127.0.0.1:9100", '
                 '"rate_limits": {"DescribeImages": 10, "*": 20}, "max_attempts": 6}',
    },
}

INTEGRATION = "Alibaba Cloud (aliyun-ops)"


def get_provider_info() -> dict:
    return {
        "package-name": "aliyun-ops",
        "name": "Alibaba Cloud operations (aliyun-ops)",
        "description": "ECS, RDS and OSS hooks, operators, sensors and triggers for Alibaba Cloud.",
        "versions": ["0.1.0"],
        "integrations": [{"integration-name": INTEGRATION, "external-doc-url": "https://www.alibabacloud.com/",
                          "tags": ["service"]}],
        "hooks": [{"integration-name": INTEGRATION,
                   "python-modules": ["aliyun_ops.hooks.base", "aliyun_ops.hooks.ecs", "aliyun_ops.hooks.rds",
                                      "aliyun_ops.hooks.oss"]}],
        "operators": [{"integration-name": INTEGRATION,
                       "python-modules": ["aliyun_ops.operators.ecs", "aliyun_ops.operators.ecs_pause",
                                          "aliyun_ops.operators.rds", "aliyun_ops.operators.rds_archive"]}],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": ["aliyun_ops.sensors.ecs"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": ["aliyun_ops.triggers.ecs"]}],
        "connection-types": [
            {
                "connection-type": "aliyun",
                "hook-class-name": "aliyun_ops.hooks.base.AliyunBaseHook",
                "hook-name": "Alibaba Cloud (aliyun-ops)",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            },
        ],
    }
