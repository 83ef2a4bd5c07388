"""End-to-end: ecs_repair_image (OOS ACS-ECS-RepairImage) under dag.test() against the emulator. After every run,
whatever happened, no temporary instance, security group, disk or stray snapshot of the repair is left."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pendulum
import pytest

from tests.dags.reports import report_json

DAG_ID = "ecs_repair_image"
REGION = "cn-hangzhou"


@pytest.fixture
def images(emulator) -> dict[str, str]:
    """Images to repair: broken x86_64 and arm64 ones (fstab, grub: they do not boot), one holding no Linux system."""
    emulator.admin.load_fleet({"images": [
        {"region": REGION, "name": "web-2026", "broken": True, "detected": True, "platform": "CentOS",
         "creation_time": "2026-11-02T00:00:00Z"},
        {"region": REGION, "name": "arm-2026", "broken": ["nvme", "cloudinit"], "architecture": "arm64",
         "boot_mode": "UEFI", "platform": "Ubuntu", "detected": True, "creation_time": "2026-11-01T00:00:00Z"},
        {"region": REGION, "name": "junk", "invalid": True, "detected": True, "creation_time": "2026-11-03T00:00:00Z"},
    ]})
    return {i["ImageName"]: i["ImageId"] for i in emulator.admin.table("ecs.images").values()
            if i.get("ImageName") in ("web-2026", "arm-2026", "junk")}


def conf(image_id: str, **extra) -> dict:
    return {"image_id": image_id, "poll_interval": 1, "flush_wait": 0, **extra}


def repaired(emulator) -> list[dict]:
    return [i for i in emulator.admin.table("ecs.images").values()
            if str(i.get("ImageName", "")).startswith("repaired_") and i.get("Status") != "Deleted"]


def nothing_left(emulator) -> None:
    """No temporary instance or group; no disk of a repair instance; no snapshot of the repair without its image."""
    instances = [i["InstanceId"] for i in emulator.admin.table("ecs.instances").values()
                 if (i.get("Tags") or {}).get("ops:temporary") == "true"]
    groups = [g for g, rec in emulator.admin.table("ecs.security_groups").items()
              if (rec.get("Tags") or {}).get("ops:temporary") == "true"]
    disks = [d for d, rec in emulator.admin.table("ecs.disks").items()
             if str(rec.get("DiskName", "")).startswith("image_repair_")]
    used = {m.get("SnapshotId") for i in repaired(emulator) for m in i.get("DiskDeviceMappings") or []}
    snapshots = [s for s, rec in emulator.admin.table("ecs.snapshots").items()
                 if str(rec.get("SnapshotName", "")).startswith("image_repair_") and s not in used]
    assert not (instances or groups or disks or snapshots), (instances, groups, disks, snapshots)


def steps(run) -> dict[str, dict]:
    return {r["step"]: r for r in report_json(DAG_ID, run)["rows"]}


def checks(image_id: str) -> dict[str, dict]:
    """The image check's items, as DescribeImages answers them."""
    from aliyun_ops.hooks.ecs import EcsHook

    image = EcsHook().describe_images(REGION, image_ids=[image_id])[0]
    assert image["DetectionOptions"]["Status"] == "Finished"
    return {i["Name"]: i for i in image["DetectionOptions"]["Items"]["Item"]}


@pytest.mark.parametrize("name, architecture, base", [
    ("web-2026", "x86_64", "aliyun_3_x64"), ("arm-2026", "arm64", "aliyun_3_arm64")])
def test_a_broken_image_is_repaired_into_a_new_image(run_dag, emulator, images, aliyun_conn, name, architecture,
                                                     base):
    run = run_dag(DAG_ID, conf=conf(images[name]), retries=0)
    assert run.state == "success"
    [image] = repaired(emulator)
    assert image["Status"] == "Available" and image["Architecture"] == architecture
    stamp = run.logical_date.astimezone(pendulum.UTC) if run.logical_date else None
    assert image["ImageName"].startswith(f"repaired_{name}_")
    if stamp:
        assert image["ImageName"] == f"repaired_{name}_{stamp:%Y%m%d%H%M%S}"
    found = checks(image["ImageId"])
    assert found["SystemImage"]["Value"] != "Invalid" and not found["SystemImage"].get("RiskLevel")
    assert not any(i.get("RiskLevel") == "High" for i in found.values()), found   # it boots now
    rows = steps(run)
    assert rows["image check"]["status"] == "success" and rows["repaired image"]["status"] == "success"
    assert {r for r in rows if r.startswith("item ")} == {f"item {i}" for i in (
        "assist", "cloudinit", "virtio", "nvme", "fstab", "grub", "dhcp", "growpart")}
    broken = {"web-2026": ("fstab", "grub"), "arm-2026": ("nvme", "cloudinit")}[name]
    assert all("FIXED" in rows[f"item {i}"]["detail"] for i in broken), rows
    assert f"from {base}" in rows["repair instance"]["detail"]       # the base image of the image's architecture
    nothing_left(emulator)


@pytest.mark.parametrize("which", ["junk", "public"])
def test_an_image_that_cannot_be_repaired_ends_before_anything_is_made(run_dag, emulator, images, which):
    """One holding no Linux system (its check says Invalid), or not ours (a public image)."""
    public = next(rec["ImageId"] for rec in emulator.admin.table("ecs.images").values()
                  if rec.get("ImageOwnerAlias") == "system")
    run = run_dag(DAG_ID, conf=conf(images["junk"] if which == "junk" else public), retries=0)
    assert run.state == "failed" and repaired(emulator) == []
    counters = emulator.admin.calls()["counters"]
    assert not any(counters.get(f"ecs:{a}", {}).get("calls") for a in ("RunInstances", "CreateSecurityGroup",
                                                                       "CreateSnapshot", "CreateImage"))
    assert steps(run)["check"]["status"] == "failed"
    nothing_left(emulator)


def test_a_failing_repair_command_makes_no_image_and_releases_everything(run_dag, emulator, images):
    emulator.admin.request("POST", "command-behaviour", {"rules": [
        {"match": "ImageRepair", "exit_code": 4, "output": "[ImageRepair] ERROR: grub2-mkconfig failed"}]})
    run = run_dag(DAG_ID, conf=conf(images["web-2026"]), retries=0)
    assert run.state == "failed" and repaired(emulator) == []
    assert emulator.admin.calls()["counters"].get("ecs:CreateSnapshot", {}).get("calls", 0) == 0
    rows = steps(run)
    assert rows["repair command"]["status"] == "failed" and "grub2-mkconfig" in rows["repair command"]["detail"]
    assert rows["release"]["status"] == "success"
    nothing_left(emulator)


def test_a_failed_image_creation_deletes_its_snapshot(run_dag, emulator, images):
    emulator.admin.set_faults({"rules": [{"action": "ecs:CreateImage", "kind": "error", "status": 400,
                                          "code": "QuotaExceed.Image", "rate": 1.0, "dry_run": False}]})
    run = run_dag(DAG_ID, conf=conf(images["web-2026"]), retries=0)
    assert run.state == "failed" and repaired(emulator) == []
    assert emulator.admin.calls()["counters"]["ecs:CreateSnapshot"]["calls"] >= 1
    nothing_left(emulator)


def test_with_no_image_given_the_newest_one_that_does_not_boot_is_repaired(run_dag, emulator, images):
    run = run_dag(DAG_ID, conf={"poll_interval": 1, "flush_wait": 0}, retries=0)
    assert run.state == "success"
    assert [i["ImageName"][:len("repaired_web-2026_")] for i in repaired(emulator)] == ["repaired_web-2026_"]
    nothing_left(emulator)


def test_the_next_run_sweeps_a_repair_instance_a_killed_run_left(run_dag, emulator, images, aliyun_conn):
    """A run killed after RunInstances (its teardown never ran) leaves the repair instance: the next run's sweep
    releases it once older than the grace period (at the run's logical date), then repairs as usual."""
    from aliyun_ops.actions.temporary import temporary_tags
    from aliyun_ops.hooks.ecs import EcsHook

    hook = EcsHook()
    dead = {"ti": SimpleNamespace(dag_id=DAG_ID, task_id="launch"), "run_id": "manual__killed"}
    base = next(i["ImageId"] for i in hook.describe_images(REGION, owner="system")
                if i["ImageId"].startswith("aliyun_3_x64"))
    leftover = hook.run_instances(REGION, base, "ecs.g7.large", tags=temporary_tags(dead, "image-repair"),
                                  instance_name="image-repair-killed")[0]
    created = pendulum.parse(hook.describe_instances(REGION, instance_ids=[leftover])[0]["CreationTime"])
    run = run_dag(DAG_ID, conf=conf(images["web-2026"]), logical_date=created + timedelta(hours=7), retries=0)
    assert run.state == "success"
    assert leftover not in {i["InstanceId"] for i in hook.describe_instances(REGION)}
    nothing_left(emulator)
