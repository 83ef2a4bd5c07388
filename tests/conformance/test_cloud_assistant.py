"""Cloud Assistant: RunCommand, CreateCommand, InvokeCommand, DescribeInvocations(Results), StopInvocation.

Instances come from the fleet API (``emulator/ecs/instances.py``). The clock is frozen in these
tests and moved with ``admin.advance`` so every status is observed deterministically.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as m
from Tea.exceptions import TeaException

import emulator as emulator_pkg

REGION = "cn-hangzhou"
HAS_INSTANCES = (Path(emulator_pkg.__file__).parent / "ecs" / "instances.py").exists()
pytestmark = pytest.mark.skipif(not HAS_INSTANCES, reason="ECS instances (emulator/ecs/instances.py) not there yet")


@pytest.fixture
def fleet(emulator):
    """``fleet(count=2, status="Running")`` -> instance ids created through the fleet API (clock frozen)."""
    emulator.admin.clock(freeze=True)

    def make(count: int = 2, status: str = "Running", region: str = REGION) -> list[str]:
        try:
            result = emulator.admin.load_fleet({"instances": [{"region": region, "count": count, "status": status}]})
        except RuntimeError as exc:  # the instances fleet section is not registered yet
            pytest.skip(f"fleet API cannot create instances yet: {exc}")
        ids = result["instances"]
        ids = ids if isinstance(ids, list) else ids.get("ids", [])
        assert len(ids) == count
        return ids

    return make


def run(client, ids, content="echo hello", **kw):
    req = m.RunCommandRequest(region_id=REGION, type=kw.pop("type", "RunShellScript"), command_content=content,
                              instance_id=ids, **kw)
    return client.run_command(req).body


def results(client, invoke_id, **kw):
    req = m.DescribeInvocationResultsRequest(region_id=REGION, invoke_id=invoke_id, **kw)
    return client.describe_invocation_results(req).body.invocation


def invocation(client, invoke_id, **kw):
    req = m.DescribeInvocationsRequest(region_id=REGION, invoke_id=invoke_id, **kw)
    return client.describe_invocations(req).body.invocations.invocation[0]


def decode(text: str) -> str:
    return base64.b64decode(text).decode()


def api_error(call) -> TeaException:
    with pytest.raises(TeaException) as err:
        call()
    return err.value


# -- the happy path ---------------------------------------------------------------------------
def test_run_command_lifecycle(emulator, ecs_client, fleet):
    ids = fleet(2)
    client = ecs_client()
    body = run(client, ids, name="hello", timeout=60)
    assert body.command_id.startswith("c-") and body.invoke_id.startswith("t-")

    inv = invocation(client, body.invoke_id)
    assert inv.invocation_status == "Pending" and inv.invoke_status == "Running"
    assert decode(inv.command_content) == "echo hello" and inv.command_name == "hello"
    assert {i.instance_id for i in inv.invoke_instances.invoke_instance} == set(ids)

    emulator.admin.advance(1.5)
    inv = invocation(client, body.invoke_id)
    assert inv.invocation_status == "Running"
    assert {i.invocation_status for i in inv.invoke_instances.invoke_instance} == {"Running"}

    emulator.admin.advance(10)
    inv = invocation(client, body.invoke_id, include_output=True)
    assert inv.invocation_status == "Success" and inv.invoke_status == "Finished"
    for inst in inv.invoke_instances.invoke_instance:
        assert inst.exit_code == 0 and decode(inst.output) == "echo hello" and inst.finish_time

    res = results(client, body.invoke_id)
    assert res.total_count == 2 and isinstance(res.total_count, int)
    for r in res.invocation_results.invocation_result:
        assert r.invocation_status == "Success" and r.invoke_record_status == "Finished"
        assert r.exit_code == 0 and isinstance(r.exit_code, int)
        assert decode(r.output) == "echo hello"
        assert r.start_time and r.finished_time and r.error_code == ""
    plain = results(client, body.invoke_id, content_encoding="PlainText")
    assert plain.invocation_results.invocation_result[0].output == "echo hello"


def test_parameters_builtins_and_base64(emulator, ecs_client, fleet):
    ids = fleet(1)
    client = ecs_client()
    script = "echo {{ name }} from {{ACS::InstanceId}} in {{ACS::RegionId}}"
    body = run(client, ids, base64.b64encode(script.encode()).decode(), content_encoding="Base64",
               enable_parameter=True, parameters={"name": "world"})
    emulator.admin.advance(10)
    out = decode(results(client, body.invoke_id).invocation_results.invocation_result[0].output)
    assert out == f"echo world from {ids[0]} in {REGION}"
    inv = invocation(client, body.invoke_id, content_encoding="PlainText")
    assert inv.command_content == script and '"name"' in inv.parameters


def test_create_then_invoke_command(emulator, ecs_client, fleet):
    ids = fleet(2)
    client = ecs_client()
    cmd = client.create_command(m.CreateCommandRequest(
        region_id=REGION, name="freeze", type="RunShellScript", command_content="fsfreeze -f {{mnt}}",
        enable_parameter=True, timeout=120)).body
    assert cmd.command_id.startswith("c-")
    inv_id = client.invoke_command(m.InvokeCommandRequest(
        region_id=REGION, command_id=cmd.command_id, instance_id=ids, parameters={"mnt": "/data"})).body.invoke_id
    emulator.admin.advance(10)
    res = results(client, inv_id)
    assert {decode(r.output) for r in res.invocation_results.invocation_result} == {"fsfreeze -f /data"}
    assert invocation(client, inv_id).command_id == cmd.command_id

    err = api_error(lambda: client.invoke_command(m.InvokeCommandRequest(
        region_id=REGION, command_id=cmd.command_id, instance_id=ids, parameters={"other": "x"})))
    assert err.code == "Parameter.NotMatched"
    err = api_error(lambda: client.invoke_command(m.InvokeCommandRequest(
        region_id=REGION, command_id=cmd.command_id, instance_id=ids)))
    assert err.code == "Parameter.MissingValue"
    err = api_error(lambda: client.invoke_command(m.InvokeCommandRequest(
        region_id=REGION, command_id="c-nope", instance_id=ids)))
    assert err.code == "InvalidCmdId.NotFound" and err.data["statusCode"] == 404


# -- scripted behaviour -----------------------------------------------------------------------
def test_behaviour_rules_failed_and_partial(emulator, ecs_client, fleet):
    ids = fleet(2)
    cfg = {"rules": [{"match": "fsfreeze", "instance_ids": [ids[0]], "exit_code": 1, "output": "boom",
                      "duration": 30}]}
    set_cfg = emulator.admin.request("POST", "command-behaviour", cfg)
    assert set_cfg["rules"][0]["exit_code"] == 1
    assert emulator.admin.request("GET", "command-behaviour")["rules"] == set_cfg["rules"]
    client = ecs_client()
    body = run(client, ids, "fsfreeze -f /", timeout=60)
    emulator.admin.advance(10)
    inv = invocation(client, body.invoke_id)
    by_id = {i.instance_id: i for i in inv.invoke_instances.invoke_instance}
    assert by_id[ids[0]].invocation_status == "Running" and by_id[ids[1]].invocation_status == "Success"
    assert inv.invocation_status == "Running"
    emulator.admin.advance(30)
    inv = invocation(client, body.invoke_id)
    assert inv.invocation_status == "PartialFailed" and inv.invoke_status == "Finished"
    res = {r.instance_id: r for r in results(client, body.invoke_id).invocation_results.invocation_result}
    assert res[ids[0]].invocation_status == "Failed" and res[ids[0]].exit_code == 1
    assert res[ids[0]].error_code == "ExitCodeNonzero" and decode(res[ids[0]].output) == "boom"
    assert res[ids[0]].invoke_record_status == "Finished"
    assert res[ids[1]].invocation_status == "Success"

    # a script no rule matches behaves as the default
    other = run(client, ids, "uptime")
    emulator.admin.advance(10)
    assert invocation(client, other.invoke_id).invocation_status == "Success"


def test_timeout(emulator, ecs_client, fleet):
    ids = fleet(1)
    emulator.admin.request("POST", "command-behaviour", {"rules": [{"match": "sleep", "duration": 300}]})
    client = ecs_client()
    body = run(client, ids, "sleep 300", timeout=10)
    emulator.admin.advance(12)
    r = results(client, body.invoke_id).invocation_results.invocation_result[0]
    assert r.invocation_status == "Timeout" and r.error_code == "ExecutionTimeout"
    assert r.invoke_record_status == "Failed"
    inv = invocation(client, body.invoke_id)
    assert inv.invocation_status == "Failed" and inv.invoke_status == "Failed"


def test_explicit_error_status(emulator, ecs_client, fleet):
    ids = fleet(1)
    emulator.admin.request("POST", "command-behaviour", {"rules": [{"match": "", "status": "Error", "exit_code": 2}]})
    client = ecs_client()
    body = run(client, ids, "anything")
    emulator.admin.advance(10)
    r = results(client, body.invoke_id).invocation_results.invocation_result[0]
    assert r.invocation_status == "Error" and r.error_code == "ExecutionException" and r.exit_code == 2


def test_behaviour_validation(emulator):
    with pytest.raises(RuntimeError, match="400"):
        emulator.admin.request("POST", "command-behaviour", {"rules": [{"match": "x", "status": "Weird"}]})
    with pytest.raises(RuntimeError, match="400"):
        emulator.admin.request("POST", "command-behaviour", {"rules": [{"bogus": 1}]})


def test_counted_rule_fails_the_first_run_and_the_retry_succeeds(emulator, ecs_client, fleet):
    ids = fleet(2)
    emulator.admin.request("POST", "command-behaviour", {"rules": [
        {"match": "is-system-running", "instance_ids": [ids[0]], "exit_code": 1, "output": "starting",
         "duration": 3, "count": 1}]})
    client = ecs_client()
    first = run(client, ids[:1], "systemctl is-system-running")
    emulator.admin.advance(1.5)  # started: the rule is taken by this run, and spent
    assert emulator.admin.request("GET", "command-behaviour")["rules"][0]["count"] == 0
    emulator.admin.advance(10)
    r = results(client, first.invoke_id).invocation_results.invocation_result[0]
    assert (r.invocation_status, r.exit_code, r.error_code) == ("Failed", 1, "ExitCodeNonzero")
    assert decode(r.output) == "starting"
    retry = run(client, ids[:1], "systemctl is-system-running")
    emulator.admin.advance(10)
    r = results(client, retry.invoke_id).invocation_results.invocation_result[0]
    assert (r.invocation_status, r.exit_code) == ("Success", 0)
    assert decode(r.output) == "systemctl is-system-running"  # the default: the script echoed


def test_counted_rule_counts_instance_runs_then_falls_through_to_the_next_rule(emulator, ecs_client, fleet):
    ids = fleet(3)
    emulator.admin.request("POST", "command-behaviour", {"rules": [
        {"match": "check", "exit_code": 2, "count": 2},
        {"match": "check", "exit_code": 7}]})
    client = ecs_client()
    body = run(client, ids, "check")  # three instance runs: two take the counted rule, one falls through
    emulator.admin.advance(10)
    codes = sorted(r.exit_code for r in results(client, body.invoke_id).invocation_results.invocation_result)
    assert codes == [2, 2, 7]
    again = run(client, ids[:1], "check")
    emulator.admin.advance(10)
    assert results(client, again.invoke_id).invocation_results.invocation_result[0].exit_code == 7
    assert emulator.admin.request("GET", "command-behaviour")["rules"][0]["count"] == 0


def test_a_run_on_a_stopped_instance_takes_no_count(emulator, ecs_client, fleet):
    stopped, running = fleet(1, status="Stopped"), fleet(1)
    emulator.admin.request("POST", "command-behaviour", {"rules": [{"match": "", "exit_code": 1, "count": 1}]})
    client = ecs_client()
    aborted = run(client, stopped)
    emulator.admin.advance(10)
    assert results(client, aborted.invoke_id).invocation_results.invocation_result[0].invocation_status == "Aborted"
    failed = run(client, running)
    emulator.admin.advance(10)
    assert results(client, failed.invoke_id).invocation_results.invocation_result[0].invocation_status == "Failed"


@pytest.mark.parametrize(("body", "named"), [
    ({"rules": [{"match": "x", "count": 0}]}, "rules[0].count"),
    ({"rules": [{"match": "x", "count": -1}]}, "rules[0].count"),
    ({"rules": [{"match": "x", "count": 1.5}]}, "rules[0].count"),
    ({"rules": [{"match": "x", "count": "1"}]}, "rules[0].count"),
    ({"rules": [{"match": "x", "count": True}]}, "rules[0].count"),
    ({"rules": [{"match": "x"}, {"match": "y", "exit_code": "one"}]}, "rules[1].exit_code"),
    ({"rules": [{"match": "x", "exit_code": 1.5}]}, "rules[0].exit_code"),
    ({"rules": [{"match": "x", "exit_code": None}]}, "rules[0].exit_code"),
    ({"rules": [{"match": "x", "duration": "long"}]}, "rules[0].duration"),
    ({"rules": [{"match": "x", "duration": -1}]}, "rules[0].duration"),
    ({"rules": [{"match": "x", "duration": None}]}, "rules[0].duration"),
    ({"rules": [{"match": 3}]}, "rules[0].match"),
    ({"rules": [{"match": "x", "output": 3}]}, "rules[0].output"),
    ({"rules": [{"match": "x", "instance_ids": "i-1"}]}, "rules[0].instance_ids"),
    ({"rules": [{"match": "x", "status": "Weird"}]}, "rules[0].status"),
    ({"rules": [{"match": "x", "counts": 1}]}, "counts"),
    ({"rules": ["x"]}, "rules[0] must be an object"),
    ({"rules": {"match": "x"}}, "rules must be a list"),
    ({"rules": [], "not_running": "ignore"}, "not_running"),
    ({"rules": [], "rulez": []}, "rulez"),
])
def test_behaviour_is_refused_with_400_naming_the_field(emulator, body, named):
    before = emulator.admin.request("POST", "command-behaviour", {"rules": [{"match": "keep", "count": 3}]})
    with pytest.raises(RuntimeError) as err:
        emulator.admin.request("POST", "command-behaviour", body)
    assert "400" in str(err.value) and "InvalidBody" in str(err.value) and named in str(err.value)
    assert emulator.admin.request("GET", "command-behaviour") == before


def test_stop_invocation(emulator, ecs_client, fleet):
    ids = fleet(2)
    emulator.admin.request("POST", "command-behaviour", {"rules": [{"match": "long", "duration": 1000}]})
    client = ecs_client()
    pending = run(client, ids, "long job")
    client.stop_invocation(m.StopInvocationRequest(region_id=REGION, invoke_id=pending.invoke_id,
                                                   instance_id=[ids[0]]))
    inv = invocation(client, pending.invoke_id)
    by_id = {i.instance_id: i for i in inv.invoke_instances.invoke_instance}
    assert by_id[ids[0]].invocation_status == "Cancelled" and by_id[ids[1]].invocation_status == "Pending"

    emulator.admin.advance(5)
    client.stop_invocation(m.StopInvocationRequest(region_id=REGION, invoke_id=pending.invoke_id))
    inv = invocation(client, pending.invoke_id)
    by_id = {i.instance_id: i for i in inv.invoke_instances.invoke_instance}
    assert by_id[ids[1]].invocation_status == "Terminated" and by_id[ids[1]].stop_time
    assert inv.invocation_status == "Stopped" and inv.invoke_status == "Stopped"
    emulator.admin.advance(2000)  # the scheduled finish must not resurrect a stopped run
    assert invocation(client, pending.invoke_id).invocation_status == "Stopped"
    stopped = results(client, pending.invoke_id, invoke_record_status="Stopped")
    assert stopped.total_count == 2

    err = api_error(lambda: client.stop_invocation(m.StopInvocationRequest(region_id=REGION, invoke_id="t-nope")))
    assert err.code == "InvalidInvokeId.NotFound" and err.data["statusCode"] == 404


# -- instances that are not Running -----------------------------------------------------------
def test_not_running_instance_recorded(emulator, ecs_client, fleet):
    running = fleet(1)
    stopped = fleet(1, status="Stopped")
    client = ecs_client()
    body = run(client, running + stopped)
    emulator.admin.advance(10)
    res = {r.instance_id: r for r in results(client, body.invoke_id).invocation_results.invocation_result}
    assert res[stopped[0]].invocation_status == "Aborted" and res[stopped[0]].error_code == "InstanceNotRunning"
    assert res[stopped[0]].invoke_record_status == "Failed"
    assert res[running[0]].invocation_status == "Success"
    inv = invocation(client, body.invoke_id)
    assert inv.invocation_status == "PartialFailed" and inv.invoke_status == "PartialFailed"


def test_not_running_instance_rejected(emulator, ecs_client, fleet):
    stopped = fleet(1, status="Stopped")
    emulator.admin.request("POST", "command-behaviour", {"not_running": "reject"})
    err = api_error(lambda: run(ecs_client(), stopped))
    assert err.code == "InvalidInstance.NotMatch" and err.data["statusCode"] == 403


# -- validation -------------------------------------------------------------------------------
def test_validation_errors(emulator, ecs_client, fleet):
    ids = fleet(1)
    client = ecs_client()
    cases = [
        (dict(content="x" * 12289), "CmdContent.ExceedLimit", 403),
        (dict(content="echo", type="RunFortranScript"), "InvalidCmdType.NotFound", 403),
        (dict(content="!!notbase64", content_encoding="Base64"), "CmdContent.DecodeError", 400),
        (dict(content=" ".join(f"{{{{p{i}}}}}" for i in range(21)), enable_parameter=True,
              parameters={f"p{i}": "v" for i in range(21)}), "CmdParamCount.ExceedLimit", 403),
        (dict(content="echo {{a}}", enable_parameter=False, parameters={"a": "1"}), "Parameter.Disabled", 400),
        (dict(content="echo {{a}}", enable_parameter=True, parameters={"b": "1"}), "Parameter.NotMatched", 403),
        (dict(content="echo {{a}}", enable_parameter=True, parameters={"a": ["list"]}),
         "ParameterType.NotSupported", 403),
        (dict(content="echo", name="n" * 129), "CmdName.ExceedLimit", 403),
        (dict(content="echo", timeout=86401), "InvalidTimeout.ExceedLimit", 403),
        (dict(content="echo", working_dir="/" * 201), "InvalidParameter.WorkingDir", 400),
    ]
    for kwargs, code, status in cases:
        err = api_error(lambda kwargs=kwargs: run(client, ids, kwargs.pop("content"), **kwargs))
        assert (err.code, err.data["statusCode"]) == (code, status), kwargs

    # exactly 16 KB once Base64-encoded is still accepted
    assert run(client, ids, "x" * 12288).invoke_id
    err = api_error(lambda: run(client, ["i-doesnotexist"]))
    assert err.code == "InvalidInstance.NotFound" and err.data["statusCode"] == 404
    err = api_error(lambda: run(client, []))
    assert err.code == "MissingParam.InstanceId"
    err = api_error(lambda: client.run_command(m.RunCommandRequest(region_id=REGION, type="RunShellScript",
                                                                   instance_id=ids)))
    assert err.code == "MissingParameter.CommandContent"
    err = api_error(lambda: run(client, ids, "echo", repeat_mode="Period", frequency="rate(5m)"))
    assert err.code == "InvalidParameter.RepeatMode"
    err = api_error(lambda: client.run_command(m.RunCommandRequest(
        region_id="mars-1", type="RunShellScript", command_content="echo", instance_id=ids)))
    assert err.code == "InvalidRegionId.NotFound"
    # an instance of another region is not found in this one
    other = fleet(1, region="cn-beijing")
    err = api_error(lambda: run(client, other))
    assert err.code == "InvalidInstance.NotFound"


def test_client_token_idempotency(emulator, ecs_client, fleet):
    ids = fleet(1)
    client = ecs_client()
    first = run(client, ids, "echo once", client_token="tok-1")
    again = run(client, ids, "echo once", client_token="tok-1")
    assert (first.invoke_id, first.command_id) == (again.invoke_id, again.command_id)
    err = api_error(lambda: run(client, ids, "echo changed", client_token="tok-1"))
    assert err.code == "IdempotentParameterMismatch"
    total = client.describe_invocations(m.DescribeInvocationsRequest(region_id=REGION)).body.total_count
    assert total == 1


# -- describe: filters and pages --------------------------------------------------------------
def test_pagination_and_filters(emulator, ecs_client, fleet):
    ids = fleet(3)
    client = ecs_client()
    emulator.admin.request("POST", "command-behaviour", {"rules": [{"match": "fail", "exit_code": 3}]})
    ok = run(client, ids, "echo ok")
    emulator.admin.advance(1)
    bad = run(client, ids[:1], "fail now")
    emulator.admin.advance(10)

    page1 = results(client, ok.invoke_id, max_results=2)
    assert len(page1.invocation_results.invocation_result) == 2 and page1.next_token
    page2 = results(client, ok.invoke_id, max_results=2, next_token=page1.next_token)
    assert len(page2.invocation_results.invocation_result) == 1 and not page2.next_token
    seen = [r.instance_id for r in page1.invocation_results.invocation_result + page2.invocation_results.invocation_result]
    assert sorted(seen) == sorted(ids)

    by_page = results(client, ok.invoke_id, page_size=2, page_number=2)
    assert by_page.page_number == 2 and by_page.total_count == 3 and len(by_page.invocation_results.invocation_result) == 1

    all_results = client.describe_invocation_results(m.DescribeInvocationResultsRequest(
        region_id=REGION, instance_id=ids[0])).body.invocation
    assert {r.invoke_id for r in all_results.invocation_results.invocation_result} == {ok.invoke_id, bad.invoke_id}

    invs = client.describe_invocations(m.DescribeInvocationsRequest(region_id=REGION)).body
    assert [i.invoke_id for i in invs.invocations.invocation] == [bad.invoke_id, ok.invoke_id]  # newest first
    failed = client.describe_invocations(m.DescribeInvocationsRequest(region_id=REGION, invoke_status="Failed")).body
    assert [i.invoke_id for i in failed.invocations.invocation] == [bad.invoke_id]
    finished = client.describe_invocations(m.DescribeInvocationsRequest(region_id=REGION,
                                                                        invoke_status="Finished")).body
    assert {i.invoke_id for i in finished.invocations.invocation} == {ok.invoke_id, bad.invoke_id}
    by_instance = client.describe_invocations(m.DescribeInvocationsRequest(region_id=REGION, instance_id=ids[2])).body
    assert [i.invoke_id for i in by_instance.invocations.invocation] == [ok.invoke_id]
    first = client.describe_invocations(m.DescribeInvocationsRequest(region_id=REGION, max_results=1)).body
    assert len(first.invocations.invocation) == 1 and first.next_token
    second = client.describe_invocations(m.DescribeInvocationsRequest(region_id=REGION, max_results=1,
                                                                      next_token=first.next_token)).body
    assert [i.invoke_id for i in second.invocations.invocation] == [ok.invoke_id] and not second.next_token

    unknown = results(client, "t-unknown")
    assert unknown.total_count == 0 and unknown.invocation_results.invocation_result == []
    err = api_error(lambda: results(client, ok.invoke_id, page_size=51))
    assert err.code == "InvalidParam.PageSize"
    err = api_error(lambda: results(client, ok.invoke_id, max_results=2, next_token="%%%"))
    assert err.code == "InvalidParameter.NextToken"
