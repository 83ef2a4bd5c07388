"""Cloud Assistant around the commands, through the official ECS SDK: DescribeCommands (yours and Alibaba Cloud's
public ones), DescribeCloudAssistantStatus, InstallCloudAssistant, agents marked offline through the admin API
(``command-behaviour`` ``agent_offline``) and what a run on them answers, RebootInstance, per-instance outcomes of
one RunCommand over many instances (ACS-ECS-BulkyRunCommand), and the RAM resources of these actions.

The clock is frozen (``frozen``) and moved with ``admin.advance``.
"""

from __future__ import annotations

import base64
import json

import pytest
from alibabacloud_ecs20140526 import models as m

from emulator.control import AdminError
from emulator.ecs.detection import REPAIR_ITEMS

from .helpers import api_error, fleet

HZ = "cn-hangzhou"
BASE = "aliyun_3_x64_20G_alibase_20250629.vhd"
REPAIR = "ACS-ECS-ImageRepair-for-linux.sh"


def instances(emulator, count=1, status="Running", **extra) -> list[str]:
    return fleet(emulator, instances=[{"region": HZ, "count": count, "status": status, **extra}])["instances"]


def behaviour(emulator, **body):
    return emulator.admin.request("POST", "command-behaviour", body)


def statuses(client, ids=None, **kw) -> dict:
    body = client.describe_cloud_assistant_status(m.DescribeCloudAssistantStatusRequest(
        region_id=HZ, instance_id=ids, **kw)).body
    return {s.instance_id: s for s in body.instance_cloud_assistant_status_set.instance_cloud_assistant_status}


def status_of(client, iid) -> str:
    body = client.describe_instances(m.DescribeInstancesRequest(region_id=HZ, instance_ids=json.dumps([iid]))).body
    return body.instances.instance[0].status


def run(client, ids, content="echo hi", **kw) -> str:
    return client.run_command(m.RunCommandRequest(region_id=HZ, type="RunShellScript", command_content=content,
                                                  instance_id=ids, **kw)).body.invoke_id


def results(client, invoke_id) -> dict:
    body = client.describe_invocation_results(m.DescribeInvocationResultsRequest(
        region_id=HZ, invoke_id=invoke_id, content_encoding="PlainText")).body
    return {r.instance_id: r for r in body.invocation.invocation_results.invocation_result}


def invocation(client, invoke_id):
    body = client.describe_invocations(m.DescribeInvocationsRequest(region_id=HZ, invoke_id=invoke_id)).body
    return body.invocations.invocation[0]


def commands(client, region=HZ, **kw):
    return client.describe_commands(m.DescribeCommandsRequest(region_id=region, **kw)).body


# -- DescribeCommands --------------------------------------------------------------------------------------------
def test_describe_commands_finds_the_public_repair_command(frozen, ecs_client):
    client = ecs_client()
    body = commands(client, provider="AlibabaCloud", name="ImageRepair")  # public: fuzzy by default
    assert body.total_count == 1
    (cmd,) = body.commands.command
    assert (cmd.command_id, cmd.name, cmd.type) == (REPAIR, REPAIR, "RunShellScript")
    assert (cmd.provider, cmd.category, cmd.version, cmd.latest) == ("AlibabaCloud.ECS.GuestOS", "ImageRepair", 1, True)
    assert cmd.enable_parameter is True and cmd.parameter_names.parameter_name == ["repairitems", "disk_serial"]
    defs = {d.parameter_name: d for d in cmd.parameter_definitions.parameter_definition}
    assert defs["disk_serial"].required is True and defs["repairitems"].required is False
    assert set(defs["repairitems"].possible_values.possible_value) == {"all", *REPAIR_ITEMS}
    assert "{{disk_serial}}" in base64.b64decode(cmd.command_content).decode()  # Base64 by default
    assert cmd.timeout == 3600 and cmd.invoke_times == 0
    plain = commands(client, provider="AlibabaCloud.ECS.GuestOS", name=REPAIR, type="RunShellScript",
                     content_encoding="PlainText")
    assert plain.commands.command[0].command_content.startswith("#!/bin/bash")
    assert commands(client, provider="AlibabaCloud.ECS.GuestOSDiagnose").total_count == 0
    assert commands(client, provider="AlibabaCloud", type="RunPowerShellScript").total_count == 0
    assert commands(client, provider="AlibabaCloud", command_id=REPAIR, latest=True).total_count == 1
    assert commands(client).total_count == 0  # without Provider: only your own commands
    # its runs are counted
    (iid,) = instances(frozen, data_disks=[{"size": 40}])
    client.invoke_command(m.InvokeCommandRequest(region_id=HZ, command_id=REPAIR, instance_id=[iid],
                                                 parameters={"disk_serial": "bp1x"}))
    assert commands(client, provider="AlibabaCloud", command_id=REPAIR).commands.command[0].invoke_times == 1
    assert commands(client, "cn-shanghai", provider="AlibabaCloud").commands.command[0].invoke_times == 0


def test_describe_commands_lists_your_commands(frozen, ecs_client):
    client = ecs_client()
    made = [client.create_command(m.CreateCommandRequest(region_id=HZ, name=name, type="RunShellScript",
                                                         command_content=f"echo {{{{who}}}} {name}",
                                                         enable_parameter=True, description=f"say {name}")
                                  ).body.command_id for name in ("deploy-web", "deploy-db", "cleanup")]
    (iid,) = instances(frozen)
    run(client, [iid], "echo not kept")
    kept = client.run_command(m.RunCommandRequest(region_id=HZ, type="RunShellScript", command_content="uptime",
                                                  instance_id=[iid], keep_command=True, name="kept")).body
    body = commands(client)
    assert body.total_count == 4 and [c.command_id for c in body.commands.command] == \
        [kept.command_id, *reversed(made)]  # newest first; RunCommand's own command only with KeepCommand
    web = commands(client, name="deploy-web", content_encoding="PlainText").commands.command
    assert [c.command_id for c in web] == [made[0]]
    assert web[0].command_content == "echo {{who}} deploy-web" and web[0].parameter_names.parameter_name == ["who"]
    assert (web[0].provider, web[0].category, web[0].version, web[0].latest) == ("", "", None, None)
    assert commands(client, name="deploy").total_count == 0  # your commands: exact unless *
    assert commands(client, name="deploy-*").total_count == 2
    assert commands(client, description="*db").commands.command[0].command_id == made[1]
    assert commands(client, command_id=made[2]).commands.command[0].name == "cleanup"
    client.invoke_command(m.InvokeCommandRequest(region_id=HZ, command_id=made[2], instance_id=[iid],
                                                 parameters={"who": "me"}))
    assert commands(client, command_id=made[2]).commands.command[0].invoke_times == 1
    assert commands(client, "cn-beijing").total_count == 0
    page = commands(client, max_results=3)
    assert len(page.commands.command) == 3 and page.next_token
    rest = commands(client, max_results=3, next_token=page.next_token)
    assert len(rest.commands.command) == 1 and rest.next_token == ""
    assert api_error(client.describe_commands, m.DescribeCommandsRequest(region_id=HZ, page_size=51)) == \
        ("InvalidParam.PageSize", 403)
    assert api_error(client.describe_commands, m.DescribeCommandsRequest(region_id=HZ, page_number=0)) == \
        ("InvalidParam.PageNumber", 403)
    assert api_error(client.describe_commands, m.DescribeCommandsRequest(region_id="mars-1")) == \
        ("InvalidRegionId.NotFound", 404)


# -- DescribeCloudAssistantStatus --------------------------------------------------------------------------------
def test_cloud_assistant_status(frozen, ecs_client):
    running = instances(frozen, 2)
    (stopped,) = instances(frozen, status="Stopped")
    client = ecs_client()
    got = statuses(client, running + [stopped, "i-nosuchinstance"])
    assert list(got) == running + [stopped]  # unknown ids are left out
    first = got[running[0]]
    assert (first.cloud_assistant_status, first.cloud_assistant_version, first.ostype) == ("true", "2.2.3.857", "Linux")
    assert first.support_session_manager is True and first.last_heartbeat_time
    assert (first.invocation_count, first.active_task_count, first.last_invoked_time) == (0, 0, "")
    assert got[stopped].cloud_assistant_status == "false" and got[stopped].last_heartbeat_time == ""
    invoke_id = run(client, running[:1])
    frozen.admin.advance(1.5)
    busy = statuses(client, running[:1])[running[0]]
    assert (busy.invocation_count, busy.active_task_count) == (1, 1)
    assert busy.last_invoked_time == invocation(client, invoke_id).creation_time
    frozen.admin.advance(10)
    assert statuses(client, running[:1])[running[0]].active_task_count == 0
    every = client.describe_cloud_assistant_status(m.DescribeCloudAssistantStatusRequest(region_id=HZ, page_size=2))
    assert every.body.total_count == 3 and len(every.body.instance_cloud_assistant_status_set
                                               .instance_cloud_assistant_status) == 2
    assert statuses(client, ostype="Windows") == {} and len(statuses(client, ostype="linux")) == 3
    new = client.run_instances(m.RunInstancesRequest(region_id=HZ, image_id=BASE, instance_type="ecs.g7.large")
                               ).body.instance_id_sets.instance_id_set[0]
    assert statuses(client, [new])[new].cloud_assistant_status == "false"  # Pending: no agent yet
    frozen.admin.advance(55)
    assert statuses(client, [new])[new].cloud_assistant_status == "true"


def test_cloud_assistant_status_errors(frozen, ecs_client):
    client = ecs_client()
    req = m.DescribeCloudAssistantStatusRequest
    assert api_error(client.describe_cloud_assistant_status, req(region_id=HZ, ostype="Plan9")) == \
        ("InvalidParameter.OSType", 400)
    assert api_error(client.describe_cloud_assistant_status,
                     req(region_id=HZ, instance_id=[f"i-{n}" for n in range(101)])) == ("InstanceIds.ExceedLimit", 403)
    assert api_error(client.describe_cloud_assistant_status, req(region_id=HZ, page_size=51)) == \
        ("InvalidParam.PageSize", 403)
    assert api_error(client.describe_cloud_assistant_status, req()) == ("MissingParameter.RegionId", 400)


# -- agents offline ----------------------------------------------------------------------------------------------
def test_a_run_on_an_offline_agent_fails_with_client_not_running(frozen, ecs_client):
    down, up = instances(frozen, 2)
    client = ecs_client()
    assert behaviour(frozen, agent_offline=[down])["agent_offline"] == [down]
    assert frozen.admin.request("GET", "command-behaviour")["agent_offline"] == [down]
    got = statuses(client, [down, up])
    assert (got[down].cloud_assistant_status, got[down].cloud_assistant_version) == ("false", "")
    assert got[down].last_heartbeat_time and got[up].cloud_assistant_status == "true"
    invoke_id = run(client, [down, up])  # RunCommand still answers an InvokeId
    assert invoke_id.startswith("t-")
    frozen.admin.advance(1)
    r = results(client, invoke_id)
    assert (r[down].invocation_status, r[down].invoke_record_status, r[down].error_code, r[down].error_info) == \
        ("Failed", "Failed", "ClientNotRunning", "the aliyun service is not running on the instance")
    assert r[down].exit_code == 0 and r[down].output == "" and r[down].finished_time
    frozen.admin.advance(10)
    r = results(client, invoke_id)
    assert r[up].invocation_status == "Success"
    inv = invocation(client, invoke_id)
    assert (inv.invocation_status, inv.invoke_status) == ("PartialFailed", "PartialFailed")
    failed = client.describe_invocation_results(m.DescribeInvocationResultsRequest(
        region_id=HZ, invoke_id=invoke_id, invoke_record_status="Failed")).body.invocation
    assert [x.instance_id for x in failed.invocation_results.invocation_result] == [down]
    # the same through InvokeCommand, and counted rules are not taken by runs that never reach the agent
    behaviour(frozen, rules=[{"match": "", "exit_code": 5, "count": 1}])
    cmd = client.create_command(m.CreateCommandRequest(region_id=HZ, name="c", type="RunShellScript",
                                                       command_content="hostname")).body.command_id
    only_down = client.invoke_command(m.InvokeCommandRequest(region_id=HZ, command_id=cmd, instance_id=[down]))
    frozen.admin.advance(2)
    assert results(client, only_down.body.invoke_id)[down].error_code == "ClientNotRunning"
    assert invocation(client, only_down.body.invoke_id).invocation_status == "Failed"
    assert frozen.admin.request("GET", "command-behaviour")["rules"][0]["count"] == 1
    # a body without agent_offline leaves the agents; an empty list brings them back
    assert behaviour(frozen, rules=[])["agent_offline"] == [down]
    assert behaviour(frozen, agent_offline=[])["agent_offline"] == []
    assert statuses(client, [down])[down].cloud_assistant_status == "true"


@pytest.mark.parametrize("value, where", [
    ("i-1", "agent_offline must be a list"), ([7], "agent_offline[0]"), (["i-nosuchinstance"], "agent_offline[0]"),
])
def test_agent_offline_is_validated(frozen, value, where):
    (iid,) = instances(frozen)
    behaviour(frozen, agent_offline=[iid])
    with pytest.raises(AdminError) as err:
        behaviour(frozen, rules=[{"match": "x", "exit_code": 9}], agent_offline=value)
    assert err.value.status == 400 and err.value.body["Code"] == "InvalidBody" and where in err.value.body["Message"]
    after = frozen.admin.request("GET", "command-behaviour")
    assert after["agent_offline"] == [iid] and after["rules"] == []  # nothing of the refused body applied


# -- InstallCloudAssistant ---------------------------------------------------------------------------------------
def test_install_then_reboot_brings_the_agent_up(frozen, ecs_client):
    down, already = instances(frozen, 2)
    (stopped,) = instances(frozen, status="Stopped")
    behaviour(frozen, agent_offline=[down, stopped])
    client = ecs_client()
    client.install_cloud_assistant(m.InstallCloudAssistantRequest(region_id=HZ, instance_id=[down, already, stopped]))
    got = statuses(client, [down, already])
    assert got[down].cloud_assistant_status == "false" and got[down].cloud_assistant_version == "2.2.3.857"
    assert got[already].cloud_assistant_status == "true"  # left alone
    invoke_id = run(client, [down])
    frozen.admin.advance(2)
    assert results(client, invoke_id)[down].error_code == "ClientNotRunning"  # not before the restart
    client.reboot_instance(m.RebootInstanceRequest(instance_id=down))
    frozen.admin.advance(60)
    assert status_of(client, down) == "Running" and statuses(client, [down])[down].cloud_assistant_status == "true"
    client.start_instance(m.StartInstanceRequest(instance_id=stopped))
    frozen.admin.advance(40)
    assert statuses(client, [stopped])[stopped].cloud_assistant_status == "true"
    assert frozen.admin.request("GET", "command-behaviour")["agent_offline"] == []
    invoke_id = run(client, [down])
    frozen.admin.advance(10)
    assert results(client, invoke_id)[down].invocation_status == "Success"


def test_install_cloud_assistant_errors(frozen, ecs_client):
    client = ecs_client()
    req = m.InstallCloudAssistantRequest
    assert api_error(client.install_cloud_assistant, req(region_id=HZ)) == ("MissingParameter.InstanceId", 400)
    assert api_error(client.install_cloud_assistant, req(region_id=HZ, instance_id=["i-nope"])) == \
        ("InvalidInstanceId.NotFound", 404)
    assert api_error(client.install_cloud_assistant, req(region_id=HZ, instance_id=[f"i-{n}" for n in range(51)])) \
        == ("InvalidParameter.InstanceId", 400)
    new = client.run_instances(m.RunInstancesRequest(region_id=HZ, image_id=BASE, instance_type="ecs.g7.large")
                               ).body.instance_id_sets.instance_id_set[0]
    assert api_error(client.install_cloud_assistant, req(region_id=HZ, instance_id=[new])) == \
        ("IncorrectInstanceStatus", 403)  # Pending
    assert api_error(client.install_cloud_assistant, req(region_id="cn-shanghai", instance_id=[new])) == \
        ("InvalidInstanceId.NotFound", 404)


# -- RebootInstance ----------------------------------------------------------------------------------------------
def test_reboot_instance(frozen, ecs_client):
    iid, other = instances(frozen, 2)
    client = ecs_client()
    before = client.describe_instances(m.DescribeInstancesRequest(region_id=HZ, instance_ids=json.dumps([iid])))
    started = before.body.instances.instance[0].start_time
    frozen.admin.advance(3600)
    assert api_error(client.reboot_instance, m.RebootInstanceRequest(instance_id=iid, dry_run=True)) == \
        ("DryRunOperation", 400)
    client.reboot_instance(m.RebootInstanceRequest(instance_id=iid))
    assert status_of(client, iid) == "Starting"
    assert statuses(client, [iid])[iid].cloud_assistant_status == "false"
    assert api_error(client.reboot_instance, m.RebootInstanceRequest(instance_id=iid)) == \
        ("IncorrectInstanceStatus", 403)  # not Running
    invoke_id = run(client, [iid])
    assert results(client, invoke_id)[iid].invocation_status == "Aborted"
    frozen.admin.advance(60)
    after = client.describe_instances(m.DescribeInstancesRequest(region_id=HZ, instance_ids=json.dumps([iid])))
    inst = after.body.instances.instance[0]
    assert inst.status == "Running" and inst.start_time > started
    client.reboot_instance(m.RebootInstanceRequest(instance_id=other, force_stop=True))
    frozen.admin.advance(49)
    assert status_of(client, other) == "Starting"
    frozen.admin.advance(1)                                   # ForceStop: 10 s down instead of 20
    assert status_of(client, other) == "Running"
    events = client.describe_instance_history_events(m.DescribeInstanceHistoryEventsRequest(
        region_id=HZ, instance_id=other)).body.instance_system_event_set.instance_system_event_type
    assert (events[0].event_type.name, events[0].reason) == ("UserOperation.Reboot", "RebootInstance (ForceStop)")
    assert api_error(client.reboot_instance, m.RebootInstanceRequest(instance_id="i-nope")) == \
        ("InvalidInstanceId.NotFound", 404)


# -- one RunCommand, many instances, different outcomes (ACS-ECS-BulkyRunCommand) --------------------------------
def test_one_run_command_with_an_outcome_per_instance(frozen, ecs_client):
    ok, failing, slow, flaky, down = instances(frozen, 5)
    behaviour(frozen, agent_offline=[down], rules=[
        {"match": "yum update", "instance_ids": [failing], "exit_code": 1, "output": "Error: Nothing to do"},
        {"match": "yum update", "instance_ids": [slow], "duration": 120},
        {"match": "yum update", "instance_ids": [flaky], "exit_code": 2, "output": "lock held", "count": 1},
        {"match": "yum update", "output": "Complete!"}])
    client = ecs_client()
    invoke_id = run(client, [ok, failing, slow, flaky, down], "yum update -y", timeout=60)
    frozen.admin.advance(10)
    r = results(client, invoke_id)
    assert (r[ok].invocation_status, r[ok].exit_code, r[ok].output) == ("Success", 0, "Complete!")
    assert (r[failing].invocation_status, r[failing].exit_code, r[failing].error_code) == \
        ("Failed", 1, "ExitCodeNonzero")
    assert r[failing].output == "Error: Nothing to do"
    assert (r[flaky].exit_code, r[flaky].output) == (2, "lock held")
    assert r[slow].invocation_status == "Running"
    assert r[down].error_code == "ClientNotRunning"
    frozen.admin.advance(60)
    r = results(client, invoke_id)
    assert (r[slow].invocation_status, r[slow].error_code) == ("Timeout", "ExecutionTimeout")  # 120 s > Timeout 60
    assert (invocation(client, invoke_id).invocation_status) == "PartialFailed"
    again = run(client, [flaky], "yum update -y")  # the counted rule is spent
    frozen.admin.advance(10)
    assert (results(client, again)[flaky].exit_code, results(client, again)[flaky].output) == (0, "Complete!")


# -- RAM -----------------------------------------------------------------------------------------------------------
def test_ram_resources_of_the_new_actions(frozen, ecs_client):
    (img_id,) = fleet(frozen, images=[{"region": HZ, "size": 40}])["images"]
    allowed, other = instances(frozen, 2)
    admin = ecs_client()
    snap = admin.describe_images(m.DescribeImagesRequest(region_id=HZ, image_id=img_id)).body.images.image[0] \
        .disk_device_mappings.disk_device_mapping[0].snapshot_id
    arn = "acs:ecs:cn-hangzhou:*:"
    policy = {"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": ["ecs:InvokeCommand", "ecs:DescribeCloudAssistantStatus",
                                       "ecs:InstallCloudAssistant", "ecs:RebootInstance"],
         "Resource": [f"{arn}instance/{allowed}", f"{arn}command/{REPAIR}"]},
        {"Effect": "Allow", "Action": "ecs:DescribeCommands", "Resource": f"{arn}command/*"},
        {"Effect": "Allow", "Action": "ecs:RunInstances",
         "Resource": [f"{arn}instance/*", f"{arn}image/*", f"{arn}securitygroup/*", "acs:vpc:*:*:vswitch/*"]}]}
    frozen.admin.put_keys({"access_key_id": "RamTestAgentKey", "access_key_secret": "RamTestAgentKey-secret",
                           "policy": policy})
    c = ecs_client(access_key_id="RamTestAgentKey", access_key_secret="RamTestAgentKey-secret")

    def denied(fn, req):
        code, status = api_error(fn, req)
        assert (code, status) == ("Forbidden.RAM", 403)

    assert c.describe_commands(m.DescribeCommandsRequest(region_id=HZ, provider="AlibabaCloud")).body.total_count == 1
    c.invoke_command(m.InvokeCommandRequest(region_id=HZ, command_id=REPAIR, instance_id=[allowed],
                                            parameters={"disk_serial": "bp1x"}))
    denied(c.invoke_command, m.InvokeCommandRequest(region_id=HZ, command_id=REPAIR, instance_id=[other],
                                                    parameters={"disk_serial": "bp1x"}))
    mine = admin.create_command(m.CreateCommandRequest(region_id=HZ, name="x", type="RunShellScript",
                                                       command_content="id")).body.command_id
    denied(c.invoke_command, m.InvokeCommandRequest(region_id=HZ, command_id=mine, instance_id=[allowed]))
    c.describe_cloud_assistant_status(m.DescribeCloudAssistantStatusRequest(region_id=HZ, instance_id=[allowed]))
    denied(c.describe_cloud_assistant_status, m.DescribeCloudAssistantStatusRequest(region_id=HZ,
                                                                                   instance_id=[allowed, other]))
    denied(c.describe_cloud_assistant_status, m.DescribeCloudAssistantStatusRequest(region_id=HZ))  # instance/*
    c.install_cloud_assistant(m.InstallCloudAssistantRequest(region_id=HZ, instance_id=[allowed]))
    denied(c.install_cloud_assistant, m.InstallCloudAssistantRequest(region_id=HZ, instance_id=[other]))
    c.reboot_instance(m.RebootInstanceRequest(instance_id=allowed))
    denied(c.reboot_instance, m.RebootInstanceRequest(instance_id=other))
    data_disk = [m.RunInstancesRequestDataDisk(snapshot_id=snap)]
    denied(c.run_instances, m.RunInstancesRequest(region_id=HZ, image_id=BASE, instance_type="ecs.g7.large",
                                                  data_disk=data_disk))  # the snapshot is not in the policy
    c.run_instances(m.RunInstancesRequest(region_id=HZ, image_id=BASE, instance_type="ecs.g7.large"))
