"""Fail safe: whatever fails, a backup run leaves every instance in its original power state, thawed, untagged.

End to end under dag.test() against the emulator, with the faults of issue 8: a refused StopInstances with
max_errors=0, a pre-backup command failing on one instance, answers lost after StartInstances/StopInstances
were applied (drop_after), the image task failing while deferred, a run that died with instances paused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pendulum
import pytest

from aliyun_ops.logic import pause

from .test_cross_region_backup import DAG_ID, DESTS, assert_one_complete_copy_each, images_from, report_of

FLEET = {"instances": [
    {"region": "cn-hangzhou", "name": "web", "count": 2, "status": "Running", "tags": {"backup": "daily"}},
    {"region": "cn-beijing", "name": "api", "count": 1, "status": "Running", "tags": {"backup": "daily"}},
    {"region": "cn-hangzhou", "name": "batch", "count": 1, "status": "Stopped", "tags": {"backup": "daily"}},
    {"region": "cn-hangzhou", "name": "scratch", "count": 1, "status": "Running", "tags": {"env": "test"}},
]}
CONF = {"source_regions": ["cn-hangzhou", "cn-beijing"], "destination_regions": DESTS, "poll_interval": 1,
        "timeout_minutes": 30}


def instances(emulator) -> dict[str, dict]:
    return {i["InstanceId"]: i for i in emulator.admin.table("ecs.instances").values()}


@pytest.fixture
def fleet(emulator):
    # snapshots taken 200 simulated seconds after CreateImage (0.2 s real): long enough that a resume which
    # did not wait for them would start the instance first, and the emulator would mark the image torn
    emulator.admin.request("POST", "timings", {"image_snapshot_point": 200})
    emulator.admin.load_fleet(FLEET)
    emulator.admin.advance(300)
    return {iid: rec["Status"] for iid, rec in instances(emulator).items()}


def settle_and_check(emulator, before: dict[str, str]) -> None:
    """Every instance back in its original power state and carrying no pause tag; and no image torn (an
    instance restarted early, before its image's snapshots were taken: the emulator marks the image)."""
    emulator.admin.set_faults({})
    emulator.admin.advance(600)
    torn = [i["ImageId"] for i in emulator.admin.table("ecs.images").values() if i.get("_torn")]
    assert not torn, f"images taken from a disk that was already running again: {torn}"
    now = instances(emulator)
    for iid, status in before.items():
        assert now[iid]["Status"] == status, f"{iid} is {now[iid]['Status']}, was {status}"
        left = sorted(k for k in now[iid]["Tags"] if k.startswith("ops:paused") or k in pause.PAUSE_TAG_KEYS)
        assert not left, f"{iid} still tagged {left}"


def test_refused_stop_with_max_errors_0_restarts_what_was_stopped(run_dag, emulator, fleet):
    # cn-beijing's StopInstances (the first call: regions in name order) is refused; cn-hangzhou's two stop
    emulator.admin.set_faults({"rules": [{"action": "ecs:StopInstances", "kind": "error", "status": 403,
                                          "code": "OperationDenied", "message": "refused", "count": 1}]})
    dag_run = run_dag(DAG_ID, conf={**CONF, "consistency": "stop"})
    assert dag_run.state == "failed"
    report = report_of(dag_run)
    assert report["outcome"] == "failure"
    assert "paused by this run" in report["meta"]
    stops = [c for c in emulator.admin.calls()["recent"] if c["action"] == "ecs:StopInstances"]
    assert len(stops) == 2, stops          # the refused call and the one that stopped two instances
    settle_and_check(emulator, fleet)


def test_failed_pre_command_still_thaws_every_frozen_instance(run_dag, emulator, fleet):
    web = sorted(i for i, r in instances(emulator).items() if r["InstanceName"].startswith("web"))
    emulator.admin.request("POST", "command-behaviour", {"rules": [
        {"match": "pre-backup.d", "instance_ids": [web[0]], "exit_code": 1, "output": "cannot quiesce"}]})
    dag_run = run_dag(DAG_ID, conf={**CONF, "consistency": "command", "max_errors": 0})
    assert dag_run.state == "failed"       # past max_errors: nothing imaged, but everything thawed
    thawed: dict[str, int] = {}
    for inv in emulator.admin.table("ecs.invocations").values():
        if "post-backup" in inv["CommandContent"] or "post-backup" in str(inv["Instances"][0].get("Script")):
            for entry in inv["Instances"]:
                if entry["Status"] == "Success":
                    thawed[entry["InstanceId"]] = thawed.get(entry["InstanceId"], 0) + 1
    running = [i for i, s in fleet.items() if s == "Running" and instances(emulator)[i]["Tags"].get("backup")]
    assert sorted(thawed) == sorted(running), "every instance the pre-command ran on is thawed, the failed one too"
    settle_and_check(emulator, fleet)


@pytest.mark.parametrize("action", ["ecs:StopInstances", "ecs:StartInstances"])
def test_power_answer_lost_after_the_call_was_applied(run_dag, emulator, ecs_client, fleet, action):
    emulator.admin.set_faults({"rules": [{"action": action, "kind": "drop_after", "count": 1}]})
    dag_run = run_dag(DAG_ID, conf={**CONF, "consistency": "stop"})
    assert dag_run.state == "success"
    dropped = [c for c in emulator.admin.calls()["recent"] if c.get("code") == "ConnectionDroppedAfter"]
    assert dropped, "the fault fired"
    report = report_of(dag_run)
    assert report["outcome"] == "success"
    stopped_by_us = [r for r in report["rows"] if r["paused_seconds"] is not None]
    assert len(stopped_by_us) == 3 * len(DESTS)      # the instance that was already Stopped is not ours
    settle_and_check(emulator, fleet)


def test_image_task_failing_while_deferred_still_restarts(run_dag, emulator, fleet):
    # every image build fails: create_images fails after its deferred wait; the teardown restarts the fleet
    backed_up = [i for i, r in instances(emulator).items() if r["Tags"].get("backup") == "daily"]
    emulator.admin.set_faults({"image_create_fail": {"instance_ids": backed_up}})
    dag_run = run_dag(DAG_ID, conf={**CONF, "consistency": "stop"})
    assert dag_run.state == "failed"
    assert report_of(dag_run)["outcome"] == "failure"
    settle_and_check(emulator, fleet)


def test_triggerer_dying_while_images_are_awaited_still_restarts(run_dag, emulator, fleet, monkeypatch):
    """create_images is deferred when its trigger dies (a killed triggerer: the task fails): the teardown
    still starts every instance the run stopped."""
    from aliyun_ops.triggers.ecs_images import ImagesAvailableTrigger

    async def killed(self):
        raise RuntimeError("triggerer killed")
        yield  # pragma: no cover - makes this an async generator

    monkeypatch.setattr(ImagesAvailableTrigger, "run", killed)
    # and no early resume either (as if the worker died right after CreateImage): only the teardown is left
    monkeypatch.setattr("aliyun_ops.operators.ecs_images.resume_early", lambda *a, **k: {})
    dag_run = run_dag(DAG_ID, conf={**CONF, "consistency": "stop"})
    assert dag_run.state == "failed"
    ti = {t.task_id: t.state for t in dag_run.get_task_instances()}
    assert ti["create_images"] == "failed" and ti["resume_instances"] == "success"
    settle_and_check(emulator, fleet)


def test_next_run_resumes_what_an_earlier_run_left_paused(run_dag, emulator, ecs_client, fleet):
    from alibabacloud_ecs20140526 import models as m

    web = sorted(i for i, r in instances(emulator).items() if r["InstanceName"].startswith("web"))
    # an earlier run stopped web[0] and was marked failed before its teardown ran
    earlier = pause.pause_tags(run_key="2026-11-19T18:00:00+00:00", dag_id=DAG_ID, mode="stop",
                               at=datetime.now(UTC) - timedelta(hours=20))
    client = ecs_client("cn-hangzhou")
    client.tag_resources(m.TagResourcesRequest(region_id="cn-hangzhou", resource_type="instance", resource_id=[web[0]],
                                               tag=[m.TagResourcesRequestTag(key=k, value=v)
                                                    for k, v in earlier.items()]))
    client.stop_instance(m.StopInstanceRequest(instance_id=web[0]))
    emulator.admin.advance(300)
    dag_run = run_dag(DAG_ID, conf=CONF, logical_date=pendulum.datetime(2026, 11, 20, 18, tz="UTC"))
    assert dag_run.state == "success"
    report = report_of(dag_run)
    notes = {k: v for k, v in report["meta"].items() if k.startswith("left paused by run")}
    assert len(notes) == 1 and web[0] in next(iter(notes)) and "resumed" in next(iter(notes.values()))
    settle_and_check(emulator, fleet)


def test_explicit_ids_are_not_filtered_by_the_default_tag(run_dag, emulator, ecs_client, fleet):
    scratch = next(i for i, r in instances(emulator).items() if r["InstanceName"].startswith("scratch"))
    dag_run = run_dag(DAG_ID, conf={**CONF, "source_regions": ["cn-hangzhou"], "instance_ids": [scratch],
                                    "concurrency": "10%"})
    assert dag_run.state == "success"
    assert_one_complete_copy_each(emulator, ecs_client, {"cn-hangzhou": [scratch]})


def test_empty_selection_fails_clearly_unless_allowed(run_dag, emulator, fleet):
    conf = {**CONF, "tags": {"backup": "dialy"}}      # a typo
    assert run_dag(DAG_ID, conf=conf).state == "failed"
    assert not any(k in ("ecs:CreateImage", "ecs:StopInstances") for k in emulator.admin.calls()["counters"])
    assert run_dag(DAG_ID, conf={**conf, "allow_empty": True}).state == "success"


def test_name_template_without_instance_id_is_refused_before_any_call(run_dag, emulator, ecs_client, fleet):
    emulator.admin.clear_calls()
    dag_run = run_dag(DAG_ID, conf={**CONF, "image_name_template": "backup-{date}"})
    assert dag_run.state == "failed"
    assert not any(k.startswith("ecs:") for k in emulator.admin.calls()["counters"])
    assert not images_from(ecs_client, "cn-hangzhou", next(iter(fleet)))


def test_rerun_of_the_night_retries_failed_copies_with_a_new_token(run_dag, emulator, ecs_client, fleet):
    """Copies that failed (CreateFailed in one DR region) are made again by a re-run of the same logical date,
    under a new ClientToken and name (the old token would only give the failed copy back)."""
    night = pendulum.datetime(2026, 11, 21, 18, tz="UTC")
    emulator.admin.set_faults({"copy_fail": {"regions": [DESTS[0]]}})
    first = run_dag(DAG_ID, conf={**CONF, "source_regions": ["cn-hangzhou"]}, logical_date=night)
    assert first.state == "failed"
    emulator.admin.set_faults({})
    again = run_dag(DAG_ID, conf={**CONF, "source_regions": ["cn-hangzhou"]}, logical_date=night)
    assert again.state == "success"
    backed_up = sorted(i for i, r in instances(emulator).items()
                       if r["RegionId"] == "cn-hangzhou" and r["Tags"].get("backup") == "daily")
    for iid in backed_up:
        copies = images_from(ecs_client, DESTS[0], iid)
        assert sorted(c.status for c in copies) == ["Available", "CreateFailed"], iid
        assert len(images_from(ecs_client, "cn-hangzhou", iid)) == 1      # the image itself was not redone


def test_rerun_of_the_night_does_not_stop_what_it_already_imaged(run_dag, emulator, fleet):
    night = pendulum.datetime(2026, 11, 22, 18, tz="UTC")
    conf = {**CONF, "consistency": "stop"}
    assert run_dag(DAG_ID, conf=conf, logical_date=night).state == "success"
    emulator.admin.clear_calls()
    assert run_dag(DAG_ID, conf=conf, logical_date=night).state == "success"
    counters = emulator.admin.calls()["counters"]
    assert "ecs:StopInstances" not in counters and "ecs:CreateImage" not in counters
    settle_and_check(emulator, fleet)
