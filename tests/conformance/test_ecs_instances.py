"""ECS instances, disks, security groups and events through the official SDK (alibabacloud_ecs20140526)."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from alibabacloud_ecs20140526 import models as m

from .helpers import api_error

PUBLIC_IMAGE = "aliyun_3_x64_20G_alibase_20250629.vhd"






def fleet(emulator, *entries) -> list[str]:
    return emulator.admin.load_fleet({"instances": list(entries)})["instances"]


def describe(client, region="cn-hangzhou", **kw):
    return client.describe_instances(m.DescribeInstancesRequest(region_id=region, **kw)).body


def status_of(client, instance_id, region="cn-hangzhou") -> str:
    body = describe(client, region, instance_ids=json.dumps([instance_id]))
    return body.instances.instance[0].status


# -- RunInstances ----------------------------------------------------------------------------
def test_run_instances_goes_pending_starting_running(frozen, ecs_client):
    client = ecs_client()
    req = m.RunInstancesRequest(
        region_id="cn-hangzhou", image_id=PUBLIC_IMAGE, instance_type="ecs.g7.large", amount=2,
        zone_id="cn-hangzhou-i", instance_name="web", unique_suffix=True,
        tag=[m.RunInstancesRequestTag(key="env", value="dev"), m.RunInstancesRequestTag(key="team", value="ops")],
        system_disk=m.RunInstancesRequestSystemDisk(size=50, category="cloud_essd"),
        data_disk=[m.RunInstancesRequestDataDisk(size=100, category="cloud_essd")])
    ids = client.run_instances(req).body.instance_id_sets.instance_id_set
    assert len(ids) == 2 and all(i.startswith("i-") for i in ids)
    body = describe(client, instance_ids=json.dumps(ids))
    assert body.total_count == 2
    inst = body.instances.instance[0]
    assert inst.status == "Pending"
    assert inst.zone_id == "cn-hangzhou-i" and inst.region_id == "cn-hangzhou"
    assert (inst.cpu, inst.memory) == (2, 8192)
    assert inst.instance_name in ("web001", "web002")
    assert inst.image_id == PUBLIC_IMAGE and inst.ostype == "linux"
    assert inst.vpc_attributes.vpc_id.startswith("vpc-")
    assert inst.vpc_attributes.private_ip_address.ip_address[0].startswith("172.")
    assert inst.security_group_ids.security_group_id[0].startswith("sg-")
    assert {(t.tag_key, t.tag_value) for t in inst.tags.tag} == {("env", "dev"), ("team", "ops")}
    frozen.admin.advance(15)
    assert status_of(client, ids[0]) == "Starting"
    frozen.admin.advance(40)
    assert status_of(client, ids[0]) == "Running"
    disks = client.describe_disks(m.DescribeDisksRequest(region_id="cn-hangzhou", instance_id=ids[0])).body
    assert sorted((d.type, d.size) for d in disks.disks.disk) == [("data", 100), ("system", 50)]


def test_run_instances_client_token_returns_first_result(emulator, ecs_client):
    client = ecs_client()

    def run():
        return client.run_instances(m.RunInstancesRequest(
            region_id="cn-hangzhou", image_id=PUBLIC_IMAGE, instance_type="ecs.c7.large",
            client_token="run-tok-1")).body.instance_id_sets.instance_id_set

    first, second = run(), run()
    assert first == second
    assert describe(client).total_count == 1


@pytest.mark.parametrize("kwargs,code,status", [
    ({"image_id": "m-nope"}, "InvalidImageId.NotFound", 404),
    ({"instance_type": None}, "MissingParameter.InstanceType", 400),
    ({"instance_type": "bogus"}, "InvalidInstanceType.ValueNotSupported", 400),
    ({"v_switch_id": "vsw-nope"}, "InvalidVSwitchId.NotFound", 404),
    ({"security_group_id": "sg-nope"}, "InvalidSecurityGroupId.NotFound", 404),
    ({"zone_id": "mars-1a"}, "InvalidZoneId.NotFound", 404),
    ({"amount": 0}, "InvalidParameter.Amount", 400),
    ({"tag": [m.RunInstancesRequestTag(key="aliyun-x", value="1")]}, "InvalidTagKey.Malformed", 400),
    ({"tag": [m.RunInstancesRequestTag(key="acs:x", value="1")]}, "InvalidTagKey.Malformed", 400),
    ({"system_disk": m.RunInstancesRequestSystemDisk(size=10)}, "InvalidSystemDiskSize.ValueNotSupported", 400),
    ({"system_disk": m.RunInstancesRequestSystemDisk(category="floppy")},
     "InvalidSystemDiskCategory.ValueNotSupported", 400),
    ({"region_id": "mars-1"}, "InvalidRegionId.NotFound", 404),
])
def test_run_instances_rejects_bad_requests(emulator, ecs_client, kwargs, code, status):
    args = {"region_id": "cn-hangzhou", "image_id": PUBLIC_IMAGE, "instance_type": "ecs.g7.large", **kwargs}
    assert api_error(ecs_client().run_instances, m.RunInstancesRequest(**args)) == (code, status)


# -- DescribeInstances -----------------------------------------------------------------------
def test_describe_instances_both_pagination_schemes(emulator, ecs_client):
    ids = fleet(emulator, {"region": "cn-hangzhou", "name": "node", "count": 25},
                {"region": "cn-shanghai", "count": 3})
    assert len(ids) == 28
    client = ecs_client()
    seen, token, pages = [], None, 0
    while True:
        body = describe(client, max_results=10, next_token=token)
        pages += 1
        assert body.total_count == 25
        seen += [i.instance_id for i in body.instances.instance]
        token = body.next_token
        if not token:
            break
    assert pages == 3 and len(seen) == 25 and len(set(seen)) == 25
    paged = []
    for number in (1, 2, 3):
        body = describe(client, page_number=number, page_size=10)
        assert (body.page_number, body.page_size, body.total_count) == (number, 10, 25)
        paged += [i.instance_id for i in body.instances.instance]
    assert paged == seen
    assert describe(client, page_number=4, page_size=10).instances.instance == []
    assert describe(client, "cn-shanghai").total_count == 3


def test_describe_instances_filters(emulator, ecs_client):
    fleet(emulator,
          {"region": "cn-hangzhou", "name": "web-{n}", "count": 3, "tags": {"env": "prod", "backup": "daily"},
           "zone": "cn-hangzhou-h"},
          {"region": "cn-hangzhou", "name": "db-{n}", "count": 2, "tags": {"env": "test"}, "status": "Stopped",
           "zone": "cn-hangzhou-j"})
    client = ecs_client()
    tag = m.DescribeInstancesRequestTag
    assert describe(client, tag=[tag(key="env", value="prod")]).total_count == 3
    assert describe(client, tag=[tag(key="backup")]).total_count == 3
    assert describe(client, tag=[tag(key="env", value="prod"), tag(key="backup", value="weekly")]).total_count == 0
    assert describe(client, status="Stopped").total_count == 2
    assert describe(client, instance_name="web-*").total_count == 3
    assert describe(client, instance_name="db-2").instances.instance[0].instance_name == "db-2"
    assert describe(client, zone_id="cn-hangzhou-j").total_count == 2
    vpc = describe(client).instances.instance[0].vpc_attributes.vpc_id
    assert describe(client, vpc_id=vpc).total_count == 5
    some = [i.instance_id for i in describe(client, page_size=2).instances.instance]
    assert {i.instance_id for i in describe(client, instance_ids=json.dumps(some)).instances.instance} == set(some)
    assert describe(client, instance_ids=json.dumps(["i-doesnotexist"])).total_count == 0


@pytest.mark.parametrize("kwargs,code", [
    ({"instance_ids": "[not-json"}, "InvalidParameter.InstanceIds"),
    ({"status": "Sleeping"}, "InvalidStatus.ValueNotSupported"),
    ({"page_size": 101}, "InvalidParameter.PageSize"),
    ({"max_results": 0}, "InvalidParameter.MaxResults"),
    ({"next_token": "@@garbage@@"}, "InvalidParameter.NextToken"),
    ({"page_number": 0}, "InvalidParameter.PageNumber"),
])
def test_describe_instances_malformed_params(emulator, ecs_client, kwargs, code):
    assert api_error(describe, ecs_client(), **kwargs) == (code, 400)


def test_describe_instances_missing_region(emulator, ecs_client):
    assert api_error(ecs_client().describe_instances, m.DescribeInstancesRequest()) == \
        ("MissingParameter.RegionId", 400)


# -- Start / Stop / Reboot / Delete ----------------------------------------------------------
def test_stop_start_reboot_transitions_and_history(frozen, ecs_client):
    (iid,) = fleet(frozen, {"region": "cn-shenzhen"})
    client = ecs_client("cn-shenzhen")
    client.stop_instance(m.StopInstanceRequest(instance_id=iid, stopped_mode="StopCharging"))  # no RegionId sent
    assert status_of(client, iid, "cn-shenzhen") == "Stopping"
    assert api_error(client.stop_instance, m.StopInstanceRequest(instance_id=iid)) == ("IncorrectInstanceStatus", 403)
    frozen.admin.advance(30)
    inst = describe(client, "cn-shenzhen").instances.instance[0]
    assert (inst.status, inst.stopped_mode) == ("Stopped", "StopCharging")
    assert api_error(client.reboot_instance, m.RebootInstanceRequest(instance_id=iid)) == \
        ("IncorrectInstanceStatus", 403)
    client.start_instance(m.StartInstanceRequest(instance_id=iid))
    assert status_of(client, iid, "cn-shenzhen") == "Starting"
    frozen.admin.advance(40)
    assert status_of(client, iid, "cn-shenzhen") == "Running"
    client.reboot_instance(m.RebootInstanceRequest(instance_id=iid))
    assert status_of(client, iid, "cn-shenzhen") == "Starting"  # "the status changes to Starting" (API docs)
    frozen.admin.advance(59)
    assert status_of(client, iid, "cn-shenzhen") == "Starting"
    frozen.admin.advance(1)                                      # 20 s down, 40 s up
    assert status_of(client, iid, "cn-shenzhen") == "Running"
    events = client.describe_instance_history_events(m.DescribeInstanceHistoryEventsRequest(
        region_id="cn-shenzhen", instance_id=iid)).body
    names = [e.event_type.name for e in events.instance_system_event_set.instance_system_event_type]
    assert names == ["UserOperation.Reboot", "UserOperation.Start", "UserOperation.Stop"]
    ev = events.instance_system_event_set.instance_system_event_type[0]
    assert ev.event_cycle_status.name == "Executed" and ev.instance_id == iid and ev.event_id
    page = client.describe_instance_history_events(m.DescribeInstanceHistoryEventsRequest(
        region_id="cn-shenzhen", instance_id=iid, max_results=2)).body
    assert len(page.instance_system_event_set.instance_system_event_type) == 2 and page.next_token


def test_force_stop_is_faster(frozen, ecs_client):
    (iid,) = fleet(frozen, {"region": "cn-hangzhou"})
    client = ecs_client()
    client.stop_instance(m.StopInstanceRequest(instance_id=iid, force_stop=True))
    frozen.admin.advance(10)
    assert status_of(client, iid) == "Stopped"


def test_batch_start_and_stop(frozen, ecs_client):
    stopped = fleet(frozen, {"region": "cn-hangzhou", "count": 2, "status": "Stopped"})
    (running,) = fleet(frozen, {"region": "cn-hangzhou"})
    client = ecs_client()
    code, _ = api_error(client.start_instances, m.StartInstancesRequest(
        region_id="cn-hangzhou", instance_id=[*stopped, running]))
    assert code == "IncorrectInstanceStatus"
    assert status_of(client, stopped[0]) == "Stopped"  # AllTogether: nothing happened
    body = client.start_instances(m.StartInstancesRequest(
        region_id="cn-hangzhou", instance_id=[*stopped, running, "i-missing"], batch_optimization="SuccessFirst")).body
    responses = {r.instance_id: r for r in body.instance_responses.instance_response}
    assert responses[stopped[0]].code == "200"
    assert (responses[stopped[0]].previous_status, responses[stopped[0]].current_status) == ("Stopped", "Starting")
    assert responses[running].code == "IncorrectInstanceStatus"
    assert responses["i-missing"].code == "InvalidInstanceId.NotFound"
    frozen.admin.advance(40)
    body = client.stop_instances(m.StopInstancesRequest(region_id="cn-hangzhou", instance_id=stopped,
                                                        force_stop=True)).body
    assert [r.current_status for r in body.instance_responses.instance_response] == ["Stopping", "Stopping"]
    frozen.admin.advance(10)
    assert status_of(client, stopped[1]) == "Stopped"


def test_delete_instance_rules(emulator, ecs_client):
    running, stopped = fleet(emulator, {"region": "cn-hangzhou", "data_disks": [{"size": 50}]},
                             {"region": "cn-hangzhou", "status": "Stopped"})
    client = ecs_client()
    assert api_error(client.delete_instance, m.DeleteInstanceRequest(instance_id=running)) == \
        ("IncorrectInstanceStatus", 403)
    client.delete_instance(m.DeleteInstanceRequest(instance_id=stopped))
    client.delete_instance(m.DeleteInstanceRequest(instance_id=running, force=True))
    assert describe(client).total_count == 0
    assert client.describe_disks(m.DescribeDisksRequest(region_id="cn-hangzhou")).body.total_count == 0
    assert api_error(client.delete_instance, m.DeleteInstanceRequest(instance_id=running)) == \
        ("InvalidInstanceId.NotFound", 404)


@pytest.mark.parametrize("call", ["start_instance", "stop_instance", "reboot_instance", "delete_instance"])
def test_unknown_instance_is_404(emulator, ecs_client, call):
    request = getattr(m, "".join(w.capitalize() for w in call.split("_")) + "Request")(instance_id="i-unknown0000")
    assert api_error(getattr(ecs_client(), call), request) == ("InvalidInstanceId.NotFound", 404)


def test_instance_status_and_full_status(emulator, ecs_client):
    ids = fleet(emulator, {"region": "cn-beijing", "count": 3}, {"region": "cn-beijing", "status": "Stopped"})
    client = ecs_client("cn-beijing")
    body = client.describe_instance_status(m.DescribeInstanceStatusRequest(region_id="cn-beijing", page_size=2)).body
    assert body.total_count == 4 and len(body.instance_statuses.instance_status) == 2
    body = client.describe_instance_status(m.DescribeInstanceStatusRequest(region_id="cn-beijing",
                                                                           instance_id=[ids[-1]])).body
    assert [(s.instance_id, s.status) for s in body.instance_statuses.instance_status] == [(ids[-1], "Stopped")]
    result = emulator.admin.request("POST", "ecs/system-event", {"instance_id": ids[0], "in_seconds": 600})
    body = client.describe_instances_full_status(m.DescribeInstancesFullStatusRequest(
        region_id="cn-beijing", instance_id=[ids[0], ids[-1]])).body
    full = {s.instance_id: s for s in body.instance_full_status_set.instance_full_status_type}
    assert full[ids[0]].status.name == "Running" and full[ids[0]].health_status.name == "Ok"
    events = full[ids[0]].scheduled_system_event_set.scheduled_system_event_type
    assert [(e.event_id, e.event_type.name) for e in events] == [(result["EventId"], "SystemMaintenance.Reboot")]
    assert full[ids[-1]].status.name == "Stopped"
    emulator.admin.advance(600)
    history = client.describe_instance_history_events(m.DescribeInstanceHistoryEventsRequest(
        region_id="cn-beijing", instance_id=ids[0], event_type="SystemMaintenance.Reboot")).body
    (ev,) = history.instance_system_event_set.instance_system_event_type
    assert ev.event_cycle_status.name == "Executed"


# -- disks, security groups ------------------------------------------------------------------
def test_describe_disks_filters_and_pagination(emulator, ecs_client):
    ids = fleet(emulator, {"region": "cn-hangzhou", "count": 6, "data_disks": [{"size": 100}, {"size": 200}]})
    client = ecs_client()
    req = m.DescribeDisksRequest
    assert client.describe_disks(req(region_id="cn-hangzhou")).body.total_count == 18
    assert client.describe_disks(req(region_id="cn-hangzhou", disk_type="system")).body.total_count == 6
    body = client.describe_disks(req(region_id="cn-hangzhou", instance_id=ids[0])).body
    disks = body.disks.disk
    assert sorted(d.size for d in disks) == [40, 100, 200]
    system = next(d for d in disks if d.type == "system")
    assert system.device == "/dev/xvda" and system.status == "In_use" and system.category == "cloud_essd"
    assert system.instance_id == ids[0]
    body = client.describe_disks(req(region_id="cn-hangzhou", disk_ids=json.dumps([system.disk_id]))).body
    assert [d.disk_id for d in body.disks.disk] == [system.disk_id]
    seen, token = [], None
    while True:
        body = client.describe_disks(req(region_id="cn-hangzhou", max_results=5, next_token=token)).body
        seen += [d.disk_id for d in body.disks.disk]
        token = body.next_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 18
    assert api_error(client.describe_disks, req(region_id="cn-hangzhou", disk_type="floppy"))[1] == 400


def test_describe_security_groups(emulator, ecs_client):
    client = ecs_client("ap-southeast-1")
    body = client.describe_security_groups(m.DescribeSecurityGroupsRequest(region_id="ap-southeast-1")).body
    assert body.total_count == 1
    group = body.security_groups.security_group[0]
    assert group.security_group_id.startswith("sg-") and group.vpc_id.startswith("vpc-")
    body = client.describe_security_groups(m.DescribeSecurityGroupsRequest(
        region_id="ap-southeast-1", security_group_ids=json.dumps([group.security_group_id]), max_results=10)).body
    assert [g.security_group_id for g in body.security_groups.security_group] == [group.security_group_id]


# -- ReplaceSystemDisk -----------------------------------------------------------------------
def test_replace_system_disk_needs_stopped(frozen, ecs_client):
    (iid,) = fleet(frozen, {"region": "cn-hangzhou", "system_disk_size": 60})
    client = ecs_client()
    other = "ubuntu_22_04_x64_20G_alibase_20250619.vhd"
    req = m.ReplaceSystemDiskRequest(instance_id=iid, image_id=other)
    assert api_error(client.replace_system_disk, req) == ("IncorrectInstanceStatus", 403)
    client.stop_instance(m.StopInstanceRequest(instance_id=iid))
    frozen.admin.advance(30)
    old = client.describe_disks(m.DescribeDisksRequest(region_id="cn-hangzhou", instance_id=iid,
                                                       disk_type="system")).body.disks.disk[0]
    assert api_error(client.replace_system_disk, m.ReplaceSystemDiskRequest(instance_id=iid, image_id="m-none")) == \
        ("InvalidImageId.NotFound", 404)
    new_id = client.replace_system_disk(req).body.disk_id
    assert new_id.startswith("d-") and new_id != old.disk_id
    disks = client.describe_disks(m.DescribeDisksRequest(region_id="cn-hangzhou", instance_id=iid)).body.disks.disk
    assert [(d.disk_id, d.size, d.image_id) for d in disks] == [(new_id, 60, other)]
    inst = describe(client).instances.instance[0]
    assert inst.image_id == other and inst.status == "Stopped"
    size_req = m.ReplaceSystemDiskRequest(instance_id=iid, image_id=other,
                                          system_disk=m.ReplaceSystemDiskRequestSystemDisk(size=80))
    newer = client.replace_system_disk(size_req).body.disk_id
    assert client.describe_disks(m.DescribeDisksRequest(region_id="cn-hangzhou", disk_ids=json.dumps([newer]))) \
        .body.disks.disk[0].size == 80


# -- scale -----------------------------------------------------------------------------------
def test_ten_thousand_instances_load_and_describe_fast(emulator, ecs_client):
    started = time.monotonic()
    ids = fleet(emulator, {"region": "cn-hangzhou", "count": 10000, "tags": {"env": "bench"}})
    load_seconds = time.monotonic() - started
    assert len(ids) == 10000
    assert load_seconds < 10, load_seconds
    client = ecs_client()
    started = time.monotonic()
    for _ in range(20):
        body = describe(client, max_results=100)
    per_call = (time.monotonic() - started) / 20
    assert body.total_count == 10000 and len(body.instances.instance) == 100
    assert per_call < 0.25, per_call
    body = describe(client, instance_ids=json.dumps(ids[5000:5010]))
    assert [i.instance_id for i in body.instances.instance] == ids[5000:5010]


def test_timings_admin_route(frozen, ecs_client):
    url = f"{frozen.base_url}/_emulator/timings"
    req = urllib.request.Request(url, data=json.dumps({"instance_start": 5}).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **frozen.admin.headers()})
    with urllib.request.urlopen(req) as resp:
        assert json.loads(resp.read())["instance_start"] == 5
    (iid,) = fleet(frozen, {"region": "cn-hangzhou", "status": "Stopped"})
    client = ecs_client()
    client.start_instance(m.StartInstanceRequest(instance_id=iid))
    frozen.admin.advance(5)
    assert status_of(client, iid) == "Running"


# -- StartTime -------------------------------------------------------------------------------
def test_start_time_is_the_last_time_the_instance_reached_running(frozen, ecs_client):
    from emulator.clock import iso, parse_iso

    client = ecs_client()

    def started(iid: str) -> str:
        return describe(client, instance_ids=json.dumps([iid])).instances.instance[0].start_time

    def now() -> float:
        return frozen.admin.clock()["now"]

    (iid,) = client.run_instances(m.RunInstancesRequest(
        region_id="cn-hangzhou", image_id=PUBLIC_IMAGE, instance_type="ecs.g7.large")).body \
        .instance_id_sets.instance_id_set
    assert started(iid) == ""                              # Pending: never started yet
    frozen.admin.advance(55)                               # Pending 15 s, Starting 40 s
    assert status_of(client, iid) == "Running"
    assert started(iid) == iso(now())
    history = [started(iid)]

    def stop():
        client.stop_instance(m.StopInstanceRequest(instance_id=iid))
        frozen.admin.advance(3600)

    for restart in (lambda: client.start_instance(m.StartInstanceRequest(instance_id=iid)),
                    lambda: client.start_instances(m.StartInstancesRequest(region_id="cn-hangzhou",
                                                                           instance_id=[iid]))):
        stop()
        assert started(iid) == history[-1]                 # Stopped: still the last start
        restart()
        assert started(iid) == history[-1]                 # Starting: not started yet
        frozen.admin.advance(40)
        assert started(iid) == iso(now()) and parse_iso(started(iid)) > parse_iso(history[-1])
        history.append(started(iid))
    frozen.admin.advance(3600)
    client.reboot_instance(m.RebootInstanceRequest(instance_id=iid))
    frozen.admin.advance(60)                               # stopping 20 s, starting 40 s
    assert status_of(client, iid) == "Running"
    assert started(iid) == iso(now()) and parse_iso(started(iid)) > parse_iso(history[-1])
