"""End-to-end: ecs_restore_system_disk under dag.test() against the emulator: undo snapshot, checks before any
change, fallbacks, power state, re-runs and the approval."""

from __future__ import annotations

import threading

import pendulum
import pytest
from alibabacloud_ecs20140526 import models as m

from tests.dags.hitl import respond, wait_for_input
from tests.dags.reports import report_json

DAG_ID = "ecs_restore_system_disk"
REGION = "cn-hangzhou"
NOW = pendulum.datetime(2026, 11, 20, 12, 0, tz="UTC")


def iso(days_before: float) -> str:
    return NOW.subtract(seconds=int(days_before * 86400)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def web(emulator):
    """One instance (Running unless a test stops it) with two backups and a backup of another instance."""
    emulator.admin.load_fleet({"instances": [
        {"region": REGION, "name": "web", "count": 1, "status": "Running"},
        {"region": REGION, "name": "db", "count": 1, "status": "Running"}]})
    by_name = {i["InstanceName"].split("-")[0]: i["InstanceId"] for i in emulator.admin.table("ecs.instances").values()}
    iid, other = by_name["web"], by_name["db"]

    def tags(instance):
        return {"ops:managed-by": "airflow-aliyun-ops", "ops:source-instance": instance}

    emulator.admin.load_fleet({"images": [
        {"region": REGION, "name": "web-old", "creation_time": iso(3), "tags": tags(iid)},
        {"region": REGION, "name": "web-newest", "creation_time": iso(1), "tags": tags(iid)},
        {"region": REGION, "name": "db-backup", "creation_time": iso(1), "tags": tags(other)},
        {"region": REGION, "name": "golden", "creation_time": iso(30), "tags": {"role": "golden"}}]})
    images = {i["ImageName"]: i["ImageId"] for i in emulator.admin.table("ecs.images").values() if i.get("ImageName")}
    return {"id": iid, "images": images}


def conf(web, **extra):
    return {"instance_id": web["id"], "confirm_instance_id": web["id"], "require_approval": False,
            "poll_interval": 1, **extra}


def system_disk(ecs_client, iid):
    return ecs_client(REGION).describe_disks(m.DescribeDisksRequest(
        region_id=REGION, instance_id=iid, disk_type="system")).body.disks.disk[0]


def status(emulator, iid):
    return emulator.admin.table("ecs.instances")[iid]["Status"]


def undo_snapshots(ecs_client, iid):
    body = ecs_client(REGION).describe_snapshots(m.DescribeSnapshotsRequest(
        region_id=REGION, max_results=100, tag=[m.DescribeSnapshotsRequestTag(key="ops:undo-for", value=iid)])).body
    return body.snapshots.snapshot


def calls(emulator, action):
    return emulator.admin.calls()["counters"].get(f"ecs:{action}", {}).get("calls", 0)


def test_restore_from_the_newest_backup_keeps_an_undo_and_a_second_run_restores_again(run_dag, emulator,
                                                                                        ecs_client, web):
    before = system_disk(ecs_client, web["id"]).disk_id
    run = run_dag(DAG_ID, conf=conf(web))
    assert run.state == "success"
    assert system_disk(ecs_client, web["id"]).image_id == web["images"]["web-newest"]
    assert status(emulator, web["id"]) == "Running"
    undo = undo_snapshots(ecs_client, web["id"])
    assert len(undo) == 1 and undo[0].source_disk_id == before
    assert "ops:paused-by" not in emulator.admin.table("ecs.instances")[web["id"]]["Tags"]

    again = run_dag(DAG_ID, conf=conf(web), logical_date=NOW)        # a new run restores again
    assert again.state == "success"
    assert calls(emulator, "ReplaceSystemDisk") == 2 and len(undo_snapshots(ecs_client, web["id"])) == 2


@pytest.mark.parametrize("image,message", [("db-backup", "a backup of"), ("golden", "not one of our backups")])
def test_a_foreign_image_is_refused_before_any_change(run_dag, emulator, web, image, message):
    run = run_dag(DAG_ID, conf=conf(web, image_id=web["images"][image]))
    assert run.state == "failed"
    for action in ("StopInstances", "StopInstance", "CreateSnapshot", "ReplaceSystemDisk"):
        assert calls(emulator, action) == 0
    assert status(emulator, web["id"]) == "Running"


def test_a_typo_in_the_confirmation_changes_nothing(run_dag, emulator, web):
    run = run_dag(DAG_ID, conf={**conf(web), "confirm_instance_id": "i-typo"})
    assert run.state == "failed" and calls(emulator, "ReplaceSystemDisk") == 0


def test_a_failed_replace_falls_back_to_the_undo_snapshot_and_the_instance_ends_running(run_dag, emulator,
                                                                                       ecs_client, web):
    emulator.admin.set_faults({"rules": [{"action": "ecs:ReplaceSystemDisk", "kind": "error", "status": 403,
                                          "code": "InvalidSystemDiskCategory.ValueNotSupported", "count": 1}]})
    run = run_dag(DAG_ID, conf=conf(web))
    assert run.state == "failed"                  # the restore did not happen, even though the fallback worked
    disk = system_disk(ecs_client, web["id"])
    undo_image = ecs_client(REGION).describe_images(m.DescribeImagesRequest(
        region_id=REGION, image_id=disk.image_id)).body.images.image[0]
    assert undo_image.image_name.startswith("undo-")
    assert status(emulator, web["id"]) == "Running"


def test_a_failed_health_check_keeps_the_restored_disk_and_fails_the_run(run_dag, emulator, ecs_client, web):
    """The fallback image is for a failed replace only: after a good replace, a failed health check is reported,
    the restored disk stays, and the fallback image is never used."""
    emulator.admin.request("POST", "command-behaviour", {"rules": [
        {"match": "healthy", "exit_code": 1, "output": "nginx is down"}]})
    run = run_dag(DAG_ID, conf=conf(web, fallback_image_id=web["images"]["web-old"]), retries=0)
    assert run.state == "failed"
    assert system_disk(ecs_client, web["id"]).image_id == web["images"]["web-newest"]
    assert status(emulator, web["id"]) == "Running"
    row = report_json(DAG_ID, run)["rows"][0]
    assert row["status"] == "failed" and "health check failed" in row["reason"] and "nginx is down" in row["reason"]
    assert row["fallback_image_id"] == ""
    assert calls(emulator, "ReplaceSystemDisk") == 1


def test_rollback_on_a_failed_health_check_uses_the_undo_snapshot_never_the_fallback_image(run_dag, emulator,
                                                                                           ecs_client, web):
    before = system_disk(ecs_client, web["id"]).image_id
    emulator.admin.request("POST", "command-behaviour", {"rules": [
        {"match": "healthy", "exit_code": 1, "output": "nginx is down"}]})
    run = run_dag(DAG_ID, conf=conf(web, fallback_image_id=web["images"]["web-old"],
                                    rollback_on_failed_health=True), retries=0)
    assert run.state == "failed"
    image_id = system_disk(ecs_client, web["id"]).image_id
    assert image_id not in (web["images"]["web-old"], web["images"]["web-newest"], before)
    undo_image = ecs_client(REGION).describe_images(m.DescribeImagesRequest(
        region_id=REGION, image_id=image_id)).body.images.image[0]
    assert undo_image.image_name.startswith("undo-")              # made from the undo snapshot
    assert status(emulator, web["id"]) == "Running"


def test_a_health_command_failing_once_while_booting_is_retried_without_a_fallback(run_dag, emulator, ecs_client,
                                                                                     web):
    emulator.admin.request("POST", "command-behaviour", {"rules": [
        {"match": "healthy", "exit_code": 1, "output": "systemd state: starting", "count": 1}]})
    run = run_dag(DAG_ID, conf=conf(web), retries=0)
    assert run.state == "success"
    assert system_disk(ecs_client, web["id"]).image_id == web["images"]["web-newest"]
    assert calls(emulator, "ReplaceSystemDisk") == 1 and status(emulator, web["id"]) == "Running"
    assert "try 2" in report_json(DAG_ID, run)["rows"][0]["health"]


def test_a_lost_answer_to_the_real_start_keeps_the_restore(run_dag, emulator, ecs_client, web):
    """StartInstance is applied but its answer is lost (the DryRun permission check before it is left alone): the
    retry meets IncorrectInstanceStatus, and the restore still succeeds on the restored image, without fallback."""
    emulator.admin.set_faults({"rules": [
        {"action": "ecs:StartInstance", "kind": "drop_after", "count": 1, "dry_run": False}]})
    run = run_dag(DAG_ID, conf=conf(web), retries=0)
    assert run.state == "success"
    assert system_disk(ecs_client, web["id"]).image_id == web["images"]["web-newest"]
    assert calls(emulator, "ReplaceSystemDisk") == 1 and status(emulator, web["id"]) == "Running"
    starts = [c["code"] for c in emulator.admin.request("GET", "calls", action="ecs:StartInstance")["recent"]]
    assert "ConnectionDroppedAfter" in starts and "IncorrectInstanceStatus" in starts, starts


def test_a_second_restore_of_an_instance_another_run_holds_is_refused_with_nothing_changed(run_dag, emulator,
                                                                                            ecs_client, web):
    """Two restores of one instance approved together: the one that finds the other's live lease stops nothing,
    snapshots nothing, replaces nothing, and says who holds the instance."""
    until = pendulum.now("UTC").add(hours=2).isoformat()
    ecs_client(REGION).tag_resources(m.TagResourcesRequest(
        region_id=REGION, resource_type="instance", resource_id=[web["id"]], tag=[
            m.TagResourcesRequestTag(key="ops:lease-holder", value=f"{DAG_ID}|manual__other|20261120T100000.000000"),
            m.TagResourcesRequestTag(key="ops:lease-until", value=until),
            m.TagResourcesRequestTag(key="ops:lease-purpose", value="restore")]))
    run = run_dag(DAG_ID, conf=conf(web), retries=0)
    assert run.state == "failed"
    for action in ("StopInstances", "StopInstance", "CreateSnapshot", "ReplaceSystemDisk"):
        assert calls(emulator, action) == 0, action
    assert status(emulator, web["id"]) == "Running"
    tags = emulator.admin.table("ecs.instances")[web["id"]]["Tags"]
    assert tags["ops:lease-holder"].startswith(f"{DAG_ID}|manual__other|")      # the other run's lease is untouched
    assert "manual__other" in report_json(DAG_ID, run)["rows"][0]["reason"]


def test_the_lease_is_released_after_a_restore(run_dag, emulator, ecs_client, web):
    run = run_dag(DAG_ID, conf=conf(web))
    assert run.state == "success"
    tags = emulator.admin.table("ecs.instances")[web["id"]]["Tags"]
    assert not any(k.startswith("ops:lease") for k in tags), tags


def test_an_instance_that_was_stopped_ends_stopped(run_dag, emulator, ecs_client, web):
    ecs_client(REGION).stop_instances(m.StopInstancesRequest(region_id=REGION, instance_id=[web["id"]]))
    emulator.admin.advance(600)
    assert status(emulator, web["id"]) == "Stopped"
    run = run_dag(DAG_ID, conf=conf(web))
    assert run.state == "success"
    assert system_disk(ecs_client, web["id"]).image_id == web["images"]["web-newest"]
    assert status(emulator, web["id"]) == "Stopped" and calls(emulator, "StartInstances") == 0
    assert calls(emulator, "StartInstance") == 0


@pytest.mark.parametrize("answer", ["Approve", "Reject"])
def test_a_manual_run_waits_for_approval(run_dag, emulator, ecs_client, web, answer):
    seen: dict = {}

    def human():
        run_id = wait_for_input(DAG_ID, "approve")
        seen["replaced_while_waiting"] = calls(emulator, "ReplaceSystemDisk")
        respond(DAG_ID, run_id, "approve", answer)

    responder = threading.Thread(target=human, daemon=True)
    responder.start()
    run = run_dag(DAG_ID, conf=conf(web, require_approval=True))
    responder.join(timeout=10)
    assert seen["replaced_while_waiting"] == 0
    if answer == "Approve":
        assert run.state == "success"
        assert system_disk(ecs_client, web["id"]).image_id == web["images"]["web-newest"]
    else:
        assert run.state == "failed"
        assert calls(emulator, "ReplaceSystemDisk") == 0 and calls(emulator, "CreateSnapshot") == 0
        assert status(emulator, web["id"]) == "Running"


def test_an_instance_stopped_while_the_approval_waits_stays_stopped(run_dag, emulator, ecs_client, web):
    """The power state is read when the instance is stopped, after the approval, not when the check ran."""
    def human():
        run_id = wait_for_input(DAG_ID, "approve")
        ecs_client(REGION).stop_instance(m.StopInstanceRequest(instance_id=web["id"]))   # the on-call, meanwhile
        emulator.admin.advance(600)
        respond(DAG_ID, run_id, "approve", "Approve")

    responder = threading.Thread(target=human, daemon=True)
    responder.start()
    run = run_dag(DAG_ID, conf=conf(web, require_approval=True))
    responder.join(timeout=10)
    assert run.state == "success"
    assert system_disk(ecs_client, web["id"]).image_id == web["images"]["web-newest"]
    assert status(emulator, web["id"]) == "Stopped"
    assert calls(emulator, "StartInstance") == 0 and calls(emulator, "StartInstances") == 0


def test_throttling_server_errors_and_lost_answers_do_not_change_the_outcome(run_dag, emulator, ecs_client, web):
    """Every disruptive call of a restore meets a fault once: throttled, a 503, an answer lost after the call was
    applied (ClientTokens make the retries land on the same snapshot and disk). Same result as a clean run."""
    emulator.admin.set_faults({"rules": [
        {"action": "ecs:StopInstances", "kind": "drop_after", "count": 1},
        {"action": "ecs:CreateSnapshot", "kind": "throttle", "count": 2, "retry_after_ms": 50},
        {"action": "ecs:ReplaceSystemDisk", "kind": "drop_after", "count": 1},
        {"action": "ecs:DescribeDisks", "kind": "error", "status": 503, "code": "ServiceUnavailable", "count": 2},
        {"action": "ecs:StartInstance", "kind": "drop", "count": 1}]})
    run = run_dag(DAG_ID, conf=conf(web))
    assert run.state == "success"
    assert system_disk(ecs_client, web["id"]).image_id == web["images"]["web-newest"]
    assert status(emulator, web["id"]) == "Running"
    assert len(undo_snapshots(ecs_client, web["id"])) == 1          # the throttled create made one snapshot
    disks = [d for d in emulator.admin.table("ecs.disks").values()
             if d.get("InstanceId") == web["id"] and d.get("Type") == "system"]
    assert len(disks) == 1, disks                                  # the lost replace answer made one disk
    counters = emulator.admin.calls()["counters"]                  # every fault was met, and retried
    assert counters["ecs:CreateSnapshot"]["codes"].get("Throttling.User") == 2
    assert counters["ecs:DescribeDisks"]["codes"].get("ServiceUnavailable") == 2
    for action in ("StopInstances", "ReplaceSystemDisk", "StartInstance"):
        assert counters[f"ecs:{action}"]["calls"] >= 2, (action, counters[f"ecs:{action}"])
