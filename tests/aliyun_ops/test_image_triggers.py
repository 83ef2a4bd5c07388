"""ImagesAvailableTrigger / SnapshotsReadyTrigger and the pure ResourceWatch behind them."""

from __future__ import annotations

import asyncio
import time

import pytest

from aliyun_ops.triggers.ecs_images import (
    ImagesAvailableTrigger,
    ResourceWatch,
    SnapshotsReadyTrigger,
    normalize_items,
)
from tests.aliyun_ops.conftest import conn_json

SRC, DST = "cn-hangzhou", "cn-shanghai"


async def _first_event(trigger):
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


def run_trigger(trigger):
    return asyncio.run(_first_event(trigger))


def calls(emulator, action):
    return emulator.admin.calls()["counters"].get(f"ecs:{action}", {}).get("calls", 0)


def test_serialize_round_trip():
    trigger = ImagesAvailableTrigger(images=[{"region": SRC, "image_id": "m-1"}, {"region": DST, "image_id": "m-2"}],
                                     aliyun_conn_id="other", poll_interval=15, deadline=1234.5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "aliyun_ops.triggers.ecs_images.ImagesAvailableTrigger"
    again = ImagesAvailableTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert kwargs["items"] == [{"region": SRC, "id": "m-1"}, {"region": DST, "id": "m-2"}]
    assert kwargs["aliyun_conn_id"] == "other" and kwargs["deadline"] == 1234.5 and kwargs["poll_interval"] == 15
    import json

    json.dumps(kwargs)  # JSON-safe
    snap = SnapshotsReadyTrigger(items=[{"region": SRC, "snapshot_id": "s-1"}])
    assert SnapshotsReadyTrigger(**snap.serialize()[1]).serialize() == snap.serialize()


def test_normalize_items_rejects_bad_input():
    with pytest.raises(ValueError, match="no region"):
        normalize_items(["m-1"])
    with pytest.raises(ValueError, match="missing"):
        normalize_items([{"region": SRC}])
    assert normalize_items(["m-1", "m-1"], default_region=SRC) == [{"region": SRC, "id": "m-1"}]


def test_watch_eta_summary_and_missing():
    watch = ResourceWatch([{"region": SRC, "id": f"m-{i}"} for i in range(4)], kind="image", missing_polls=2)
    ids = [f"m-{i}" for i in range(4)]
    watch.update(SRC, ids, [{"ImageId": "m-0", "Status": "Creating", "Progress": "10%"},
                            {"ImageId": "m-1", "Status": "Available", "Progress": "100%", "Size": 40},
                            {"ImageId": "m-2", "Status": "CreateFailed"}], now=100.0)
    assert watch.items["m-1"].ok and watch.items["m-2"].terminal and not watch.items["m-2"].ok
    assert not watch.items["m-3"].terminal  # one miss is tolerated (eventual consistency)
    watch.update(SRC, ["m-0", "m-3"], [{"ImageId": "m-0", "Status": "Creating", "Progress": "40%"}], now=130.0)
    assert watch.items["m-3"].status == "Missing" and watch.items["m-3"].terminal
    assert watch.next_eta(130.0) == pytest.approx(60.0)   # 30%/30 s -> 60 s for the last 60%
    assert watch.summary(130.0) == "1/4 Available, 1 CreateFailed, 1 Creating, 1 Missing, ETA ~60 s"
    assert watch.pending_by_region() == {SRC: ["m-0"]}
    event = watch.event("timeout")
    assert event["timed_out"] == ["m-0"] and event["items"]["m-1"]["size_gib"] == 40


def _create(emulator, n, region=SRC):
    from aliyun_ops.operators.ecs_images import CreateImageOperator
    from tests.aliyun_ops.test_image_operators import make_context

    ids = emulator.admin.load_fleet({"instances": [{"region": region, "count": n, "name": "t-{n}"}]})["instances"]
    results = CreateImageOperator(task_id="c", instances=ids, region=region,
                                  wait_for_completion=False).execute(make_context())
    return [{"region": region, "image_id": r["image_id"]} for r in results]


def test_waits_across_regions_in_batches(aliyun_conn, emulator):
    emulator.admin.set_faults({"image_quota": 1000})
    existing = emulator.admin.load_fleet({"images": [{"region": SRC, "name": "old", "count": 110}]})["images"]
    creating = _create(emulator, 3, SRC) + _create(emulator, 2, DST)
    items = [{"region": SRC, "image_id": i} for i in existing] + creating
    emulator.admin.clear_calls()
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def main():
        task = asyncio.create_task(ticker())
        try:
            return await _first_event(ImagesAvailableTrigger(images=items, poll_interval=0.2,
                                                             deadline=time.time() + 60))
        finally:
            task.cancel()

    event = asyncio.run(main())
    assert event["status"] == "success" and event["timed_out"] == []
    assert {s["status"] for s in event["items"].values()} == {"Available"}
    assert len(event["items"]) == 115
    describes = calls(emulator, "DescribeImages")
    # first poll: 2 calls in SRC (113 ids) + 1 in DST; later polls only the 5 pending ones
    assert describes == event["api_calls"]
    assert describes <= 3 + 2 * (event["polls"] - 1), (describes, event["polls"])
    assert describes < len(items)
    assert ticks > 0  # the event loop kept running while the trigger waited


def test_timeout_lists_pending_images(aliyun_conn, emulator):
    emulator.admin.request("POST", "timings", {"image_create_base": 10_000_000})
    items = _create(emulator, 2)
    event = run_trigger(ImagesAvailableTrigger(images=items, poll_interval=0.1, deadline=time.time() + 0.5))
    assert event["status"] == "timeout"
    assert sorted(event["timed_out"]) == sorted(i["image_id"] for i in items)
    assert all(s["status"] == "Creating" for s in event["items"].values())


def test_missing_and_failed_images_are_terminal(aliyun_conn, emulator):
    emulator.admin.set_faults({"image_create_fail": {"rate": 1.0}})
    items = _create(emulator, 1) + [{"region": SRC, "image_id": "m-doesnotexist"}]
    event = run_trigger(ImagesAvailableTrigger(images=items, poll_interval=0.1, deadline=time.time() + 30))
    assert event["status"] == "success"
    assert event["items"][items[0]["image_id"]]["status"] == "CreateFailed"
    assert event["items"]["m-doesnotexist"]["status"] == "Missing"


def test_permanent_api_error_yields_error_event(aliyun_conn, emulator):
    items = _create(emulator, 1)
    emulator.admin.set_faults({"rules": [{"action": "ecs:DescribeImages", "kind": "error", "status": 403,
                                          "code": "Forbidden.RAM", "message": "denied", "count": 50}]})
    event = run_trigger(ImagesAvailableTrigger(images=items, poll_interval=0.1, deadline=time.time() + 30))
    assert event["status"] == "error" and event["error"]["code"] == "Forbidden.RAM"
    assert event["timed_out"] == [items[0]["image_id"]]


def test_transient_errors_are_retried_by_the_hook(aliyun_conn, emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ALIYUN_DEFAULT", conn_json(emulator, retry_base_delay=0.02, retry_max_delay=0.1))
    items = _create(emulator, 1)
    emulator.admin.set_faults({"rules": [{"action": "ecs:DescribeImages", "kind": "throttle", "count": 2,
                                          "retry_after_ms": 20},
                                         {"action": "ecs:DescribeImages", "kind": "error", "status": 503,
                                          "count": 1}]})
    event = run_trigger(ImagesAvailableTrigger(images=items, poll_interval=0.1, deadline=time.time() + 30))
    assert event["status"] == "success"


def test_snapshots_trigger(aliyun_conn, emulator):
    from aliyun_ops.operators.ecs_images import CreateSnapshotOperator
    from tests.aliyun_ops.test_image_operators import make_context

    ids = emulator.admin.load_fleet({"instances": [{"region": SRC, "count": 2}]})["instances"]
    made = CreateSnapshotOperator(task_id="s", instances=ids, wait_for_completion=False).execute(make_context())
    items = [{"region": SRC, "snapshot_id": r["snapshot_id"]} for r in made]
    event = run_trigger(SnapshotsReadyTrigger(items=items, poll_interval=0.1, deadline=time.time() + 30))
    assert event["status"] == "success"
    assert {s["status"] for s in event["items"].values()} == {"accomplished"}
