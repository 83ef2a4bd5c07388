"""End-to-end: ecs_update_image (OOS ACS-ECS-UpdateImage with a test stage and an approval) under dag.test() against
the emulator. After every run, whatever happened, no temporary instance or security group is left."""

from __future__ import annotations

import threading

import pytest
from alibabacloud_ecs20140526 import models as m

from tests.dags.hitl import respond, wait_for_input
from tests.dags.reports import report_json

DAG_ID = "ecs_update_image"
REGION = "cn-hangzhou"
ACCOUNT = "1987654321098765"     # another account (the emulator is 1234567890123456)


@pytest.fixture
def base(emulator) -> str:
    emulator.admin.load_fleet({"images": [
        {"region": REGION, "name": "base-2026-11", "tags": {"role": "golden-base"},
         "creation_time": "2026-11-01T00:00:00Z"}]})
    return next(i["ImageId"] for i in emulator.admin.table("ecs.images").values() if i.get("ImageName") == "base-2026-11")


def conf(**extra):
    return {"poll_interval": 1, "copy_to_regions": ["cn-shanghai", "cn-beijing"], "share_with_accounts": [ACCOUNT],
            **extra}


def golden(emulator) -> list[dict]:
    return [i for i in emulator.admin.table("ecs.images").values()
            if (i.get("Tags") or {}).get("ops:policy") == "ecs-golden-image"]


def nothing_temporary_left(emulator) -> None:
    instances = [i["InstanceId"] for i in emulator.admin.table("ecs.instances").values()
                 if (i.get("Tags") or {}).get("ops:temporary") == "true"]
    groups = [g for g, rec in emulator.admin.table("ecs.security_groups").items()
              if (rec.get("Tags") or {}).get("ops:temporary") == "true"]
    assert not instances and not groups, (instances, groups)


def run_answering(run_dag, answer: str | None, **kwargs):
    seen: dict = {}

    def human():
        run_id = wait_for_input(DAG_ID, "approve")
        seen["asked"] = True
        respond(DAG_ID, run_id, "approve", answer)

    responder = threading.Thread(target=human, daemon=True)
    if answer:
        responder.start()
    run = run_dag(DAG_ID, retries=0, **kwargs)
    if answer:
        responder.join(timeout=10)
    return run, seen


def test_update_test_approve_and_publish(run_dag, emulator, ecs_client, base):
    run, seen = run_answering(run_dag, "Approve", conf=conf())
    assert run.state == "success" and seen.get("asked")
    images = {i["RegionId"]: i for i in golden(emulator)}
    assert sorted(images) == ["cn-beijing", "cn-hangzhou", "cn-shanghai"]
    assert all(i["Status"] == "Available" for i in images.values())
    source = images[REGION]
    assert source["Tags"]["ops:source-image"] == base and len(source["Tags"]["ops:script-sha256"]) == 64
    assert "ops:verified-at" in source["Tags"]                      # the test stage proved it boots
    for region, image in images.items():
        shared = ecs_client(region).describe_image_share_permission(m.DescribeImageSharePermissionRequest(
            region_id=region, image_id=image["ImageId"])).body.to_map()
        assert ACCOUNT in str(shared), (region, shared)
    steps = {r["step"]: r for r in report_json(DAG_ID, run)["rows"]}
    assert steps["publish"]["status"] == "success" and steps["update"]["status"] == "success"
    assert "updated:" in steps["update"]["detail"]
    nothing_temporary_left(emulator)


def test_a_failing_update_command_makes_no_image(run_dag, emulator, base):
    emulator.admin.request("POST", "command-behaviour", {"rules": [
        {"match": "golden image update", "exit_code": 1, "output": "dnf: repository unreachable"}]})
    run, _ = run_answering(run_dag, None, conf=conf())
    assert run.state == "failed" and golden(emulator) == []
    assert "repository unreachable" in {r["step"]: r for r in report_json(DAG_ID, run)["rows"]}["update"]["detail"]
    nothing_temporary_left(emulator)


def test_a_failed_stop_still_releases_the_build_instance(run_dag, emulator, base):
    emulator.admin.set_faults({"rules": [{"action": "ecs:StopInstances", "kind": "error", "status": 403,
                                          "code": "OperationDenied", "rate": 1.0, "dry_run": False}]})
    run, _ = run_answering(run_dag, None, conf=conf())
    assert run.state == "failed" and golden(emulator) == []
    nothing_temporary_left(emulator)


def test_a_failing_test_stage_deletes_the_image_and_publishes_nothing(run_dag, emulator, base):
    emulator.admin.request("POST", "command-behaviour", {"rules": [
        {"match": "aliyun-ops health check", "exit_code": 1, "output": "nginx is down"}]})
    run, _ = run_answering(run_dag, None, conf=conf())
    assert run.state == "failed"
    assert [i for i in golden(emulator) if i.get("Status") != "Deleted"] == []
    steps = {r["step"]: r for r in report_json(DAG_ID, run)["rows"]}
    assert steps["kept"]["status"] == "failed" and steps["publish"]["status"] == "skipped"
    nothing_temporary_left(emulator)


def test_a_rejected_approval_publishes_nothing(run_dag, emulator, base):
    run, seen = run_answering(run_dag, "Reject", conf=conf())
    assert run.state == "failed" and seen.get("asked")
    assert {i["RegionId"] for i in golden(emulator)} == {REGION}    # made and tested, never copied nor shared
    nothing_temporary_left(emulator)


def test_an_existing_target_name_creates_nothing(run_dag, emulator, base):
    emulator.admin.load_fleet({"images": [{"region": REGION, "name": "golden-fixed", "tags": {}}]})
    run, _ = run_answering(run_dag, None, conf=conf(image_name_template="golden-fixed"))
    assert run.state == "failed"
    assert emulator.admin.calls()["counters"].get("ecs:RunInstances", {}).get("calls", 0) == 0
