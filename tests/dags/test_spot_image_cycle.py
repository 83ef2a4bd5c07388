"""End-to-end: ecs_spot_image_cycle (seed 000's job) under dag.test() against the emulator."""

from __future__ import annotations

import pendulum
from alibabacloud_ecs20140526 import models as m

from tests.dags.reports import report_json

DAG_ID = "ecs_spot_image_cycle"
REGION = "cn-hangzhou"
NIGHT = pendulum.datetime(2026, 11, 20, 4, 0, tz="UTC")        # 12:00 Asia/Shanghai
FAST = {"poll_interval": 1}


def fleet(emulator) -> dict[str, str]:
    emulator.admin.load_fleet({"instances": [
        {"region": REGION, "name": "spot", "count": 2, "status": "Running", "tags": {"spot-image-cycle": "true"}},
        {"region": REGION, "name": "other", "count": 1, "status": "Running"}]})
    return {i["InstanceName"]: i["InstanceId"] for i in emulator.admin.table("ecs.instances").values()}


def system_image(ecs_client, iid: str) -> str:
    return ecs_client(REGION).describe_disks(m.DescribeDisksRequest(
        region_id=REGION, instance_id=iid, disk_type="system")).body.disks.disk[0].image_id


def spot_images(emulator) -> list[dict]:
    return [i for i in emulator.admin.table("ecs.images").values()
            if (i.get("Tags") or {}).get("ops:policy") == "ecs-spot-image-cycle"]


def test_each_instance_gets_a_disk_from_its_own_fresh_image_and_a_rerun_never_writes_an_older_one(run_dag, emulator,
                                                                                                  ecs_client):
    names = fleet(emulator)
    run = run_dag(DAG_ID, logical_date=NIGHT, conf=FAST)
    assert run.state == "success"
    images = {i["Tags"]["ops:source-instance"]: i["ImageId"] for i in spot_images(emulator)}
    spot = [iid for name, iid in names.items() if name.startswith("spot")]
    assert sorted(images) == sorted(spot)
    for iid in spot:
        assert system_image(ecs_client, iid) == images[iid]
        assert emulator.admin.table("ecs.instances")[iid]["Status"] == "Running"
    other = names["other-001"] if "other-001" in names else next(v for k, v in names.items() if k.startswith("other"))
    assert emulator.admin.table("ecs.instances")[other]["Status"] == "Running"

    undo = [s for s in emulator.admin.table("ecs.snapshots").values() if (s.get("Tags") or {}).get("ops:undo-for")]
    assert sorted(s["Tags"]["ops:undo-for"] for s in undo) == sorted(spot)     # an undo point per disk, by default
    assert not any(k.startswith(("ops:lease", "ops:paused")) for iid in spot
                   for k in emulator.admin.table("ecs.instances")[iid]["Tags"])

    # an on-call "Clear" six hours later, same logical date: the instances have run since the first images were
    # made, so those are not written back (six hours of writes would be lost): each gets a new image
    emulator.admin.advance(6 * 3600)
    last_start = {iid: emulator.admin.table("ecs.instances")[iid]["StartTime"] for iid in spot}
    again = run_dag(DAG_ID, logical_date=NIGHT, conf=FAST)
    assert again.state == "success"
    assert len(spot_images(emulator)) == 4
    for iid in spot:
        on_disk = emulator.admin.table("ecs.images")[system_image(ecs_client, iid)]
        assert on_disk["ImageId"] != images[iid] and on_disk["Tags"]["ops:source-instance"] == iid
        assert on_disk["CreationTime"] > last_start[iid]          # never older than the disk's last writes


def test_a_failed_image_leaves_the_disk_alone_and_the_instance_running(run_dag, emulator, ecs_client):
    names = fleet(emulator)
    spot = sorted(iid for name, iid in names.items() if name.startswith("spot"))
    before = system_image(ecs_client, spot[0])
    emulator.admin.set_faults({"image_create_fail": {"instance_ids": [spot[0]]}})
    run = run_dag(DAG_ID, logical_date=NIGHT, conf={**FAST, "max_errors": 1})
    assert run.state == "success"                               # one failure allowed
    assert system_image(ecs_client, spot[0]) == before
    assert all(emulator.admin.table("ecs.instances")[iid]["Status"] == "Running" for iid in spot)
    fails = run_dag(DAG_ID, logical_date=NIGHT.add(days=1), conf=FAST)     # max_errors 0: the run says so
    assert fails.state == "failed"
    assert all(emulator.admin.table("ecs.instances")[iid]["Status"] == "Running" for iid in spot)


def test_a_start_without_spot_stock_after_a_good_replace_keeps_the_fresh_disk(run_dag, emulator, ecs_client):
    """OperationDenied.NoStock on the start of one instance (common for spot capacity) after its disk was replaced
    with the fresh image: the fresh disk stays (never the base image over it), that instance is reported failed and
    the run fails; the other instance is cycled as usual."""
    names = fleet(emulator)
    spot = sorted(iid for name, iid in names.items() if name.startswith("spot"))
    base = emulator.admin.table("ecs.instances")[spot[0]]["ImageId"]
    emulator.admin.set_faults({"rules": [{"action": "ecs:StartInstance*", "kind": "error", "status": 403,
                                          "code": "OperationDenied.NoStock", "rate": 1.0, "dry_run": False,
                                          "resource_ids": [spot[0]]}]})
    run = run_dag(DAG_ID, logical_date=NIGHT, conf={**FAST, "base_image_id": base}, retries=0)
    assert run.state == "failed"
    fresh = {i["Tags"]["ops:source-instance"]: i["ImageId"] for i in spot_images(emulator)}
    assert system_image(ecs_client, spot[0]) == fresh[spot[0]] != base
    assert emulator.admin.table("ecs.instances")[spot[0]]["Status"] == "Stopped"
    assert emulator.admin.table("ecs.instances")[spot[1]]["Status"] == "Running"
    assert system_image(ecs_client, spot[1]) == fresh[spot[1]]
    rows = {r["instance_id"]: r for r in report_json(DAG_ID, run)["rows"]}
    assert rows[spot[0]]["status"] == "failed" and "NoStock" in rows[spot[0]]["reason"]
    assert rows[spot[0]]["fallback_image_id"] == "" and rows[spot[1]]["status"] == "success"


def test_a_failed_replace_falls_back_to_the_base_image(run_dag, emulator, ecs_client):
    names = fleet(emulator)
    spot = sorted(iid for name, iid in names.items() if name.startswith("spot"))
    base = emulator.admin.table("ecs.instances")[spot[0]]["ImageId"]
    emulator.admin.set_faults({"rules": [{"action": "ecs:ReplaceSystemDisk", "kind": "error", "status": 403,
                                          "code": "OperationDenied", "count": 1}]})
    run = run_dag(DAG_ID, logical_date=NIGHT, conf={**FAST, "base_image_id": base, "max_errors": 1})
    assert run.state == "success"
    assert sorted(system_image(ecs_client, iid) == base for iid in spot) == [False, True]
    assert all(emulator.admin.table("ecs.instances")[iid]["Status"] == "Running" for iid in spot)


def test_a_failed_replace_without_a_base_image_puts_the_undo_snapshot_back(run_dag, emulator, ecs_client):
    """No base image: the undo snapshot (taken by default) is the fallback, under the DAG's own RAM policy."""
    names = fleet(emulator)
    spot = sorted(iid for name, iid in names.items() if name.startswith("spot"))
    emulator.admin.set_faults({"rules": [{"action": "ecs:ReplaceSystemDisk", "kind": "error", "status": 403,
                                          "code": "OperationDenied", "count": 1, "resource_ids": [spot[0]]}]})
    run = run_dag(DAG_ID, logical_date=NIGHT, conf={**FAST, "max_errors": 1})
    assert run.state == "success"                               # one failure allowed
    undo = emulator.admin.table("ecs.images")[system_image(ecs_client, spot[0])]
    assert undo["ImageName"].startswith("undo-") and undo["Tags"]["ops:undo-for"] == spot[0]
    assert all(emulator.admin.table("ecs.instances")[iid]["Status"] == "Running" for iid in spot)
    rows = {r["instance_id"]: r for r in report_json(DAG_ID, run)["rows"]}
    assert rows[spot[0]]["status"] == "failed" and rows[spot[0]]["fallback_image_id"] == undo["ImageId"]
