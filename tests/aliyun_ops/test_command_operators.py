"""RunCommandOperator (Cloud Assistant) against the emulator."""

from __future__ import annotations

import asyncio
import base64
import importlib
import json

import pytest
from airflow.sdk.exceptions import TaskDeferred

from aliyun_ops.exceptions import TooManyItemFailures
from aliyun_ops.operators.ecs_commands import MAX_CONTENT_B64, RunCommandOperator, decode_output
from aliyun_ops.triggers.ecs_instances import InvocationTrigger, InvocationWatch

HZ, SH = "cn-hangzhou", "cn-shanghai"


class FakeTI:
    def __init__(self, task_id: str, dag_id: str = "test_dag"):
        self.task_id, self.dag_id, self.map_index, self.try_number = task_id, dag_id, -1, 1

    def xcom_push(self, key, value):
        pass


class FakeStore(dict):
    def set(self, key, value):
        self[key] = value


def ctx(task_id="cmd", run_id="manual__1", store=None):
    return {"ti": FakeTI(task_id), "run_id": run_id, "task_state_store": store}


def roundtrip(trigger):
    path, kwargs = trigger.serialize()
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))


async def _first(trigger):
    async for event in trigger.run():
        return event.payload


def run_op(op, context, max_deferrals: int = 20):
    """execute(); on TaskDeferred run the round-tripped trigger and resume (kwargs dropped, as dag.test does)."""
    call = lambda: op.execute(context)  # noqa: E731
    for _ in range(max_deferrals):
        try:
            return call()
        except TaskDeferred as deferred:
            assert isinstance(deferred.trigger, InvocationTrigger)
            event = asyncio.run(_first(roundtrip(deferred.trigger)))
            call = lambda d=deferred, e=event: getattr(op, d.method_name)(context, event=e)  # noqa: E731
    raise AssertionError("deferred too often")


def calls(emu, action):
    return emu.admin.calls()["counters"].get(f"ecs:{action}", {}).get("calls", 0)


@pytest.fixture
def emu(aliyun_env):
    return aliyun_env()


def load(emu, spec):
    emu.admin.load_fleet({"instances": spec})
    emu.admin.clear_calls()
    table = emu.admin.table("ecs.instances")
    return {status: sorted(i for i, r in table.items() if r["Status"] == status) for status in ("Running", "Stopped")}


def behaviour(emu, rules, **extra):
    emu.admin.request("POST", "command-behaviour", {"rules": rules, **extra})


# -- validation (no API call) -------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"command_type": "RunCmd"}, "command_type"),
    ({"command_content": "  "}, "non-empty"),
    ({"command_content": "x" * 12289}, "16 KB"),                             # 12289 bytes -> 16388 Base64 chars
    ({"parameters": {f"p{i}": "v" for i in range(21)}}, "at most 20"),
    ({"parameters": {"bad name": "v"}}, "parameter name"),
    ({"parameters": {"a": {"nested": 1}}}, "string or a number"),
    ({"parameters": {"a": "1"}, "enable_parameter": False}, "enable_parameter"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": 86401}, "timeout"),
    ({"not_running": "ignore"}, "not_running"),
    ({"max_errors": "50"}, None),
    ({"working_dir": "/" * 201}, "working_dir"),
    ({"instances": ["i-1", "nope"]}, "does not look like"),
])
def test_limits_enforced_before_any_call(emu, kwargs, match):
    args = {"instances": ["i-1"], "command_content": "echo hi", "region": HZ, **kwargs}
    op = RunCommandOperator(task_id="cmd", **args)
    if match is None:
        op.validate()
        return
    with pytest.raises(ValueError, match=match):
        op.execute(ctx())
    assert emu.admin.calls()["counters"] == {}


def test_size_limit_is_exactly_16k_base64(emu):
    ok = "x" * 12288                     # Base64 -> exactly 16384
    assert len(base64.b64encode(ok.encode())) == MAX_CONTENT_B64
    RunCommandOperator(task_id="c", instances=["i-1"], command_content=ok).validate()
    with pytest.raises(ValueError, match="16 KB"):
        RunCommandOperator(task_id="c", instances=["i-1"], command_content=ok[:-10], parameters={"a": "b" * 40}).validate()


def test_decode_output():
    assert decode_output(base64.b64encode("héllo\n".encode()).decode()) == "héllo\n"
    assert decode_output("") == ""
    assert decode_output("not base64!") == "not base64!"


def test_template_fields_and_trigger_roundtrip():
    op = RunCommandOperator(task_id="c", instances=["i-1"], command_content="echo")
    for name in op.template_fields:
        assert hasattr(op, name)
    assert ".sh" in op.template_ext
    trig = InvocationTrigger(targets={HZ: ["t-1"], SH: ["t-2"]}, poll_interval=3, deadline=99.0)
    assert roundtrip(trig).serialize() == trig.serialize()
    watch = InvocationWatch({HZ: ["t-1"]})
    watch.update("t-1", [{"InvokeId": "t-1", "InvocationStatus": "Running",
                          "InvokeInstances": {"InvokeInstance": [{"InstanceId": "i-1", "InvocationStatus": "Running"}]}}])
    assert not watch.done
    watch.update("t-1", [{"InvokeId": "t-1", "InvocationStatus": "Success"}])
    assert watch.done


def test_content_from_template_file(tmp_path, emu):
    from airflow.sdk import DAG

    (tmp_path / "hello.sh").write_text("echo {{ params.greeting }} {{ '{{name}}' }}")
    with DAG("tpl_cmd", schedule=None, template_searchpath=[str(tmp_path)]):
        op = RunCommandOperator(task_id="c", instances=["i-1"], command_content="hello.sh", parameters={"name": "x"})
    op.resolve_template_files()
    op.render_template_fields({"params": {"greeting": "hi"}})
    assert op.command_content == "echo hi {{name}}"


# -- against the emulator --------------------------------------------------------------------------
@pytest.mark.parametrize("deferrable", [True, False])
def test_run_command_success_with_parameters(emu, deferrable):
    ids = load(emu, [{"region": HZ, "count": 3, "status": "Running"}])["Running"]
    op = RunCommandOperator(task_id="cmd", instances=ids, region=HZ, command_content="echo hello {{who}}",
                            parameters={"who": "world"}, deferrable=deferrable, poll_interval=0.2)
    out = run_op(op, ctx())
    assert [r["instance_id"] for r in out] == ids
    for r in out:
        assert r["status"] == "success" and r["invocation_status"] == "Success" and r["exit_code"] == 0
        assert r["output"] == "echo hello world"     # the emulator echoes the rendered script
    assert calls(emu, "RunCommand") == 1
    json.dumps(out)


def test_run_command_nonzero_exit_and_truncation(emu):
    ids = load(emu, [{"region": HZ, "count": 3, "status": "Running"}])["Running"]
    behaviour(emu, [{"match": "check", "instance_ids": [ids[0]], "exit_code": 3, "output": "E" * 5000}])
    op = RunCommandOperator(task_id="cmd", instances=ids, region=HZ, command_content="check-disk", poll_interval=0.2,
                            max_errors=1, output_limit=100)
    out = {r["instance_id"]: r for r in run_op(op, ctx())}
    bad = out[ids[0]]
    assert bad["status"] == "failed" and bad["exit_code"] == 3 and bad["invocation_status"] == "Failed"
    assert bad["output"] == "E" * 100 and bad["output_truncated"] is True
    assert all(out[i]["status"] == "success" for i in ids[1:])
    with pytest.raises(TooManyItemFailures, match="more than max_errors"):
        run_op(RunCommandOperator(task_id="cmd2", instances=ids, region=HZ, command_content="check-disk",
                                  poll_interval=0.2), ctx("cmd2"))
    lenient = run_op(RunCommandOperator(task_id="cmd3", instances=ids, region=HZ, command_content="check-disk",
                                        poll_interval=0.2, fail_on_nonzero=False), ctx("cmd3"))
    assert all(r["status"] == "success" for r in lenient)
    assert next(r for r in lenient if r["instance_id"] == ids[0])["exit_code"] == 3


def test_run_command_non_running_skipped_or_failed(emu):
    fleet = load(emu, [{"region": HZ, "count": 2, "status": "Running"},
                       {"region": HZ, "count": 1, "status": "Stopped"}])
    ids = fleet["Running"] + fleet["Stopped"]
    out = run_op(RunCommandOperator(task_id="cmd", instances=ids, region=HZ, command_content="uptime", poll_interval=0.2),
                 ctx())
    by = {r["instance_id"]: r for r in out}
    stopped = by[fleet["Stopped"][0]]
    assert stopped["status"] == "skipped" and "Stopped" in stopped["reason"]
    assert all(by[i]["status"] == "success" for i in fleet["Running"])
    assert json.loads(json.dumps(emu.admin.table("ecs.invocations"))) and calls(emu, "RunCommand") == 1
    inv = next(iter(emu.admin.table("ecs.invocations").values()))
    assert sorted(e["InstanceId"] for e in inv["Instances"]) == fleet["Running"]   # stopped one never sent
    with pytest.raises(TooManyItemFailures, match="not Running"):
        run_op(RunCommandOperator(task_id="cmd2", instances=ids, region=HZ, command_content="uptime", not_running="fail",
                                  poll_interval=0.2), ctx("cmd2"))


def test_run_command_chunks_and_regions(emu):
    load(emu, [{"region": HZ, "count": 150, "status": "Running"}, {"region": SH, "count": 2, "status": "Running"}])
    table = emu.admin.table("ecs.instances")
    items = [{"instance_id": i, "region": r["RegionId"]} for i, r in table.items()]
    out = run_op(RunCommandOperator(task_id="cmd", instances=items, command_content="hostname", poll_interval=0.5), ctx())
    assert len(out) == 152 and all(r["status"] == "success" for r in out)
    assert calls(emu, "RunCommand") == 3                       # 100 + 50 in HZ, 2 in SH
    assert len({r["invoke_id"] for r in out}) == 3


def test_run_command_is_idempotent_on_retry(emu):
    ids = load(emu, [{"region": HZ, "count": 2, "status": "Running"}])["Running"]
    store = FakeStore()
    first = run_op(RunCommandOperator(task_id="cmd", instances=ids, region=HZ, command_content="date", poll_interval=0.2),
                   ctx(store=store))
    assert store["run_command_invocations"]
    second = run_op(RunCommandOperator(task_id="cmd", instances=ids, region=HZ, command_content="date", poll_interval=0.2),
                    ctx(store=store))
    third = run_op(RunCommandOperator(task_id="cmd", instances=ids, region=HZ, command_content="date", poll_interval=0.2),
                   ctx())                                       # no state store: the ClientToken dedupes
    assert {r["invoke_id"] for r in first} == {r["invoke_id"] for r in second} == {r["invoke_id"] for r in third}
    assert len(emu.admin.table("ecs.invocations")) == 1


def test_run_command_timeout_and_throttling(emu):
    ids = load(emu, [{"region": HZ, "count": 2, "status": "Running"}])["Running"]
    behaviour(emu, [{"match": "sleep", "instance_ids": [ids[1]], "duration": 100}])
    emu.admin.set_faults({"rules": [{"action": "ecs:RunCommand", "kind": "throttle", "count": 1},
                                    {"action": "ecs:DescribeInvocations", "kind": "error", "status": 503,
                                     "count": 2}]})
    out = {r["instance_id"]: r for r in run_op(
        RunCommandOperator(task_id="cmd", instances=ids, region=HZ, command_content="sleep 100", timeout=10,
                           poll_interval=0.2, max_errors=1), ctx())}
    assert out[ids[0]]["status"] == "success"
    assert out[ids[1]]["status"] == "failed" and out[ids[1]]["invocation_status"] == "Timeout"
    assert calls(emu, "RunCommand") == 2


def test_run_command_waves_and_max_errors(emu):
    ids = load(emu, [{"region": HZ, "count": 6, "status": "Running"}])["Running"]
    out = run_op(RunCommandOperator(task_id="cmd", instances=ids, region=HZ, content="uptime", concurrency=2,
                                    poll_interval=0.2), ctx())
    assert all(r["status"] == "success" for r in out) and calls(emu, "RunCommand") == 3
    behaviour(emu, [{"match": "boom", "instance_ids": ids[:2], "exit_code": 1}])
    emu.admin.clear_calls()
    with pytest.raises(TooManyItemFailures, match="2 of 6 instances failed"):
        run_op(RunCommandOperator(task_id="cmd2", instances=ids, region=HZ, command_content="boom",
                                  concurrency="34%", max_errors=1, poll_interval=0.2), ctx("cmd2"))
    assert calls(emu, "RunCommand") == 1                     # later waves never started
