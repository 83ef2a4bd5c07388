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


def test_a_trigger_serialized_before_the_carry_rename_still_loads():
    """Deferred tasks outlive upgrades: kwargs stored with the old ``echo`` name come back as ``carry``."""
    old = {"items": [{"region": SRC, "id": "m-1"}], "echo": {"results": [{"image_id": "m-1"}], "deadline": 9.0}}
    trigger = ImagesAvailableTrigger(**old)
    assert trigger.carry == old["echo"]
    assert trigger.serialize()[1]["carry"] == old["echo"] and "echo" not in trigger.serialize()[1]


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
    from aliyun_ops.operators.ecs_snapshots import CreateSnapshotOperator
    from tests.aliyun_ops.test_image_operators import make_context

    ids = emulator.admin.load_fleet({"instances": [{"region": SRC, "count": 2}]})["instances"]
    made = CreateSnapshotOperator(task_id="s", instances=ids, wait_for_completion=False).execute(make_context())
    items = [{"region": SRC, "snapshot_id": r["snapshot_id"]} for r in made]
    event = run_trigger(SnapshotsReadyTrigger(items=items, poll_interval=0.1, deadline=time.time() + 30))
    assert event["status"] == "success"
    assert {s["status"] for s in event["items"].values()} == {"accomplished"}


# -- poll by prediction: call economy on a long copy queue --------------------------------------------
N_COPIES, COPY_SECONDS, POLL = 200, 100.0, 0.05   # 200 copies, 5 slots: 40 x 100 simulated s = 4 real s


def _queue_of_copies(emulator, n=N_COPIES):
    """n copies into DST, all submitted at once (5 run, the rest Waiting); copies take COPY_SECONDS each."""
    from aliyun_ops.operators.ecs_images import CopyImageOperator
    from tests.aliyun_ops.test_image_operators import _managed_images, make_context

    emulator.admin.set_faults({"image_quota": 10_000})
    emulator.admin.request("POST", "timings", {"copy_base": COPY_SECONDS, "copy_per_gib": 0})
    sources = _managed_images(emulator, n)
    context = make_context()
    results = CopyImageOperator(task_id="copy", images=sources, region=SRC, destination_regions=DST,
                                wait_for_completion=False, concurrency=20).execute(context)
    return [{"region": DST, "image_id": r["image_id"]} for r in results], context


def _last_copy_end(emulator) -> float:
    images = emulator.admin.request("GET", "state", table="ecs.images")["tables"]["ecs.images"]
    return max(float(i["_end"]) for i in images.values() if i.get("IsCopied"))


def _sim_now(emulator) -> float:
    return float(emulator.admin.clock()["now"])


def test_copy_queue_is_watched_with_few_calls_and_small_lateness(aliyun_conn, emulator):
    """Interval polling would read 200 ids (2 calls) every 50 ms for 4 s: ~160 DescribeImages calls.
    By prediction: a first full read (2), then per look 1 TotalCount probe + 1 front read, looks spaced by
    half the predicted remaining time (about log2(4 s / 50 ms) + a few near the end), and the finished
    copies read once (200 / 100 = 2 calls): bound 0.2 calls per copy."""
    from aliyun_ops.logic import provenance as pv
    from aliyun_ops.runtime import run_info

    items, context = _queue_of_copies(emulator)
    info = run_info(context)
    tags = {pv.RUN_KEY: info["run_key"], pv.DAG_ID: info["dag_id"], pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE}
    emulator.admin.clear_calls()
    event = run_trigger(ImagesAvailableTrigger(images=items, poll_interval=POLL, deadline=time.time() + 60,
                                               probe_tags=tags))
    noticed = _sim_now(emulator)
    assert event["status"] == "success"
    assert {s["status"] for s in event["items"].values()} == {"Available"}
    assert all(s["snapshot_ids"] for s in event["items"].values())
    describes = calls(emulator, "DescribeImages")
    assert describes == event["api_calls"]
    assert describes <= 0.2 * N_COPIES, (describes, event["polls"])
    # noticed after the last copy ended; how soon after is a speed figure, measured by the benchmark
    # (bench/README.md, poll by prediction: within about one poll_interval), not bounded here in real time
    assert noticed - _last_copy_end(emulator) >= 0


def test_probe_that_misses_our_images_falls_back_to_full_reads(aliyun_conn, emulator):
    """Tags the images do not carry: the probe says 0 in progress, the final read finds copies still
    running, and the region goes back to reading every pending id; the result is still right."""
    items, _ = _queue_of_copies(emulator, n=12)
    event = run_trigger(ImagesAvailableTrigger(images=items, poll_interval=POLL, deadline=time.time() + 60,
                                               probe_tags={"ops:run-key": "some-other-run"}))
    assert event["status"] == "success"
    assert {s["status"] for s in event["items"].values()} == {"Available"}


def test_plan_spacing_is_half_the_predicted_queue():
    """Pure: 5 running copies at 10 %/s-ish rates plus 20 waiting ones of the same size on 5 slots."""
    from aliyun_ops.triggers.ecs_images import PollPlan

    ids = [f"m-{i}" for i in range(25)]
    watch = ResourceWatch([{"region": DST, "id": i} for i in ids], kind="image")
    plan = PollPlan(watch, poll_interval=1.0, deadline=None)
    recs = [{"ImageId": i, "Status": "Creating" if n < 5 else "Waiting", "Progress": "0%" if n >= 5 else "10%",
             "DiskDeviceMappings": {"DiskDeviceMapping": [{"Size": "40"}]}} for n, i in enumerate(ids)]
    watch.update(DST, ids, recs, now=0.0)
    assert plan.remaining(DST, 0.0) is None             # no rate yet
    assert plan.spacing(None, 0.0) == 1.0
    for r in recs[:5]:
        r["Progress"] = "20%"
    watch.update(DST, ids, recs, now=10.0)             # 1 %/s: 100 s per copy, 80 s left on the running ones
    plan.regions[DST].slots = 5
    remaining = plan.remaining(DST, 10.0)
    assert remaining == pytest.approx(80 + 4 * 100)     # 20 waiting on 5 slots: 4 more rounds
    assert plan.spacing(remaining, 10.0) == pytest.approx(remaining / 2)
    # the probe says 5 fewer in progress: the 5 running ones are done, the 20 waiting ones start now
    assert plan.remaining(DST, 10.0, count=20) == pytest.approx(4 * 100)
    front = [t.rid for t in plan.front(DST, 10.0)]
    assert front[:5] == ids[:5] and front[5:10] == ids[5:10]
