"""ECS snapshots and tag APIs through the official SDK; malformed requests never give a 500."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from alibabacloud_ecs20140526 import models as m

from .helpers import api_error, fleet


def disks_of(client, instance_id, region="cn-hangzhou"):
    body = client.describe_disks(m.DescribeDisksRequest(region_id=region, instance_id=instance_id)).body
    return sorted(body.disks.disk, key=lambda d: d.type != "system")


def snapshots(client, region="cn-hangzhou", **kw):
    return client.describe_snapshots(m.DescribeSnapshotsRequest(region_id=region, **kw)).body


# -- snapshots -------------------------------------------------------------------------------
def test_create_snapshot_progress_and_describe(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": "cn-hangzhou", "data_disks": [{"size": 100}]}])["instances"]
    client = ecs_client()
    system, data = disks_of(client, iid)
    tag = m.CreateSnapshotRequestTag
    sid = client.create_snapshot(m.CreateSnapshotRequest(
        disk_id=data.disk_id, snapshot_name="data-before-upgrade", description="manual", retention_days=7,
        tag=[tag(key="purpose", value="upgrade")])).body.snapshot_id  # CreateSnapshot sends no RegionId
    (snap,) = snapshots(client, snapshot_ids=json.dumps([sid])).snapshots.snapshot
    assert (snap.status, snap.progress, snap.source_disk_id) == ("progressing", "0%", data.disk_id)
    assert (snap.source_disk_type, snap.source_disk_size, snap.retention_days) == ("Data", "100", 7)
    assert snap.snapshot_name == "data-before-upgrade" and snap.usage == "none"
    assert [(t.tag_key, t.tag_value) for t in snap.tags.tag] == [("purpose", "upgrade")]
    assert api_error(client.create_snapshot, m.CreateSnapshotRequest(disk_id=data.disk_id)) == \
        ("IncorrectDiskStatus.CreatingSnapshot", 403)
    duration = 60 + 2 * 100
    frozen.admin.advance(duration / 2)
    assert snapshots(client, snapshot_ids=json.dumps([sid])).snapshots.snapshot[0].progress == "50%"
    frozen.admin.advance(duration / 2)
    (snap,) = snapshots(client, snapshot_ids=json.dumps([sid])).snapshots.snapshot
    assert (snap.status, snap.progress, snap.available) == ("accomplished", "100%", True)
    client.create_snapshot(m.CreateSnapshotRequest(disk_id=system.disk_id, snapshot_name="sys"))
    assert snapshots(client, instance_id=iid).total_count == 2
    assert snapshots(client, disk_id=system.disk_id).snapshots.snapshot[0].snapshot_name == "sys"
    assert snapshots(client, status="progressing").total_count == 1
    assert snapshots(client, tag=[m.DescribeSnapshotsRequestTag(key="purpose")]).total_count == 1
    assert snapshots(client, "cn-shanghai").total_count == 0
    frozen.admin.advance(7 * 86400)  # RetentionDays releases the snapshot
    assert snapshots(client, snapshot_ids=json.dumps([sid])).total_count == 0


@pytest.mark.parametrize("kwargs,code,status", [
    ({"disk_id": "d-unknown"}, "InvalidDiskId.NotFound", 404),
    ({"disk_id": None}, "MissingParameter.DiskId", 400),
    ({"snapshot_name": "auto-nope"}, "InvalidSnapshotName.Malformed", 400),
    ({"snapshot_name": "9abc"}, "InvalidSnapshotName.Malformed", 400),
    ({"retention_days": 0}, "InvalidParameter.RetentionDays", 400),
    ({"tag": [m.CreateSnapshotRequestTag(key="aliyun", value="x")]}, "InvalidTagKey.Malformed", 400),
])
def test_create_snapshot_rejects_bad_requests(emulator, ecs_client, kwargs, code, status):
    (iid,) = fleet(emulator, instances=[{"region": "cn-hangzhou"}])["instances"]
    client = ecs_client()
    args = {"disk_id": disks_of(client, iid)[0].disk_id, **kwargs}
    assert api_error(client.create_snapshot, m.CreateSnapshotRequest(**args)) == (code, status)


def test_create_snapshot_client_token(emulator, ecs_client):
    (iid,) = fleet(emulator, instances=[{"region": "cn-hangzhou"}])["instances"]
    client = ecs_client()
    disk = disks_of(client, iid)[0].disk_id
    req = m.CreateSnapshotRequest(disk_id=disk, client_token="snap-tok")
    assert client.create_snapshot(req).body.snapshot_id == client.create_snapshot(req).body.snapshot_id
    assert snapshots(client).total_count == 1


def test_describe_snapshots_both_pagination_schemes(emulator, ecs_client):
    fleet(emulator, images=[{"region": "cn-hangzhou", "name": "img-{n}", "count": 12,
                             "data_disks": [{"size": 50}]}])
    client = ecs_client()
    assert snapshots(client).total_count == 24
    seen, token, pages = [], None, 0
    while True:
        body = snapshots(client, max_results=10, next_token=token)
        seen += [s.snapshot_id for s in body.snapshots.snapshot]
        pages += 1
        token = body.next_token
        if not token:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 24
    paged = []
    for page in (1, 2, 3):
        body = snapshots(client, page_number=page, page_size=10)
        assert body.page_number == page and body.total_count == 24
        paged += [s.snapshot_id for s in body.snapshots.snapshot]
    assert paged == seen
    assert snapshots(client, usage="image").total_count == 24
    assert snapshots(client, source_disk_type="Data").total_count == 12


def test_delete_snapshot_refuses_image_snapshots(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": "cn-hangzhou"}])["instances"]
    client = ecs_client()
    image_id = client.create_image(m.CreateImageRequest(region_id="cn-hangzhou", instance_id=iid,
                                                        image_name="keep")).body.image_id
    frozen.admin.advance(120 + 15 * 40)
    img = client.describe_images(m.DescribeImagesRequest(region_id="cn-hangzhou", image_id=image_id)).body
    sid = img.images.image[0].disk_device_mappings.disk_device_mapping[0].snapshot_id
    req = m.DeleteSnapshotRequest(snapshot_id=sid)  # DeleteSnapshot sends no RegionId
    assert api_error(client.delete_snapshot, req) == ("SnapshotCreatedImage", 403)
    assert api_error(client.delete_snapshot, m.DeleteSnapshotRequest(snapshot_id=sid, force=True)) == \
        ("SnapshotCreatedImage", 403)
    client.delete_image(m.DeleteImageRequest(region_id="cn-hangzhou", image_id=image_id))
    client.delete_snapshot(req)
    assert snapshots(client, snapshot_ids=json.dumps([sid])).total_count == 0
    assert api_error(client.delete_snapshot, req) == ("InvalidSnapshotId.NotFound", 404)
    assert api_error(client.delete_snapshot, m.DeleteSnapshotRequest()) == ("MissingParameter.SnapshotId", 400)


def test_delete_snapshot_used_by_disk_needs_force(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": "cn-hangzhou"}])["instances"]
    client = ecs_client()
    sid = client.create_snapshot(m.CreateSnapshotRequest(disk_id=disks_of(client, iid)[0].disk_id)).body.snapshot_id
    frozen.admin.advance(200)
    client.run_instances(m.RunInstancesRequest(
        region_id="cn-hangzhou", image_id="aliyun_3_x64_20G_alibase_20250629.vhd", instance_type="ecs.g7.large",
        data_disk=[m.RunInstancesRequestDataDisk(snapshot_id=sid)]))
    assert api_error(client.delete_snapshot, m.DeleteSnapshotRequest(snapshot_id=sid)) == ("SnapshotCreatedDisk", 403)
    client.delete_snapshot(m.DeleteSnapshotRequest(snapshot_id=sid, force=True))


# -- tags ------------------------------------------------------------------------------------
@pytest.mark.parametrize("resource_type", ["instance", "disk", "snapshot", "image", "securitygroup"])
def test_tag_untag_list_each_resource_type(emulator, ecs_client, resource_type):
    result = fleet(emulator, instances=[{"region": "cn-hangzhou"}], images=[{"region": "cn-hangzhou", "name": "im"}])
    client = ecs_client()
    iid, image_id = result["instances"][0], result["images"][0]
    rid = {
        "instance": iid, "image": image_id,
        "disk": disks_of(client, iid)[0].disk_id,
        "snapshot": snapshots(client).snapshots.snapshot[0].snapshot_id,
        "securitygroup": client.describe_security_groups(m.DescribeSecurityGroupsRequest(
            region_id="cn-hangzhou")).body.security_groups.security_group[0].security_group_id,
    }[resource_type]
    tag = m.TagResourcesRequestTag
    client.tag_resources(m.TagResourcesRequest(region_id="cn-hangzhou", resource_type=resource_type,
                                               resource_id=[rid], tag=[tag(key="env", value="prod"),
                                                                       tag(key="owner", value="ops")]))
    listed = client.list_tag_resources(m.ListTagResourcesRequest(
        region_id="cn-hangzhou", resource_type=resource_type, resource_id=[rid])).body
    assert {(t.resource_id, t.resource_type, t.tag_key, t.tag_value) for t in listed.tag_resources.tag_resource} == \
        {(rid, resource_type, "env", "prod"), (rid, resource_type, "owner", "ops")}
    assert listed.next_token == ""
    client.untag_resources(m.UntagResourcesRequest(region_id="cn-hangzhou", resource_type=resource_type,
                                                   resource_id=[rid], tag_key=["owner"]))
    listed = client.list_tag_resources(m.ListTagResourcesRequest(
        region_id="cn-hangzhou", resource_type=resource_type, resource_id=[rid])).body
    assert [t.tag_key for t in listed.tag_resources.tag_resource] == ["env"]
    client.untag_resources(m.UntagResourcesRequest(region_id="cn-hangzhou", resource_type=resource_type,
                                                   resource_id=[rid], all=True))
    listed = client.list_tag_resources(m.ListTagResourcesRequest(
        region_id="cn-hangzhou", resource_type=resource_type, resource_id=[rid])).body
    assert listed.tag_resources.tag_resource == []


def test_tags_show_in_describe_calls(emulator, ecs_client):
    (iid,) = fleet(emulator, instances=[{"region": "cn-hangzhou"}])["instances"]
    client = ecs_client()
    client.tag_resources(m.TagResourcesRequest(region_id="cn-hangzhou", resource_type="instance", resource_id=[iid],
                                               tag=[m.TagResourcesRequestTag(key="backup", value="daily")]))
    body = client.describe_instances(m.DescribeInstancesRequest(
        region_id="cn-hangzhou", tag=[m.DescribeInstancesRequestTag(key="backup", value="daily")])).body
    assert [i.instance_id for i in body.instances.instance] == [iid]


def test_tag_rules(emulator, ecs_client):
    ids = fleet(emulator, instances=[{"region": "cn-hangzhou", "count": 2, "tags": {f"k{n}": "v" for n in range(19)}}])[
        "instances"]
    client = ecs_client()
    tag = m.TagResourcesRequestTag

    def tag_it(tags, resource_type="instance", resource_ids=ids, region="cn-hangzhou"):
        return client.tag_resources(m.TagResourcesRequest(region_id=region, resource_type=resource_type,
                                                          resource_id=resource_ids, tag=tags))

    for key in ("aliyun", "aliyunBackup", "acs:owner", "ACS:x", "http://x", ""):
        assert api_error(tag_it, [tag(key=key, value="v")]) == ("InvalidTagKey.Malformed", 400), key
    assert api_error(tag_it, [tag(key="ok", value="acs:nope")]) == ("InvalidTagValue.Malformed", 400)
    tag_it([tag(key="k20", value="v")])  # 20th tag is fine
    assert api_error(tag_it, [tag(key="k21", value="v")]) == ("OperationDenied.QuotaExceed", 400)
    tag_it([tag(key="k0", value="changed")])  # overwriting an existing key does not count
    assert api_error(tag_it, [tag(key=f"n{i}", value="v") for i in range(21)]) == ("NumberExceed.Tags", 400)
    assert api_error(tag_it, [tag(key="a", value="1"), tag(key="a", value="2")]) == ("Duplicate.TagKey", 400)
    assert api_error(tag_it, [tag(key="a", value="1")], "volcano") == ("InvalidResourceType.NotFound", 404)
    assert api_error(tag_it, [tag(key="a", value="1")], "instance", ["i-missing"]) == \
        ("InvalidResourceId.NotFound", 404)
    assert api_error(tag_it, [tag(key="a", value="1")], "instance", ids, "cn-beijing") == \
        ("InvalidResourceId.NotFound", 404)
    assert api_error(tag_it, [tag(key="a", value="1")], "instance", []) == ("MissingParameter.ResourceId", 400)


def test_list_tag_resources_by_tag_and_next_token(emulator, ecs_client):
    fleet(emulator, instances=[{"region": "cn-hangzhou", "count": 30, "tags": {"team": "data", "env": "dev"}},
                               {"region": "cn-hangzhou", "count": 5, "tags": {"team": "web"}}])
    client = ecs_client()
    pairs, token, pages = [], None, 0
    while True:
        body = client.list_tag_resources(m.ListTagResourcesRequest(
            region_id="cn-hangzhou", resource_type="instance", next_token=token,
            tag=[m.ListTagResourcesRequestTag(key="team", value="data")])).body
        pairs += [(t.resource_id, t.tag_key) for t in body.tag_resources.tag_resource]
        pages += 1
        token = body.next_token
        if not token:
            break
    assert pages == 2 and len(pairs) == len(set(pairs)) == 60


# -- malformed requests never 500 ------------------------------------------------------------
@pytest.mark.parametrize("action,query", [
    ("DescribeInstances", "RegionId=cn-hangzhou&MaxResults=abc"),
    ("DescribeInstances", "RegionId=cn-hangzhou&InstanceIds=%5B1%2C2%5D"),
    ("DescribeInstances", "RegionId=cn-hangzhou&Tag.1.Value=orphan"),
    ("DescribeImages", "RegionId=cn-hangzhou&PageNumber=-1"),
    ("DescribeImages", "RegionId=cn-hangzhou&IsPublic=maybe"),
    ("DescribeSnapshots", "RegionId=cn-hangzhou&SnapshotIds=%7B%7D"),
    ("DescribeSnapshots", "RegionId=cn-hangzhou&Filter.1.Key=CreationStartTime&Filter.1.Value=yesterday"),
    ("CreateImage", "RegionId=cn-hangzhou&InstanceId=i-x&Tag.1.Key=aliyun"),
    ("CopyImage", "RegionId=cn-hangzhou"),
    ("RunInstances", "RegionId=cn-hangzhou&ImageId=x&InstanceType=ecs.g7.large&DataDisk.1.Size=huge"),
    ("RunInstances", "RegionId=cn-hangzhou&ImageId=aliyun_3_x64_20G_alibase_20250629.vhd&InstanceType=ecs.g7.large"
                     "&DataDisk.1.Category=cloud_essd"),
    ("StartInstances", "RegionId=cn-hangzhou"),
    ("StopInstance", ""),
    ("ReplaceSystemDisk", "InstanceId=i-x"),
    ("TagResources", "RegionId=cn-hangzhou"),
    ("ListTagResources", "RegionId=cn-hangzhou&ResourceType=instance&NextToken=%25%25"),
    ("ModifyImageSharePermission", "RegionId=cn-hangzhou&ImageId=m-x&AddAccount.1=abc"),
    ("DescribeInstanceHistoryEvents", "RegionId=cn-hangzhou&EventPublishTime.Start=later"),
    ("DeleteImage", "RegionId=cn-hangzhou"),
    ("CancelCopyImage", "RegionId=nowhere&ImageId=m-1"),
])
def test_malformed_requests_get_4xx(emulator, action, query):
    """Legacy-style calls (Action in the query, v1 signature) with junk parameters."""
    from aliyunsdkcore.client import AcsClient
    from aliyunsdkcore.request import CommonRequest

    client = AcsClient(emulator.access_key_id, emulator.access_key_secret, "cn-hangzhou")
    req = CommonRequest(domain=emulator.endpoint, version="2014-05-26", action_name=action)
    req.set_protocol_type("http")
    req.set_method("POST")
    for item in filter(None, query.split("&")):
        key, _, value = item.partition("=")
        req.add_query_param(key, urllib.request.unquote(value))
    from aliyunsdkcore.acs_exception.exceptions import ServerException

    with pytest.raises(ServerException) as err:
        client.do_action_with_exception(req)
    assert 400 <= err.value.get_http_status() < 500, (err.value.get_error_code(), err.value.get_error_msg())
    assert err.value.get_error_code()


def test_admin_timings_rejects_unknown_names(emulator):
    req = urllib.request.Request(f"{emulator.base_url}/_emulator/timings", data=b'{"warp": 1}', method="POST",
                                 headers={"Content-Type": "application/json", **emulator.admin.headers()})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert err.value.code == 400
