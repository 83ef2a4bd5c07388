"""End-to-end: the ecs_cross_region_backup DAG under dag.test() against the emulator."""

from __future__ import annotations

import pendulum
import pytest
from alibabacloud_ecs20140526 import models as m

DAG_ID = "ecs_cross_region_backup"
DESTS = ["cn-shanghai", "cn-shenzhen"]
FLEET = {"instances": [
    {"region": "cn-hangzhou", "name": "web", "count": 3, "status": "Running", "tags": {"backup": "daily"},
     "system_disk_size": 40},
    {"region": "cn-beijing", "name": "api", "count": 2, "status": "Running", "tags": {"backup": "daily"},
     "system_disk_size": 20, "data_disks": [{"size": 50}]},
    {"region": "cn-hangzhou", "name": "scratch", "count": 1, "status": "Running", "tags": {"env": "test"}},
]}
BASE_CONF = {"source_regions": ["cn-hangzhou", "cn-beijing"], "destination_regions": DESTS, "poll_interval": 1,
             "timeout_minutes": 30}
ALL_STATUSES = "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated"


def tagged_instances(emulator, region, tag=("backup", "daily")):
    return sorted(i["InstanceId"] for i in emulator.admin.table("ecs.instances").values()
                  if i["RegionId"] == region and i["Tags"].get(tag[0]) == tag[1])


def images_from(ecs_client, region, instance_id):
    body = ecs_client(region).describe_images(m.DescribeImagesRequest(
        region_id=region, image_owner_alias="self", status=ALL_STATUSES, page_size=100,
        tag=[m.DescribeImagesRequestTag(key="ops:source-instance", value=instance_id)])).body
    return body.images.image if body.images else []


def tags_of(image):
    return {t.tag_key: t.tag_value for t in (image.tags.tag if image.tags else [])}


def report_of(dag_run):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=DAG_ID, run_id=dag_run.run_id, task_id="report",
                                                 key="report").first()
        return XComModel.deserialize_value(row) if row else None


def assert_one_complete_copy_each(emulator, ecs_client, instance_ids_by_region):
    for region, ids in instance_ids_by_region.items():
        for iid in ids:
            sources = images_from(ecs_client, region, iid)
            assert len(sources) == 1, f"{iid}: {len(sources)} source images"
            for dest in DESTS:
                copies = images_from(ecs_client, dest, iid)
                assert len(copies) == 1, f"{iid} -> {dest}: {len(copies)} copies"
                copy = copies[0]
                assert copy.status == "Available"
                tags = tags_of(copy)
                assert tags["ops:managed-by"] == "airflow-aliyun-ops"
                assert tags["ops:copy-status"] == "complete"
                assert tags["ops:source-region"] == region
                assert tags["ops:source-image"] == sources[0].image_id


@pytest.fixture
def fleet(emulator):
    emulator.admin.load_fleet(FLEET)
    return {r: tagged_instances(emulator, r) for r in ("cn-hangzhou", "cn-beijing")}


def test_backup_two_source_regions_two_destinations(run_dag, emulator, ecs_client, fleet):
    dag_run = run_dag(DAG_ID, conf=BASE_CONF)
    assert dag_run.state == "success"
    assert_one_complete_copy_each(emulator, ecs_client, fleet)
    report = report_of(dag_run)
    assert report["outcome"] == "success"
    assert len(report["rows"]) == 5 * len(DESTS)
    untagged = tagged_instances(emulator, "cn-hangzhou", ("env", "test"))
    assert not images_from(ecs_client, "cn-hangzhou", untagged[0])


def test_one_failed_image_is_reported_and_others_succeed(run_dag, emulator, ecs_client, fleet):
    broken = fleet["cn-beijing"][0]
    emulator.admin.set_faults({"image_create_fail": {"instance_ids": [broken]}})
    dag_run = run_dag(DAG_ID, conf={**BASE_CONF, "max_errors": 1})
    assert dag_run.state == "success"  # within max_errors
    report = report_of(dag_run)
    assert report["outcome"] == "partial"
    failed = {r["instance_id"] for r in report["rows"] if r["status"] == "failed"}
    assert failed == {broken}
    ok = {region: [i for i in ids if i != broken] for region, ids in fleet.items()}
    assert_one_complete_copy_each(emulator, ecs_client, ok)


def test_failure_past_max_errors_fails_the_run(run_dag, emulator, fleet):
    emulator.admin.set_faults({"image_create_fail": {"instance_ids": fleet["cn-hangzhou"][:2]}})
    dag_run = run_dag(DAG_ID, conf={**BASE_CONF, "max_errors": 1})
    assert dag_run.state == "failed"
    report = report_of(dag_run)
    assert report is not None and report["counts"]["failed"] >= 2 * len(DESTS)
    # the real reason, although create_images failed as a whole (its results are pushed before it raises)
    broken = {r["reason"] for r in report["rows"] if r["instance_id"] in fleet["cn-hangzhou"][:2]}
    assert broken and all(reason.startswith("image:") and "CreateFailed" in reason for reason in broken), broken


def test_throttling_and_server_errors_are_survived(run_dag, emulator, ecs_client, fleet):
    emulator.admin.set_faults({"seed": 3, "rules": [
        {"action": "ecs:CreateImage", "kind": "throttle", "count": 3, "retry_after_ms": 50},
        {"action": "ecs:CopyImage", "kind": "error", "status": 503, "count": 3},
        {"action": "ecs:Describe*", "kind": "error", "status": 500, "rate": 0.1},
    ]})
    dag_run = run_dag(DAG_ID, conf=BASE_CONF)
    assert dag_run.state == "success"
    emulator.admin.set_faults({})  # the checks below call the SDK directly
    assert_one_complete_copy_each(emulator, ecs_client, fleet)


def test_rerun_of_same_logical_date_creates_nothing_twice(run_dag, emulator, ecs_client, fleet):
    logical = pendulum.datetime(2026, 11, 20, 18, 0, tz="UTC")
    # the first try of create_images dies after some CreateImage calls succeeded: two calls are
    # refused for good (not retryable), so the task fails past max_errors=0 with images made
    emulator.admin.set_faults({"rules": [{"action": "ecs:CreateImage", "kind": "error", "status": 403,
                                          "code": "Forbidden.RAM", "count": 2}]})
    first = run_dag(DAG_ID, conf=BASE_CONF, logical_date=logical)
    assert first.state == "failed"
    counters = emulator.admin.calls()["counters"]["ecs:CreateImage"]
    assert counters["calls"] == 5 and counters["errors"] == 2
    made_first = [i for i in emulator.admin.table("ecs.images").values() if i.get("ImageOwnerAlias") == "self"]
    assert len(made_first) == 3
    emulator.admin.set_faults({})
    second = run_dag(DAG_ID, conf=BASE_CONF, logical_date=logical)
    assert second.state == "success"
    assert_one_complete_copy_each(emulator, ecs_client, fleet)
    third = run_dag(DAG_ID, conf=BASE_CONF, logical_date=logical)
    assert third.state == "success"
    assert_one_complete_copy_each(emulator, ecs_client, fleet)


@pytest.mark.parametrize("mode", ["stop", "command"])
def test_consistency_modes(run_dag, emulator, ecs_client, fleet, mode):
    stopped_before = fleet["cn-beijing"][1]
    ecs_client("cn-beijing").stop_instance(m.StopInstanceRequest(instance_id=stopped_before))
    emulator.admin.advance(600)
    dag_run = run_dag(DAG_ID, conf={**BASE_CONF, "consistency": mode})
    assert dag_run.state == "success"
    assert_one_complete_copy_each(emulator, ecs_client, fleet)
    emulator.admin.advance(600)
    statuses = {i["InstanceId"]: i["Status"] for i in emulator.admin.table("ecs.instances").values()}
    for ids in fleet.values():
        for iid in ids:
            expected = "Stopped" if iid == stopped_before else "Running"
            assert statuses[iid] == expected, f"{mode}: {iid} left {statuses[iid]}"
    counters = emulator.admin.calls()["counters"]
    if mode == "command":
        assert counters["ecs:RunCommand"]["calls"] >= 2
    else:
        assert counters.get("ecs:StopInstances", counters.get("ecs:StopInstance", {})).get("calls", 0) >= 1


@pytest.mark.parametrize("conf, message", [
    ({"destination_regions": ["cn-hangzhou"]}, "both source and destination"),
    ({"tags": {"aliyun:x": "1"}}, "may not start with"),
    ({"kms_key_id": "key-1"}, "encrypted is false"),
    ({"image_name_template": "backup-{nope}"}, "unknown fields"),
])
def test_bad_params_fail_before_any_api_call(run_dag, emulator, fleet, conf, message):
    emulator.admin.clear_calls()
    dag_run = run_dag(DAG_ID, conf={**BASE_CONF, **conf})
    assert dag_run.state == "failed"
    assert not any(k.startswith("ecs:") for k in emulator.admin.calls()["counters"])


def test_schema_rejects_malformed_params(run_dag, emulator):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        run_dag(DAG_ID, conf={**BASE_CONF, "destination_regions": []})
    with pytest.raises(ParamValidationError):
        run_dag(DAG_ID, conf={**BASE_CONF, "consistency": "freeze"})
    assert not any(k.startswith("ecs:") for k in emulator.admin.calls()["counters"])


def test_report_email_reaches_a_real_smtp_server(run_dag, emulator, fleet, smtp_server):
    received, got = smtp_server
    emulator.admin.set_faults({"image_create_fail": {"instance_ids": [fleet["cn-beijing"][0]]}})
    dag_run = run_dag(DAG_ID, conf={**BASE_CONF, "max_errors": 1, "notify_emails": ["ops@example.com"]})
    assert dag_run.state == "success"
    assert got.wait(10), "no email received"
    import email

    msg = email.message_from_bytes(received[0].content)
    assert "PARTIAL" in msg["Subject"]
    html = next(part.get_payload(decode=True).decode() for part in msg.walk()
                if part.get_content_type() == "text/html")
    report = report_of(dag_run)
    assert html.count("<tr") == len(report["rows"]) + 1
    for row in report["rows"]:
        assert row["instance_id"] in html
        if row["copy_image_id"]:
            assert row["copy_image_id"] in html


def test_failed_pre_backup_command_skips_that_instance_and_says_why(run_dag, emulator, ecs_client, fleet):
    frozen_app = fleet["cn-hangzhou"][0]
    emulator.admin.request("POST", "command-behaviour", {"rules": [
        {"match": "pre-backup.d", "instance_ids": [frozen_app], "exit_code": 1, "output": "cannot quiesce"}]})
    dag_run = run_dag(DAG_ID, conf={**BASE_CONF, "consistency": "command", "max_errors": 1})
    assert dag_run.state == "success"
    report = report_of(dag_run)
    rows = [r for r in report["rows"] if r["instance_id"] == frozen_app]
    assert rows and all(r["status"] == "failed" and "preparation failed" in r["reason"] for r in rows)
    assert not images_from(ecs_client, "cn-hangzhou", frozen_app)      # never imaged while not quiesced
    ok = {region: [i for i in ids if i != frozen_app] for region, ids in fleet.items()}
    assert_one_complete_copy_each(emulator, ecs_client, ok)
