"""ECS custom images through the official SDK: CreateImage, DescribeImages, CopyImage (queueing),
CancelCopyImage, DeleteImage rules, share permissions, quotas, faults."""

from __future__ import annotations

import json

import pytest
from alibabacloud_ecs20140526 import models as m

from .helpers import api_error, fleet

ALL_STATUSES = "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated"








def images(client, region="cn-hangzhou", **kw):
    kw.setdefault("status", ALL_STATUSES)
    return client.describe_images(m.DescribeImagesRequest(region_id=region, **kw)).body


def image(client, image_id, region="cn-hangzhou"):
    (img,) = images(client, region, image_id=image_id).images.image
    return img


def create(client, instance_id, name=None, region="cn-hangzhou", **kw):
    return client.create_image(m.CreateImageRequest(region_id=region, instance_id=instance_id, image_name=name,
                                                    **kw)).body.image_id


def copy(client, image_id, dest="cn-beijing", region="cn-hangzhou", **kw):
    return client.copy_image(m.CopyImageRequest(region_id=region, image_id=image_id, destination_region_id=dest,
                                                **kw)).body.image_id


# -- CreateImage -----------------------------------------------------------------------------
def test_create_image_snapshots_progress_and_completion(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": "cn-hangzhou", "data_disks": [{"size": 100}]}])["instances"]
    client = ecs_client()
    tag = m.CreateImageRequestTag
    image_id = create(client, iid, "backup-web-20240101", description="nightly",
                      tag=[tag(key="managed-by", value="aliyun-ops"), tag(key="source-instance", value=iid)])
    img = image(client, image_id)
    assert (img.status, img.progress) == ("Creating", "0%")
    assert img.image_owner_alias == "self" and img.is_copied is False and img.size == 40
    assert {(t.tag_key, t.tag_value) for t in img.tags.tag} == {("managed-by", "aliyun-ops"), ("source-instance", iid)}
    mappings = img.disk_device_mappings.disk_device_mapping
    assert sorted((d.type, d.size, d.snapshot_id) for d in mappings) == [("data", "100", ""), ("system", "40", "")]
    frozen.admin.advance(21)  # past the snapshot point: the snapshots exist
    mappings = image(client, image_id).disk_device_mappings.disk_device_mapping
    snaps = client.describe_snapshots(m.DescribeSnapshotsRequest(
        region_id="cn-hangzhou", snapshot_ids=json.dumps([d.snapshot_id for d in mappings]))).body
    assert snaps.total_count == 2
    assert {(s.usage, s.status) for s in snaps.snapshots.snapshot} == {("image", "progressing")}
    # not listed by default: DescribeImages returns Available only unless Status is given
    assert images(client, status=None, image_owner_alias="self").total_count == 0
    duration = 120 + 15 * 140  # 2220 s
    frozen.admin.advance(duration * 0.35 - 21)
    first = int(image(client, image_id).progress.rstrip("%"))
    frozen.admin.advance(duration * 0.3)
    second = int(image(client, image_id).progress.rstrip("%"))
    assert 30 <= first < second < 100
    frozen.admin.advance(duration * 0.35 + 1)
    img = image(client, image_id)
    assert (img.status, img.progress) == ("Available", "100%")
    assert images(client, status=None, image_owner_alias="self").images.image[0].image_id == image_id
    snaps = client.describe_snapshots(m.DescribeSnapshotsRequest(region_id="cn-hangzhou", usage="image")).body
    assert {s.status for s in snaps.snapshots.snapshot} == {"accomplished"}


def snapshot_ids(client, image_id, region="cn-hangzhou"):
    return [d.snapshot_id for d in image(client, image_id, region).disk_device_mappings.disk_device_mapping]


def image_snapshots(client, region="cn-hangzhou"):
    body = client.describe_snapshots(m.DescribeSnapshotsRequest(region_id=region, usage="image")).body
    return {s.snapshot_id: s.status for s in body.snapshots.snapshot}


def test_create_image_snapshot_point_comes_before_available(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": "cn-hangzhou", "data_disks": [{"size": 60}]}])["instances"]
    client = ecs_client()
    image_id = create(client, iid, "point-in-time")
    assert snapshot_ids(client, image_id) == ["", ""]  # nothing captured yet
    assert image_snapshots(client) == {}
    frozen.admin.advance(19)
    assert snapshot_ids(client, image_id) == ["", ""]
    frozen.admin.advance(2)  # 21 s: the point in time is taken, the image is still being built
    taken = snapshot_ids(client, image_id)
    assert all(taken) and len(set(taken)) == 2
    assert image(client, image_id).status == "Creating"
    assert image_snapshots(client) == dict.fromkeys(taken, "progressing")
    frozen.admin.advance(120 + 15 * 100)
    assert image(client, image_id).status == "Available"
    assert snapshot_ids(client, image_id) == taken  # ids are stable
    assert image_snapshots(client) == dict.fromkeys(taken, "accomplished")


def test_snapshot_point_scales_with_slow_regions(frozen, ecs_client):
    frozen.admin.set_faults({"slow_regions": {"cn-shanghai": 3.0}})
    (iid,) = fleet(frozen, instances=[{"region": "cn-shanghai"}])["instances"]
    client = ecs_client("cn-shanghai")
    image_id = create(client, iid, "slow-point", region="cn-shanghai")
    frozen.admin.advance(59)
    assert snapshot_ids(client, image_id, "cn-shanghai") == [""]
    frozen.admin.advance(2)
    assert all(snapshot_ids(client, image_id, "cn-shanghai"))


def test_snapshot_point_stays_inside_a_short_image(frozen, ecs_client):
    frozen.admin.request("POST", "timings", {"image_create_base": 10, "image_create_per_gib": 0})
    (iid,) = fleet(frozen, instances=[{"region": "cn-hangzhou"}])["instances"]
    client = ecs_client()
    image_id = create(client, iid, "short")
    frozen.admin.advance(5)  # capped at half the image's 10 s
    assert image(client, image_id).status == "Creating" and all(snapshot_ids(client, image_id))


@pytest.mark.parametrize(("start_after", "torn"), [(5, True), (25, False), (None, False)])
def test_image_of_a_stopped_instance_started_before_the_point_is_torn(frozen, ecs_client, start_after, torn):
    (iid,) = fleet(frozen, instances=[{"region": "cn-hangzhou", "status": "Stopped"}])["instances"]
    client = ecs_client()
    image_id = create(client, iid, "maybe-torn")
    if start_after is not None:
        frozen.admin.advance(start_after)
        client.start_instance(m.StartInstanceRequest(instance_id=iid))
    frozen.admin.advance(120 + 15 * 40)
    assert image(client, image_id).status == "Available"
    assert frozen.admin.table("ecs.images")[image_id]["_torn"] is torn


def test_image_of_a_running_instance_is_not_torn(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": "cn-hangzhou", "status": "Running"}])["instances"]
    client = ecs_client()
    image_id = create(client, iid, "running-source")
    client.stop_instance(m.StopInstanceRequest(instance_id=iid, force_stop=True))
    frozen.admin.advance(11)
    client.start_instance(m.StartInstanceRequest(instance_id=iid))  # before the point, but it was Running
    frozen.admin.advance(120 + 15 * 40)
    assert frozen.admin.table("ecs.images")[image_id]["_torn"] is False


def test_failed_image_before_and_after_the_point(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": "cn-hangzhou"}])["instances"]
    frozen.admin.set_faults({"image_create_fail": {"instance_ids": [iid]}})
    client = ecs_client()
    image_id = create(client, iid, "doomed")
    frozen.admin.advance(21)
    assert len(image_snapshots(client)) == 1
    frozen.admin.advance(120 + 15 * 40)
    assert image(client, image_id).status == "CreateFailed"
    assert image_snapshots(client) == {} and snapshot_ids(client, image_id) == []


def test_create_image_needs_running_or_stopped(frozen, ecs_client):
    client = ecs_client()
    ids = client.run_instances(m.RunInstancesRequest(
        region_id="cn-hangzhou", image_id="aliyun_3_x64_20G_alibase_20250629.vhd",
        instance_type="ecs.g7.large")).body.instance_id_sets.instance_id_set
    assert api_error(create, client, ids[0], "img-pending") == ("IncorrectInstanceStatus", 400)  # Pending
    frozen.admin.advance(15)
    assert api_error(create, client, ids[0], "img-starting") == ("IncorrectInstanceStatus", 400)  # Starting
    frozen.admin.advance(40)
    assert create(client, ids[0], "img-running").startswith("m-")
    stopped = fleet(frozen, instances=[{"region": "cn-hangzhou", "status": "Stopped"}])["instances"][0]
    assert create(client, stopped, "img-stopped").startswith("m-")


def test_create_image_from_snapshot(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": "cn-hangzhou"}])["instances"]
    client = ecs_client()
    disk = client.describe_disks(m.DescribeDisksRequest(region_id="cn-hangzhou", instance_id=iid)).body.disks.disk[0]
    snap = client.create_snapshot(m.CreateSnapshotRequest(disk_id=disk.disk_id)).body.snapshot_id
    code, _ = api_error(client.create_image, m.CreateImageRequest(region_id="cn-hangzhou", snapshot_id=snap))
    assert code == "InvalidSnapshotId.NotReady"
    frozen.admin.advance(60 + 2 * 40)
    image_id = client.create_image(m.CreateImageRequest(region_id="cn-hangzhou", snapshot_id=snap,
                                                        image_name="from-snap")).body.image_id
    frozen.admin.advance(120 + 15 * 40)
    img = image(client, image_id)
    assert img.status == "Available"
    assert [d.snapshot_id for d in img.disk_device_mappings.disk_device_mapping] == [snap]


def test_create_image_fault_create_failed(frozen, ecs_client):
    ok, bad = fleet(frozen, instances=[{"region": "cn-hangzhou"}, {"region": "cn-hangzhou"}])["instances"]
    frozen.admin.set_faults({"image_create_fail": {"instance_ids": [bad]}})
    client = ecs_client()
    good_id, bad_id = create(client, ok, "good"), create(client, bad, "bad")
    frozen.admin.advance(120 + 15 * 40)
    assert image(client, good_id).status == "Available"
    failed = image(client, bad_id)
    assert failed.status == "CreateFailed"
    snaps = client.describe_snapshots(m.DescribeSnapshotsRequest(region_id="cn-hangzhou", instance_id=bad)).body
    assert snaps.total_count == 0  # the failed image's snapshots are released


def test_create_image_fault_rate(frozen, ecs_client):
    ids = fleet(frozen, instances=[{"region": "cn-hangzhou", "count": 3}])["instances"]
    frozen.admin.set_faults({"seed": 1, "image_create_fail": {"rate": 1.0}})
    client = ecs_client()
    made = [create(client, i, f"r-{n}") for n, i in enumerate(ids)]
    frozen.admin.advance(1000)
    assert {image(client, i).status for i in made} == {"CreateFailed"}


def test_create_image_client_token(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": "cn-hangzhou"}])["instances"]
    client = ecs_client()
    first = create(client, iid, "tok-image", client_token="run-1-item-1")
    again = create(client, iid, "tok-image", client_token="run-1-item-1")
    assert first == again
    assert images(client, image_owner_alias="self").total_count == 1
    assert api_error(create, client, iid, "other-name", client_token="run-1-item-1") == \
        ("IdempotenceParamNotMatch", 400)


@pytest.mark.parametrize("name", ["a", "1backup", "http://x.example", "https://x", "aliyun-img", "acs:img",
                                  "x" * 129, "bad name!"])
def test_create_image_name_rules(emulator, ecs_client, name):
    (iid,) = fleet(emulator, instances=[{"region": "cn-hangzhou"}])["instances"]
    assert api_error(create, ecs_client(), iid, name) == ("InvalidImageName.Malformed", 400)


def test_create_image_duplicate_name_and_missing_params(emulator, ecs_client):
    (iid,) = fleet(emulator, instances=[{"region": "cn-hangzhou"}])["instances"]
    client = ecs_client()
    create(client, iid, "dup-name")
    assert api_error(create, client, iid, "dup-name") == ("InvalidImageName.Duplicated", 400)
    assert api_error(client.create_image, m.CreateImageRequest(region_id="cn-hangzhou")) == ("MissingParameter", 400)
    assert api_error(create, client, "i-unknown", "x-name") == ("InvalidInstanceId.NotFound", 404)
    assert api_error(create, client, iid, "other-region", region="cn-shanghai") == ("InvalidInstanceId.NotFound", 404)
    tag = m.CreateImageRequestTag
    assert api_error(create, client, iid, "tagged", tag=[tag(key="aliyun:x", value="1")]) == \
        ("InvalidTagKey.Malformed", 400)
    assert api_error(create, client, iid, "tagged", tag=[tag(key=f"k{n}", value="v") for n in range(21)]) == \
        ("NumberExceed.Tags", 400)


def test_custom_image_quota_default_and_configured(emulator, ecs_client):
    fleet(emulator, images=[{"region": "cn-hangzhou", "name": "old-{n}", "count": 100}])
    (iid,) = fleet(emulator, instances=[{"region": "cn-hangzhou"}])["instances"]
    client = ecs_client()
    assert api_error(create, client, iid, "one-too-many") == ("QuotaExceed.Image", 403)
    emulator.admin.set_faults({"image_quota": {"cn-hangzhou": 101}})
    create(client, iid, "now-fits")
    assert api_error(create, client, iid, "again-too-many") == ("QuotaExceed.Image", 403)
    (other,) = fleet(emulator, instances=[{"region": "cn-shanghai"}])["instances"]
    create(client, other, "other-region", region="cn-shanghai")


# -- DescribeImages --------------------------------------------------------------------------
def test_describe_images_filters_and_pagination(emulator, ecs_client):
    ids = fleet(emulator, images=[
        {"region": "cn-hangzhou", "name": "nightly-{n}", "count": 23, "tags": {"managed-by": "aliyun-ops"},
         "creation_time": "2024-01-10T00:00:00Z"},
        {"region": "cn-hangzhou", "name": "old", "creation_time": "2023-01-01T00:00:00Z", "tags": {"team": "x"}},
        {"region": "cn-hangzhou", "name": "broken", "status": "CreateFailed"},
    ])["images"]
    client = ecs_client()
    body = client.describe_images(m.DescribeImagesRequest(region_id="cn-hangzhou")).body
    assert body.total_count == 24 + 3  # Available only: 24 custom + 3 public
    assert (body.page_number, body.page_size, len(body.images.image)) == (1, 10, 10)
    assert body.region_id == "cn-hangzhou"
    system = images(client, image_owner_alias="system", status=None)
    assert system.total_count == 3 and {i.image_owner_alias for i in system.images.image} == {"system"}
    assert images(client, image_owner_alias="self").total_count == 25
    assert images(client, image_owner_alias="self", status="CreateFailed").images.image[0].image_name == "broken"
    tag = m.DescribeImagesRequestTag
    assert images(client, tag=[tag(key="managed-by", value="aliyun-ops")]).total_count == 23
    assert images(client, tag=[tag(key="team")]).images.image[0].image_name == "old"
    seen = []
    for page in (1, 2, 3):
        body = images(client, image_owner_alias="self", page_number=page, page_size=10)
        seen += [i.image_id for i in body.images.image]
    assert len(seen) == len(set(seen)) == 25
    assert len(images(client, image_owner_alias="self", page_size=100).images.image) == 25
    assert api_error(images, client, page_size=101) == ("InvalidParameter.PageSize", 400)
    some = ",".join(ids[:3])
    assert {i.image_id for i in images(client, image_id=some).images.image} == set(ids[:3])
    assert images(client, image_name="nightly-1").total_count >= 1
    assert images(client, image_name="nightly-*").total_count == 23
    newest_first = images(client, image_owner_alias="self", status="Available", page_size=100).images.image
    assert newest_first[-1].image_name == "old"
    f = m.DescribeImagesRequestFilter
    older = images(client, image_owner_alias="self", filter=[f(key="CreationEndTime", value="2023-06-01T00:00Z")])
    assert [i.image_name for i in older.images.image] == ["old"]
    assert api_error(images, client, image_owner_alias="nobody") == ("InvalidImageOwnerAlias.ValueNotSupported", 400)
    assert api_error(images, client, status="Sleeping") == ("InvalidStatus.ValueNotSupported", 400)
    assert api_error(images, client, region="mars-1") == ("InvalidRegionId.NotFound", 404)


def test_describe_images_usage_and_snapshot_filter(emulator, ecs_client):
    (img_id,) = fleet(emulator, images=[{"region": "cn-hangzhou", "name": "golden"}])["images"]
    client = ecs_client()
    assert images(client, image_id=img_id).images.image[0].usage == "none"
    fleet(emulator, instances=[{"region": "cn-hangzhou", "image_id": img_id}])
    img = images(client, image_id=img_id).images.image[0]
    assert img.usage == "instance"
    assert images(client, usage="instance", image_owner_alias="self").total_count == 1
    snap = img.disk_device_mappings.disk_device_mapping[0].snapshot_id
    assert [i.image_id for i in images(client, snapshot_id=snap).images.image] == [img_id]


# -- CopyImage -------------------------------------------------------------------------------
def test_copy_image_queue_at_most_five_per_destination(frozen, ecs_client):
    (src,) = fleet(frozen, images=[{"region": "cn-hangzhou", "name": "golden", "size": 20}])["images"]
    client = ecs_client()
    tag = m.CopyImageRequestTag
    copies = [copy(client, src, destination_image_name=f"golden-dr-{n}", destination_description="dr copy",
                   tag=[tag(key="copy-of", value=src)]) for n in range(7)]
    dest = ecs_client("cn-beijing")
    statuses = [image(dest, c, "cn-beijing").status for c in copies]
    assert statuses.count("Creating") == 5 and statuses.count("Waiting") == 2
    assert statuses[5:] == ["Waiting", "Waiting"]  # first come, first served
    img = image(dest, copies[0], "cn-beijing")
    assert img.is_copied is True and img.image_name == "golden-dr-0" and img.description == "dr copy"
    assert [(t.tag_key, t.tag_value) for t in img.tags.tag] == [("copy-of", src)]
    duration = 300 + 20 * 20  # 700 s
    frozen.admin.advance(duration)
    statuses = [image(dest, c, "cn-beijing").status for c in copies]
    assert statuses == ["Available"] * 5 + ["Creating"] * 2
    assert image(dest, copies[5], "cn-beijing").progress == "0%"  # started exactly when a slot freed
    frozen.admin.advance(duration / 2)
    assert image(dest, copies[5], "cn-beijing").progress == "50%"
    frozen.admin.advance(duration / 2)
    assert {image(dest, c, "cn-beijing").status for c in copies} == {"Available"}
    source_snaps = {d.snapshot_id for d in image(client, src).disk_device_mappings.disk_device_mapping}
    for c in copies:
        snap_ids = [d.snapshot_id for d in image(dest, c, "cn-beijing").disk_device_mappings.disk_device_mapping]
        assert snap_ids and not set(snap_ids) & source_snaps
        body = dest.describe_snapshots(m.DescribeSnapshotsRequest(region_id="cn-beijing",
                                                                  snapshot_ids=json.dumps(snap_ids))).body
        assert body.total_count == len(snap_ids)
        assert {(s.status, s.usage, s.source_region_id) for s in body.snapshots.snapshot} == \
            {("accomplished", "image", "cn-hangzhou")}
    # another destination region has its own five slots
    other = [copy(client, src, "cn-shanghai") for _ in range(5)]
    assert {image(ecs_client("cn-shanghai"), c, "cn-shanghai").status for c in other} == {"Creating"}


def test_copy_image_rules(frozen, ecs_client):
    (src,) = fleet(frozen, images=[{"region": "cn-hangzhou", "name": "golden"}])["images"]
    (iid,) = fleet(frozen, instances=[{"region": "cn-hangzhou"}])["instances"]
    client = ecs_client()
    creating = create(client, iid, "still-creating")
    assert api_error(copy, client, creating) == ("IncorrectImageStatus", 400)
    assert api_error(copy, client, "m-unknown") == ("InvalidImageId.NotFound", 404)
    assert api_error(copy, client, "aliyun_3_x64_20G_alibase_20250629.vhd")[1] in (403, 404)
    assert api_error(copy, client, src, "mars-1") == ("DestinationRegion.NotFound", 400)
    assert api_error(client.copy_image, m.CopyImageRequest(region_id="cn-hangzhou", image_id=src)) == \
        ("MissingParameter.DestinationRegionId", 400)
    assert api_error(copy, client, src, destination_image_name="9lives") == ("InvalidImageName.Malformed", 400)
    assert api_error(copy, client, src, kmskey_id="key-1") == ("InvalidParameter.EncryptedIllegal", 400)
    tag = m.CopyImageRequestTag
    assert api_error(copy, client, src, tag=[tag(key="acs:owner", value="x")]) == ("InvalidTagKey.Malformed", 400)
    enc = copy(client, src, encrypted=True, kmskey_id="key-1")
    assert image(ecs_client("cn-beijing"), enc, "cn-beijing").status == "Creating"


def test_copy_image_client_token_and_faults(frozen, ecs_client):
    (src,) = fleet(frozen, images=[{"region": "cn-hangzhou", "name": "golden", "size": 20}])["images"]
    client = ecs_client()
    first = copy(client, src, client_token="copy-run1-golden")
    assert copy(client, src, client_token="copy-run1-golden") == first
    frozen.admin.set_faults({"copy_fail": {"regions": ["cn-shenzhen"]}, "slow_regions": {"cn-shanghai": 3.0}})
    failing = copy(client, src, "cn-shenzhen")
    slow = copy(client, src, "cn-shanghai")
    frozen.admin.advance(700)
    assert image(ecs_client("cn-shenzhen"), failing, "cn-shenzhen").status == "CreateFailed"
    assert image(ecs_client("cn-beijing"), first, "cn-beijing").status == "Available"
    assert image(ecs_client("cn-shanghai"), slow, "cn-shanghai").status == "Creating"
    frozen.admin.advance(1400)
    assert image(ecs_client("cn-shanghai"), slow, "cn-shanghai").status == "Available"


def test_cancel_copy_image(frozen, ecs_client):
    (src,) = fleet(frozen, images=[{"region": "cn-hangzhou", "name": "golden", "size": 20}])["images"]
    client, dest = ecs_client(), ecs_client("cn-beijing")
    copies = [copy(client, src) for _ in range(6)]
    assert image(dest, copies[5], "cn-beijing").status == "Waiting"
    dest.cancel_copy_image(m.CancelCopyImageRequest(region_id="cn-beijing", image_id=copies[0]))
    assert images(dest, "cn-beijing", image_id=copies[0]).total_count == 0
    assert image(dest, copies[5], "cn-beijing").status == "Creating"  # the freed slot is used at once
    dest.cancel_copy_image(m.CancelCopyImageRequest(region_id="cn-beijing", image_id=copies[4]))
    snaps = dest.describe_snapshots(m.DescribeSnapshotsRequest(region_id="cn-beijing")).body
    assert snaps.total_count == 4  # the cancelled copies' snapshots are gone
    frozen.admin.advance(700)
    assert api_error(dest.cancel_copy_image, m.CancelCopyImageRequest(region_id="cn-beijing", image_id=copies[1])) \
        == ("IncorrectImageStatus", 400)
    assert api_error(client.cancel_copy_image, m.CancelCopyImageRequest(region_id="cn-hangzhou", image_id=src)) == \
        ("ImageCreatedNotFromCopy", 400)
    assert api_error(dest.cancel_copy_image, m.CancelCopyImageRequest(region_id="cn-beijing", image_id="m-x")) == \
        ("InvalidImageId.NotFound", 404)


# -- DeleteImage -----------------------------------------------------------------------------
def test_delete_image_rules(frozen, ecs_client):
    used, copied, shared, plain = fleet(frozen, images=[
        {"region": "cn-hangzhou", "name": n} for n in ("used", "copied", "shared", "plain")])["images"]
    (iid,) = fleet(frozen, instances=[{"region": "cn-hangzhou", "image_id": used}])["instances"]
    client = ecs_client()

    def delete(image_id, region="cn-hangzhou", **kw):
        return ecs_client(region).delete_image(m.DeleteImageRequest(region_id=region, image_id=image_id, **kw))

    assert api_error(delete, used) == ("ImageUsingByInstance", 403)
    delete(used, force=True)
    dr = copy(client, copied)
    assert api_error(delete, copied) == ("OperationDenied.ImageCopying", 403)
    assert api_error(delete, dr, "cn-beijing", force=True) == ("OperationDenied.ImageCopying", 403)
    client.modify_image_share_permission(m.ModifyImageSharePermissionRequest(
        region_id="cn-hangzhou", image_id=shared, add_account=["1111222233334444"]))
    assert api_error(delete, shared, force=True) == ("ImageUseShared", 403)
    creating = create(client, iid, "in-progress")
    assert api_error(delete, creating) == ("ImageIsCreating", 403)
    assert api_error(delete, "aliyun_3_x64_20G_alibase_20250629.vhd") == ("InvalidImageId.NotFound", 404)
    assert api_error(delete, "m-nothere") == ("InvalidImageId.NotFound", 404)
    snap = image(client, plain).disk_device_mappings.disk_device_mapping[0].snapshot_id
    delete(plain)
    assert images(client, image_id=plain).total_count == 0
    body = client.describe_snapshots(m.DescribeSnapshotsRequest(region_id="cn-hangzhou",
                                                                snapshot_ids=json.dumps([snap]))).body
    assert body.snapshots.snapshot[0].usage == "none"
    frozen.admin.advance(2000)
    delete(copied)  # the copy finished
    delete(dr, "cn-beijing")


def test_image_share_permission(emulator, ecs_client):
    (img,) = fleet(emulator, images=[{"region": "cn-hangzhou", "name": "share-me"}])["images"]
    client = ecs_client()
    client.modify_image_share_permission(m.ModifyImageSharePermissionRequest(
        region_id="cn-hangzhou", image_id=img, add_account=["1111222233334444", "5555666677778888"]))
    body = client.describe_image_share_permission(m.DescribeImageSharePermissionRequest(
        region_id="cn-hangzhou", image_id=img)).body
    assert body.image_id == img and body.total_count == 2
    assert {a.aliyun_id for a in body.accounts.account} == {"1111222233334444", "5555666677778888"}
    assert images(client, image_id=img).images.image[0].is_self_shared == "True"
    client.modify_image_share_permission(m.ModifyImageSharePermissionRequest(
        region_id="cn-hangzhou", image_id=img, remove_account=["1111222233334444", "5555666677778888"]))
    body = client.describe_image_share_permission(m.DescribeImageSharePermissionRequest(
        region_id="cn-hangzhou", image_id=img)).body
    assert body.total_count == 0
    assert api_error(client.describe_image_share_permission, m.DescribeImageSharePermissionRequest(
        region_id="cn-hangzhou", image_id="m-missing")) == ("InvalidImageId.NotFound", 404)


def test_timings_override_image_duration(frozen, ecs_client):
    frozen.admin.request("POST", "timings", {"image_create_base": 10, "image_create_per_gib": 0})
    (iid,) = fleet(frozen, instances=[{"region": "cn-hangzhou"}])["instances"]
    client = ecs_client()
    image_id = create(client, iid, "quick")
    frozen.admin.advance(10)
    assert image(client, image_id).status == "Available"


# -- DescribeAccountAttributes ---------------------------------------------------------------
def account_attributes(client, region="cn-hangzhou", names=None) -> dict:
    """``{attribute name: (Value, Count)}`` of DescribeAccountAttributes."""
    body = client.describe_account_attributes(m.DescribeAccountAttributesRequest(
        region_id=region, attribute_name=names)).body
    out = {}
    for item in body.account_attribute_items.account_attribute_item:
        (value,) = item.attribute_values.value_item
        out[item.attribute_name] = (value.value, value.count)
    return out


def test_account_attributes_image_quota_default_and_count(emulator, ecs_client):
    client = ecs_client()
    assert account_attributes(client, names=["max-image-count"]) == {"max-image-count": ("100", 0)}
    fleet(emulator, images=[{"region": "cn-hangzhou", "name": "old-{n}", "count": 3},
                            {"region": "cn-hangzhou", "name": "failed", "status": "CreateFailed"},
                            {"region": "cn-shanghai", "name": "elsewhere"}])
    got = account_attributes(client, names=["max-image-count", "used-image-count"])
    assert got == {"max-image-count": ("100", 4), "used-image-count": ("4", 1)}
    assert account_attributes(client, "cn-shanghai", ["max-image-count"]) == {"max-image-count": ("100", 1)}
    (iid,) = fleet(emulator, instances=[{"region": "cn-hangzhou", "instance_type": "ecs.g7.xlarge"}])["instances"]
    every = account_attributes(client)  # no names: every supported attribute
    assert {"max-image-count", "max-security-groups", "max-elastic-network-interfaces",
            "max-postpaid-instance-vcpu-count", "used-postpaid-instance-vcpu-count", "max-axt-command-count",
            "max-axt-invocation-daily", "real-name-authentication"} <= set(every)
    assert every["real-name-authentication"][0] == "yes"
    assert every["used-postpaid-instance-vcpu-count"][0] == "4"
    create(client, iid, "counted")
    assert account_attributes(client, names=["max-image-count"]) == {"max-image-count": ("100", 5)}


def test_account_attributes_image_quota_follows_the_fault(emulator, ecs_client):
    emulator.admin.set_faults({"image_quota": {"cn-hangzhou": 7}})
    client = ecs_client()
    assert account_attributes(client, names=["max-image-count"])["max-image-count"][0] == "7"
    assert account_attributes(client, "cn-shanghai", ["max-image-count"])["max-image-count"][0] == "100"
    fleet(emulator, images=[{"region": "cn-hangzhou", "name": "old-{n}", "count": 7}])
    (iid,) = fleet(emulator, instances=[{"region": "cn-hangzhou"}])["instances"]
    assert api_error(create, client, iid, "over-the-advertised-quota") == ("QuotaExceed.Image", 403)
    emulator.admin.set_faults({"image_quota": 12})
    assert account_attributes(client, "cn-shanghai", ["max-image-count"])["max-image-count"][0] == "12"


def test_account_attributes_bad_names(emulator, ecs_client):
    client = ecs_client()
    request = m.DescribeAccountAttributesRequest
    assert api_error(client.describe_account_attributes, request(
        region_id="cn-hangzhou", attribute_name=["max-image-count", "no-such-attribute"])) == ("InvalidParameter", 400)
    assert api_error(client.describe_account_attributes, request(
        region_id="cn-hangzhou", attribute_name=["max-image-count"] * 9)) == ("InvalidParameter", 400)
    assert api_error(client.describe_account_attributes, request(region_id="xx-nowhere")) == \
        ("InvalidRegionId.NotFound", 404)
