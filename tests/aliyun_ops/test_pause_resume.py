"""Pausing and resuming (issue 8): RunCommand/Stop mark what they pause, ResumePausedOperator undoes it."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException

from aliyun_ops.logic import pause
from aliyun_ops.operators.ecs_commands import RunCommandOperator
from aliyun_ops.operators.ecs_instances import StopInstancesOperator
from aliyun_ops.operators.ecs_pause import ResumePausedOperator
from tests.aliyun_ops.test_instance_operators import FakeTI, ctx, ids_of, run_op

HZ, BJ = "cn-hangzhou", "cn-beijing"
THAW = "#!/bin/bash\n# thaw\necho thawed"


@pytest.fixture
def emu(aliyun_env):
    return aliyun_env(retry_base_delay=0.01, retry_max_delay=0.05)


def tags(emu, iid):
    return emu.admin.table("ecs.instances")[iid]["Tags"]


def statuses(emu):
    return {i: r["Status"] for i, r in emu.admin.table("ecs.instances").items()}


def test_run_command_on_an_empty_list_is_a_no_op(emu):
    context = ctx("cmd")
    assert RunCommandOperator(task_id="cmd", instances=[], command_content="true", region=HZ).execute(context) == []
    assert context["ti"].xcoms["results"] == []


def test_freeze_marks_every_instance_even_where_the_command_fails_and_resume_thaws_them(emu):
    emu.admin.load_fleet({"instances": [{"region": HZ, "count": 3, "status": "Running"}]})
    ids = ids_of(emu)
    emu.admin.request("POST", "command-behaviour", {"rules": [
        {"match": "freeze-now", "instance_ids": [ids[0]], "exit_code": 1}]})
    out = run_op(RunCommandOperator(task_id="pre", instances=ids, region=HZ, command_content="echo freeze-now",
                                    mark_paused=True, max_errors=1, poll_interval=0.2), ctx("pre"))
    assert [r["status"] for r in out].count("failed") == 1
    assert all(tags(emu, i)[pause.PAUSED_MODE] == pause.FREEZE for i in ids)
    context = ctx("resume")
    result = ResumePausedOperator(task_id="resume", regions=[HZ], thaw_command=THAW, poll_interval=0.2).execute(context)
    assert sorted(r["instance_id"] for r in result if r["action"] == "thaw" and r["status"] == "success") == ids
    assert all(pause.PAUSED_BY not in tags(emu, i) for i in ids)
    assert context["ti"].xcoms["results"] == result


def test_resume_waits_for_a_stop_in_flight_then_starts_and_only_this_runs_pauses(emu):
    emu.admin.load_fleet({"instances": [{"region": HZ, "count": 2, "status": "Running"},
                                        {"region": BJ, "count": 1, "status": "Running"}]})
    hz, bj = ids_of(emu, HZ), ids_of(emu, BJ)
    StopInstancesOperator(task_id="stop", instances=bj, region=BJ, mark_paused=True, poll_interval=0.2,
                          deferrable=False).execute(ctx("stop", run_id="run-b"))
    emu.admin.clock(freeze=True)
    run_op(StopInstancesOperator(task_id="stop", instances=hz, region=HZ, mark_paused=True,
                                 wait_for_completion=False), ctx("stop", run_id="run-a"))
    assert {statuses(emu)[i] for i in hz} == {"Stopping"}          # the stop is still in flight
    emu.admin.clock(freeze=False)
    result = ResumePausedOperator(task_id="resume", poll_interval=0.2).execute(ctx("resume", run_id="run-a"))
    assert sorted(r["instance_id"] for r in result) == hz           # scope="run": run-b's pause is not ours
    assert all(r["action"] == "start" and r["paused_seconds"] is not None for r in result)
    assert {statuses(emu)[i] for i in hz} == {"Running"} and statuses(emu)[bj[0]] == "Stopped"
    # the safety net of the next run (scope="dag") finds run-b's pause in another region
    net = ResumePausedOperator(task_id="net", scope="dag", poll_interval=0.2).execute(ctx("net", run_id="run-c"))
    assert [r["instance_id"] for r in net] == bj and statuses(emu)[bj[0]] == "Running"
    assert pause.PAUSED_BY not in tags(emu, bj[0])


def test_safety_net_leaves_a_live_lease_of_a_run_it_does_not_know_alone(emu):
    """A run of another Airflow deployment (same DAG, same account) is invisible to this one's metadata: while its
    lease is live, the safety net must not start what it stopped; once the lease has expired, it does."""
    from datetime import UTC, datetime, timedelta

    from aliyun_ops.hooks.ecs import EcsHook
    from aliyun_ops.logic import lease as lz

    emu.admin.load_fleet({"instances": [{"region": HZ, "count": 1, "status": "Running"}]})
    iid = ids_of(emu)[0]
    StopInstancesOperator(task_id="stop", instances=[iid], region=HZ, mark_paused=True, poll_interval=0.2,
                          deferrable=False).execute(ctx("stop", run_id="scheduled__elsewhere"))
    assert tags(emu, iid)[lz.LEASE_HOLDER].split("|")[1] == "scheduled__elsewhere"

    class NoSuchRun(FakeTI):
        @staticmethod
        def get_dr_count(dag_id, logical_dates=None, run_ids=None, states=None):
            return 0

    def net():
        return ResumePausedOperator(task_id="net", scope="dag", regions=[HZ], poll_interval=0.2).execute(
            {"ti": NoSuchRun("net"), "run_id": "scheduled__here", "task_state_store": None})

    assert net() == [] and statuses(emu)[iid] == "Stopped"
    past = lz.lease_tags(tags(emu, iid)[lz.LEASE_HOLDER], now=datetime.now(UTC) - timedelta(hours=13))
    EcsHook().tag_resources(HZ, "instance", [iid], past)                     # the other run died long ago
    assert [r["instance_id"] for r in net()] == [iid] and statuses(emu)[iid] == "Running"
    assert not any(k.startswith(("ops:paused", "ops:lease")) for k in tags(emu, iid))


def test_a_stop_refuses_an_instance_another_live_run_holds_and_changes_nothing(emu):
    from datetime import UTC, datetime

    from aliyun_ops.hooks.ecs import EcsHook
    from aliyun_ops.logic import lease as lz

    emu.admin.load_fleet({"instances": [{"region": HZ, "count": 2, "status": "Running"}]})
    held, free = ids_of(emu)
    EcsHook().tag_resources(HZ, "instance", [held], lz.lease_tags("other|night|e", now=datetime.now(UTC)))
    out = StopInstancesOperator(task_id="stop", instances=[held, free], region=HZ, mark_paused=True, max_errors=1,
                                poll_interval=0.2, deferrable=False).execute(ctx("stop", run_id="run-a"))
    by_id = {r["instance_id"]: r for r in out}
    assert by_id[held]["status"] == "failed" and "DAG other run night" in by_id[held]["reason"]
    assert by_id[free]["status"] == "success"
    assert statuses(emu)[held] == "Running" and pause.PAUSED_BY not in tags(emu, held)
    assert tags(emu, held)[lz.LEASE_HOLDER] == "other|night|e"
    result = ResumePausedOperator(task_id="resume", regions=[HZ], poll_interval=0.2).execute(ctx("r", run_id="run-a"))
    assert [r["instance_id"] for r in result] == [free] and statuses(emu)[free] == "Running"
    assert not any(k.startswith("ops:lease") for k in tags(emu, free))       # released by the resume
    assert tags(emu, held)[lz.LEASE_HOLDER] == "other|night|e"               # the other run's stays


def test_resume_that_cannot_thaw_fails_loudly_and_keeps_the_tags(emu):
    emu.admin.load_fleet({"instances": [{"region": HZ, "count": 1, "status": "Running"}]})
    iid = ids_of(emu)[0]
    run_op(RunCommandOperator(task_id="pre", instances=[iid], region=HZ, command_content="echo freeze",
                              mark_paused=True, poll_interval=0.2), ctx("pre"))
    emu.admin.request("POST", "command-behaviour", {"rules": [{"match": "thaw", "exit_code": 2}]})
    context = ctx("resume")
    with pytest.raises(AirflowException, match="could not be resumed"):
        ResumePausedOperator(task_id="resume", regions=[HZ], thaw_command=THAW, poll_interval=0.2).execute(context)
    assert context["ti"].xcoms["results"][0]["status"] == "failed"
    assert tags(emu, iid)[pause.PAUSED_MODE] == pause.FREEZE         # the next run will try again
    with pytest.raises(AirflowException, match="no thaw_command"):
        ResumePausedOperator(task_id="resume", regions=[HZ], poll_interval=0.2).execute(ctx("resume"))


def test_resume_rejects_bad_input_before_any_call(emu):
    for kwargs in ({"scope": "everything"}, {"poll_interval": 0}, {"regions": ["not a region"]},
                   {"thaw_command_type": "RunCobol"}):
        with pytest.raises(ValueError):
            ResumePausedOperator(task_id="r", **kwargs).execute({"ti": FakeTI("r"), "run_id": "x"})
    assert not emu.admin.calls()["counters"]


def test_safety_net_leaves_pauses_of_runs_still_in_progress_alone(emu):
    """Backfills run several nights at once: the safety net must not start what a live run just stopped."""
    emu.admin.load_fleet({"instances": [{"region": HZ, "count": 2, "status": "Running"}]})
    live, dead = ids_of(emu)
    StopInstancesOperator(task_id="stop", instances=[live], region=HZ, mark_paused=True, poll_interval=0.2,
                          deferrable=False).execute(ctx("stop", run_id="backfill__2026-11-01"))
    StopInstancesOperator(task_id="stop", instances=[dead], region=HZ, mark_paused=True, poll_interval=0.2,
                          deferrable=False).execute(ctx("stop", run_id="manual__crashed"))

    class LiveRuns(FakeTI):
        @staticmethod
        def get_dr_count(dag_id, logical_dates=None, run_ids=None, states=None):
            state = {"backfill__2026-11-01": "running", "manual__crashed": "failed"}.get((run_ids or [""])[0])
            return int(state is not None and (states is None or state in states))

    context = {"ti": LiveRuns("net"), "run_id": "scheduled__now", "task_state_store": None}
    result = ResumePausedOperator(task_id="net", scope="dag", regions=[HZ], poll_interval=0.2).execute(context)
    assert [r["instance_id"] for r in result] == [dead]
    assert statuses(emu)[live] == "Stopped" and tags(emu, live)[pause.PAUSED_BY] == "backfill__2026-11-01"
