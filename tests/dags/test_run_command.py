"""End-to-end: ecs_run_command (OOS ACS-ECS-BulkyRunCommand / ApproveBulkyRunCommand) under dag.test() against the
emulator: a fleet over two regions, per-instance results, max_errors, the agent offline, the approval."""

from __future__ import annotations

import threading

import pytest

from tests.dags.hitl import respond, wait_for_input
from tests.dags.reports import report_json

DAG_ID = "ecs_run_command"
REGIONS = ["cn-hangzhou", "cn-beijing"]


@pytest.fixture
def fleet(emulator) -> list[str]:
    emulator.admin.load_fleet({"instances": [
        {"region": REGIONS[0], "name": "app", "count": 30, "status": "Running", "tags": {"role": "app"}},
        {"region": REGIONS[1], "name": "app", "count": 20, "status": "Running", "tags": {"role": "app"}},
        {"region": REGIONS[0], "name": "db", "count": 2, "status": "Running", "tags": {"role": "db"}}]})
    return sorted(i["InstanceId"] for i in emulator.admin.table("ecs.instances").values()
                  if i["Tags"].get("role") == "app")


def conf(**extra):
    return {"regions": REGIONS, "tags": {"role": "app"}, "command": "echo inspect-me", "poll_interval": 1,
            "approval_above": None, **extra}


def rows_by_id(run) -> dict[str, dict]:
    return {r["instance_id"]: r for r in report_json(DAG_ID, run)["rows"]}


def test_fifty_instances_over_two_regions_two_failing_within_max_errors(run_dag, emulator, fleet):
    failing = fleet[:2]
    emulator.admin.request("POST", "command-behaviour", {
        "rules": [{"match": "inspect-me", "instance_ids": failing, "exit_code": 3, "output": "disk 97% full"}]})
    run = run_dag(DAG_ID, conf=conf(max_errors=2, concurrency="50%"))
    assert run.state == "success"                                   # 2 failures, 2 allowed
    rows = rows_by_id(run)
    assert sorted(rows) == fleet                                    # every selected instance has a row, none else
    assert {i for i, r in rows.items() if r["status"] == "failed"} == set(failing)
    assert all(rows[i]["exit_code"] == 3 and "disk 97% full" in rows[i]["output"] for i in failing)
    ok = [r for r in rows.values() if r["status"] == "success"]
    assert len(ok) == 48 and all(r["exit_code"] == 0 and "inspect-me" in r["output"] for r in ok)
    assert report_json(DAG_ID, run)["meta"]["agent offline (command not run)"] == "none"


def test_an_instance_whose_agent_is_offline_is_reported_as_such(run_dag, emulator, fleet):
    """The command never reached that instance's Cloud Assistant agent: failed, 'not run', agent offline."""
    offline = fleet[2]
    emulator.admin.request("POST", "command-behaviour", {"rules": [], "agent_offline": [offline]})
    run = run_dag(DAG_ID, conf=conf(max_errors=1), retries=0)
    assert run.state == "success"                                   # 1 failure, 1 allowed
    rows = rows_by_id(run)
    assert [i for i, r in rows.items() if r["status"] == "failed"] == [offline]
    assert rows[offline]["agent"] == "offline" and "not run" in rows[offline]["reason"]
    assert report_json(DAG_ID, run)["meta"]["agent offline (command not run)"] == offline


def test_failures_past_max_errors_fail_the_run_and_stop_new_waves(run_dag, emulator, fleet):
    emulator.admin.request("POST", "command-behaviour", {"rules": [{"match": "inspect-me", "exit_code": 1}]})
    run = run_dag(DAG_ID, conf=conf(max_errors=1, concurrency=10, regions=[REGIONS[0]]), retries=0)
    assert run.state == "failed"
    statuses = [r["status"] for r in rows_by_id(run).values()]
    assert statuses.count("failed") == 10 and statuses.count("skipped") == 20   # one wave, then no new one
    assert all("not started" in r["reason"] for r in rows_by_id(run).values() if r["status"] == "skipped")


@pytest.mark.parametrize("answer", ["Approve", "Reject"])
def test_more_instances_than_the_threshold_wait_for_approval(run_dag, emulator, fleet, answer):
    seen: dict = {}

    def human():
        run_id = wait_for_input(DAG_ID, "approve")
        seen["ran_before"] = emulator.admin.calls()["counters"].get("ecs:RunCommand", {}).get("calls", 0)
        respond(DAG_ID, run_id, "approve", answer)

    responder = threading.Thread(target=human, daemon=True)
    responder.start()
    run = run_dag(DAG_ID, conf=conf(approval_above=10), retries=0)
    responder.join(timeout=10)
    assert seen["ran_before"] == 0
    calls = emulator.admin.calls()["counters"].get("ecs:RunCommand", {}).get("calls", 0)
    if answer == "Approve":
        assert run.state == "success" and calls >= 1
    else:
        assert run.state == "failed" and calls == 0
        assert all("not approved" in r["reason"] for r in rows_by_id(run).values())


def test_a_script_file_runs_and_bad_params_change_nothing(run_dag, emulator, fleet):
    run = run_dag(DAG_ID, conf=conf(command=None, script="health_check.sh", regions=[REGIONS[1]]))
    assert run.state == "success"
    assert all("aliyun-ops health check" in r["output"] for r in rows_by_id(run).values())
    for bad in ({"command": None, "script": None}, {"script": "missing.sh", "command": None},
                {"tags": None, "instance_ids": []}):
        assert run_dag(DAG_ID, conf=conf(**bad), retries=0).state == "failed"
    assert emulator.admin.calls()["counters"]["ecs:RunCommand"]["calls"] == 1
