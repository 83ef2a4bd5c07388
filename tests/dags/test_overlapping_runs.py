"""Runs that overlap outside one Airflow's view: two cold backups of one instance, each in its own process with its
own Airflow metadata (a backfill next to tonight's run, or two deployments against one account).

Airflow's ``max_active_runs`` cannot see across them; the lease tag on the instance can. Neither run may report
success for an image taken while the other was starting the instance (the emulator marks such an image ``_torn``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aliyun_ops.logic import lease as lz
from aliyun_ops.logic import pause
from tests.dags.conftest import install_key, policy_of

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "ecs_cross_region_backup"

RUN_ONE = """
import json, sys
import pendulum
from airflow.dag_processing.dagbag import DagBag

dag = DagBag(dag_folder=sys.argv[1]).dags["ecs_cross_region_backup"]
run = dag.test(logical_date=pendulum.parse(sys.argv[2]), run_conf=json.loads(sys.argv[3]))
print("RUN-STATE", run.state, flush=True)
"""


def deployment(tmp_path: Path, name: str, airflow_db: str) -> dict[str, str]:
    """The environment of a separate Airflow: its own home and a copy of the migrated metadata database."""
    home = tmp_path / name
    home.mkdir()
    shutil.copy(Path(airflow_db) / "airflow.db", home / "airflow.db")
    return {**os.environ, "AIRFLOW_HOME": str(home), "ALIYUN_OPS_REPORT_DIR": str(home / "reports"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")])}


def report_of(env: dict[str, str], night: str) -> dict:
    folder = Path(env["ALIYUN_OPS_REPORT_DIR"]) / DAG_ID
    files = sorted(folder.glob("*.json"))
    assert files, f"no report written for {night}"
    return json.loads(files[-1].read_text())


@pytest.mark.slow
def test_two_cold_backups_of_one_instance_in_two_airflows_never_report_a_torn_image(
        airflow_db, aliyun_conn, emulator, monkeypatch, tmp_path):
    # the disks' point in time is taken 5 s (real) after CreateImage; the second CreateImage of the instance is
    # throttled 2 s. Without a guard in the cloud, the second run images the instance while it is still Stopped,
    # the first run starts it again once its own snapshots are taken (~5 s), before the second's are (~7 s): torn.
    emulator.admin.request("POST", "timings", {"image_snapshot_point": 5000, "image_create_base": 20000})
    iid = emulator.admin.load_fleet({"instances": [
        {"region": "cn-hangzhou", "name": "db", "count": 1, "status": "Running", "tags": {"backup": "daily"}}]})[
        "instances"][0]
    emulator.admin.advance(300)
    emulator.admin.set_faults({"rules": [{"action": "ecs:CreateImage", "kind": "throttle", "skip": 1, "count": 1,
                                          "retry_after_ms": 2000, "resource_ids": [iid], "dry_run": False}]})
    install_key(emulator, DAG_ID, policy_of(DAG_ID), monkeypatch)
    conf = json.dumps({"consistency": "stop", "destination_regions": ["cn-shanghai"], "poll_interval": 1,
                       "timeout_minutes": 30, "lease_wait_minutes": 10})
    nights = {"tonight": "2026-11-20T18:00:00+00:00", "backfill": "2026-11-19T18:00:00+00:00"}
    envs = {name: deployment(tmp_path, name, airflow_db) for name in nights}
    procs = {name: subprocess.Popen([sys.executable, "-c", RUN_ONE, str(ROOT / "dags" / f"{DAG_ID}.py"),
                                     nights[name], conf], env=envs[name], cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
             for name in nights}
    outputs = {name: p.communicate(timeout=900)[0] for name, p in procs.items()}
    states = {name: next((line.split()[-1] for line in out.splitlines() if line.startswith("RUN-STATE")), "crashed")
              for name, out in outputs.items()}
    assert "crashed" not in states.values(), {n: o[-3000:] for n, o in outputs.items()}

    images = [i for i in emulator.admin.table("ecs.images").values()
              if (i.get("Tags") or {}).get("ops:source-instance") == iid and not i["Tags"].get("ops:source-image")]
    torn = {i["ImageId"] for i in images if i.get("_torn")}
    for name, state in states.items():
        rows = report_of(envs[name], nights[name])["rows"]
        reported_ok = {r["image_id"] for r in rows if r["status"] == "success" and r.get("image_id")}
        assert not reported_ok & torn, f"{name} reported torn image(s) {reported_ok & torn} as a good backup"
        if state == "success":
            assert reported_ok, f"{name} succeeded without a backup of {iid}"
    assert "success" in states.values(), (states, {n: o[-3000:] for n, o in outputs.items()})
    # the instance is as it was found: Running, with no pause or lease tag of either run
    emulator.admin.advance(600)
    rec = emulator.admin.table("ecs.instances")[iid]
    assert rec["Status"] == "Running"
    left = [k for k in rec["Tags"] if k in pause.PAUSE_TAG_KEYS or k in lz.LEASE_TAG_KEYS]
    assert not left, left
