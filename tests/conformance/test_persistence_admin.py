"""Admin API, persistence across restarts, long request lines, bad requests never 500."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from alibabacloud_ecs20140526 import models as m
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi.models import Config
from Tea.exceptions import TeaException

from emulator.control import EmulatorProcess


def client_for(emu: EmulatorProcess, region: str = "cn-hangzhou") -> Client:
    return Client(Config(access_key_id=emu.access_key_id, access_key_secret=emu.access_key_secret,
                         region_id=region, endpoint=emu.endpoint, protocol="http"))


def test_state_survives_a_restart(tmp_path):
    data_dir = tmp_path / "emu"
    with EmulatorProcess(time_scale=1000, data_dir=data_dir) as emu:
        ids = emu.admin.load_fleet({"instances": [{"region": "cn-beijing", "count": 2, "status": "Running",
                                                   "tags": {"backup": "daily"}}]})
        instance_id = sorted(emu.admin.table("ecs.instances"))[0]
        image_id = client_for(emu, "cn-beijing").create_image(m.CreateImageRequest(
            region_id="cn-beijing", instance_id=instance_id, image_name="persisted-image")).body.image_id
        before = emu.admin.clock()["now"]
    assert ids
    with EmulatorProcess(time_scale=1000, data_dir=data_dir) as emu:
        assert emu.admin.clock()["now"] >= before          # simulated time does not go back
        body = client_for(emu, "cn-beijing").describe_images(m.DescribeImagesRequest(
            region_id="cn-beijing", image_id=image_id, status="Creating,Available")).body
        assert [i.image_id for i in body.images.image] == [image_id]
        found = client_for(emu, "cn-beijing").describe_instances(m.DescribeInstancesRequest(
            region_id="cn-beijing", tag=[m.DescribeInstancesRequestTag(key="backup", value="daily")])).body
        assert found.total_count == 2


def test_image_snapshot_point_survives_a_restart(tmp_path):
    data_dir = tmp_path / "emu"

    def snapshot_ids(emu, image_id):
        body = client_for(emu).describe_images(m.DescribeImagesRequest(
            region_id="cn-hangzhou", image_id=image_id, status="Creating,Available")).body
        (img,) = body.images.image
        return img.status, [d.snapshot_id for d in img.disk_device_mappings.disk_device_mapping]

    with EmulatorProcess(time_scale=1000, data_dir=data_dir) as emu:
        emu.admin.clock(freeze=True)
        (iid,) = emu.admin.load_fleet({"instances": [{"region": "cn-hangzhou"}]})["instances"]
        image_id = client_for(emu).create_image(m.CreateImageRequest(
            region_id="cn-hangzhou", instance_id=iid, image_name="point-persisted")).body.image_id
    with EmulatorProcess(time_scale=1000, data_dir=data_dir) as emu:
        assert snapshot_ids(emu, image_id) == ("Creating", [""])
        emu.admin.advance(21)
        status, taken = snapshot_ids(emu, image_id)
        assert status == "Creating" and taken[0].startswith("s-")
    with EmulatorProcess(time_scale=1000, data_dir=data_dir) as emu:
        emu.admin.advance(120 + 15 * 40)
        assert snapshot_ids(emu, image_id) == ("Available", taken)


def test_clock_and_calls_admin(emulator, ecs_client):
    t0 = emulator.admin.clock()["now"]
    after = emulator.admin.advance(3600)["now"]
    assert after - t0 >= 3600
    emulator.admin.clear_calls()
    ecs_client().describe_regions(m.DescribeRegionsRequest())
    calls = emulator.admin.calls()
    assert calls["counters"]["ecs:DescribeRegions"]["calls"] == 1
    assert calls["recent"][-1]["action"] == "ecs:DescribeRegions"
    assert calls["recent"][-1]["request_id"]


def test_reset_forgets_everything(emulator):
    emulator.admin.load_fleet({"instances": [{"region": "cn-hangzhou", "count": 3}]})
    assert len(emulator.admin.table("ecs.instances")) == 3
    emulator.admin.reset()
    assert emulator.admin.table("ecs.instances") == {}
    assert emulator.admin.table("vpc.vpcs")   # built-in networks are seeded again


def test_unknown_fleet_section_and_admin_path(emulator):
    with pytest.raises(RuntimeError, match="InvalidFleetSpec"):
        emulator.admin.load_fleet({"spaceships": []})
    with pytest.raises(RuntimeError, match="404"):
        emulator.admin.request("GET", "no-such-endpoint")


def test_request_line_of_64_kb(emulator, ecs_client):
    emulator.admin.load_fleet({"instances": [{"region": "cn-hangzhou", "count": 1, "status": "Running"}]})
    instance_id = next(iter(emulator.admin.table("ecs.instances")))
    # 11 KB of script becomes a long query string once URL-encoded; 60 KB names in DescribeImages too
    long_name = "x" * 60_000
    body = ecs_client().describe_images(m.DescribeImagesRequest(region_id="cn-hangzhou",
                                                                image_name=long_name)).body
    assert body.total_count == 0
    script = "echo '" + "é" * 5000 + "'"
    invoke = ecs_client().run_command(m.RunCommandRequest(region_id="cn-hangzhou", type="RunShellScript",
                                                          command_content=script, instance_id=[instance_id]))
    assert invoke.body.invoke_id


@pytest.mark.parametrize("params", [
    {"Action": "DescribeInstances", "Version": "2014-05-26"},            # unsigned
    {"Action": "DescribeInstances", "Version": "1999-01-01"},            # unknown version
])
def test_bad_requests_get_json_errors_not_500(emulator, params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(f"{emulator.base_url}/?{query}", method="POST"))
    assert 400 <= err.value.code < 500
    assert json.loads(err.value.read())["Code"]


@pytest.mark.parametrize("request_obj", [
    m.DescribeInstancesRequest(region_id="cn-hangzhou", max_results=100000),
    m.DescribeImagesRequest(region_id="cn-hangzhou", page_size=-1),
    m.CreateImageRequest(region_id="cn-hangzhou"),
    m.CopyImageRequest(region_id="cn-hangzhou", image_id="m-doesnotexist", destination_region_id="cn-beijing"),
    m.DeleteImageRequest(region_id="nowhere-1", image_id="m-x"),
])
def test_malformed_parameters_get_4xx_codes(ecs_client, request_obj):
    client = ecs_client()
    method = {m.DescribeInstancesRequest: client.describe_instances, m.DescribeImagesRequest: client.describe_images,
              m.CreateImageRequest: client.create_image, m.CopyImageRequest: client.copy_image,
              m.DeleteImageRequest: client.delete_image}[type(request_obj)]
    with pytest.raises(TeaException) as err:
        method(request_obj)
    assert err.value.code and err.value.code != "InternalError"
