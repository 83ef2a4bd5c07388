"""aliyun-ops: Airflow operators, sensors, triggers and hooks for Alibaba Cloud ECS, RDS and OSS."""

__version__ = "0.1.0"
