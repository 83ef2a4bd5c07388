"""System test: the backup DAG through a real CeleryExecutor deployment (``make cluster``'s topology).

PostgreSQL (metadata, Celery results) and Redis (broker) on loopback; api-server, scheduler, dag-processor,
triggerer and two Celery workers as separate processes (:class:`deploy.airflow_cluster.AirflowCluster`); the
emulator with the demo fleet. The DAG runs under a key holding only its RAM policy. Skipped, with the reason, only
when PostgreSQL, Redis or a driver is missing.

1. A run goes through the scheduler and the workers; once ``create_images`` is deferred (the triggerer holds it),
   worker 1 is SIGKILLed with its whole process group; the run still succeeds, and the SDK shows one image per
   tagged instance with its copy in the DR region.
2. A backfill of three nights (``airflow backfill create``) completes: one image per instance per night.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pendulum
import pytest
from alibabacloud_ecs20140526 import models as m
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi.models import Config

from deploy.airflow_cluster import AirflowCluster, celery_unavailable
from emulator.control import EmulatorProcess

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "ecs_cross_region_backup"
SOURCE, DEST = "cn-hangzhou", "cn-shanghai"
CONF = {"source_regions": [SOURCE], "destination_regions": [DEST], "poll_interval": 2}
NIGHTS = [pendulum.datetime(2026, 11, d, 2, 0, tz="Asia/Shanghai") for d in (20, 21, 22)]
TIME_SCALE = 600
KEY_ID, KEY_SECRET = "ClusterBackupKey", "cluster-backup-key-secret"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with EmulatorProcess(time_scale=TIME_SCALE, seed_file=str(ROOT / "include" / "demo_fleet.yaml"),
                         data_dir=tmp_path_factory.mktemp("emulator")) as emu:
        policy = json.loads((ROOT / "include" / "ram" / f"{DAG_ID}.json").read_text())
        emu.admin.put_keys({"access_key_id": KEY_ID, "access_key_secret": KEY_SECRET,
                            "principal": f"airflow-{DAG_ID}", "policy": policy})
        yield emu


@pytest.fixture(scope="module")
def cluster(emulator, tmp_path_factory):
    reason = celery_unavailable()
    if reason:
        pytest.skip(f"no CeleryExecutor deployment possible here: {reason}")
    work = tmp_path_factory.mktemp("cluster")
    connection = {"conn_type": "aliyun", "extra": {"access_key_id": KEY_ID, "access_key_secret": KEY_SECRET,
                                                   "region": SOURCE, "endpoint": emulator.base_url}}
    airflow = AirflowCluster(work / "airflow", connection, backend="postgres", executor="celery", workers=2,
                             worker_concurrency=4, extra_env={
                                 # a killed worker's tasks are found within seconds, not the 5-minute default
                                 "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
                                 "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "90",
                                 "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "60",
                                 "ALIYUN_OPS_REPORT_DIR": str(work / "reports")})
    with airflow:
        airflow.prepare_db()
        airflow.start(timeout=300)
        yield airflow
    print(f"cluster logs: {airflow.logs}")


def ecs(emulator, region: str) -> Client:
    return Client(Config(access_key_id=emulator.access_key_id, access_key_secret=emulator.access_key_secret,
                         region_id=region, endpoint=emulator.endpoint, protocol="http"))


def tagged_instances(emulator) -> list[str]:
    return sorted(i["InstanceId"] for i in emulator.admin.table("ecs.instances").values()
                  if i["RegionId"] == SOURCE and i["Tags"].get("backup") == "daily")


def our_images(emulator, region: str) -> list[m.DescribeImagesResponseBodyImagesImage]:
    body = ecs(emulator, region).describe_images(m.DescribeImagesRequest(
        region_id=region, image_owner_alias="self", page_size=100, status="Creating,Waiting,Available",
        tag=[m.DescribeImagesRequestTag(key="ops:managed-by", value="airflow-aliyun-ops")])).body
    return body.images.image if body.images else []


def tags(image) -> dict[str, str]:
    return {t.tag_key: t.tag_value for t in (image.tags.tag if image.tags else [])}


def wait_for(what: str, check, timeout: float, cluster: AirflowCluster):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        assert cluster.alive(), f"every Airflow component died; logs in {cluster.logs}"
        time.sleep(2)
    raise AssertionError(f"{what}: not within {timeout:.0f}s; logs in {cluster.logs}")


def finished(cluster: AirflowCluster, run_id: str) -> str | None:
    state = cluster.run_state(DAG_ID, run_id)
    return state if state in ("success", "failed") else None


def test_backup_survives_a_killed_worker(cluster, emulator):
    cluster.trigger(DAG_ID, CONF, run_id="system__kill")

    def create_images_deferred() -> bool:
        return cluster.task_states(DAG_ID, "system__kill").get(("create_images", -1, 1)) == "deferred"

    wait_for("create_images deferred", create_images_deferred, 300, cluster)
    running = [k for k, v in cluster.task_states(DAG_ID, "system__kill").items() if v == "running"]
    cluster.kill("celery-worker-1")
    assert "celery-worker-1" not in cluster.alive()
    print(f"killed celery-worker-1 while create_images was deferred; running then: {running}")

    state = wait_for("the run to finish", lambda: finished(cluster, "system__kill"), 900, cluster)
    assert state == "success", cluster.task_states(DAG_ID, "system__kill")
    rows = cluster.task_rows(DAG_ID, "system__kill")
    assert any(r["task_id"] == "create_images" and r["state"] == "success" for r in rows)

    instances = tagged_instances(emulator)
    sources = [i for i in our_images(emulator, SOURCE) if tags(i).get("ops:run-id") == "system__kill"]
    assert Counter(tags(i)["ops:source-instance"] for i in sources) == Counter(instances)
    copies = [i for i in our_images(emulator, DEST) if tags(i).get("ops:run-id") == "system__kill"]
    assert sorted(tags(i)["ops:source-image"] for i in copies) == sorted(i.image_id for i in sources)
    assert all(i.status == "Available" and tags(i)["ops:copy-status"] == "complete" for i in copies)
    cluster.start_component("celery-worker-1", note="system test: worker 1 restarted after SIGKILL")


def test_backfill_of_three_nights(cluster, emulator):
    out = cluster.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", NIGHTS[0].isoformat(),
                           "--to-date", NIGHTS[-1].isoformat(), "--dag-run-conf", json.dumps(CONF), timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]

    def backfill_runs() -> list[tuple]:
        return cluster.query("SELECT run_id, state FROM dag_run WHERE dag_id = ? AND run_type = 'backfill'",
                             (DAG_ID,))

    def all_finished() -> list[tuple] | None:
        runs = backfill_runs()
        return runs if len(runs) == len(NIGHTS) and all(s in ("success", "failed") for _, s in runs) else None

    runs = wait_for("three backfill runs to finish", all_finished, 1200, cluster)
    assert all(state == "success" for _, state in runs), runs

    nights = {night.in_timezone("UTC").isoformat() for night in NIGHTS}
    per_night = Counter((tags(i)["ops:source-instance"], tags(i).get("ops:run-key")) for i in our_images(
        emulator, SOURCE) if tags(i).get("ops:run-key") in nights)
    expected = {(iid, night) for iid in tagged_instances(emulator) for night in nights}
    assert set(per_night) == expected, sorted(per_night)
    assert set(per_night.values()) == {1}, per_night
