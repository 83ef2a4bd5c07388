"""docker-compose.yaml cannot run here (no Docker engine); check what can be checked statically."""

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_compose_file_is_consistent_with_the_repository():
    spec = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    services = spec["services"]
    assert {"postgres", "redis", "emulator", "mailcatcher", "airflow-apiserver", "airflow-scheduler",
            "airflow-triggerer", "airflow-worker", "airflow-dag-processor"} <= set(services)
    dockerfile = ROOT / services["airflow-scheduler"]["build"]["dockerfile"]
    assert dockerfile.exists()
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY ") and " . " not in line:
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
    assert "include/demo_fleet.yaml" in services["emulator"]["command"]
    assert (ROOT / "include/demo_fleet.yaml").exists()
    env = services["airflow-worker"]["environment"]
    conn = json.loads(env["AIRFLOW_CONN_ALIYUN_DEFAULT"])
    assert conn["conn_type"] == "aliyun" and conn["extra"]["endpoint"] == "http://emulator:9100"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_only_the_airflow_ui_is_published_and_the_emulator_needs_a_token():
    services = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]
    published = {name: svc["ports"] for name, svc in services.items() if svc.get("ports")}
    assert published == {"airflow-apiserver": ["8080:8080"]}
    assert not any(svc.get("network_mode") == "host" for svc in services.values())
    emulator = services["emulator"]
    assert "ports" not in emulator
    assert emulator["environment"]["EMULATOR_ADMIN_TOKEN"] == "${EMULATOR_ADMIN_TOKEN:-}"
    assert "--admin-token" not in emulator["command"]  # never on a command line (docker inspect, ps)
    # the rest of the stack reaches it by service name, inside the network
    conn = json.loads(services["airflow-worker"]["environment"]["AIRFLOW_CONN_ALIYUN_DEFAULT"])
    assert conn["extra"]["endpoint"] == "http://emulator:9100"

