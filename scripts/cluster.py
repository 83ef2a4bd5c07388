"""`make cluster` / `make cluster-stop`: the docker-compose.yaml topology, natively from the project's venv.

api-server, scheduler, dag-processor, triggerer and two Celery workers (CeleryExecutor) on PostgreSQL
(database ``aliyun_ops_cluster``, created and migrated when missing) with Redis as the broker, plus the emulator
and the mail catcher as in the demo. State, logs and pid files live under .cluster/; the database is kept
between starts (``make cluster-stop`` stops the processes, ``make clean`` also forgets .cluster/).

Environment: AIRFLOW_PORT (8080), EMULATOR_PORT (9100), DEMO_SMTP_PORT (1025), CLUSTER_WORKERS (2),
CLUSTER_BROKER_URL (redis://127.0.0.1:6379/0), EMULATOR_TIME_SCALE (120).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from deploy import processes  # noqa: E402
from deploy.airflow_cluster import AirflowCluster, celery_unavailable  # noqa: E402

STATE = ROOT / ".cluster"
PY = sys.executable
EMULATOR_PORT = int(os.environ.get("EMULATOR_PORT", "9100"))
SMTP_PORT = int(os.environ.get("DEMO_SMTP_PORT", "1025"))
AIRFLOW_PORT = int(os.environ.get("AIRFLOW_PORT", "8080"))
WORKERS = int(os.environ.get("CLUSTER_WORKERS", "2"))
BROKER_URL = os.environ.get("CLUSTER_BROKER_URL", "redis://127.0.0.1:6379/0")
TIME_SCALE = os.environ.get("EMULATOR_TIME_SCALE", "120")
DB_NAME = "aliyun_ops_cluster"
DAG_ID = "ecs_cross_region_backup"


def cluster() -> AirflowCluster:
    connection = {"conn_type": "aliyun", "extra": {
        "access_key_id": "LOCAL_EMULATOR_AK", "access_key_secret": "local-emulator-secret-not-for-production",
        "region": "cn-hangzhou", "endpoint": f"http://127.0.0.1:{EMULATOR_PORT}"}}
    passwords = STATE / "simple_auth_manager_passwords.json"
    return AirflowCluster(
        STATE / "airflow", connection, backend="postgres", executor="celery", workers=WORKERS,
        broker_url=BROKER_URL, db_name=DB_NAME, port=AIRFLOW_PORT, queue="aliyun-ops-cluster",
        extra_env={
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",          # a real deployment: schedules run
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",    # ... once a user unpauses a DAG
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret(),
            "ALIYUN_OPS_REPORT_DIR": str(STATE / "reports"),
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": SMTP_PORT,
                                                     "extra": {"disable_tls": True, "disable_ssl": True}}),
        })


def emulator_command() -> list[str]:
    return [PY, "-m", "emulator", "serve", "--port", str(EMULATOR_PORT), "--data-dir", str(STATE / "emulator"),
            "--time-scale", TIME_SCALE, "--seed-file", str(ROOT / "include" / "demo_fleet.yaml")]


def jwt_secret() -> str:
    """One secret for every component, kept across restarts (tokens issued before a restart stay valid)."""
    path = STATE / "jwt-secret"
    if not path.exists():
        import secrets

        STATE.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def start() -> int:
    reason = celery_unavailable(BROKER_URL)
    if reason:
        raise SystemExit(f"make cluster needs PostgreSQL and Redis on loopback: {reason}")
    stop(quiet=True)
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["PYTHONPATH"] = str(ROOT)
    processes.spawn(STATE, "emulator", emulator_command(), env=env, cwd=ROOT)
    processes.wait_http(f"http://127.0.0.1:{EMULATOR_PORT}/_emulator/health", 30, "emulator")
    processes.spawn(STATE, "smtp", [PY, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{SMTP_PORT}", "-c",
                                    "aiosmtpd.handlers.Debugging"], env=env, cwd=ROOT)
    airflow = cluster()
    print(f"metadata database {DB_NAME} on PostgreSQL: migrating ...")
    airflow.prepare_db()
    try:
        airflow.start(timeout=300)
    finally:  # whatever started is stopped by `make cluster-stop`, even when start timed out
        for name, proc in airflow.procs.items():
            processes.record(STATE, f"airflow-{name}", proc.pid)
    print(f"Airflow is up: {', '.join(airflow.procs)} (logs in {airflow.logs})")
    return demo_run(airflow)


def demo_run(airflow: AirflowCluster) -> int:
    """Unpause the backup DAG and run it once through the scheduler and the Celery workers."""
    out = airflow.cli("dags", "unpause", DAG_ID)
    if out.returncode:
        raise SystemExit(f"airflow dags unpause failed:\n{out.stderr[-2000:]}")
    run_id = f"cluster__{time.strftime('%Y%m%dT%H%M%S')}"
    airflow.trigger(DAG_ID, {"source_regions": ["cn-hangzhou", "cn-beijing"], "destination_regions": ["cn-shanghai"],
                             "poll_interval": 2, "notify_emails": ["ops@example.com"]}, run_id)
    print(f"triggered {DAG_ID} run {run_id}; waiting for it to finish ...")
    deadline = time.monotonic() + 900
    state = airflow.run_state(DAG_ID, run_id)
    while state not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(3)
        state = airflow.run_state(DAG_ID, run_id)
    report = STATE / "reports" / DAG_ID / f"{run_id}.txt"
    print(f"\nrun {run_id}: {state}\n")
    print(report.read_text() if report.exists() else f"(no report at {report}; see {airflow.logs})")
    print(f"\nAirflow UI: http://localhost:{AIRFLOW_PORT}  login: {login()}")
    print(f"Celery workers: {WORKERS}, queue aliyun-ops-cluster on {BROKER_URL}; database {DB_NAME}.")
    print(f"Emails are printed in {STATE / 'smtp.log'}. `make cluster-stop` stops everything.")
    return 0 if state == "success" else 1


def login() -> str:
    try:
        users = json.loads((STATE / "simple_auth_manager_passwords.json").read_text())
        return ", ".join(f"{user} / {password}" for user, password in users.items())
    except (OSError, ValueError):
        return f"admin / (see {STATE / 'simple_auth_manager_passwords.json'})"


def stop(quiet: bool = False) -> int:
    processes.stop_all(STATE, quiet=quiet)
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    sys.exit({"start": start, "stop": stop}[command]())
