"""End-to-end: ecs_verify_backups under dag.test() against the emulator: a bootable copy is tagged verified, a
copy whose health command fails is tagged failed, and no temporary instance is left in any case."""

from __future__ import annotations

import pendulum

from aliyun_ops.operators.ecs import ReleaseTemporaryResourcesOperator
from tests.dags.reports import report_json

DAG_ID = "ecs_verify_backups"
DR = "cn-shanghai"
POLICY = "ecs-cross-region-backup"


def load_copies(emulator, count: int = 2) -> dict[str, str]:
    """``count`` complete DR copies (of instances i-web000N) plus an older copy and an incomplete one."""
    images = []
    for n in range(count):
        tags = {"ops:managed-by": "airflow-aliyun-ops", "ops:policy": POLICY, "ops:source-instance": f"i-web000{n}",
                "ops:source-image": f"m-src{n}", "ops:copy-status": "complete"}
        images.append({"region": DR, "name": f"copy-{n}", "tags": tags, "creation_time": "2026-11-20T00:00:00Z"})
        images.append({"region": DR, "name": f"older-{n}", "tags": tags, "creation_time": "2026-11-10T00:00:00Z"})
    incomplete = {"ops:managed-by": "airflow-aliyun-ops", "ops:policy": POLICY, "ops:source-instance": "i-web0009",
                  "ops:source-image": "m-src9"}
    images.append({"region": DR, "name": "copy-incomplete", "tags": incomplete})
    emulator.admin.load_fleet({"images": images})
    return {i["ImageName"]: i["ImageId"] for i in emulator.admin.table("ecs.images").values() if i.get("ImageName")}


def image_tags(emulator, image_id: str) -> dict:
    return emulator.admin.table("ecs.images")[image_id].get("Tags") or {}


def temporary_instances(emulator) -> list[str]:
    return [i["InstanceId"] for i in emulator.admin.table("ecs.instances").values()
            if "ops:verify-of" in (i.get("Tags") or {}) and i.get("Status") != "Deleted"]


def test_bootable_copies_are_tagged_verified_and_nothing_is_left(run_dag, emulator):
    ids = load_copies(emulator)
    run = run_dag(DAG_ID)                                      # defaults: every region
    assert run.state == "success"
    for n in range(2):
        assert "ops:verified-at" in image_tags(emulator, ids[f"copy-{n}"])
        assert "ops:verified-at" not in image_tags(emulator, ids[f"older-{n}"])
    assert "ops:verified-at" not in image_tags(emulator, ids["copy-incomplete"])
    assert temporary_instances(emulator) == []

    # the next backup report shows the achieved RPO: the age of the newest verified copy per instance and region
    from aliyun_ops.logic.report import ReportRow
    from aliyun_ops.pipelines.backup_report import add_verified_rpo

    rows = [ReportRow("i-web0000", destination_region=DR), ReportRow("i-web0007", destination_region=DR)]
    line = add_verified_rpo(rows, [DR], POLICY, {"logical_date": pendulum.datetime(2026, 11, 21, tz="UTC")})
    assert rows[0].verified_rpo_hours == 24.0 and rows[1].verified_rpo_hours is None
    assert "worst 24.0 h" in line["achieved RPO (verified copies)"] and "never verified: 1" in str(line)


def test_a_copy_whose_health_command_fails_is_tagged_failed(run_dag, emulator):
    ids = load_copies(emulator, count=1)
    emulator.admin.request("POST", "command-behaviour", {"rules": [
        {"match": "healthy", "exit_code": 3, "output": "postgres did not start"}]})
    run = run_dag(DAG_ID, conf={"regions": [DR], "health_retry_seconds": 1})
    assert run.state == "failed"
    tags = image_tags(emulator, ids["copy-0"])
    assert "ops:verified-at" not in tags and "postgres did not start" in tags["ops:verify-failed"]
    assert temporary_instances(emulator) == []


def test_a_temporary_instance_the_verify_task_could_not_release_is_swept_by_the_teardown(run_dag, emulator):
    ids = load_copies(emulator, count=1)
    # the first DeleteInstance is the permission check before booting (DryRun): it passes, then the release fails
    emulator.admin.set_faults({"rules": [{"action": "ecs:DeleteInstance", "kind": "error", "status": 403,
                                          "code": "IncorrectInstanceStatus", "count": 2}]})
    run = run_dag(DAG_ID, conf={"regions": [DR], "health_retry_seconds": 1})
    assert run.state == "success"                       # verified, and the teardown released what was left
    assert "ops:verified-at" in image_tags(emulator, ids["copy-0"])
    assert temporary_instances(emulator) == []
    assert emulator.admin.calls()["counters"]["ecs:DeleteInstance"]["calls"] >= 2


def test_a_clone_that_cannot_be_released_fails_the_run_and_the_report_names_it(run_dag, emulator):
    """Every real DeleteInstance fails (the DryRun check passes): the booted clone of a production server keeps
    running, so the run must fail, and the report must name the instance, never say "none left over"."""
    ids = load_copies(emulator, count=1)
    emulator.admin.set_faults({"rules": [{"action": "ecs:DeleteInstance", "kind": "error", "status": 403,
                                          "code": "IncorrectInstanceStatus", "rate": 1.0}]})
    run = run_dag(DAG_ID, conf={"regions": [DR], "health_retry_seconds": 1}, retries=0)
    assert run.state == "failed"
    left = temporary_instances(emulator)
    assert len(left) == 1 and "ops:verified-at" in image_tags(emulator, ids["copy-0"])
    report = report_json(DAG_ID, run)
    assert left[0] in report["meta"]["NOT RELEASED"]
    assert "none left over" not in report["meta"]["temporary resources released"]


def test_the_clone_boots_in_a_closed_group_of_its_own_which_is_deleted_after(run_dag, emulator):
    """Never the VPC's default group: a clone of a production server must not reach production. The group is the
    run's own (tagged temporary), lets nothing in and nothing out but Alibaba's internal services, and is gone
    after the run."""
    import threading
    import time

    load_copies(emulator, count=1)
    before = set(emulator.admin.table("ecs.security_groups"))
    seen: dict[str, dict] = {}
    done = threading.Event()

    def watch():                                   # the clone lives only during the run: look while it does
        while not done.is_set():
            groups = emulator.admin.table("ecs.security_groups")
            for inst in emulator.admin.table("ecs.instances").values():
                if "ops:verify-of" in (inst.get("Tags") or {}):
                    seen[inst["InstanceId"]] = {g: groups.get(g) for g in inst.get("SecurityGroupIds") or []}
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = run_dag(DAG_ID, conf={"regions": [DR], "health_retry_seconds": 1})
    finally:
        done.set()
        watcher.join(timeout=5)
    assert run.state == "success"
    assert seen, "no clone was seen"
    for clone, groups in seen.items():
        ((group_id, group),) = groups.items()
        assert group_id not in before, f"{clone} booted in a pre-existing group {group_id}"
        tags = group["Tags"]
        assert tags["ops:temporary"] == "true" and tags["ops:run-id"] == run.run_id
        rules = group.get("Rules") or []
        assert not [r for r in rules if r.get("Direction") == "ingress"], rules
        egress = {(r.get("DestCidrIp"), r.get("Policy", "").lower()) for r in rules if r.get("Direction") == "egress"}
        assert egress == {("100.100.0.0/16", "accept"), ("0.0.0.0/0", "drop")}, rules
    assert set(emulator.admin.table("ecs.security_groups")) == before        # released by the teardown
    assert temporary_instances(emulator) == []


KILLABLE_VERIFY = """
import sys
from types import SimpleNamespace
sys.path[:0] = ["plugins", "."]
from aliyun_ops.operators.ecs_verify import VerifyBackupsOperator

ti = SimpleNamespace(dag_id="ecs_verify_backups", task_id="verify", map_index=-1, try_number=1)
ti.xcom_push = lambda key, value: None
copies = [{"region": sys.argv[1], "image_id": sys.argv[2], "instance_id": "i-web0000"}]
VerifyBackupsOperator(task_id="verify", copies=copies, health_command="sleep 3600 # healthy", health_timeout=86400,
                      poll_interval=0.2).execute({"ti": ti, "run_id": "manual__killed"})
"""


def test_a_verify_task_killed_mid_way_leaves_an_instance_the_teardown_releases(aliyun_conn, emulator):
    """SIGKILL (no finally runs) while the health command runs, then the DAG's teardown step for that run."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from types import SimpleNamespace

    ids = load_copies(emulator, count=1)
    emulator.admin.request("POST", "command-behaviour", {"rules": [{"match": "sleep 3600", "duration": 36000}]})
    worker = subprocess.Popen([sys.executable, "-c", KILLABLE_VERIFY, DR, ids["copy-0"]], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                i.get("Status") == "Running" for i in emulator.admin.table("ecs.instances").values()
                if "ops:verify-of" in (i.get("Tags") or {})):
            time.sleep(0.2)
        assert len(temporary_instances(emulator)) == 1, "the temporary instance never ran"
        time.sleep(1)                                             # inside the health check now
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    assert len(temporary_instances(emulator)) == 1                # killed: nobody released it
    groups_before = len(emulator.admin.table("ecs.security_groups"))
    ti = SimpleNamespace(dag_id=DAG_ID, task_id="release_temporary_resources", map_index=-1, try_number=1)
    ti.xcom_push = lambda key, value: None
    ReleaseTemporaryResourcesOperator(task_id="release_temporary_resources", regions=[DR], deferrable=False,
                                      poll_interval=0.5).execute({"ti": ti, "run_id": "manual__killed"})
    assert temporary_instances(emulator) == []
    assert len(emulator.admin.table("ecs.security_groups")) == groups_before - 1     # its closed group too


def test_the_next_run_sweeps_what_a_killed_run_left_only_after_the_grace_period(aliyun_conn, emulator):
    """A killed run whose teardown never ran leaves a clone and its group: the next run's sweep releases them once
    older than the grace period, at the run's logical date; never an untagged resource, one of another DAG, or a
    young one."""
    from datetime import timedelta
    from types import SimpleNamespace

    from aliyun_ops.actions.temporary import isolated_security_group, temporary_tags
    from aliyun_ops.hooks.ecs import EcsHook

    hook = EcsHook()
    dead = {"ti": SimpleNamespace(dag_id=DAG_ID, task_id="verify"), "run_id": "manual__dead"}
    vsw = hook.default_vswitch(DR)
    group = isolated_security_group(hook, dead, DR, vsw["VpcId"], purpose="verify")
    image = next(i["ImageId"] for i in emulator.admin.table("ecs.images").values() if i.get("RegionId") == DR)
    clone = hook.run_instances(DR, image, "ecs.t6-c1m1.large", v_switch_id=vsw["VSwitchId"], security_group_id=group,
                               tags=temporary_tags(dead, "verify"))[0]
    other_dag = hook.run_instances(DR, image, "ecs.t6-c1m1.large",
                                   tags=temporary_tags({**dead, "ti": SimpleNamespace(dag_id="other_dag")}, "x"))[0]
    untagged = hook.run_instances(DR, image, "ecs.t6-c1m1.large")[0]
    emulator.admin.advance(60)
    created = pendulum.parse(hook.describe_instances(DR, instance_ids=[clone])[0]["CreationTime"])

    def sweep(at):
        ti = SimpleNamespace(dag_id=DAG_ID, task_id="sweep_leftovers", map_index=-1, try_number=1)
        ti.xcom_push = lambda key, value: None
        return ReleaseTemporaryResourcesOperator(task_id="sweep_leftovers", regions=[DR], scope="stale", grace_hours=6,
                                                 deferrable=False, poll_interval=0.5).execute(
            {"ti": ti, "run_id": "scheduled__next", "logical_date": at})

    assert sweep(created + timedelta(hours=5)) == []                # young: left alone
    alive = {i["InstanceId"] for i in hook.describe_instances(DR)}
    assert {clone, other_dag, untagged} <= alive
    rows = sweep(created + timedelta(hours=7))
    assert sorted((r["resource_type"], r["resource_id"], r["status"]) for r in rows) == \
        sorted([("instance", clone, "success"), ("securitygroup", group, "success")])
    alive = {i["InstanceId"] for i in hook.describe_instances(DR)}
    assert clone not in alive and {other_dag, untagged} <= alive
    assert not hook.describe_security_groups(DR, tags={"ops:run-id": "manual__dead"})
