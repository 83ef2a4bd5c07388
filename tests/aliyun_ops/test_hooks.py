"""Hooks against the real emulator: calls, retries, backoff, rate limits, async path, ECS/RDS/OSS methods.

Retry tests run with ``retry_base_delay`` 10 ms (see ``conftest.FAST_RETRIES``). Hook log lines go
through Airflow's structlog to stdout, so they are read with ``capfd`` (and ``caplog`` for stdlib).
"""

from __future__ import annotations

import asyncio
import io
import random
import time

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from hypothesis import given, settings
from hypothesis import strategies as st

from aliyun_ops.exceptions import AliyunApiError
from aliyun_ops.hooks.base import AliyunBaseHook, classify_error
from aliyun_ops.hooks.ecs import ALL_IMAGE_STATUSES, EcsHook, chunks, tags_of
from aliyun_ops.ratelimit import RateLimiter, TokenBucket, backoff_cap, backoff_delay

REGION = "cn-hangzhou"


def calls_of(emulator, action: str) -> int:
    return emulator.admin.calls()["counters"].get(action, {}).get("calls", 0)


# -- pure: backoff schedule -------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(base=st.floats(0.001, 10), cap=st.floats(0.001, 120), attempts=st.integers(1, 80),
       retry_after=st.one_of(st.none(), st.floats(0, 300)), seed=st.integers(0, 2**32))
def test_backoff_schedule_properties(base, cap, attempts, retry_after, seed):
    rng = random.Random(seed)
    caps = [backoff_cap(n, base, cap) for n in range(1, attempts + 1)]
    assert all(a <= b for a, b in zip(caps, caps[1:], strict=False))  # monotonic
    assert all(0 <= c <= cap for c in caps)  # capped
    assert caps[0] == min(cap, base)
    for n, upper in enumerate(caps, start=1):
        delay = backoff_delay(n, base, cap, retry_after=retry_after, rng=rng)
        if retry_after is None:
            assert 0 <= delay <= upper  # full jitter stays within [0, cap_n]
        else:
            assert delay >= retry_after  # the server's wait is a floor
            assert delay <= max(upper, retry_after)


def test_backoff_reaches_cap_and_jitters():
    rng = random.Random(1)
    delays = [backoff_delay(10, 1.0, 8.0, rng=rng) for _ in range(200)]
    assert max(delays) <= 8.0 and min(delays) >= 0
    assert len({round(d, 6) for d in delays}) > 150  # jittered, not a fixed schedule


# -- pure: rate limiter with a fake clock -----------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("rate, n", [(10, 25), (2, 5), (0.5, 3), (100, 1)])
def test_token_bucket_spacing(rate, n):
    clock = FakeClock()
    bucket = TokenBucket(rate, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(n):
        bucket.acquire()
    assert clock.now - start >= (n - 1) / rate - 1e-9
    assert clock.now - start <= (n - 1) / rate + 1e-9  # and no slower than needed


def test_token_bucket_refills_while_idle():
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    clock.now += 10  # idle: only one token is kept (burst 1)
    assert bucket.reserve() == 0
    assert bucket.reserve() == pytest.approx(0.2)


def test_token_bucket_burst():
    clock = FakeClock()
    bucket = TokenBucket(10, burst=5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        assert bucket.reserve() == 0
    assert bucket.reserve() == pytest.approx(0.1)


def test_token_bucket_reservations_queue_up_for_concurrent_callers():
    clock = FakeClock()
    bucket = TokenBucket(4, clock=clock, sleep=clock.sleep)
    waits = [bucket.reserve() for _ in range(4)]  # four callers at the same instant
    assert waits == pytest.approx([0, 0.25, 0.5, 0.75])


def test_rate_limiter_per_region_and_action():
    clock = FakeClock()
    limiter = RateLimiter({"DescribeImages": 10, "*": 2}, clock=clock, sleep=clock.sleep)
    assert limiter.limit_for("DescribeImages") == 10 and limiter.limit_for("CreateImage") == 2
    for _ in range(3):
        limiter.acquire("cn-hangzhou", "DescribeImages")
    assert clock.now == pytest.approx(1000.2)
    limiter.acquire("cn-beijing", "DescribeImages")  # another region: its own bucket
    limiter.acquire("cn-hangzhou", "CreateImage")  # another action: its own bucket
    assert clock.now == pytest.approx(1000.2)
    limiter.acquire("cn-hangzhou", "CreateImage")
    assert clock.now == pytest.approx(1000.7)
    assert RateLimiter({}).bucket("r", "A") is None  # no limits configured: never waits


def test_rate_limiter_async_does_not_block_the_loop():
    limiter = RateLimiter({"*": 20})

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.create_task(ticker())
        start = time.monotonic()
        for _ in range(5):
            await limiter.acquire_async("r", "DescribeImages")
        elapsed = time.monotonic() - start
        task.cancel()
        return elapsed, ticks

    elapsed, ticks = asyncio.run(main())
    assert elapsed >= 4 / 20 - 0.01
    assert ticks >= 10  # the loop kept running while we waited


# -- error classification ---------------------------------------------------------------------

def test_classify_sdk_exceptions():
    from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException

    throttled = classify_error("CreateImage", ThrottlingException(
        status_code=400, code="Throttling.User", message="code: 400, Request was denied due to user flow control. "
        "request id: R1", request_id="R1", retry_after=1500, data={"Message": "Request was denied."}), service="ECS")
    assert (throttled.code, throttled.retryable, throttled.retry_after, throttled.request_id) == (
        "Throttling.User", True, 1.5, "R1")
    assert throttled.message == "Request was denied."
    not_found = classify_error("CreateImage", ClientException(
        status_code=404, code="InvalidInstanceId.NotFound", message="code: 404, The specified InstanceId does not "
        "exist. request id: R2", request_id="R2"), service="ECS")
    assert not not_found.retryable and not_found.is_not_found
    assert str(not_found) == ("ECS CreateImage failed: InvalidInstanceId.NotFound (HTTP 404): The specified "
                              "InstanceId does not exist. RequestId=R2")
    throttle_no_header = classify_error("X", ClientException(status_code=400, code="Throttling.Api", request_id="R"))
    assert throttle_no_header.retryable
    assert classify_error("X", ServerException(status_code=500, code="InternalError")).retryable
    assert not classify_error("X", ClientException(status_code=403, code="Forbidden.RAM")).retryable
    assert classify_error("X", ClientException(status_code=403, code="OperationConflict")).retryable
    assert classify_error("X", ConnectionResetError("reset")).code == "NetworkError"
    assert classify_error("X", ValueError("a bug")) is None  # programming errors are not wrapped


def test_api_error_pickles():
    import pickle

    err = AliyunApiError("CreateImage", "Throttling.User", "slow down", "R1", 400, True, service="ECS",
                         retry_after=0.5, attempts=3)
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.to_dict() == err.to_dict()


# -- call(): the emulator ---------------------------------------------------------------------

def test_describe_regions_through_call(aliyun_env, capfd):
    hook = EcsHook()
    client = hook.get_client(REGION)
    assert hook.get_client(REGION) is client  # cached per region
    assert hook.get_client("cn-beijing") is not client
    resp = hook.call("DescribeRegions", client.describe_regions, ecs_models.DescribeRegionsRequest(), region=REGION)
    assert REGION in [r.region_id for r in resp.body.regions.region]
    out = capfd.readouterr().out
    assert f"ECS DescribeRegions region={REGION} RequestId={resp.body.request_id} (attempt 1/6" in out
    assert [r["RegionId"] for r in hook.describe_regions()][:1] == ["cn-hangzhou"]
    assert "cn-beijing-g" in [z["ZoneId"] for z in hook.describe_zones("cn-beijing")]


def test_retries_survive_throttling(aliyun_env, emulator, capfd):
    emulator.admin.set_faults({"rules": [{"action": "ecs:DescribeZones", "kind": "throttle", "count": 3,
                                          "retry_after_ms": 1}]})
    zones = EcsHook().describe_zones(REGION)
    assert len(zones) == 3
    assert emulator.admin.calls()["counters"]["ecs:DescribeZones"] == {
        "calls": 4, "errors": 3, "codes": {"Throttling.User": 3}}
    out = capfd.readouterr().out
    assert out.count("failed: Throttling.User (HTTP 400)") == 3
    assert "(attempt 3/6)" in out and "(attempt 4/6" in out


def test_retries_survive_503(aliyun_env, emulator):
    emulator.admin.set_faults({"rules": [{"action": "ecs:DescribeZones", "kind": "error", "status": 503,
                                          "count": 2}]})
    assert EcsHook().describe_zones(REGION)
    assert emulator.admin.calls()["counters"]["ecs:DescribeZones"]["codes"] == {"ServiceUnavailable": 2}


def test_retries_survive_dropped_connections(aliyun_env, emulator):
    emulator.admin.set_faults({"rules": [{"action": "ecs:DescribeZones", "kind": "drop", "count": 2}]})
    assert EcsHook().describe_zones(REGION)
    assert calls_of(emulator, "ecs:DescribeZones") == 3


def test_retry_after_is_honoured(aliyun_env, emulator):
    emulator.admin.set_faults({"rules": [{"action": "ecs:DescribeZones", "kind": "throttle", "count": 2,
                                          "retry_after_ms": 300}]})
    start = time.monotonic()
    EcsHook().describe_zones(REGION)
    assert time.monotonic() - start >= 0.6 - 0.01  # two waits of at least 300 ms; base delay is 10 ms


def test_gives_up_after_max_attempts(aliyun_env, emulator):
    aliyun_env(max_attempts=3)
    emulator.admin.set_faults({"rules": [{"action": "ecs:DescribeZones", "kind": "throttle", "count": 10,
                                          "retry_after_ms": 1}]})
    with pytest.raises(AliyunApiError) as info:
        EcsHook().describe_zones(REGION)
    err = info.value
    assert (err.code, err.status_code, err.attempts, err.retryable) == ("Throttling.User", 400, 3, True)
    assert err.request_id
    assert calls_of(emulator, "ecs:DescribeZones") == 3
    assert str(err).startswith("ECS DescribeZones failed: Throttling.User (HTTP 400)")
    assert f"RequestId={err.request_id}" in str(err)
    assert err.__cause__ is not None


def test_no_retry_on_404(aliyun_env, emulator):
    with pytest.raises(AliyunApiError) as info:
        EcsHook().describe_zones("mars-1")
    err = info.value
    assert (err.code, err.status_code, err.retryable, err.attempts) == ("InvalidRegionId.NotFound", 404, False, 1)
    assert err.is_not_found
    assert calls_of(emulator, "ecs:DescribeZones") == 1


def test_no_retry_on_auth_errors(aliyun_env, emulator):
    aliyun_env(access_key_secret="wrong")
    with pytest.raises(AliyunApiError) as info:
        EcsHook().describe_zones(REGION)
    assert info.value.code == "SignatureDoesNotMatch"
    assert calls_of(emulator, "ecs:DescribeZones") == 1


def test_client_side_rate_limit_is_applied(aliyun_env, emulator):
    aliyun_env("aliyun_limited", rate_limits={"DescribeZones": 20})
    hook = EcsHook(aliyun_conn_id="aliyun_limited")
    start = time.monotonic()
    for _ in range(4):
        hook.describe_zones(REGION)
    assert time.monotonic() - start >= 3 / 20 - 0.01


def test_secret_never_logged(aliyun_env, emulator, caplog, capfd):
    import logging

    caplog.set_level(logging.DEBUG)
    secret = emulator.access_key_secret
    hook = EcsHook()
    hook.describe_zones(REGION)
    emulator.admin.set_faults({"rules": [{"action": "ecs:DescribeZones", "kind": "throttle", "count": 1,
                                          "retry_after_ms": 1}]})
    hook.describe_zones(REGION)
    with pytest.raises(AliyunApiError):
        hook.describe_zones("mars-1")
    repr(hook.settings)
    ok, _ = hook.test_connection()
    assert ok
    aliyun_env("aliyun_badkey", access_key_secret=secret + "-wrong")
    bad = AliyunBaseHook(aliyun_conn_id="aliyun_badkey")
    ok, message = bad.test_connection()
    assert not ok and secret not in message
    captured = capfd.readouterr()
    text = caplog.text + captured.out + captured.err
    assert "RequestId=" in text  # we did capture the hook's log lines
    assert secret not in text


# -- acall(): the async path ------------------------------------------------------------------

def test_acall_with_sdk_async_method(aliyun_env, emulator):
    emulator.admin.set_faults({"rules": [{"action": "ecs:DescribeZones", "kind": "throttle", "count": 2,
                                          "retry_after_ms": 100},
                                         {"action": "ecs:DescribeZones", "kind": "drop", "count": 1}]})
    hook = EcsHook()

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        client = hook.get_async_client(REGION)
        resp = await hook.acall("DescribeZones", client.describe_zones_async,
                                ecs_models.DescribeZonesRequest(region_id=REGION), region=REGION)
        task.cancel()
        return resp, ticks

    resp, ticks = asyncio.run(main())
    assert [z.zone_id for z in resp.body.zones.zone][0] == "cn-hangzhou-h"
    assert calls_of(emulator, "ecs:DescribeZones") == 4
    assert ticks >= 10  # waiting 2 x 100 ms did not block the event loop


def test_acall_raises_api_error(aliyun_env):
    hook = EcsHook()

    async def main():
        client = hook.get_async_client(REGION)
        return await hook.acall("DescribeZones", client.describe_zones_async,
                                ecs_models.DescribeZonesRequest(region_id="mars-1"), region=REGION)

    with pytest.raises(AliyunApiError, match="InvalidRegionId.NotFound"):
        asyncio.run(main())


# -- EcsHook methods --------------------------------------------------------------------------

def test_chunks_and_tags_helpers():
    assert chunks(["a", "b", "a", "c"], 2) == [["a", "b"], ["c"]]
    assert [len(c) for c in chunks([str(i) for i in range(250)], 100)] == [100, 100, 50]
    assert tags_of({"Tags": {"Tag": [{"TagKey": "k", "TagValue": "v"}]}}) == {"k": "v"}
    assert tags_of({}) == {}


@pytest.fixture
def fleet(aliyun_env, emulator, require):
    require("ecs", "DescribeInstances", "StartInstances", "StopInstances")

    def load(count: int = 3, tags: dict | None = None, status: str = "Running", region: str = REGION) -> list[str]:
        return emulator.admin.load_fleet({"instances": [{"region": region, "count": count, "name": "web-{n}",
                                                         "status": status,
                                                         "tags": tags or {"env": "test"}}]})["instances"]

    return load


def test_describe_instances_all_pages_and_batches(fleet, emulator):
    ids = fleet(130, tags={"env": "test"})
    fleet(3, tags={"env": "prod"})
    hook = EcsHook()
    emulator.admin.clear_calls()
    tagged = hook.describe_instances(REGION, tags={"env": "test"})
    assert sorted(i["InstanceId"] for i in tagged) == sorted(ids)
    assert calls_of(emulator, "ecs:DescribeInstances") == 2  # 100 + 30
    by_id = hook.describe_instances(REGION, instance_ids=ids + ids[:5])  # 130 unique ids: 2 batches
    assert len(by_id) == 130
    assert hook.describe_instances(REGION, instance_ids=[]) == []
    assert len(hook.describe_instances(REGION, tags={"env": "prod"}, status="Running")) == 3
    assert tags_of(tagged[0]) == {"env": "test"}
    got = asyncio.run(hook.describe_instances_async(REGION, ids[:3]))
    assert sorted(i["InstanceId"] for i in got) == sorted(ids[:3])


def test_start_stop_instances(fleet, emulator):
    ids = fleet(3, status="Running")
    hook = EcsHook()
    results = hook.stop_instances(REGION, ids + ["i-doesnotexist"])
    assert {r["InstanceId"] for r in results} == {*ids, "i-doesnotexist"}
    ok = [r for r in results if r["InstanceId"] in ids]
    assert all(str(r.get("Code")) == "200" for r in ok), results
    emulator.admin.advance(600)
    assert {i["Status"] for i in hook.describe_instances(REGION, instance_ids=ids)} == {"Stopped"}
    started = hook.start_instances(REGION, ids[:2])
    assert len(started) == 2
    hook.start_instance(REGION, ids[2])
    emulator.admin.advance(600)
    assert {i["Status"] for i in hook.describe_instances(REGION, instance_ids=ids)} == {"Running"}
    hook.stop_instance(REGION, ids[0], force_stop=True)


def test_image_lifecycle(fleet, emulator, require):
    require("ecs", "CreateImage", "DescribeImages", "CopyImage", "DeleteImage", "TagResources", "ListTagResources")
    (instance_id,) = fleet(1)
    hook = EcsHook()
    tags = {"managed-by": "aliyun-ops", "source-instance": instance_id}
    image_id = hook.create_image(REGION, instance_id, "backup-web-1", "nightly", tags=tags, client_token="tok-1")
    assert hook.create_image(REGION, instance_id, "backup-web-1", "nightly", tags=tags,
                             client_token="tok-1") == image_id  # same ClientToken: same image
    (img,) = hook.describe_images(REGION, image_ids=[image_id])
    assert img["Status"] in ("Creating", "Available")
    assert tags_of(img) == tags
    emulator.admin.advance(7200)
    assert hook.describe_images(REGION, image_ids=[image_id])[0]["Status"] == "Available"
    assert [i["ImageId"] for i in hook.describe_images(REGION, tags={"managed-by": "aliyun-ops"})] == [image_id]
    assert asyncio.run(hook.describe_images_async(REGION, [image_id]))[0]["ImageId"] == image_id

    copy_id = hook.copy_image(REGION, image_id, "cn-beijing", name="backup-web-1-dr", description="dr",
                              tags={"managed-by": "aliyun-ops"}, client_token="tok-copy")
    (copy,) = hook.describe_images("cn-beijing", image_ids=[copy_id])
    assert copy["Status"] in ("Creating", "Waiting", "Available")
    assert hook.describe_images(REGION, image_ids=[copy_id]) == []  # copies live in the destination

    hook.tag_resources(REGION, "image", [image_id], {"retention": "7d"})
    tag_rows = hook.list_tag_resources(REGION, "image", [image_id])
    assert {(r["TagKey"], r["TagValue"]) for r in tag_rows} >= {("retention", "7d"), ("managed-by", "aliyun-ops")}

    emulator.admin.advance(7200)
    hook.delete_image("cn-beijing", copy_id)
    hook.delete_image(REGION, image_id, force=True)
    assert hook.describe_images(REGION, image_ids=[image_id]) == []
    with pytest.raises(AliyunApiError) as info:
        hook.delete_image(REGION, image_id)
    assert info.value.is_not_found and not info.value.retryable


def test_describe_images_pages_statuses_and_batches(aliyun_env, emulator, require):
    require("ecs", "DescribeImages")
    ids = emulator.admin.load_fleet({"images": [
        {"region": REGION, "name": "img-{n}", "count": 7, "tags": {"managed-by": "aliyun-ops"}},
        {"region": REGION, "name": "bad", "status": "CreateFailed"}]})["images"]
    hook = EcsHook()
    emulator.admin.clear_calls()
    everything = hook.describe_images(REGION, page_size=3)
    assert sorted(i["ImageId"] for i in everything) == sorted(ids)  # all statuses, own images only
    assert calls_of(emulator, "ecs:DescribeImages") == 3
    assert len(hook.describe_images(REGION, status="Available")) == 7
    assert hook.describe_images(REGION, image_ids=[]) == []
    assert {i["ImageOwnerAlias"] for i in hook.describe_images(REGION, owner="system")} == {"system"}
    unknown = [f"m-nope{i:04d}" for i in range(150)]
    emulator.admin.clear_calls()
    found = hook.describe_images(REGION, image_ids=unknown + ids)
    assert sorted(i["ImageId"] for i in found) == sorted(ids)
    assert calls_of(emulator, "ecs:DescribeImages") == 2  # 158 ids -> batches of 100 + 58
    assert ALL_IMAGE_STATUSES.split(",")[0] == "Creating"


def test_image_share_permission(aliyun_env, emulator, require):
    require("ecs", "ModifyImageSharePermission", "DescribeImageSharePermission")
    (image_id,) = emulator.admin.load_fleet({"images": [{"region": REGION, "name": "shared"}]})["images"]
    hook = EcsHook()
    accounts = [str(1000000000000000 + i) for i in range(12)]
    hook.modify_image_share_permission(REGION, image_id, add_accounts=accounts)  # 2 calls of <= 10
    perms = hook.describe_image_share_permission(REGION, image_id)
    assert sorted(a["AliyunId"] for a in perms["Accounts"]) == sorted(accounts)
    hook.modify_image_share_permission(REGION, image_id, remove_accounts=accounts)
    assert hook.describe_image_share_permission(REGION, image_id)["Accounts"] == []


def test_snapshots_and_disks(fleet, emulator, require):
    require("ecs", "DescribeDisks", "CreateSnapshot", "DescribeSnapshots", "DeleteSnapshot")
    (instance_id,) = fleet(1)
    hook = EcsHook()
    disks = hook.describe_disks(REGION, instance_id=instance_id)
    assert disks and {d["InstanceId"] for d in disks} == {instance_id}
    system = [d for d in disks if d["Type"] == "system"][0]
    assert hook.describe_disks(REGION, disk_ids=[system["DiskId"]])[0]["DiskId"] == system["DiskId"]
    snap_id = hook.create_snapshot(REGION, system["DiskId"], name="snap-web-1", tags={"managed-by": "aliyun-ops"},
                                   client_token="tok-snap")
    emulator.admin.advance(3600)
    (snap,) = hook.describe_snapshots(REGION, snapshot_ids=[snap_id])
    assert snap["SourceDiskId"] == system["DiskId"]
    assert [s["SnapshotId"] for s in hook.describe_snapshots(REGION, tags={"managed-by": "aliyun-ops"})] == [snap_id]
    hook.delete_snapshot(REGION, snap_id)
    assert hook.describe_snapshots(REGION, snapshot_ids=[snap_id]) == []


def test_run_command_and_results(fleet, emulator, require):
    require("ecs", "RunCommand", "DescribeInvocations", "DescribeInvocationResults")
    ids = fleet(2)
    hook = EcsHook()
    invoke_id = hook.run_command(REGION, ids, "echo hello {{who}}", parameters={"who": "world"}, timeout=60,
                                 name="hello", client_token="tok-cmd")
    emulator.admin.advance(60)
    results = hook.describe_invocation_results(REGION, invoke_id)
    assert {r["InstanceId"] for r in results} == set(ids)
    assert {r["InvocationStatus"] for r in results} == {"Success"}
    (inv,) = hook.describe_invocations(REGION, invoke_id)
    assert inv["InvokeId"] == invoke_id

    async def poll():
        invs = await hook.describe_invocations_async(REGION, invoke_id)
        res = await hook.describe_invocation_results_async(REGION, invoke_id)
        return invs, res

    invs, res = asyncio.run(poll())
    assert invs[0]["InvokeId"] == invoke_id and len(res) == 2
    with pytest.raises(ValueError):
        hook.run_command(REGION, [], "true")


def test_run_replace_delete_instance(fleet, emulator, require):
    require("ecs", "RunInstances", "ReplaceSystemDisk", "DeleteInstance", "CreateImage")
    (source,) = fleet(1)
    hook = EcsHook()
    public = hook.describe_images(REGION, owner="system")[0]["ImageId"]
    new_ids = hook.run_instances(REGION, public, "ecs.g7.large", amount=2, instance_name="tmp-{n}",
                                 tags={"env": "scratch"}, client_token="tok-run")
    assert len(new_ids) == 2
    image_id = hook.create_image(REGION, source, "golden-1", client_token="tok-golden")
    emulator.admin.advance(7200)
    hook.stop_instances(REGION, new_ids[:1])
    emulator.admin.advance(600)
    disk_id = hook.replace_system_disk(REGION, new_ids[0], image_id, client_token="tok-replace")
    assert disk_id
    hook.delete_instance(REGION, new_ids[1], force=True)
    emulator.admin.advance(600)
    assert [i["InstanceId"] for i in hook.describe_instances(REGION, instance_ids=new_ids)] == [new_ids[0]]


# -- RdsHook ----------------------------------------------------------------------------------

def test_rds_backups(aliyun_env, emulator, require):
    require("rds", "DescribeDBInstances", "DescribeBackups", "CreateBackup")
    from datetime import UTC, datetime, timedelta

    from aliyun_ops.hooks.rds import RdsHook

    emulator.admin.load_fleet({"rds_instances": [
        {"region": REGION, "id": "rm-hooktest01", "engine": "MySQL", "engine_version": "8.0",
         "tags": {"env": "prod"}, "backup_count": 130, "backup_size": 1048576},
        {"region": REGION, "id": "rm-hooktest02", "engine": "PostgreSQL", "engine_version": "16.0"}]})
    hook = RdsHook()
    assert {i["DBInstanceId"] for i in hook.describe_db_instances(REGION)} >= {"rm-hooktest01", "rm-hooktest02"}
    assert [i["DBInstanceId"] for i in hook.describe_db_instances(REGION, instance_ids=["rm-hooktest02"])] == [
        "rm-hooktest02"]
    assert [i["DBInstanceId"] for i in hook.describe_db_instances(REGION, tags={"env": "prod"})] == ["rm-hooktest01"]
    emulator.admin.clear_calls()
    backups = hook.describe_backups("rm-hooktest01")
    assert len(backups) == 130 and len({b["BackupId"] for b in backups}) == 130
    assert calls_of(emulator, "rds:DescribeBackups") == 2  # string counters, pages of 100
    job = hook.create_backup("rm-hooktest01")
    assert job.isdigit()
    with pytest.raises(AliyunApiError, match="BackupJobExists"):
        hook.create_backup("rm-hooktest01")
    emulator.admin.advance(3600)
    now = datetime.now(UTC)
    manual = hook.describe_backups("rm-hooktest01", start=now - timedelta(days=3650), end=now + timedelta(days=3650),
                                   status="Success", backup_mode="Manual")
    assert len(manual) == 1 and manual[0]["DBInstanceId"] == "rm-hooktest01"


def test_rds_time_format():
    from datetime import UTC, datetime, timedelta, timezone

    from aliyun_ops.hooks.rds import rds_time

    assert rds_time(datetime(2024, 1, 2, 3, 4, tzinfo=UTC)) == "2024-01-02T03:04Z"
    assert rds_time(datetime(2024, 1, 2, 11, 4, tzinfo=timezone(timedelta(hours=8)))) == "2024-01-02T03:04Z"
    assert rds_time("2024-01-01T00:00Z") == "2024-01-01T00:00Z" and rds_time(None) is None


# -- OssHook ----------------------------------------------------------------------------------

def test_oss_helpers(aliyun_env, emulator):
    import alibabacloud_oss_v2 as oss

    from aliyun_ops.hooks.oss import OssHook

    hook = OssHook()
    client = hook.get_client()
    assert hook.get_client() is client
    cfg = hook.oss_config()
    assert cfg.use_path_style and cfg.endpoint == emulator.base_url and cfg.region == REGION
    try:
        client.put_bucket(oss.PutBucketRequest(bucket="aliyun-ops-test"))
    except Exception as exc:  # OSS not implemented yet
        pytest.skip(f"emulator OSS not available: {exc}")
    assert not hook.object_exists("aliyun-ops-test", "a/b.txt")
    assert hook.head_object("aliyun-ops-test", "a/b.txt") is None
    small = hook.put_object_from_stream("aliyun-ops-test", "a/b.txt", io.BytesIO(b"hello"),
                                        metadata={"source": "test"})
    assert small["ETag"]
    big = bytes(range(256)) * 1200  # 300 KB in 100 KB parts: multipart through the uploader
    hook.put_object_from_stream("aliyun-ops-test", "a/big.bin", io.BytesIO(big), part_size=100 * 1024)
    assert hook.object_exists("aliyun-ops-test", "a/b.txt")
    assert hook.head_object("aliyun-ops-test", "a/big.bin")["ContentLength"] == len(big)
    for n in range(5):
        hook.put_object_from_stream("aliyun-ops-test", f"p/{n}.txt", io.BytesIO(b"x"))
    listed = hook.list_objects("aliyun-ops-test", prefix="p/", page_size=2)  # 3 pages
    assert [o["Key"] for o in listed] == [f"p/{n}.txt" for n in range(5)]
    tops = hook.list_objects("aliyun-ops-test", delimiter="/")
    assert {o.get("Prefix") for o in tops} >= {"a/", "p/"}
    hook.delete_object("aliyun-ops-test", "a/b.txt")
    assert not hook.object_exists("aliyun-ops-test", "a/b.txt")
    with pytest.raises(AliyunApiError) as info:
        hook.list_objects("no-such-bucket-x")
    assert info.value.service == "OSS" and info.value.code == "NoSuchBucket"


def test_async_methods_load_the_connection_asynchronously(aliyun_env, emulator, require):
    require("ecs", "DescribeImages")
    (image_id,) = emulator.admin.load_fleet({"images": [{"region": REGION, "name": "async-1"}]})["images"]
    hook = EcsHook()
    assert "settings" not in hook.__dict__

    async def main():
        images = await hook.describe_images_async(REGION, [image_id])
        instances = await hook.describe_instances_async(REGION, [])
        return images, instances

    images, instances = asyncio.run(main())
    assert [i["ImageId"] for i in images] == [image_id] and instances == []
    assert hook.__dict__["settings"].region == REGION
