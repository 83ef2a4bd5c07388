"""Smoke test of the fault soak's pure parts (fault config, fleet, checks, tables); the soak never runs here."""

from __future__ import annotations

import pytest

from bench.backup_scale import Machine
from bench.soak import (
    FaultPlan,
    accounted,
    completeness,
    duplicates,
    fault_config,
    fault_counts,
    figures,
    image_fault_counts,
    log_events,
    markdown_table,
    pick_failing,
    power_check,
    report_summary,
    report_understates,
    report_vs_cloud,
    soak_fleet_spec,
    stopped_indexes,
    verdicts,
)

DAG = "ecs_cross_region_backup"
RK = "2026-11-28T18:00:00+00:00"


def _img(image_id, iid, status="Available", region="cn-hangzhou", copied=False, rk=RK, complete=None, **extra):
    tags = {"ops:dag-id": DAG, "ops:run-key": rk, "ops:source-instance": iid}
    if complete:
        tags["ops:copy-status"] = "complete"
    return {"ImageId": image_id, "RegionId": region, "Status": status, "IsCopied": copied, "Tags": tags, **extra}


def test_fault_config_makes_each_rate_unconditional_and_is_valid_for_the_emulator():
    cfg = fault_config(FaultPlan())
    rates = [r["rate"] for r in cfg["rules"]]
    # P(throttle)=5%; P(500)=1% of calls = 0.01 / 0.95 conditional; ...; P(drop_after)=1% = 0.01 / 0.93
    assert rates[0] == pytest.approx(0.05)
    assert rates[1] == pytest.approx(0.01 / 0.95, rel=1e-4)
    assert rates[2] == pytest.approx(0.01 / 0.94, rel=1e-4)
    assert rates[3] == pytest.approx(0.01 / 0.93, rel=1e-4)
    assert [r.get("status") for r in cfg["rules"]] == [None, 500, 503, None]
    assert all(r["action"] == "ecs:*" for r in cfg["rules"])
    assert cfg["image_create_fail"] == {"rate": 0.01} and cfg["copy_fail"] == {"rate": 0.01}
    from emulator.faults import validate

    validate(cfg)  # the emulator would accept it as written
    assert fault_config(FaultPlan(0, 0, 0, 0, 0)) == {"seed": 8, "rules": []}
    with pytest.raises(ValueError):
        fault_config(FaultPlan(throttle=0.8, server_error=0.4))


def test_fault_counts_read_the_call_log_codes():
    calls = [{"action": "ecs:StopInstances", "status": 0, "code": "ConnectionDroppedAfter"},
             {"action": "ecs:CreateImage", "status": 0, "code": "ConnectionDropped"},
             {"action": "ecs:DescribeImages", "status": 400, "code": "Throttling.User"},
             {"action": "ecs:CopyImage", "status": 503, "code": "ServiceUnavailable"},
             {"action": "ecs:CopyImage", "status": 500, "code": "InternalError"},
             {"action": "ecs:StartInstances", "status": 403, "code": "IncorrectInstanceStatus"},
             {"action": "ecs:DescribeImages", "status": 200, "code": None}]
    out = fault_counts(calls)
    assert (out["calls"], out["throttle"], out["server_error"], out["drop_after"], out["drop"]) == (7, 1, 2, 1, 1)
    assert out["drop_after_by_action"] == {"ecs:StopInstances": 1}
    assert out["server_error_codes"] == {"500 InternalError": 1, "503 ServiceUnavailable": 1}
    assert out["other_error_codes"] == {"ecs:StartInstances IncorrectInstanceStatus": 1}


def test_image_fault_counts_use_the_fail_flag_or_the_final_status():
    images = [_img("m-1", "i-1", "Creating", _fail=True), _img("m-2", "i-2", "CreateFailed"),
              _img("m-3", "i-3", "CreateFailed", copied=True, region="cn-shanghai"), _img("m-4", "i-4"),
              {"ImageId": "m-5", "Status": "CreateFailed", "Tags": {}}]  # not ours
    assert image_fault_counts(images) == {"image_create_failed": 2, "copy_failed": 1}


def test_stopped_machines_are_spread_and_kept_in_the_fleet_spec():
    assert len(stopped_indexes(200, 0.05)) == 10
    assert stopped_indexes(10, 0) == set()
    machines = [Machine("cn-hangzhou", 40)] * 4 + [Machine("cn-beijing", 60, (100,))] * 2
    spec = soak_fleet_spec(machines, {"backup": "daily"}, {1, 5})
    by = {(e["region"], e["status"]): e["count"] for e in spec["instances"]}
    assert by == {("cn-hangzhou", "Running"): 3, ("cn-hangzhou", "Stopped"): 1, ("cn-beijing", "Running"): 1,
                  ("cn-beijing", "Stopped"): 1}
    assert sum(e["count"] for e in spec["instances"]) == 6
    assert all(e["tags"] == {"backup": "daily"} for e in spec["instances"])
    assert len({e["name"] for e in spec["instances"]}) == len(spec["instances"])


def test_accounted_needs_a_row_per_destination():
    rows = [{"instance_id": "i-1", "destination_region": "a"}, {"instance_id": "i-1", "destination_region": "b"},
            {"instance_id": "i-2", "destination_region": "a"}, {"instance_id": "i-9", "destination_region": "a"}]
    out = accounted(["i-1", "i-2", "i-3"], rows, ["a", "b"])
    assert (out["accounted"], out["pct"]) == (1, pytest.approx(33.33))
    assert out["partial"] == ["i-2"] and out["missing"] == ["i-3"] and out["unknown"] == ["i-9"]
    assert accounted([], [], ["a"])["pct"] == 100.0


def test_duplicates_count_second_live_images_not_failed_attempts():
    images = [
        _img("m-1", "i-1"), _img("m-2", "i-1", "CreateFailed"),               # retried after a failure: fine
        _img("m-3", "i-2"), _img("m-4", "i-2", "Creating"),                    # two live images: duplicate
        _img("m-5", "i-3"), _img("m-6", "i-3", rk="other-night"),              # another run key: fine
        _img("c-1", "i-1", region="cn-shanghai", copied=True),
        _img("c-2", "i-1", "Waiting", region="cn-shanghai", copied=True),      # duplicate copy
        _img("c-3", "i-1", region="ap-southeast-1", copied=True),
        _img("c-4", "i-1", "CreateFailed", region="ap-southeast-1", copied=True),
        {"ImageId": "m-x", "Status": "Available", "Tags": {"ops:source-instance": "i-1"}},  # not the DAG's
    ]
    out = duplicates(images, DAG)
    assert (out["duplicate_sources"], out["duplicate_copies"], out["duplicates"]) == (1, 1, 2)
    assert (out["failed_sources_left"], out["failed_copies_left"]) == (1, 1)
    assert (out["source_images"], out["copies"]) == (6, 4)
    assert out["run_keys"] == sorted([RK, "other-night"])
    assert f"{RK}/i-2" in out["examples"] and f"{RK}/i-1/cn-shanghai" in out["examples"]
    assert duplicates([], DAG)["duplicates"] == 0


def test_power_check_compares_with_the_status_before_the_run():
    before = {"i-1": "Running", "i-2": "Running", "i-3": "Stopped", "i-4": "Running", "i-5": "Running",
              "i-6": "Running"}
    now = {"i-1": {"Status": "Running", "Tags": {"backup": "daily"}},
           "i-2": {"Status": "Stopped", "Tags": {"ops:paused-by": RK, "ops:paused-mode": "stop"}},
           "i-3": {"Status": "Running", "Tags": {}},                         # was Stopped: started by mistake
           "i-4": {"Status": "Starting", "Tags": {"ops:resumed-at": "x"}},
           "i-5": {"Status": "Stopping", "Tags": [{"TagKey": "ops:paused-by", "TagValue": RK}]}}
    out = power_check(before, now)
    assert out["left_stopped"] == ["i-2", "i-5"]
    assert out["not_in_original_state"] == ["i-2", "i-3", "i-4", "i-5"]
    assert out["in_transition"] == ["i-4", "i-5"]
    assert out["tagged_paused_by"] == ["i-2", "i-5"]
    assert out["any_pause_tag"] == ["i-2", "i-4", "i-5"]
    assert out["gone"] == ["i-6"]
    assert out["before"] == {"Running": 5, "Stopped": 1}
    assert out["after"]["gone"] == 1


def test_completeness_wants_one_available_image_and_one_complete_copy_per_destination():
    dests = ["cn-shanghai", "ap-southeast-1"]
    images = [
        _img("m-1", "i-1"), _img("m-0", "i-1", "CreateFailed"),
        _img("c-1", "i-1", region="cn-shanghai", copied=True, complete=True),
        _img("c-2", "i-1", region="ap-southeast-1", copied=True, complete=True),
        _img("m-2", "i-2"), _img("c-3", "i-2", region="cn-shanghai", copied=True, complete=True),
        _img("c-4", "i-2", region="ap-southeast-1", copied=True),               # Available, not tagged complete
        _img("m-3", "i-3", "Creating"),
    ]
    out = completeness(images, ["i-1", "i-2", "i-3", "i-4"], dests, DAG, run_key=RK)
    assert (out["complete"], out["instances"], out["pct"], out["incomplete_count"]) == (1, 4, 25.0, 3)
    assert "ap-southeast-1" in out["incomplete"]["i-2"] and "cn-shanghai" not in out["incomplete"]["i-2"]
    assert out["incomplete"]["i-3"].startswith("source images ['Creating']")
    assert completeness(images, ["i-1"], dests, DAG, run_key="another")["complete"] == 0


def test_report_summary_and_report_against_the_cloud():
    report = {"outcome": "partial", "counts": {"success": 2, "failed": 2, "skipped": 0},
              "meta": {"paused by this run": "2 instance(s), 2 resumed", "dag": DAG},
              "rows": [
                  {"instance_id": "i-1", "destination_region": "a", "status": "success", "paused_seconds": 12.5,
                   "image_id": "m-1", "copy_image_id": "c-1", "reason": ""},
                  {"instance_id": "i-1", "destination_region": "b", "status": "success", "paused_seconds": 12.5,
                   "image_id": "m-1", "copy_image_id": "c-2", "reason": ""},
                  {"instance_id": "i-2", "destination_region": "a", "status": "failed", "paused_seconds": 40.0,
                   "image_id": "m-2abcdef", "reason": "image: m-2abcdef is CreateFailed after 120 s"},
                  {"instance_id": "i-2", "destination_region": "b", "status": "failed", "paused_seconds": 40.0,
                   "image_id": "m-2abcdef", "reason": "image: m-2abcdef is CreateFailed after 130 s"}]}
    s = report_summary(report)
    assert (s["outcome"], s["rows"], s["instances_paused"], s["max_paused_seconds"]) == ("partial", 4, 2, 40.0)
    assert s["failed_reasons"] == {"image: m-* is CreateFailed after N s": 2}
    assert s["meta_notes"] == {"paused by this run": "2 instance(s), 2 resumed"}
    assert report_summary(None) == {"present": False}
    cloud = {"m-1": {"Status": "Available"}, "c-1": {"Status": "Available"}, "c-2": {"Status": "CreateFailed"}}
    bad = report_vs_cloud(report["rows"], cloud)
    assert len(bad) == 1 and "c-2" in bad[0] and "CreateFailed" in bad[0]


def _result(left_stopped=(), dup=0, pct=100.0, state="success", complete=100.0):
    phase = {"state": state, "wall_s": 10.0, "accounted": {"pct": pct}, "duplicates": {"duplicates": dup},
             "power": {"left_stopped": list(left_stopped), "not_in_original_state": list(left_stopped),
                       "tagged_paused_by": []},
             "report": {"present": True, "outcome": "success", "counts": {"success": 4, "failed": 0, "skipped": 0},
                        "max_paused_seconds": 3.0},
             "complete": {"pct": complete, "complete": 2, "instances": 2}}
    return {"instances": 2, "first_run": phase, "rerun": phase,
            "faults": {}, "image_faults": {}}


def test_verdicts_fail_on_any_broken_promise_and_figures_tabulate():
    assert all(verdicts(_result()).values())
    v = verdicts(_result(left_stopped=["i-1"]))
    assert not v["first run: 0 left stopped"] and not v["re-run: all in original power state"]
    assert not verdicts(_result(dup=1))["re-run: 0 duplicates"]
    assert not verdicts(_result(pct=99.5))["first run: 100% accounted for"]
    assert not verdicts(_result(complete=50.0))["re-run: every instance complete"]
    assert not verdicts(_result(state="running"))["first run finished"]
    assert not all(verdicts({"instances": 2}).values())  # nothing measured is not a pass
    names = [k for k, _ in figures(_result())]
    assert "process killed" in names and "max paused s (real): first run / re-run" in names
    table = markdown_table([_result(), {**_result(), "instances": 5}])
    assert table.splitlines()[0] == "| figure | 2 instances | 5 instances |"
    assert len(table.splitlines()) == 2 + len(names)


def test_failing_instances_are_a_fixed_seeded_share():
    ids = [f"i-{k:04d}" for k in range(1000)]
    picked = pick_failing(ids, 0.01, 8)
    assert len(picked) == 10 and picked == pick_failing(reversed(ids), 0.01, 8) and set(picked) <= set(ids)
    assert pick_failing(ids[:20], 0.01, 8) != [] and pick_failing(ids, 0.0, 8) == []
    cfg = fault_config(FaultPlan(), failing_instances=picked)
    assert cfg["image_create_fail"] == {"instance_ids": picked}
    from emulator.faults import validate

    validate(cfg)


def test_report_understates_counts_failed_rows_whose_copy_exists():
    rows = [{"instance_id": "i-1", "destination_region": "a", "status": "failed"},
            {"instance_id": "i-1", "destination_region": "b", "status": "failed"},
            {"instance_id": "i-2", "destination_region": "a", "status": "success"}]
    images = [_img("c-1", "i-1", region="a", copied=True), _img("c-2", "i-1", "CreateFailed", region="b", copied=True),
              _img("c-3", "i-2", region="a", copied=True)]
    assert report_understates(rows, images, DAG) == ["i-1->a"]


def test_log_events_count_what_airflow_did_after_a_start_time():
    lines = [
        "2026-11-29T15:00:57.769988Z [error] Executor LocalExecutor(parallelism=8) reported that the task instance "
        "<TaskInstance: d.create_images r [running]> finished with state success, but the task instance's state "
        "attribute is running.",
        "2026-11-29T15:00:57.957151Z [info] Marking task as UP_FOR_RETRY. dag_id=d, task_id=create_images",
        "2026-11-29 15:04:36.941199+00:00 [info] Reset the following 1 orphaned TaskInstances:",
        "\t<TaskInstance: d.create_images r [running]>",
        "2026-11-29T14:00:00.000000Z [info] Marking task as FAILED. (before the run)",
    ]
    out = log_events(lines, since="2026-11-29T15:00:00+00:00")
    assert out["task state changed externally"]["count"] == 1
    assert out["marked up_for_retry"]["count"] == 1 and out["orphaned tasks reset"]["count"] == 1
    assert out["marked failed"]["count"] == 0
    assert log_events(lines)["marked failed"]["count"] == 1
