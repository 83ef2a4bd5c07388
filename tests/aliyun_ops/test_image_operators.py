"""CreateImage/CopyImage/DeleteImages/PruneBackupImages/CreateSnapshot operators and the image sensor,
against the emulator over HTTP (execute() with a minimal context; deferral run inline)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from aliyun_ops.logic import provenance as pv
from aliyun_ops.operators.ecs import (
    CopyImageOperator,
    CreateImageOperator,
    CreateSnapshotOperator,
    DeleteImagesOperator,
    PruneBackupImagesOperator,
)
from aliyun_ops.sensors.ecs_images import WaitForImageAvailableSensor
from tests.aliyun_ops.conftest import conn_json

SRC, DST = "cn-hangzhou", "cn-shanghai"


class FakeStore:
    """Dict-backed stand-in for Airflow's task_state_store."""

    def __init__(self):
        self.data = {}

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value):
        self.data[key] = value


def make_context(run_id="manual__2024-05-01", task_id="task", try_number=1, store=None):
    ti = SimpleNamespace(dag_id="dag_images", task_id=task_id, map_index=-1, try_number=try_number, xcoms={})
    ti.xcom_push = lambda key, value: ti.xcoms.__setitem__(key, value)
    ctx = {"ti": ti, "run_id": run_id}
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


def run_op(op, context, deferrals=None):
    """execute(); each time it defers, run the trigger inline and resume with the event (a sliding window
    defers once per freed slot). ``deferrals``: a list that collects the triggers."""
    step = lambda: op.execute(context)  # noqa: E731
    while True:
        try:
            return step()
        except TaskDeferred as deferred:
            trigger = deferred.trigger
            classpath, kwargs = trigger.serialize()
            assert classpath.startswith("aliyun_ops.triggers.")
            if deferrals is not None:
                deferrals.append(trigger)
            event = asyncio.run(_first_event(type(trigger)(**kwargs)))
            method = getattr(op, deferred.method_name)
            step = lambda m=method, e=event, d=deferred: m(context, event=e.payload, **(d.kwargs or {}))  # noqa: E731


async def _first_event(trigger):
    async for event in trigger.run():
        return event
    raise AssertionError("trigger yielded nothing")


def calls(emulator, action):
    return emulator.admin.calls()["counters"].get(f"ecs:{action}", {}).get("calls", 0)


def fleet(emulator, n=3, region=SRC, tags=None, **extra):
    ids = emulator.admin.load_fleet({"instances": [{"region": region, "name": "web-{n}", "count": n,
                                                    "tags": tags or {"backup": "yes"}, **extra}]})["instances"]
    return ids


def images_in(ecs_client, region):
    from alibabacloud_ecs20140526 import models

    body = ecs_client(region).describe_images(models.DescribeImagesRequest(
        region_id=region, image_owner_alias="self", page_size=100,
        status="Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated")).body.to_map()
    return body.get("Images", {}).get("Image", [])


FAST = {"poll_interval": 0.2, "timeout": 120}
MANAGED = {pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE}


def total_calls(emulator):
    return sum(v["calls"] for v in emulator.admin.calls()["counters"].values())


@pytest.fixture
def fast_retries(aliyun_conn, monkeypatch):
    """The connection with short retry delays (throttling/503 tests stay fast)."""
    monkeypatch.setenv("AIRFLOW_CONN_ALIYUN_DEFAULT", conn_json(aliyun_conn, retry_base_delay=0.05, retry_max_delay=0.2))
    return aliyun_conn


# -- template fields and argument checks ------------------------------------------------------------
@pytest.mark.parametrize("op, expected", [
    (CreateImageOperator(task_id="c", instances=["i-1"]), {"instances", "region", "tags", "image_name_template"}),
    (CopyImageOperator(task_id="p", images="m-1", region=SRC, destination_regions=[DST]),
     {"images", "region", "destination_regions", "tags", "name_template", "kms_key_id"}),
    (DeleteImagesOperator(task_id="d", images=["m-1"]), {"images", "region", "dry_run"}),
    (CreateSnapshotOperator(task_id="s", disk_ids=["d-1"]), {"disk_ids", "instances", "region", "tags", "name"}),
    (PruneBackupImagesOperator(task_id="pr", regions=[SRC], retention_days=7), {"regions", "retention_days"}),
    (WaitForImageAvailableSensor(task_id="w", image_ids=["m-1"]), {"image_ids", "images", "region"}),
])
def test_template_fields(op, expected):
    assert expected <= set(op.template_fields)
    for name in op.template_fields:  # each templated field is an attribute set from the argument of that name
        assert hasattr(op, name), name
    assert "aliyun_conn_id" in op.template_fields


@pytest.mark.parametrize("build, match", [
    (lambda: CreateImageOperator(task_id="t", instances=["not-an-instance"]), "does not look like"),
    (lambda: CreateImageOperator(task_id="t", instances=["i-1"], tags={"aliyun:x": "1"}), "may not start"),
    (lambda: CreateImageOperator(task_id="t", instances=["i-1"], image_name_template="{nope}"), "unknown fields"),
    (lambda: CreateImageOperator(task_id="t", instances=["i-1"], max_errors="lots"), "max_errors"),
    (lambda: CreateImageOperator(task_id="t", instances=["i-1"], concurrency=0), "concurrency"),
    (lambda: CreateImageOperator(task_id="t", instances=["i-1"], retention_days=0), "retention_days"),
    (lambda: CopyImageOperator(task_id="t", images="m-1", region=SRC, destination_regions=[SRC]), "source region"),
    (lambda: CopyImageOperator(task_id="t", images="m-1", region=SRC, destination_regions=[DST],
                               kms_key_id="key-1"), "encrypted"),
    (lambda: CopyImageOperator(task_id="t", images="m-1", region=SRC, destination_regions=[]), "destination"),
    (lambda: DeleteImagesOperator(task_id="t", images=["i-123"]), "custom image id"),
    (lambda: CreateSnapshotOperator(task_id="t", disk_ids=["d-1"], instances=["i-1"]), "exactly one"),
    (lambda: CreateSnapshotOperator(task_id="t", disk_ids=["d-1"], disk_type="boot"), "disk_type"),
    (lambda: PruneBackupImagesOperator(task_id="t", regions=[SRC], retention_days=7, keep_last=0), "keep_last"),
    (lambda: WaitForImageAvailableSensor(task_id="t"), "exactly one"),
])
def test_bad_arguments_fail_at_construction(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def _templated_bad(op_cls, **kwargs):
    """Construct with templated placeholders, then set rendered (bad) values the way rendering would."""
    bad = kwargs.pop("_rendered")
    op = op_cls(task_id="t", **kwargs)
    for key, value in bad.items():
        setattr(op, key, value)
    return op


@pytest.mark.parametrize("op, match", [
    (lambda: _templated_bad(CreateImageOperator, instances="{{ x }}", tags="{{ t }}",
                            _rendered={"instances": ["i-1"], "tags": {"acs:x": "y"}}), "may not start"),
    (lambda: _templated_bad(CreateImageOperator, instances="{{ x }}", _rendered={"instances": [42]}), "cannot read"),
    (lambda: _templated_bad(CopyImageOperator, images="{{ x }}", destination_regions="{{ d }}",
                            _rendered={"images": [{"image_id": "m-1", "region": SRC, "status": "success"}],
                                       "destination_regions": [DST, SRC]}), "source region"),
    (lambda: _templated_bad(CopyImageOperator, images="{{ x }}", destination_regions=[DST],
                            encrypted="{{ e }}", kms_key_id="{{ k }}",
                            _rendered={"images": ["m-1"], "encrypted": False, "kms_key_id": "k"}), "encrypted"),
    (lambda: _templated_bad(CreateImageOperator, instances=["i-1"], max_errors="{{ m }}",
                            _rendered={"max_errors": "120%"}), "max_errors"),
    (lambda: _templated_bad(DeleteImagesOperator, images="{{ x }}", dry_run="{{ d }}",
                            _rendered={"images": ["m-1"], "dry_run": "yes"}), "dry_run"),
])
def test_bad_rendered_arguments_fail_before_any_api_call(aliyun_conn, emulator, op, match):
    operator = op()
    emulator.admin.clear_calls()
    with pytest.raises(ValueError, match=match):
        operator.execute(make_context())
    assert total_calls(emulator) == 0


# -- CreateImage ------------------------------------------------------------------------------------
def test_create_images_deferred_then_retry_creates_nothing_new(aliyun_conn, emulator, ecs_client):
    ids = fleet(emulator, 3)
    store = FakeStore()
    op = CreateImageOperator(task_id="create", instances=ids, policy="nightly", retention_days=7,
                             tags={"team": "ops"}, **FAST)
    first = run_op(op, make_context(store=store))
    assert [r["instance_id"] for r in first] == ids
    assert {r["status"] for r in first} == {"success"}
    assert all(r["image_id"].startswith("m-") and r["size_gib"] == 40 and r["seconds"] is not None for r in first)
    image = next(i for i in images_in(ecs_client, SRC) if i["ImageId"] == first[0]["image_id"])
    tags = pv.tags_from_api(image["Tags"])
    assert tags[pv.MANAGED_BY_KEY] == pv.MANAGED_BY_VALUE and tags[pv.SOURCE_INSTANCE] == ids[0]
    assert tags[pv.RUN_ID] == "manual__2024-05-01" and tags[pv.POLICY] == "nightly" and tags["team"] == "ops"
    assert tags[pv.RETENTION_DAYS] == "7" and tags[pv.DAG_ID] == "dag_images"
    assert store.data  # created ids kept for a retried try

    created = calls(emulator, "CreateImage")
    retry = CreateImageOperator(task_id="create", instances=ids, **FAST)
    second = run_op(retry, make_context(try_number=2, store=store))
    assert [r["image_id"] for r in second] == [r["image_id"] for r in first]
    assert calls(emulator, "CreateImage") == created
    assert len(images_in(ecs_client, SRC)) == 3


def test_retry_without_tags_or_store_reuses_client_token(aliyun_conn, emulator, ecs_client):
    """Even when the look-up misses (e.g. tag index lag), the same ClientToken returns the same image."""
    ids = fleet(emulator, 2)
    op = CreateImageOperator(task_id="create", instances=ids, wait_for_completion=False)
    first = op.execute(make_context())
    op2 = CreateImageOperator(task_id="create", instances=ids, wait_for_completion=False)
    op2.hook.describe_images  # noqa: B018  (hook built)
    original = op2.hook.describe_images
    op2.hook.describe_images = lambda region=None, *a, **kw: [] if kw.get("tags") else original(region, *a, **kw)
    second = op2.execute(make_context(try_number=2))
    assert [r["image_id"] for r in second] == [r["image_id"] for r in first]
    assert len(images_in(ecs_client, SRC)) == 2


def test_create_non_deferrable_polls_in_batches(aliyun_conn, emulator):
    ids = fleet(emulator, 30)
    op = CreateImageOperator(task_id="create", instances=ids, deferrable=False, concurrency=10, **FAST)
    emulator.admin.clear_calls()
    results = op.execute(make_context())
    assert {r["status"] for r in results} == {"success"}
    describes = calls(emulator, "DescribeImages")
    # one look-up + one call per poll for all 30 images (not 30 per poll)
    assert describes < 30, describes
    assert calls(emulator, "CreateImage") == 30


def test_throttling_and_503_are_survived(fast_retries, emulator):
    ids = fleet(emulator, 3)
    emulator.admin.set_faults({"rules": [
        {"action": "ecs:CreateImage", "kind": "throttle", "count": 2, "retry_after_ms": 50},
        {"action": "ecs:DescribeImages", "kind": "error", "status": 503, "count": 2},
    ]})
    results = run_op(CreateImageOperator(task_id="create", instances=ids, **FAST), make_context())
    assert {r["status"] for r in results} == {"success"}
    counters = emulator.admin.calls()["counters"]
    assert counters["ecs:CreateImage"]["codes"].get("Throttling.User") == 2
    assert counters["ecs:DescribeImages"]["codes"].get("ServiceUnavailable") == 2
    assert counters["ecs:CreateImage"]["calls"] == 5


def test_create_failed_is_reported_per_item(aliyun_conn, emulator):
    ids = fleet(emulator, 4)
    emulator.admin.set_faults({"image_create_fail": {"instance_ids": [ids[1]]}})
    results = run_op(CreateImageOperator(task_id="create", instances=ids, max_errors=1, **FAST), make_context())
    by_id = {r["instance_id"]: r for r in results}
    assert by_id[ids[1]]["status"] == "failed" and "CreateFailed" in by_id[ids[1]]["reason"]
    assert by_id[ids[1]]["image_id"]  # the failed image is reported, so it can be cleaned up
    assert all(by_id[i]["status"] == "success" for i in ids if i != ids[1])


def test_max_errors_exceeded_fails_the_task(aliyun_conn, emulator):
    ids = fleet(emulator, 3)
    emulator.admin.set_faults({"image_create_fail": {"instance_ids": ids[:2]}})
    op = CreateImageOperator(task_id="create", instances=ids, max_errors=1, deferrable=False, **FAST)
    with pytest.raises(AirflowException, match="max_errors") as info:
        op.execute(make_context())
    assert ids[0] in str(info.value) and ids[1] in str(info.value)


def test_concurrency_bounds_the_builds_in_flight(aliyun_conn, emulator):
    """concurrency=2: never more than two images building at once (a sliding window, OOS semantics);
    a slot is refilled as soon as a build ends, through a deferral that returns on the first one."""
    ids = fleet(emulator, 5)
    deferrals: list = []
    results = run_op(CreateImageOperator(task_id="create", instances=ids, concurrency=2, **FAST), make_context(),
                     deferrals)
    assert [r["status"] for r in results] == ["success"] * 5
    images = [i for i in emulator.admin.table("ecs.images").values() if i.get("SourceInstanceId") in ids]
    assert len(images) == 5
    events = sorted([(i["_start"], 1) for i in images] + [(i["_end"], -1) for i in images],
                    key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2
    assert [t.return_when for t in deferrals][-1] == "all" and "first" in [t.return_when for t in deferrals]
    # a slot is reported no sooner than 5 polls after the deferral (Airflow's defer/resume race, see the trigger)
    assert {t.min_partial_seconds for t in deferrals} == {1.0}
    assert all(not any(k.startswith("_") for k in r) for r in results)   # no private bookkeeping in XCom


def test_instance_dicts_and_missing_instances(aliyun_conn, emulator):
    ids = fleet(emulator, 2)
    selected = [{"instance_id": i, "instance_name": f"n{k}", "region": SRC, "status": "Running"}
                for k, i in enumerate(ids)] + [{"instance_id": "i-doesnotexist", "region": SRC}]
    results = run_op(CreateImageOperator(task_id="create", instances=selected, max_errors=1,
                                         image_name_template="nightly-{instance_name}-{instance_id}-{date}", **FAST),
                     make_context())
    assert [r["status"] for r in results] == ["success", "success", "failed"]
    assert results[0]["image_name"].startswith("nightly-n0-")
    assert "not found" in results[2]["reason"]


# -- CopyImage --------------------------------------------------------------------------------------
def _managed_images(emulator, n, region=SRC, **extra):
    tags = {**MANAGED, pv.SOURCE_INSTANCE: "i-src", pv.RUN_ID: "older-run"}
    return emulator.admin.load_fleet({"images": [{"region": region, "name": "img-{n}", "count": n, "tags": tags,
                                                  **extra}]})["images"]


def test_copy_seven_images_to_one_region_queues_and_finishes(aliyun_conn, emulator, ecs_client):
    image_ids = _managed_images(emulator, 7)
    emulator.admin.clear_calls()
    op = CopyImageOperator(task_id="copy", images=image_ids, region=SRC, destination_regions=DST, concurrency=7,
                           **FAST)
    results = run_op(op, make_context())
    assert len(results) == 7 and {r["status"] for r in results} == {"success"}
    assert {r["destination_region"] for r in results} == {DST}
    assert calls(emulator, "TagResources") == 1  # 7 ids, one batched call
    copies = images_in(ecs_client, DST)
    assert len(copies) == 7
    for copy in copies:
        tags = pv.tags_from_api(copy["Tags"])
        assert tags[pv.COPY_STATUS] == pv.COPY_COMPLETE and tags[pv.SOURCE_REGION] == SRC
        assert tags[pv.SOURCE_IMAGE] in image_ids and tags[pv.SOURCE_INSTANCE] == "i-src"


def test_copy_retry_leaves_one_copy_per_destination(aliyun_conn, emulator, ecs_client):
    image_ids = _managed_images(emulator, 2)
    dests = [DST, "cn-beijing"]
    store = FakeStore()
    first = run_op(CopyImageOperator(task_id="copy", images=image_ids, region=SRC, destination_regions=dests,
                                     **FAST), make_context(store=store))
    copied = calls(emulator, "CopyImage")
    second = run_op(CopyImageOperator(task_id="copy", images=image_ids, region=SRC, destination_regions=dests,
                                      **FAST), make_context(try_number=2, store=store))
    assert [r["image_id"] for r in second] == [r["image_id"] for r in first]
    assert calls(emulator, "CopyImage") == copied == 4
    assert len(images_in(ecs_client, DST)) == 2 and len(images_in(ecs_client, "cn-beijing")) == 2


def test_copy_takes_create_results_and_passes_failures_through(aliyun_conn, emulator):
    image_ids = _managed_images(emulator, 1)
    upstream = [
        {"instance_id": "i-a", "instance_name": "a", "region": SRC, "image_id": image_ids[0], "status": "success"},
        {"instance_id": "i-b", "instance_name": "b", "region": SRC, "image_id": "m-bad", "status": "failed",
         "reason": "image m-bad is CreateFailed"},
        {"instance_id": "i-c", "instance_name": "c", "region": SRC, "image_id": "", "status": "failed",
         "reason": "instance i-c not found"},
    ]
    results = run_op(CopyImageOperator(task_id="copy", images=upstream, destination_regions=[DST],
                                       deferrable=False, **FAST), make_context())
    assert [r["status"] for r in results] == ["success", "skipped", "skipped"]
    assert results[0]["instance_id"] == "i-a" and results[0]["source_image_id"] == image_ids[0]
    assert "CreateFailed" in results[1]["reason"] and "not found" in results[2]["reason"]


# -- DeleteImages -----------------------------------------------------------------------------------
def _snapshots(emulator):
    return emulator.admin.table("ecs.snapshots")


def test_delete_guards_and_snapshots(aliyun_conn, emulator):
    managed = _managed_images(emulator, 2)
    unmanaged = emulator.admin.load_fleet({"images": [{"region": SRC, "name": "theirs"}]})["images"][0]
    emulator.admin.load_fleet({"instances": [{"region": SRC, "image_id": managed[1], "name": "user"}]})
    snaps_before = set(_snapshots(emulator))
    images = emulator.admin.table("ecs.images")
    own_snaps = [m["SnapshotId"] for m in images[managed[0]]["DiskDeviceMappings"]]
    assert own_snaps and set(own_snaps) <= snaps_before

    results = DeleteImagesOperator(task_id="delete", images=[*managed, unmanaged, "m-gone"], region=SRC,
                                   max_errors=0).execute(make_context())
    by_id = {r["image_id"]: r for r in results}
    assert by_id[managed[0]]["status"] == "success" and by_id[managed[0]]["deleted_snapshots"] == own_snaps
    assert by_id[managed[1]]["status"] == "skipped" and "in use" in by_id[managed[1]]["reason"]
    assert by_id[unmanaged]["status"] == "skipped" and "not managed" in by_id[unmanaged]["reason"]
    assert by_id["m-gone"]["status"] == "success" and "already deleted" in by_id["m-gone"]["reason"]
    images = emulator.admin.table("ecs.images")
    assert managed[0] not in images and managed[1] in images and unmanaged in images
    assert not set(own_snaps) & set(_snapshots(emulator))


def test_delete_dry_run_calls_no_delete_api(aliyun_conn, emulator):
    managed = _managed_images(emulator, 3)
    emulator.admin.clear_calls()
    results = DeleteImagesOperator(task_id="delete", images=managed, region=SRC, dry_run=True).execute(
        make_context())
    assert all(r["status"] == "skipped" and r["reason"].startswith("dry run: would delete") for r in results)
    counters = emulator.admin.calls()["counters"]
    assert not [a for a in counters if "Delete" in a or "Cancel" in a]
    assert calls(emulator, "DescribeImages") == 1
    assert set(managed) <= set(emulator.admin.table("ecs.images"))


def test_delete_copy_in_progress_needs_force(aliyun_conn, emulator):
    image_ids = _managed_images(emulator, 1)
    copy = CopyImageOperator(task_id="copy", images=image_ids, region=SRC, destination_regions=[DST],
                             wait_for_completion=False).execute(make_context())
    copy_id = copy[0]["image_id"]
    plain = DeleteImagesOperator(task_id="d", images=[copy_id], region=DST).execute(make_context())
    assert plain[0]["status"] == "skipped" and "copy is in progress" in plain[0]["reason"]
    forced = DeleteImagesOperator(task_id="d", images=[copy_id], region=DST, force=True).execute(make_context())
    assert forced[0]["status"] == "success"
    assert copy_id not in emulator.admin.table("ecs.images")


def test_delete_sources_only_when_all_copies_succeeded(aliyun_conn, emulator):
    image_ids = _managed_images(emulator, 2)
    copies = [
        {"source_image_id": image_ids[0], "source_region": SRC, "destination_region": DST, "status": "success"},
        {"source_image_id": image_ids[1], "source_region": SRC, "destination_region": DST, "status": "success"},
        {"source_image_id": image_ids[1], "source_region": SRC, "destination_region": "cn-beijing",
         "status": "failed", "reason": "copy failed"},
    ]
    results = DeleteImagesOperator(task_id="d", images=copies, image_key="source_image_id",
                                   region_key="source_region", require_success=True).execute(make_context())
    by_id = {r["image_id"]: r for r in results}
    assert by_id[image_ids[0]]["status"] == "success"
    assert by_id[image_ids[1]]["status"] == "skipped" and "copy failed" in by_id[image_ids[1]]["reason"]


# -- PruneBackupImages ------------------------------------------------------------------------------
def test_prune_keeps_recent_and_last(aliyun_conn, emulator):
    now = emulator.admin.clock()["now"]
    iso = lambda days: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - days * 86400))  # noqa: E731
    tags = {**MANAGED, pv.SOURCE_INSTANCE: "i-1", pv.POLICY: "nightly"}
    ids = emulator.admin.load_fleet({"images": [
        {"region": SRC, "name": "old-a", "tags": tags, "creation_time": iso(30)},
        {"region": SRC, "name": "old-b", "tags": tags, "creation_time": iso(20)},
        {"region": SRC, "name": "new", "tags": tags, "creation_time": iso(1)},
        {"region": SRC, "name": "foreign", "creation_time": iso(40)},
    ]})["images"]
    dry = PruneBackupImagesOperator(task_id="p", regions=[SRC], retention_days=7, keep_last=2, policy="nightly",
                                    dry_run=True, now=now).execute(make_context())
    assert {r["image_id"] for r in dry if r["reason"].startswith("older than")} == {ids[0]}
    results = PruneBackupImagesOperator(task_id="p", regions=[SRC], retention_days=7, keep_last=2,
                                        policy="nightly", now=now).execute(make_context())
    by_id = {r["image_id"]: r for r in results}
    assert by_id[ids[0]]["status"] == "success"
    assert by_id[ids[1]]["status"] == "skipped" and by_id[ids[2]]["status"] == "skipped"
    assert ids[3] not in by_id  # never even considered: not ours
    assert set(emulator.admin.table("ecs.images")) >= {ids[1], ids[2], ids[3]}


# -- CreateSnapshot ---------------------------------------------------------------------------------
def test_create_snapshots_of_system_disks_idempotent(aliyun_conn, emulator):
    ids = fleet(emulator, 2, data_disks=[{"size": 20}])
    store = FakeStore()
    first = run_op(CreateSnapshotOperator(task_id="snap", instances=ids, retention_days=3, **FAST),
                   make_context(store=store))
    assert len(first) == 2 and {r["status"] for r in first} == {"success"}
    assert {r["snapshot_status"] for r in first} == {"accomplished"}
    made = calls(emulator, "CreateSnapshot")
    second = run_op(CreateSnapshotOperator(task_id="snap", instances=ids, retention_days=3, **FAST),
                    make_context(try_number=2, store=store))
    assert [r["snapshot_id"] for r in second] == [r["snapshot_id"] for r in first]
    assert calls(emulator, "CreateSnapshot") == made
    every = run_op(CreateSnapshotOperator(task_id="snap_all", instances=ids, disk_type="all", deferrable=False,
                                          **FAST), make_context())
    assert len(every) == 4 and {r["status"] for r in every} == {"success"}


# -- sensor -----------------------------------------------------------------------------------------
def test_sensor_poke_and_defer(aliyun_conn, emulator):
    ids = fleet(emulator, 2)
    created = CreateImageOperator(task_id="c", instances=ids, wait_for_completion=False).execute(make_context())
    sensor = WaitForImageAvailableSensor(task_id="w", images=created, poke_interval=0.2, timeout=60)
    emulator.admin.clear_calls()
    assert sensor.poke(make_context()).is_done is False
    assert calls(emulator, "DescribeImages") == 1  # both images, one call
    states = run_op(sensor, make_context())
    assert {s["status"] for s in states.values()} == {"Available"}


def test_sensor_fails_fast_on_create_failed(aliyun_conn, emulator):
    ids = fleet(emulator, 2)
    emulator.admin.set_faults({"image_create_fail": {"instance_ids": [ids[0]]}})
    created = CreateImageOperator(task_id="c", instances=ids, wait_for_completion=False).execute(make_context())
    sensor = WaitForImageAvailableSensor(task_id="w", image_ids=[r["image_id"] for r in created], region=SRC,
                                         poke_interval=0.2, timeout=60)
    with pytest.raises(AirflowException, match="CreateFailed"):
        run_op(sensor, make_context())
    poke_sensor = WaitForImageAvailableSensor(task_id="w2", image_ids=[created[0]["image_id"]], region=SRC,
                                              deferrable=False, poke_interval=0.2, timeout=60)
    with pytest.raises(AirflowException, match="CreateFailed"):
        poke_sensor.poke(make_context())


def test_copies_are_submitted_largest_first_and_waited_for_by_probe(aliyun_conn, emulator):
    """The copy queue is first come, first served: the largest source goes in first (LPT order). The
    in-worker wait (deferrable=False) shares the trigger's plan."""
    emulator.admin.request("POST", "timings", {"copy_base": 20, "copy_per_gib": 1})
    small = _managed_images(emulator, 3, size=40, name="small-{n}")
    big = _managed_images(emulator, 2, size=40, data_disks=[{"size": 500}], name="big-{n}")
    mid = _managed_images(emulator, 2, size=100, name="mid-{n}")
    emulator.admin.clear_calls()
    op = CopyImageOperator(task_id="copy", images=small + big + mid, region=SRC, destination_regions=DST,
                           concurrency=1, deferrable=False, poll_interval=0.05, timeout=60)
    results = op.execute(make_context())
    assert [r["source_image_id"] for r in results] == small + big + mid   # results keep the input order
    assert {r["status"] for r in results} == {"success"}
    images = emulator.admin.request("GET", "state", table="ecs.images")["tables"]["ecs.images"]
    queue = sorted((i for i in images.values() if i.get("IsCopied")), key=lambda i: i["_queue_seq"])
    assert [i["SourceImageId"] for i in queue][:4] == big + mid
    # concurrency=1: one copy in flight at a time, so each copy is submitted when the one before is done
    spans = sorted((i["_start"], i["_end"]) for i in queue)
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))
    # 2 look-ups, then a few reads per copy; this only guards the in-worker path's wiring (the economy of
    # the plan is shown on 200 copies in test_image_triggers.py)
    assert calls(emulator, "DescribeImages") <= 7 * 8


def test_a_run_that_pauses_never_images_a_running_instance_it_did_not_pause(aliyun_conn, emulator):
    """With resume_paused_after_snapshots (consistency stop/command), a Running instance without this run's pause
    (a retry after the early resume already started it) is refused: its image would not be consistent."""
    ids = fleet(emulator, 1)
    results = run_op(CreateImageOperator(task_id="create", instances=ids, resume_paused_after_snapshots=True,
                                         max_errors=1, **FAST), make_context())
    assert results[0]["status"] == "failed" and "not be consistent" in results[0]["reason"]
    assert calls(emulator, "CreateImage") == 0


def test_an_earlier_image_is_reused_only_while_the_instance_has_not_started_since(aliyun_conn, emulator, ecs_client):
    """reuse_after_restart=False (the spot cycle writes the image back onto the disk): a retry while the instance
    is still down reuses the first image; once the instance has started again, a new image is made."""
    from alibabacloud_ecs20140526 import models

    ids = fleet(emulator, 1, status="Stopped")
    first = run_op(CreateImageOperator(task_id="create", instances=ids, reuse_after_restart=False, **FAST),
                   make_context())
    retry = run_op(CreateImageOperator(task_id="create", instances=ids, reuse_after_restart=False, **FAST),
                   make_context(try_number=2))
    assert retry[0]["image_id"] == first[0]["image_id"] and calls(emulator, "CreateImage") == 1

    emulator.admin.advance(3600)
    ecs_client(SRC).start_instance(models.StartInstanceRequest(instance_id=ids[0]))
    emulator.admin.advance(6 * 3600)
    later = run_op(CreateImageOperator(task_id="create", instances=ids, reuse_after_restart=False, **FAST),
                   make_context(try_number=3))
    assert later[0]["status"] == "success" and later[0]["image_id"] != first[0]["image_id"]
    assert calls(emulator, "CreateImage") == 2
    # a backup (the default) keeps reusing: the image of the night is the image of the night
    again = run_op(CreateImageOperator(task_id="create", instances=ids, **FAST), make_context(try_number=4))
    assert again[0]["image_id"] == later[0]["image_id"] and calls(emulator, "CreateImage") == 2


def test_a_stopped_instance_another_run_holds_is_not_imaged_as_cold(aliyun_conn, emulator):
    """Stopped, but leased by another live run (which may start it at any moment): not a consistent image."""
    from datetime import UTC, datetime, timedelta

    from aliyun_ops.hooks.ecs import EcsHook
    from aliyun_ops.logic import lease as lz

    ids = fleet(emulator, 1, status="Stopped")
    EcsHook().tag_resources(SRC, "instance", ids, lz.lease_tags("other_dag|2026-11-19T18:00:00+00:00|e",
                                                                now=datetime.now(UTC), ttl=timedelta(hours=1)))
    results = run_op(CreateImageOperator(task_id="create", instances=ids, resume_paused_after_snapshots=True,
                                         max_errors=1, **FAST), make_context())
    assert results[0]["status"] == "failed" and "another run holds its lease" in results[0]["reason"]
    assert calls(emulator, "CreateImage") == 0
