"""Airflow operators for Alibaba Cloud (ECS, RDS, OSS)."""
