"""What the image repair pipeline (after OOS ACS-ECS-RepairImage) needs, through the official ECS SDK: data disks
made from snapshots, disk serial numbers, image OS fields and image checks (DetectionOptions), CreateImage from a
snapshot with DetectionStrategy/Platform/BootMode/Architecture, and the public command
ACS-ECS-ImageRepair-for-linux.sh repairing the data disk it is told by serial number.

The clock is frozen (``frozen``) and moved with ``admin.advance``.
"""

from __future__ import annotations

import json
import re

import pytest
from alibabacloud_ecs20140526 import models as m

from emulator.control import AdminError

from .helpers import api_error, fleet

HZ = "cn-hangzhou"
BASE = "aliyun_3_x64_20G_alibase_20250629.vhd"
REPAIR = "ACS-ECS-ImageRepair-for-linux.sh"
DEFAULT_ITEMS = "assist cloudinit virtio nvme fstab grub dhcp growpart"
SNAPSHOT_S = 60 + 2 * 40      # CreateSnapshot of a 40 GiB disk
IMAGE_S = 120 + 15 * 40       # CreateImage of 40 GiB
RUNNING_S = 15 + 40           # RunInstances: Pending -> Starting -> Running


def image(client, image_id, region=HZ):
    body = client.describe_images(m.DescribeImagesRequest(region_id=region, image_id=image_id,
                                                          status="Creating,Available,CreateFailed")).body
    return body.images.image[0]


def checks(img) -> dict:
    return {i.name: i for i in img.detection_options.items.item}


def data_disks(client, instance_id, region=HZ):
    return client.describe_disks(m.DescribeDisksRequest(region_id=region, instance_id=instance_id,
                                                        disk_type="data")).body.disks.disk


def run_with_disk(client, snapshot_id=None, region=HZ, image_id=BASE, **disk) -> str:
    dd = m.RunInstancesRequestDataDisk(snapshot_id=snapshot_id, **disk)
    return client.run_instances(m.RunInstancesRequest(
        region_id=region, image_id=image_id, instance_type="ecs.g7.large", instance_name="image_repair_please_no_delete",
        data_disk=[dd])).body.instance_id_sets.instance_id_set[0]


def invoke_repair(client, instance_id, serial, items=DEFAULT_ITEMS) -> str:
    return client.invoke_command(m.InvokeCommandRequest(
        region_id=HZ, command_id=REPAIR, instance_id=[instance_id],
        parameters={"repairitems": items, "disk_serial": serial})).body.invoke_id


def result(client, invoke_id):
    body = client.describe_invocation_results(m.DescribeInvocationResultsRequest(
        region_id=HZ, invoke_id=invoke_id, content_encoding="PlainText")).body
    return body.invocation.invocation_results.invocation_result[0]


def snapshot_and_image(frozen, client, disk_id, **image_kw) -> str:
    sid = client.create_snapshot(m.CreateSnapshotRequest(disk_id=disk_id, snapshot_name=f"image_repair_{disk_id}",
                                                         retention_days=1)).body.snapshot_id
    frozen.admin.advance(SNAPSHOT_S)
    return client.create_image(m.CreateImageRequest(region_id=HZ, snapshot_id=sid, **image_kw)).body.image_id


# -- image OS fields and checks ----------------------------------------------------------------------------------
def test_fleet_images_carry_os_fields_and_check_results(frozen, ecs_client):
    ids = fleet(frozen, images=[
        {"region": HZ, "name": "arm-uefi", "architecture": "arm64", "boot_mode": "UEFI", "platform": "Ubuntu"},
        {"region": HZ, "name": "broken", "broken": True},
        {"region": HZ, "name": "vnc", "broken": ["virtio", "assist"], "os_name": "CentOS 7.9 64位"},
        {"region": HZ, "name": "junk", "invalid": True},
        {"region": HZ, "name": "checked", "detected": True},
    ])["images"]
    client = ecs_client()
    arm, broken, partial, junk, checked = (image(client, i) for i in ids)
    assert (arm.architecture, arm.boot_mode, arm.platform, arm.ostype) == ("arm64", "UEFI", "Ubuntu", "linux")
    assert arm.osname == "Ubuntu 64位" and arm.osname_en == "Ubuntu 64 bit"
    assert arm.detection_options.status == "" and arm.detection_options.items.item == []  # never checked
    assert (broken.architecture, broken.boot_mode, broken.platform) == ("x86_64", "BIOS", "Aliyun")
    assert broken.detection_options.status == "Finished"
    c = checks(broken)
    assert (c["SystemImage"].value, c["SystemImage"].risk_level) == ("Unbootable", "High")
    assert (c["Fstab"].risk_level, c["Fstab"].risk_code) == ("High", "Fstab.InvalidEntry")
    assert c["Grub"].risk_level == "High" and c["Virtio"].value == "Supported" and c["Virtio"].risk_level is None
    c = checks(partial)
    assert {n for n, i in c.items() if i.risk_level} == {"SystemImage", "Virtio", "CloudAssistant"}
    assert c["CloudAssistant"].risk_level == "Medium" and partial.osname == "CentOS 7.9 64位"
    assert (checks(junk)["SystemImage"].value, checks(junk)["SystemImage"].risk_code) == ("Invalid",
                                                                                          "SystemImage.Invalid")
    c = checks(checked)
    assert c["SystemImage"].value == "Supported" and not any(i.risk_level for i in c.values())
    public = client.describe_images(m.DescribeImagesRequest(region_id=HZ, image_owner_alias="system",
                                                            architecture="arm64")).body.images.image
    assert [(i.image_id, i.boot_mode) for i in public] == [("aliyun_3_arm64_20G_alibase_20250629.vhd", "UEFI")]


@pytest.mark.parametrize("entry, field", [
    ({"architecture": "sparc"}, "architecture"), ({"boot_mode": "Legacy"}, "boot_mode"),
    ({"platform": "Plan9"}, "platform"), ({"os_type": "macos"}, "os_type"), ({"broken": ["teeth"]}, "broken"),
    ({"broken": "yes"}, "broken"), ({"invalid": 1}, "invalid"), ({"detected": "no"}, "detected"),
])
def test_fleet_image_fields_are_validated(emulator, entry, field):
    with pytest.raises(AdminError) as err:
        fleet(emulator, images=[{"region": HZ, **entry}])
    assert err.value.status == 400 and err.value.body["Code"] == "InvalidFleetSpec" and field in err.value.body["Message"]


# -- RunInstances with DataDisk.N.SnapshotId ---------------------------------------------------------------------
def test_data_disk_from_an_image_snapshot(frozen, ecs_client):
    (img_id,) = fleet(frozen, images=[{"region": HZ, "name": "golden", "size": 40}])["images"]
    client = ecs_client()
    snap = image(client, img_id).disk_device_mappings.disk_device_mapping[0].snapshot_id
    iid = run_with_disk(client, snap, disk_name=f"image_repair_{snap}", category="cloud_essd",
                        delete_with_instance=False)
    (disk,) = data_disks(client, iid)
    assert (disk.source_snapshot_id, disk.size, disk.category) == (snap, 40, "cloud_essd")  # Size: the snapshot's
    assert disk.disk_name == f"image_repair_{snap}" and disk.delete_with_instance is False
    assert disk.status == "In_use" and disk.instance_id == iid
    assert re.fullmatch(r"bp1[0-9a-z]{17}", disk.serial_number)
    every = client.describe_disks(m.DescribeDisksRequest(region_id=HZ, instance_id=iid)).body.disks.disk
    serials = [d.serial_number for d in every]
    assert len(set(serials)) == 2 and all(re.fullmatch(r"bp1[0-9a-z]{17}", s) for s in serials)
    assert serials == [d.serial_number for d in client.describe_disks(
        m.DescribeDisksRequest(region_id=HZ, instance_id=iid)).body.disks.disk]  # stable
    snaps = client.describe_snapshots(m.DescribeSnapshotsRequest(region_id=HZ, snapshot_ids=f'["{snap}"]')).body
    assert snaps.snapshots.snapshot[0].usage == "image_disk"
    bigger = run_with_disk(client, snap, size=100)
    assert data_disks(client, bigger)[0].size == 100
    # DeleteWithInstance=false: the disk stays, detached, when the instance goes
    frozen.admin.advance(RUNNING_S)
    client.delete_instance(m.DeleteInstanceRequest(instance_id=iid, force=True))
    left = client.describe_disks(m.DescribeDisksRequest(region_id=HZ, disk_ids=f'["{disk.disk_id}"]')).body.disks.disk
    assert (left[0].status, left[0].instance_id, left[0].source_snapshot_id) == ("Available", "", snap)
    sh = fleet(frozen, instances=[{"region": "cn-shanghai", "data_disks": [{"size": 50}]}])["instances"][0]
    assert re.fullmatch(r"uf6[0-9a-z]{17}", data_disks(ecs_client("cn-shanghai"), sh, "cn-shanghai")[0].serial_number)


def test_data_disk_snapshot_errors(frozen, ecs_client):
    (img_id,) = fleet(frozen, images=[{"region": HZ, "size": 40}])["images"]
    (iid,) = fleet(frozen, instances=[{"region": HZ}])["instances"]
    client = ecs_client()
    snap = image(client, img_id).disk_device_mappings.disk_device_mapping[0].snapshot_id
    assert api_error(run_with_disk, client, "s-doesnotexist") == ("InvalidDataDiskSnapshotId.NotFound", 404)
    assert api_error(run_with_disk, client, snap, region="cn-shanghai", image_id=BASE) == \
        ("InvalidDataDiskSnapshotId.NotFound", 404)  # a snapshot of another region
    assert api_error(run_with_disk, client, snap, size=30) == ("InvalidDiskSize.TooSmall", 403)
    assert api_error(run_with_disk, client, snap, size=40000) == ("InvalidDataDiskSize.ValueNotSupported", 400)
    assert api_error(run_with_disk, client, snap, category="floppy") == \
        ("InvalidDataDiskCategory.ValueNotSupported", 400)
    assert api_error(run_with_disk, client, snap, disk_name="1-starts-with-a-digit") == \
        ("InvalidDiskName.Malformed", 400)
    assert api_error(run_with_disk, client, None, category="cloud_essd") == ("MissingParameter.DataDisk.1.Size", 400)
    system = client.describe_disks(m.DescribeDisksRequest(region_id=HZ, instance_id=iid)).body.disks.disk[0]
    pending = client.create_snapshot(m.CreateSnapshotRequest(disk_id=system.disk_id)).body.snapshot_id
    assert api_error(run_with_disk, client, pending) == ("InvalidSnapshotId.NotReady", 403)
    assert client.describe_instances(m.DescribeInstancesRequest(region_id=HZ)).body.total_count == 1  # none made


# -- CreateImage from snapshots, with the OS fields and a check ---------------------------------------------------
def test_create_image_from_a_snapshot_with_os_fields_and_detection(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": HZ, "data_disks": [{"size": 40}]}])["instances"]
    client = ecs_client()
    (disk,) = data_disks(client, iid)
    img_id = snapshot_and_image(frozen, client, disk.disk_id, image_name="from-data", detection_strategy="Standard",
                                platform="Ubuntu", boot_mode="UEFI", architecture="arm64")
    img = image(client, img_id)
    assert img.status == "Creating" and img.detection_options.status == "Processing"
    assert (img.platform, img.architecture, img.boot_mode, img.osname) == ("Ubuntu", "arm64", "UEFI", "Ubuntu 64位")
    frozen.admin.advance(IMAGE_S)
    img = image(client, img_id)
    assert img.status == "Available" and img.detection_options.status == "Processing"  # checked after Available
    assert img.detection_options.items.item == []
    frozen.admin.advance(120)
    img = image(client, img_id)
    assert img.detection_options.status == "Finished" and checks(img)["SystemImage"].value == "Supported"
    # a data disk snapshot with no Platform/Architecture: CreateImage's defaults; no DetectionStrategy: no check
    plain = image(client, snapshot_and_image(frozen, client, disk.disk_id, image_name="defaults"))
    assert (plain.platform, plain.architecture, plain.boot_mode) == ("Others Linux", "x86_64", "BIOS")
    assert plain.detection_options.status == ""


def test_create_image_from_disk_device_mappings(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": HZ, "data_disks": [{"size": 60}]}])["instances"]
    client = ecs_client()
    every = client.describe_disks(m.DescribeDisksRequest(region_id=HZ, instance_id=iid)).body.disks.disk
    sys_snap, data_snap = (client.create_snapshot(m.CreateSnapshotRequest(disk_id=d.disk_id)).body.snapshot_id
                           for d in every)
    frozen.admin.advance(60 + 2 * 60)
    mapping = m.CreateImageRequestDiskDeviceMapping
    img_id = client.create_image(m.CreateImageRequest(region_id=HZ, image_name="two-disks", disk_device_mapping=[
        mapping(snapshot_id=sys_snap, disk_type="system"), mapping(snapshot_id=data_snap, disk_type="data")]))
    img = image(client, img_id.body.image_id)
    assert [(d.snapshot_id, d.type, d.size) for d in img.disk_device_mappings.disk_device_mapping] == \
        [(sys_snap, "system", "40"), (data_snap, "data", "60")]
    assert img.platform == "Aliyun"  # a system disk snapshot keeps its instance's OS
    bad = [("detection_strategy", "Deep", "InvalidParameter.DetectionStrategy"),
           ("architecture", "sparc", "InvalidParameter.Architecture"),
           ("boot_mode", "Legacy", "InvalidParameter.BootMode"), ("platform", "Plan9", "InvalidParameter.Platform")]
    for field, value, code in bad:
        assert api_error(client.create_image, m.CreateImageRequest(region_id=HZ, snapshot_id=sys_snap,
                                                                   **{field: value})) == (code, 400)
    assert api_error(client.create_image, m.CreateImageRequest(region_id=HZ, disk_device_mapping=[
        mapping(snapshot_id=data_snap, disk_type="data")])) == ("InvalidParameter.DiskDeviceMapping", 400)
    assert api_error(client.create_image, m.CreateImageRequest(region_id=HZ, snapshot_id="s-nope")) == \
        ("InvalidSnapshotId.NotFound", 404)


# -- the repair command ------------------------------------------------------------------------------------------
def test_repair_pipeline_end_to_end(frozen, ecs_client):
    """ACS-ECS-RepairImage's steps: the broken image's system snapshot becomes a data disk of a repair instance,
    the public command repairs it by serial number, and an image of a snapshot of that disk is healthy; the same
    steps without the repair give a broken image."""
    (broken_id,) = fleet(frozen, images=[{"region": HZ, "name": "golden", "broken": True, "platform": "Ubuntu",
                                          "size": 40}])["images"]
    client = ecs_client()
    broken = image(client, broken_id)
    assert checks(broken)["SystemImage"].risk_level == "High" and checks(broken)["SystemImage"].value != "Invalid"
    snap = broken.disk_device_mappings.disk_device_mapping[0].snapshot_id
    repaired_on = run_with_disk(client, snap, disk_name=f"image_repair_{snap}")
    untouched_on = run_with_disk(client, snap)
    frozen.admin.advance(RUNNING_S)
    # RunCommand (selinux), then RebootInstance, as the template does before the repair
    client.run_command(m.RunCommandRequest(region_id=HZ, type="RunShellScript", instance_id=[repaired_on],
                                           command_content="sed -i s/^SELINUX=.*/SELINUX=permissive/g /etc/selinux/config"))
    frozen.admin.advance(10)
    client.reboot_instance(m.RebootInstanceRequest(instance_id=repaired_on))
    frozen.admin.advance(60)
    (disk,) = data_disks(client, repaired_on)
    invoke_id = invoke_repair(client, repaired_on, disk.serial_number)
    frozen.admin.advance(1 + 20 + 5 * 8)
    r = result(client, invoke_id)
    assert (r.invocation_status, r.exit_code, r.error_code) == ("Success", 0, "")
    assert f"disk serial {disk.serial_number} is /dev/vdb" in r.output
    assert re.search(r"^\[fstab\]\s+FIXED", r.output, re.M) and re.search(r"^\[grub\]\s+FIXED", r.output, re.M)
    assert re.search(r"^\[virtio\]\s+OK", r.output, re.M) and "done: 2 fixed, 6 ok, 0 failed" in r.output
    healthy_id = snapshot_and_image(frozen, client, disk.disk_id, image_name="repaired_golden",
                                    detection_strategy="Standard", platform="Ubuntu", boot_mode="BIOS",
                                    architecture="x86_64")
    still_id = snapshot_and_image(frozen, client, data_disks(client, untouched_on)[0].disk_id,
                                  image_name="unrepaired_golden", detection_strategy="Standard")
    frozen.admin.advance(IMAGE_S + 120)
    healthy, still = image(client, healthy_id), image(client, still_id)
    assert healthy.status == "Available" and healthy.detection_options.status == "Finished"
    assert not any(i.risk_level for i in checks(healthy).values())
    assert (healthy.platform, healthy.osname) == ("Ubuntu", "Ubuntu 64位")
    assert checks(still)["SystemImage"].risk_level == "High" and checks(still)["Fstab"].risk_level == "High"


def test_repair_only_fixes_the_items_asked(frozen, ecs_client):
    (img_id,) = fleet(frozen, images=[{"region": HZ, "broken": ["fstab", "nvme"]}])["images"]
    client = ecs_client()
    snap = image(client, img_id).disk_device_mappings.disk_device_mapping[0].snapshot_id
    iid = run_with_disk(client, snap)
    frozen.admin.advance(RUNNING_S)
    (disk,) = data_disks(client, iid)
    r_id = invoke_repair(client, iid, disk.serial_number, items="fstab")
    frozen.admin.advance(1 + 25)
    r = result(client, r_id)
    assert r.exit_code == 0 and "still failing: nvme" in r.output
    img = image(client, snapshot_and_image(frozen, client, disk.disk_id, detection_strategy="Standard"))
    frozen.admin.advance(IMAGE_S + 120)
    c = checks(image(client, img.image_id))
    assert c["Fstab"].risk_level is None and c["Nvme"].risk_level == "High"
    r_id = invoke_repair(client, iid, disk.serial_number, items="all")
    frozen.admin.advance(1 + 20 + 5 * 10)
    assert result(client, r_id).exit_code == 0
    img = image(client, snapshot_and_image(frozen, client, disk.disk_id, detection_strategy="Standard"))
    frozen.admin.advance(IMAGE_S + 120)
    assert not any(i.risk_level for i in checks(image(client, img.image_id)).values())


def test_repair_refusals_change_nothing(frozen, ecs_client):
    broken_id, junk_id = fleet(frozen, images=[{"region": HZ, "broken": True},
                                               {"region": HZ, "invalid": True}])["images"]
    client = ecs_client()
    snaps = [image(client, i).disk_device_mappings.disk_device_mapping[0].snapshot_id for i in (broken_id, junk_id)]
    iid, junk_iid = (run_with_disk(client, s) for s in snaps)
    frozen.admin.advance(RUNNING_S)
    every = client.describe_disks(m.DescribeDisksRequest(region_id=HZ, instance_id=iid)).body.disks.disk
    system, data = every[0], every[1]
    cases = {
        "bp1nosuchdisk00000000": (1, "is not attached to this instance"),
        system.serial_number: (1, "is this instance's system disk"),
    }
    for serial, (code, text) in cases.items():
        r_id = invoke_repair(client, iid, serial)
        frozen.admin.advance(70)
        r = result(client, r_id)
        assert (r.invocation_status, r.exit_code, r.error_code) == ("Failed", code, "ExitCodeNonzero")
        assert text in r.output and data.serial_number in r.output  # it lists the disks it sees
    r_id = invoke_repair(client, iid, data.serial_number, items="fstab teeth")
    frozen.admin.advance(70)
    r = result(client, r_id)
    assert r.exit_code == 2 and "unsupported repair item(s): teeth" in r.output
    (junk_disk,) = data_disks(client, junk_iid)
    r_id = invoke_repair(client, junk_iid, junk_disk.serial_number)
    frozen.admin.advance(70)
    r = result(client, r_id)
    assert r.exit_code == 3 and "no Linux root partition" in r.output
    img = image(client, snapshot_and_image(frozen, client, data.disk_id, detection_strategy="Standard"))
    frozen.admin.advance(IMAGE_S + 120)
    assert checks(image(client, img.image_id))["SystemImage"].value == "Unbootable"  # still broken


def test_repair_command_parameters(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": HZ, "data_disks": [{"size": 40}]}])["instances"]
    client = ecs_client()
    (disk,) = data_disks(client, iid)
    # repairitems is optional (the template's eight items), disk_serial is not
    invoke_id = client.invoke_command(m.InvokeCommandRequest(
        region_id=HZ, command_id=REPAIR, instance_id=[iid], parameters={"disk_serial": disk.serial_number})).body
    frozen.admin.advance(1 + 20 + 5 * 8)
    r = result(client, invoke_id.invoke_id)
    assert r.exit_code == 0 and f"items: {DEFAULT_ITEMS}" in r.output
    assert api_error(client.invoke_command, m.InvokeCommandRequest(
        region_id=HZ, command_id=REPAIR, instance_id=[iid], parameters={"repairitems": "all"})) == \
        ("Parameter.MissingValue", 400)
    assert api_error(client.invoke_command, m.InvokeCommandRequest(
        region_id=HZ, command_id=REPAIR, instance_id=[iid], parameters={"disk_serial": "x", "color": "red"})) == \
        ("Parameter.NotMatched", 403)
    assert api_error(client.invoke_command, m.InvokeCommandRequest(
        region_id=HZ, command_id="ACS-ECS-NoSuchCommand-for-linux.sh", instance_id=[iid])) == \
        ("InvalidCmdId.NotFound", 404)
    inv = client.describe_invocations(m.DescribeInvocationsRequest(region_id=HZ, invoke_id=invoke_id.invoke_id,
                                                                   content_encoding="PlainText")).body
    inv = inv.invocations.invocation[0]
    assert inv.command_id == REPAIR and inv.command_name == REPAIR
    assert "DISK_SERIAL={{disk_serial}}" in inv.command_content  # the command's content; the run got the value
    assert json.loads(inv.parameters) == {"repairitems": DEFAULT_ITEMS, "disk_serial": disk.serial_number}


def test_rules_override_the_repair_field_by_field(frozen, ecs_client):
    (img_id,) = fleet(frozen, images=[{"region": HZ, "broken": True}])["images"]
    client = ecs_client()
    snap = image(client, img_id).disk_device_mappings.disk_device_mapping[0].snapshot_id
    slow, failing = run_with_disk(client, snap), run_with_disk(client, snap)
    frozen.admin.advance(RUNNING_S)
    frozen.admin.request("POST", "command-behaviour", {"rules": [
        {"match": "ImageRepair", "instance_ids": [failing], "exit_code": 1, "output": "mount: wrong fs type",
         "count": 1},
        {"match": "ImageRepair", "instance_ids": [slow], "duration": 600}]})
    serial = {i: data_disks(client, i)[0].serial_number for i in (slow, failing)}
    ids = {i: invoke_repair(client, i, serial[i]) for i in (slow, failing)}
    frozen.admin.advance(100)
    r = result(client, ids[failing])
    assert (r.invocation_status, r.exit_code, r.output) == ("Failed", 1, "mount: wrong fs type")
    assert result(client, ids[slow]).invocation_status == "Running"
    frozen.admin.advance(510)
    r = result(client, ids[slow])
    assert r.invocation_status == "Success" and "done: 2 fixed" in r.output  # the simulation's output, later
    again = invoke_repair(client, failing, serial[failing])  # the counted rule is spent: the simulation decides
    frozen.admin.advance(70)
    assert result(client, again).exit_code == 0
    for iid in (slow, failing):
        img = image(client, snapshot_and_image(frozen, client, data_disks(client, iid)[0].disk_id,
                                               detection_strategy="Standard"))
        frozen.admin.advance(IMAGE_S + 120)
        assert checks(image(client, img.image_id))["SystemImage"].value == "Supported"


def test_an_instance_of_a_broken_image_never_gets_its_agent_up(frozen, ecs_client):
    (img_id,) = fleet(frozen, images=[{"region": HZ, "broken": True}])["images"]
    (iid,) = fleet(frozen, instances=[{"region": HZ, "image_id": img_id}])["instances"]
    client = ecs_client()
    body = client.describe_cloud_assistant_status(m.DescribeCloudAssistantStatusRequest(
        region_id=HZ, instance_id=[iid])).body
    assert body.instance_cloud_assistant_status_set.instance_cloud_assistant_status[0].cloud_assistant_status == \
        "false"
    invoke_id = client.run_command(m.RunCommandRequest(region_id=HZ, type="RunShellScript", instance_id=[iid],
                                                       command_content="uptime")).body.invoke_id
    frozen.admin.advance(2)
    assert result(client, invoke_id).error_code == "ClientNotRunning"
