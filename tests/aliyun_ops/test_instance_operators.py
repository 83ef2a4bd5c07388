"""Instance operators, sensor and trigger against the emulator (over HTTP, official SDKs)."""

from __future__ import annotations

import asyncio
import importlib
import json

import pytest
from airflow.sdk.exceptions import TaskDeferred

from aliyun_ops.exceptions import TooManyItemFailures
from aliyun_ops.operators.ecs_instances import (
    DeleteInstancesOperator,
    ReplaceSystemDiskOperator,
    RunInstancesOperator,
    SelectInstancesOperator,
    StartInstancesOperator,
    StopInstancesOperator,
    normalize_instances,
)
from aliyun_ops.sensors.ecs_instances import WaitForInstanceStatusSensor
from aliyun_ops.triggers.ecs_instances import InstanceStatusTrigger, InstanceWatch, InvocationTrigger

HZ, SH = "cn-hangzhou", "cn-shanghai"


# -- helpers ---------------------------------------------------------------------------------------
class FakeTI:
    def __init__(self, task_id: str, dag_id: str = "test_dag", map_index: int = -1, try_number: int = 1):
        self.task_id, self.dag_id, self.map_index, self.try_number = task_id, dag_id, map_index, try_number
        self.xcoms: dict = {}

    def xcom_push(self, key, value):
        self.xcoms[key] = value


class FakeStore:
    def __init__(self):
        self.data = {}

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value):
        self.data[key] = value


def ctx(task_id: str = "task", run_id: str = "manual__2024-01-01", store=None, **ti):
    return {"ti": FakeTI(task_id, **ti), "run_id": run_id, "task_state_store": store}


def roundtrip(trigger):
    """Serialize, JSON-encode and rebuild the trigger, as the triggerer does."""
    path, kwargs = trigger.serialize()
    module, name = path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    return cls(**json.loads(json.dumps(kwargs)))


async def _first_event(trigger):
    async for event in trigger.run():
        return event.payload
    raise AssertionError("trigger yielded nothing")


def run_op(op, context, max_deferrals: int = 20):
    """execute(); on TaskDeferred run the (round-tripped) trigger and resume, as often as it defers."""
    call = lambda: op.execute(context)  # noqa: E731
    for _ in range(max_deferrals):
        try:
            return call()
        except TaskDeferred as deferred:
            trigger = roundtrip(deferred.trigger)
            event = asyncio.run(_first_event(trigger))
            method = getattr(op, deferred.method_name)
            # dag.test() resumes with {"event": ...} only (the defer kwargs are dropped): do the same
            call = lambda m=method, e=event: m(context, event=e)  # noqa: E731
    raise AssertionError("deferred too often")


def counters(emulator, action):
    return emulator.admin.calls()["counters"].get(f"ecs:{action}", {}).get("calls", 0)


@pytest.fixture
def fleet(aliyun_env):
    emu = aliyun_env(retry_base_delay=0.01, retry_max_delay=0.05)

    def load(spec):
        out = emu.admin.load_fleet(spec)
        emu.admin.clear_calls()
        return out

    return emu, load


def ids_of(emu, region=None, **tags):
    table = emu.admin.table("ecs.instances")
    return sorted(i for i, r in table.items() if (region is None or r["RegionId"] == region)
                  and all(r.get("Tags", {}).get(k) == v for k, v in tags.items()))


def statuses(emu):
    return {i: r["Status"] for i, r in emu.admin.table("ecs.instances").items()}


# -- pure / validation -----------------------------------------------------------------------------
def test_normalize_instances_accepts_loose_forms():
    assert normalize_instances("i-1,i-2", HZ) == [{"instance_id": "i-1", "region": HZ},
                                                  {"instance_id": "i-2", "region": HZ}]
    assert normalize_instances([{"instance_id": "i-3", "region": SH}, "i-3"], HZ) == [
        {"instance_id": "i-3", "region": SH}]
    assert normalize_instances(None, HZ) == []
    with pytest.raises(ValueError, match="does not look like"):
        normalize_instances(["m-1"], HZ)
    with pytest.raises(ValueError, match="no region"):
        normalize_instances(["i-1"], None)


@pytest.mark.parametrize("kwargs, match", [
    ({}, "refusing"),
    ({"tags": {"acs:x": "1"}}, "may not start"),
    ({"tags": {"a": "b"}, "statuses": ["Sleeping"]}, "unknown instance status"),
    ({"tags": {"a": "b"}, "regions": ["Hangzhou"]}, "region id"),
])
def test_select_rejects_bad_input_before_any_call(fleet, kwargs, match):
    emu, _ = fleet
    op = SelectInstancesOperator(task_id="select", region=HZ, **kwargs)
    with pytest.raises(ValueError, match=match):
        op.execute(ctx())
    assert emu.admin.calls()["counters"] == {}


def test_start_stop_reject_bad_input_before_any_call(fleet):
    emu, _ = fleet
    cases = [
        (StartInstancesOperator, {}, "give instances"),
        (StartInstancesOperator, {"instances": ["i-1"], "concurrency": 0}, "concurrency"),
        (StartInstancesOperator, {"instances": ["i-1"], "max_errors": "x%"}, "max_errors"),
        (StartInstancesOperator, {"tags": {}}, "give instances"),
        (StopInstancesOperator, {"instances": ["i-1"], "stopped_mode": "Hibernate"}, "stopped_mode"),
        (StopInstancesOperator, {"instances": ["bogus"]}, "does not look like"),
        (StopInstancesOperator, {"instances": ["i-1"], "poll_interval": 0}, "poll_interval"),
    ]
    for cls, kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            cls(task_id="t", region=HZ, **kwargs).execute(ctx())
    assert emu.admin.calls()["counters"] == {}


def test_template_fields_are_attributes():
    ops = [
        SelectInstancesOperator(task_id="a", tags={"a": "b"}),
        StartInstancesOperator(task_id="b", instances=["i-1"]),
        StopInstancesOperator(task_id="c", instances=["i-1"]),
        ReplaceSystemDiskOperator(task_id="d", instances=["i-1"], image_id="m-1"),
        RunInstancesOperator(task_id="e", image_id="m-1", instance_type="ecs.g7.large"),
        DeleteInstancesOperator(task_id="f", instances=["i-1"]),
        WaitForInstanceStatusSensor(task_id="g", instance_ids=["i-1"]),
    ]
    for op in ops:
        assert "aliyun_conn_id" in op.template_fields and "region" in op.template_fields
        for name in op.template_fields:
            assert hasattr(op, name), (type(op).__name__, name)
    assert "password" not in ReplaceSystemDiskOperator.template_fields


def test_template_fields_render(fleet):
    from airflow.sdk import DAG

    with DAG("tpl", schedule=None):
        op = SelectInstancesOperator(task_id="s", regions=["{{ params.r }}"], tags={"env": "{{ params.env }}"})
    op.render_template_fields({"params": {"r": HZ, "env": "test"}})
    assert op.regions == [HZ] and op.tags == {"env": "test"}


def test_trigger_serialize_roundtrip():
    trig = InstanceStatusTrigger(targets={HZ: ["i-1", "i-2"], SH: ["i-3"]}, target_status="Stopped",
                                 aliyun_conn_id="c1", poll_interval=5, deadline=123.0)
    path, kwargs = trig.serialize()
    assert path == "aliyun_ops.triggers.ecs_instances.InstanceStatusTrigger"
    assert kwargs == {"aliyun_conn_id": "c1", "region": None, "poll_interval": 5.0, "deadline": 123.0,
                      "targets": {HZ: ["i-1", "i-2"], SH: ["i-3"]}, "target_status": "Stopped", "missing_polls": 2,
                      "carry": None}
    again = roundtrip(trig)
    assert again.serialize() == (path, kwargs)
    inv = InvocationTrigger(targets={HZ: ["t-1"]}, poll_interval=2)
    assert roundtrip(inv).serialize() == inv.serialize()
    with pytest.raises(ValueError):
        InstanceStatusTrigger(targets={HZ: ["i-1"]}, target_status="Sleeping")


def test_instance_watch_is_pure():
    watch = InstanceWatch({HZ: ["i-1", "i-2", "i-3"]}, "Running", missing_polls=2)
    watch.update(HZ, ["i-1", "i-2", "i-3"], [{"InstanceId": "i-1", "Status": "Running"},
                                             {"InstanceId": "i-2", "Status": "Starting"}])
    assert not watch.done and watch.pending_by_region() == {HZ: ["i-2", "i-3"]}
    watch.update(HZ, ["i-2", "i-3"], [{"InstanceId": "i-2", "Status": "Running"}])
    assert watch.done
    ev = watch.event("success")
    assert ev["instances"]["i-3"] == {"region": HZ, "status": "Missing", "reached": False}
    gone = InstanceWatch({HZ: ["i-1"]}, "Deleted")
    gone.update(HZ, ["i-1"], [])
    assert gone.done and gone.items["i-1"]["reached"]


# -- select ----------------------------------------------------------------------------------------
def test_select_across_pages_and_regions(fleet):
    emu, load = fleet
    load({"instances": [
        {"region": HZ, "count": 130, "status": "Running", "tags": {"env": "test"}, "name": "web"},
        {"region": HZ, "count": 5, "status": "Stopped", "tags": {"env": "test"}, "name": "db"},
        {"region": HZ, "count": 4, "status": "Running", "tags": {"env": "prod"}, "name": "web"},
        {"region": SH, "count": 3, "status": "Running", "tags": {"env": "test"}, "name": "web"},
    ]})
    c = ctx("select")
    out = SelectInstancesOperator(task_id="select", regions=[HZ, SH], tags={"env": "test"},
                                  statuses=["Running"]).execute(c)
    assert len(out) == 133
    assert {r["region"] for r in out} == {HZ, SH}
    assert set(out[0]) == {"instance_id", "instance_name", "region", "zone", "status", "tags"}
    json.dumps(out)
    assert c["ti"].xcoms["missing"] == []
    # 130 running test instances in HZ -> at least 2 pages of 100
    assert counters(emu, "DescribeInstances") >= 3
    by_name = SelectInstancesOperator(task_id="s2", regions=[HZ], name_pattern="db-00?",
                                      tags={"env": "test"}).execute(ctx())
    assert len(by_name) == 5 and all(r["status"] == "Stopped" for r in by_name)


def test_select_reports_missing_ids(fleet):
    emu, load = fleet
    load({"instances": [{"region": HZ, "count": 2, "status": "Running", "tags": {"env": "test"}},
                        {"region": HZ, "count": 1, "status": "Running", "tags": {"env": "prod"}}]})
    ids = ids_of(emu, env="test")
    prod = ids_of(emu, env="prod")
    c = ctx()
    out = SelectInstancesOperator(task_id="s", regions=[HZ], instance_ids=[*ids, *prod, "i-doesnotexist"],
                                  tags={"env": "test"}).execute(c)
    assert sorted(r["instance_id"] for r in out) == ids
    assert c["ti"].xcoms["missing"] == ["i-doesnotexist"]   # prod exists: excluded, not missing
    with pytest.raises(RuntimeError, match="not found"):
        SelectInstancesOperator(task_id="s", regions=[HZ], instance_ids=["i-doesnotexist"],
                                fail_on_missing=True).execute(ctx())


# -- start / stop ----------------------------------------------------------------------------------
@pytest.mark.parametrize("deferrable", [True, False])
def test_start_skips_running_and_batches(fleet, deferrable):
    emu, load = fleet
    load({"instances": [{"region": HZ, "count": 3, "status": "Running", "tags": {"env": "test"}},
                        {"region": HZ, "count": 120, "status": "Stopped", "tags": {"env": "test"}}]})
    op = StartInstancesOperator(task_id="start", tags={"env": "test"}, regions=[HZ], deferrable=deferrable,
                                poll_interval=0.2)
    out = run_op(op, ctx("start"))
    assert len(out) == 123
    skipped = [r for r in out if r["status"] == "skipped"]
    assert len(skipped) == 3 and all(r["reason"] == "already Running" for r in skipped)
    assert all(r["status"] == "success" and r["instance_status"] == "Running" for r in out if r not in skipped)
    assert counters(emu, "StartInstances") == 2          # 120 ids -> 2 calls of <=100
    assert counters(emu, "StartInstance") == 0
    assert set(statuses(emu).values()) == {"Running"}
    json.dumps(out)


def test_stop_by_ids_with_waves_and_stopped_mode(fleet):
    emu, load = fleet
    load({"instances": [{"region": HZ, "count": 6, "status": "Running"},
                        {"region": SH, "count": 2, "status": "Running"},
                        {"region": SH, "count": 1, "status": "Stopped"}]})
    table = emu.admin.table("ecs.instances")
    items = [{"instance_id": i, "region": r["RegionId"]} for i, r in table.items()]
    op = StopInstancesOperator(task_id="stop", instances=items, concurrency=4, stopped_mode="StopCharging",
                               force_stop=True, poll_interval=0.2)
    out = run_op(op, ctx("stop"))
    assert [r["status"] for r in out].count("success") == 8
    assert [r["status"] for r in out].count("skipped") == 1
    # 8 to stop, waves of 4: wave 1 = 4 HZ; wave 2 = 2 HZ + 2 SH -> 3 calls
    assert counters(emu, "StopInstances") == 3
    after = emu.admin.table("ecs.instances")
    assert all(r["Status"] == "Stopped" for r in after.values())
    assert {r["StoppedMode"] for r in after.values() if r["RegionId"] == HZ} == {"StopCharging"}


def test_start_missing_and_max_errors(fleet):
    emu, load = fleet
    load({"instances": [{"region": HZ, "count": 2, "status": "Stopped"}]})
    ids = ids_of(emu)
    op = StartInstancesOperator(task_id="start", instances=[*ids, "i-gone1"], region=HZ, max_errors=1,
                                deferrable=False, poll_interval=0.2)
    out = op.execute(ctx())
    by_id = {r["instance_id"]: r for r in out}
    assert by_id["i-gone1"]["status"] == "failed" and "not found" in by_id["i-gone1"]["reason"]
    assert all(by_id[i]["status"] == "success" for i in ids)
    with pytest.raises(TooManyItemFailures, match="more than max_errors"):
        StartInstancesOperator(task_id="start", instances=["i-gone1", "i-gone2"], region=HZ, max_errors=1,
                               deferrable=False).execute(ctx())


def test_max_errors_stops_later_waves(fleet):
    emu, load = fleet
    load({"instances": [{"region": HZ, "count": 4, "status": "Running"}]})
    ids = ids_of(emu)
    op = StopInstancesOperator(task_id="stop", instances=["i-gone1", *ids], region=HZ, concurrency=2,
                               max_errors=0, deferrable=False, poll_interval=0.2)
    with pytest.raises(TooManyItemFailures, match="1 of 5 instances failed"):
        op.execute(ctx())
    assert counters(emu, "StopInstances") == 0             # the budget was spent before the first wave
    assert set(statuses(emu).values()) == {"Running"}


def test_start_survives_throttling_and_503(fleet):
    emu, load = fleet
    load({"instances": [{"region": HZ, "count": 5, "status": "Stopped", "tags": {"env": "test"}}]})
    emu.admin.set_faults({"rules": [
        {"action": "ecs:StartInstances", "kind": "throttle", "count": 2},
        {"action": "ecs:DescribeInstances", "kind": "error", "status": 503, "count": 3},
    ]})
    out = run_op(StartInstancesOperator(task_id="start", tags={"env": "test"}, poll_interval=0.2), ctx())
    assert all(r["status"] == "success" for r in out)
    calls = emu.admin.calls()["counters"]
    assert calls["ecs:StartInstances"]["calls"] == 3 and calls["ecs:StartInstances"]["errors"] == 2
    assert set(statuses(emu).values()) == {"Running"}


# -- sensor ----------------------------------------------------------------------------------------
def test_sensor_deferred_and_poke(fleet):
    emu, load = fleet
    load({"instances": [{"region": HZ, "count": 3, "status": "Stopped"}]})
    ids = ids_of(emu)
    sensor = WaitForInstanceStatusSensor(task_id="wait", instance_ids=ids, region=HZ, target_status="Running",
                                         poke_interval=0.2, timeout=60)
    assert sensor.poke(ctx()) is False
    StartInstancesOperator(task_id="s", instances=ids, region=HZ, wait_for_completion=False).execute(ctx())
    assert run_op(sensor, ctx()) == dict.fromkeys(ids, "Running")
    assert sensor.poke(ctx()) is True
    with pytest.raises(RuntimeError, match="not found"):
        WaitForInstanceStatusSensor(task_id="w", instance_ids=["i-nope"], region=HZ,
                                    deferrable=False).poke(ctx())


def test_sensor_times_out(fleet):
    emu, load = fleet
    load({"instances": [{"region": HZ, "count": 1, "status": "Stopped"}]})
    sensor = WaitForInstanceStatusSensor(task_id="wait", instance_ids=ids_of(emu), region=HZ,
                                         poke_interval=0.2, timeout=0.5)
    with pytest.raises(RuntimeError, match="did not reach Running"):
        run_op(sensor, ctx())


# -- replace system disk ---------------------------------------------------------------------------
def test_replace_system_disk_full_cycle_and_retry(fleet, ecs_client):
    emu, load = fleet
    load({"instances": [{"region": HZ, "count": 2, "status": "Running"}]})
    ids = ids_of(emu)
    instances = emu.admin.table("ecs.instances")
    old_image = instances[ids[0]]["ImageId"]
    from emulator.ecs.regions import PUBLIC_IMAGES

    new_image = next(i["ImageId"] for i in PUBLIC_IMAGES if i["ImageId"] != old_image)
    old_disks = {d["DiskId"] for d in emu.admin.table("ecs.disks").values() if d["Type"] == "system"}
    op = ReplaceSystemDiskOperator(task_id="reimage", instances=ids, region=HZ, image_id=new_image,
                                   password="Secr3t-Passw0rd", concurrency=2, poll_interval=0.1)
    out = op.execute(ctx("reimage"))
    assert all(r["status"] == "success" and r["instance_status"] == "Running" and r["reason"] == "replaced" for r in out)
    assert {r["disk_id"] for r in out}.isdisjoint(old_disks)
    after = emu.admin.table("ecs.instances")
    assert all(after[i]["ImageId"] == new_image and after[i]["Status"] == "Running" for i in ids)
    assert counters(emu, "ReplaceSystemDisk") == 2
    # a retry does not replace again
    again = op.execute(ctx("reimage"))
    assert [r["disk_id"] for r in again] == [r["disk_id"] for r in out]
    assert all(r["reason"] == "system disk already from image" for r in again)
    assert counters(emu, "ReplaceSystemDisk") == 2


def test_replace_system_disk_validation(fleet):
    emu, _ = fleet
    for kwargs, match in [({"image_id": ""}, "image_id"),
                          ({"image_id": "m-1", "password": "short"}, "8-30"),
                          ({"image_id": "m-1", "password": "LongEnough1", "key_pair_name": "k"}, "not both"),
                          ({"image_id": "m-1", "max_errors": -1}, "max_errors")]:
        with pytest.raises(ValueError, match=match):
            ReplaceSystemDiskOperator(task_id="r", instances=["i-1"], region=HZ, **kwargs).execute(ctx())
    assert emu.admin.calls()["counters"] == {}


# -- temporary instances ---------------------------------------------------------------------------
@pytest.mark.parametrize("deferrable", [True, False])
def test_run_and_delete_instances(fleet, deferrable):
    emu, _ = fleet
    from emulator.ecs.regions import PUBLIC_IMAGES

    image = PUBLIC_IMAGES[0]["ImageId"]
    store = FakeStore()
    c = ctx("create", store=store)
    op = RunInstancesOperator(task_id="create", image_id=image, instance_type="ecs.g7.large", amount=2,
                              region=HZ, tags={"purpose": "repair"}, deferrable=deferrable, poll_interval=0.2)
    out = run_op(op, c)
    assert len(out) == 2 and all(r["status"] == "Running" for r in out)
    assert out[0]["tags"]["purpose"] == "repair" and out[0]["tags"]["ops:run-id"] == "manual__2024-01-01"
    # retry: same instances (state store and ClientToken), no new RunInstances call
    again = run_op(RunInstancesOperator(task_id="create", image_id=image, instance_type="ecs.g7.large",
                                        amount=2, region=HZ, deferrable=deferrable, poll_interval=0.2), c)
    assert [r["instance_id"] for r in again] == [r["instance_id"] for r in out]
    assert counters(emu, "RunInstances") == 1
    # without the state store the ClientToken still returns the same instances
    third = run_op(RunInstancesOperator(task_id="create", image_id=image, instance_type="ecs.g7.large",
                                        amount=2, region=HZ, tags={"purpose": "repair"}, deferrable=deferrable,
                                        poll_interval=0.2), ctx("create"))
    assert [r["instance_id"] for r in third] == [r["instance_id"] for r in out]
    assert len(emu.admin.table("ecs.instances")) == 2

    delete = DeleteInstancesOperator(task_id="delete", instances=out + ["i-alreadygone"], region=HZ,
                                     deferrable=deferrable, poll_interval=0.2)
    res = run_op(delete, ctx("delete"))
    by = {r["instance_id"]: r for r in res}
    assert by["i-alreadygone"]["status"] == "skipped" and by["i-alreadygone"]["reason"] == "already gone"
    assert all(by[r["instance_id"]]["status"] == "success" for r in out)
    assert emu.admin.table("ecs.instances") == {}


def test_a_temporary_build_instance_gets_its_own_group_and_the_teardown_releases_both(fleet):
    """``purpose``: temporary tags and a group of the run (egress as asked, never the VPC's default group); the
    run's teardown releases the instance, then the group."""
    from aliyun_ops.operators.ecs import ReleaseTemporaryResourcesOperator
    from emulator.ecs.regions import PUBLIC_IMAGES

    emu, _ = fleet
    before = set(emu.admin.table("ecs.security_groups"))
    out = run_op(RunInstancesOperator(task_id="build", image_id=PUBLIC_IMAGES[0]["ImageId"], region=HZ,
                                      instance_type="ecs.g7.large", purpose="image-build",
                                      egress_cidrs=["0.0.0.0/0"], poll_interval=0.2), ctx("build"))
    inst = emu.admin.table("ecs.instances")[out[0]["instance_id"]]
    assert inst["Tags"]["ops:temporary"] == "true" and inst["Tags"]["ops:purpose"] == "image-build"
    (group_id,) = inst["SecurityGroupIds"]
    group = emu.admin.table("ecs.security_groups")[group_id]
    assert group_id not in before and group["Tags"]["ops:run-id"] == "manual__2024-01-01"
    assert {(r["DestCidrIp"], r["Policy"].lower()) for r in group["Rules"] if r["Direction"] == "egress"} == \
        {("0.0.0.0/0", "accept"), ("0.0.0.0/0", "drop")}
    assert not [r for r in group["Rules"] if r["Direction"] == "ingress"]
    rows = run_op(ReleaseTemporaryResourcesOperator(task_id="release", region=HZ, poll_interval=0.2), ctx("release"))
    assert sorted(r["resource_type"] for r in rows) == ["instance", "securitygroup"]
    assert emu.admin.table("ecs.instances") == {} and set(emu.admin.table("ecs.security_groups")) == before


def test_delete_finds_run_instances_by_provenance(fleet):
    emu, _ = fleet
    from emulator.ecs.regions import PUBLIC_IMAGES

    run_op(RunInstancesOperator(task_id="create", image_id=PUBLIC_IMAGES[0]["ImageId"],
                                instance_type="ecs.g7.large", region=HZ, poll_interval=0.2), ctx("create"))
    emu.admin.load_fleet({"instances": [{"region": HZ, "count": 1, "status": "Running"}]})
    res = run_op(DeleteInstancesOperator(task_id="delete", instances=None, include_run_instances=True,
                                         region=HZ, poll_interval=0.2), ctx("delete"))
    assert len(res) == 1 and res[0]["status"] == "success"
    assert len(emu.admin.table("ecs.instances")) == 1       # the unrelated instance is untouched


def test_run_instances_validation(fleet):
    emu, _ = fleet
    for kwargs, match in [({"instance_type": "big"}, "instance_type"), ({"amount": 0}, "amount"),
                          ({"tags": {"aliyun:x": "1"}}, "may not start")]:
        args = {"image_id": "m-1", "instance_type": "ecs.g7.large", **kwargs}
        with pytest.raises(ValueError, match=match):
            RunInstancesOperator(task_id="r", region=HZ, **args).execute(ctx())
    assert emu.admin.calls()["counters"] == {}


def test_temp_instance_dag_setup_teardown(run_dag, aliyun_env, emulator):
    from emulator.ecs.regions import PUBLIC_IMAGES

    dr = run_dag("temp_instance_repair", conf={"image_id": PUBLIC_IMAGES[0]["ImageId"]})
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "success", states
    assert states["create_worker"] == "success" and states["delete_worker"] == "success"
    assert emulator.admin.table("ecs.instances") == {}
    assert counters(emulator, "RunCommand") == 1


# -- fail safe (issue 8) ----------------------------------------------------------------------------
@pytest.mark.parametrize("op_class, start_status, action", [
    (StopInstancesOperator, "Running", "ecs:StopInstances"),
    (StartInstancesOperator, "Stopped", "ecs:StartInstances"),
])
def test_power_call_applied_but_answer_lost_counts_as_done(fleet, op_class, start_status, action):
    """drop_after: the call is applied, the answer lost, the hook's retry answered IncorrectInstanceStatus;
    DescribeInstances shows the instances moving: success, not failure."""
    emu, load = fleet
    load({"instances": [{"region": HZ, "count": 3, "status": start_status}]})
    emu.admin.set_faults({"rules": [{"action": action, "kind": "drop_after", "count": 1}]})
    out = run_op(op_class(task_id="power", instances=ids_of(emu), region=HZ, poll_interval=0.2), ctx("power"))
    assert [r["status"] for r in out] == ["success"] * 3
    assert any(c["code"] == "ConnectionDroppedAfter" for c in emu.admin.calls()["recent"])


def test_stop_marks_paused_before_stopping_and_pushes_results_before_failing(fleet):
    emu, load = fleet
    load({"instances": [{"region": HZ, "count": 2, "status": "Running"}]})
    ids = ids_of(emu)
    context = ctx("stop", run_id="manual__2024-01-01")
    out = run_op(StopInstancesOperator(task_id="stop", instances=[*ids, "i-gone1"], region=HZ, mark_paused=True,
                                       max_errors=1, poll_interval=0.2), context)
    assert [r["status"] for r in out] == ["success", "success", "failed"]
    table = emu.admin.table("ecs.instances")
    for iid in ids:
        tags = table[iid]["Tags"]
        assert tags["ops:paused-by"] == "manual__2024-01-01" and tags["ops:paused-mode"] == "stop"
        assert tags["ops:paused-dag"] == "test_dag" and tags["ops:paused-at"]
    failing = ctx("stop")
    with pytest.raises(TooManyItemFailures):
        StopInstancesOperator(task_id="stop", instances=["i-gone1", "i-gone2"], region=HZ, mark_paused=True,
                              deferrable=False).execute(failing)
    assert [r["status"] for r in failing["ti"].xcoms["results"]] == ["failed", "failed"]


def test_start_of_an_empty_list_is_a_no_op(fleet):
    emu, _ = fleet
    assert StartInstancesOperator(task_id="start", instances=[], region=HZ, deferrable=False).execute(ctx()) == []
    assert not any(k.startswith("ecs:Start") for k in emu.admin.calls()["counters"])
