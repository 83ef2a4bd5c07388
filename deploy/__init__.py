"""Local deployments of Airflow with aliyun-ops: the native equivalent of docker-compose.yaml."""
