"""`make demo` / `make stop`: emulator + mail catcher + Airflow standalone + one backup run.

Everything lives under .demo/ (state, logs, pid files); `make stop` stops what this started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from deploy import processes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
PY = sys.executable
EMULATOR_PORT = int(os.environ.get("EMULATOR_PORT", "9100"))
SMTP_PORT = int(os.environ.get("DEMO_SMTP_PORT", "1025"))
AIRFLOW_PORT = int(os.environ.get("AIRFLOW_PORT", "8080"))
TIME_SCALE = os.environ.get("EMULATOR_TIME_SCALE", "120")
DAG_ID = "ecs_cross_region_backup"


def env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    airflow_home = DEMO / "airflow"
    return {
        **base,
        "PATH": f"{Path(PY).parent}{os.pathsep}{base.get('PATH', '')}",  # standalone runs `airflow ...`
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__PORT": str(AIRFLOW_PORT),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "ALIYUN_OPS_REPORT_DIR": str(DEMO / "reports"),
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}",
        "AIRFLOW_CONN_ALIYUN_DEFAULT": json.dumps({"conn_type": "aliyun", "extra": {
            "access_key_id": "LOCAL_EMULATOR_AK", "access_key_secret": "local-emulator-secret-not-for-production",
            "region": "cn-hangzhou", "endpoint": f"http://127.0.0.1:{EMULATOR_PORT}"}}),
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": SMTP_PORT,
                                                 "extra": {"disable_tls": True, "disable_ssl": True}}),
    }


def spawn(name: str, cmd: list[str]) -> None:
    processes.spawn(DEMO, name, cmd, env=env(), cwd=ROOT)


def airflow(*args: str, check: bool = True) -> str:
    out = subprocess.run([PY, "-m", "airflow", *args], cwd=ROOT, env=env(), capture_output=True, text=True)
    if check and out.returncode != 0:
        raise SystemExit(f"airflow {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return out.stdout


def start() -> int:
    stop(quiet=True)
    spawn("emulator", [PY, "-m", "emulator", "serve", "--port", str(EMULATOR_PORT), "--data-dir",
                       str(DEMO / "emulator"), "--time-scale", TIME_SCALE, "--seed-file",
                       str(ROOT / "include" / "demo_fleet.yaml")])
    processes.wait_http(f"http://127.0.0.1:{EMULATOR_PORT}/_emulator/health", 30, "emulator")
    spawn("smtp", [PY, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{SMTP_PORT}", "-c", "aiosmtpd.handlers.Debugging"])
    airflow("db", "migrate")
    spawn("airflow", [PY, "-m", "airflow", "standalone"])
    processes.wait_http(f"http://127.0.0.1:{AIRFLOW_PORT}/api/v2/monitor/health", 240, "Airflow")
    airflow("dags", "reserialize", check=False)
    airflow("dags", "unpause", DAG_ID)
    run_id = f"demo__{time.strftime('%Y%m%dT%H%M%S')}"
    conf = {"source_regions": ["cn-hangzhou", "cn-beijing"], "destination_regions": ["cn-shanghai"],
            "poll_interval": 2, "notify_emails": ["ops@example.com"]}
    airflow("dags", "trigger", DAG_ID, "--run-id", run_id, "--conf", json.dumps(conf))
    print(f"triggered {DAG_ID} run {run_id}; waiting for it to finish ...")
    state = wait_run(run_id, timeout=900)
    report = DEMO / "reports" / DAG_ID / f"{run_id}.txt"
    print(f"\nrun {run_id}: {state}\n")
    print(report.read_text() if report.exists() else f"(no report at {report}; see .demo/airflow.log)")
    print(f"\nAirflow UI: http://localhost:{AIRFLOW_PORT}  login: {login()}")
    print("Emails sent by the DAG are printed in .demo/smtp.log. `make stop` stops everything.")
    print(f"Emulator admin API: http://127.0.0.1:{EMULATOR_PORT}/_emulator/ with 'Authorization: Bearer <token>', "
          "the token in .demo/emulator/admin-token (or: emulator.control.AdminClient(url, "
          "token=read_admin_token('.demo/emulator'))).")
    return 0 if state == "success" else 1


def login() -> str:
    """The user and password Airflow's simple auth manager generated for `admin`."""
    generated = DEMO / "airflow" / "simple_auth_manager_passwords.json.generated"
    try:
        users = json.loads(generated.read_text())
        return ", ".join(f"{user} / {password}" for user, password in users.items())
    except (OSError, ValueError):
        return f"admin / (see {generated})"


def wait_run(run_id: str, timeout: float) -> str:
    deadline = time.time() + timeout
    state = "unknown"
    while time.time() < deadline:
        out = airflow("dags", "list-runs", DAG_ID, "-o", "json", check=False)
        try:  # the CLI may print warnings before the JSON
            runs = json.loads(next((ln for ln in reversed(out.splitlines()) if ln.startswith("[")), "[]"))
        except ValueError:
            runs = []
        state = next((r.get("state") for r in runs if r.get("run_id") == run_id), "queued")
        if state in ("success", "failed"):
            return state
        time.sleep(5)
    return f"still {state} after {timeout:.0f}s"


def stop(quiet: bool = False) -> int:
    """Stop every process this demo started, with their children (airflow standalone spawns several)."""
    processes.stop_all(DEMO, quiet=quiet)
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    sys.exit({"start": start, "stop": stop}[command]())
