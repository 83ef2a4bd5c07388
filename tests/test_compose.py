"""docker-compose.yaml cannot run here (no Docker engine); check what can be checked statically."""

import importlib.util
import json
import os
import shlex
from collections import Counter
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



def _cluster_script(state_dir: Path):
    """scripts/cluster.py as a module, its state directory moved to a temporary one (no side effect on .cluster/)."""
    spec = importlib.util.spec_from_file_location("cluster_script", ROOT / "scripts" / "cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.STATE = state_dir
    return module


def _compose_env(services: dict, name: str) -> dict[str, str]:
    dockerfile_env = {}
    for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines():
        if line.startswith("ENV "):
            dockerfile_env.update(kv.split("=", 1) for kv in shlex.split(line)[1:])
    return {**dockerfile_env, **{k: str(v) for k, v in services[name]["environment"].items()}}


def test_make_cluster_is_the_compose_topology(tmp_path):
    """`make cluster` and docker-compose.yaml run the same components, settings, connection and code paths."""
    services = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]
    script = _cluster_script(tmp_path)
    cluster = script.cluster()

    # components and worker count
    compose_commands = {svc["command"].removeprefix("airflow ").split(" --")[0]: svc for name, svc in services.items()
                        if name.startswith("airflow-") and name != "airflow-init"}
    native = Counter(" ".join(args[:2]) if args[0] == "celery" else args[0] for args in cluster.commands().values())
    assert set(native) == set(compose_commands)
    assert native["celery worker"] == compose_commands["celery worker"]["deploy"]["replicas"] == 2

    # the same Airflow: the image installs requirements.txt, whose pin is this venv's Airflow
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11" in dockerfile and "pip install -r requirements.txt" in dockerfile
    from importlib.metadata import version

    assert f"apache-airflow=={version('apache-airflow')}" in (ROOT / "requirements.txt").read_text().splitlines()

    compose, native_env = _compose_env(services, "airflow-worker"), cluster.env
    for key in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
                "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER", "AIRFLOW__CORE__LOAD_EXAMPLES",
                "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT",
                "ALIBABA_CLOUD_ECS_METADATA_DISABLED"):
        assert compose[key] == native_env[key], key
    for key, prefix in (("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql+psycopg2://"),
                        ("AIRFLOW__CELERY__RESULT_BACKEND", "db+postgresql+psycopg2://"),
                        ("AIRFLOW__CELERY__BROKER_URL", "redis://")):
        assert compose[key].startswith(prefix) and native_env[key].startswith(prefix), key
    assert compose["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith(":8080/execution/")
    assert native_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{script.AIRFLOW_PORT}/execution/"
    assert compose["AIRFLOW__API_AUTH__JWT_SECRET"] and native_env["AIRFLOW__API_AUTH__JWT_SECRET"]

    # one connection, only the emulator's address differs
    compose_conn = json.loads(compose["AIRFLOW_CONN_ALIYUN_DEFAULT"])
    native_conn = json.loads(native_env["AIRFLOW_CONN_ALIYUN_DEFAULT"])
    assert compose_conn["extra"].pop("endpoint") == "http://emulator:9100"
    assert native_conn["extra"].pop("endpoint") == f"http://127.0.0.1:{script.EMULATOR_PORT}"
    assert compose_conn == native_conn

    # the same DAGs and plugins (the image's /opt/aliyun-ops is this checkout)
    workdir = next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("WORKDIR "))
    assert compose["AIRFLOW__CORE__DAGS_FOLDER"] == f"{workdir}/dags"
    assert native_env["AIRFLOW__CORE__DAGS_FOLDER"] == str(ROOT / "dags")
    assert compose["PYTHONPATH"] == workdir and "pip install --no-deps -e ." in dockerfile  # aliyun_ops from plugins/
    assert {str(ROOT), str(ROOT / "plugins")} <= set(native_env["PYTHONPATH"].split(os.pathsep))

    # the same emulator: seed file and time scale; reachable on loopback only natively
    compose_emulator = shlex.split(services["emulator"]["command"])
    native_emulator = script.emulator_command()
    for flag in ("--seed-file", "--time-scale"):
        compose_value = compose_emulator[compose_emulator.index(flag) + 1]
        native_value = native_emulator[native_emulator.index(flag) + 1]
        assert Path(native_value).as_posix().endswith(compose_value) if flag == "--seed-file" else \
            float(compose_value) == float(native_value), flag
    assert "--host" not in native_emulator  # the emulator binds 127.0.0.1 by default
