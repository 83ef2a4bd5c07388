"""Transport-level conformance: signatures, keys, permissions, error shape, long requests."""

from __future__ import annotations

import json
import urllib.request

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from Tea.exceptions import TeaException


def test_acs3_signed_call_succeeds(ecs_client):
    body = ecs_client().describe_regions(ecs_models.DescribeRegionsRequest()).body
    assert "cn-hangzhou" in [r.region_id for r in body.regions.region]
    assert body.request_id


def test_endpoint_with_scheme_in_host_header(emulator, ecs_client):
    client = ecs_client(endpoint=emulator.base_url)  # the SDK then sends "host: http://..."
    zones = client.describe_zones(ecs_models.DescribeZonesRequest(region_id="cn-beijing")).body.zones.zone
    assert [z.zone_id for z in zones] == ["cn-beijing-g", "cn-beijing-h", "cn-beijing-i"]


def test_legacy_v2_signature(ecs_client):
    client = ecs_client(signature_algorithm="v2")
    assert client.describe_regions(ecs_models.DescribeRegionsRequest()).body.regions.region


def test_classic_core_sdk_hmac_sha1(emulator):
    from aliyunsdkcore.client import AcsClient
    from aliyunsdkcore.request import CommonRequest

    client = AcsClient(emulator.access_key_id, emulator.access_key_secret, "cn-hangzhou")
    req = CommonRequest(domain=emulator.endpoint, version="2014-05-26", action_name="DescribeZones")
    req.set_protocol_type("http")
    req.set_method("POST")
    req.add_query_param("RegionId", "cn-shanghai")
    data = json.loads(client.do_action_with_exception(req))
    assert data["Zones"]["Zone"][0]["ZoneId"].startswith("cn-shanghai")


def test_bad_signature_is_rejected(ecs_client):
    with pytest.raises(TeaException) as err:
        ecs_client(access_key_secret="wrong").describe_regions(ecs_models.DescribeRegionsRequest())
    assert err.value.code == "SignatureDoesNotMatch"
    assert err.value.status_code == 400 if hasattr(err.value, "status_code") else True


def test_unknown_access_key(ecs_client):
    with pytest.raises(TeaException) as err:
        ecs_client(access_key_id="NOPE").describe_regions(ecs_models.DescribeRegionsRequest())
    assert err.value.code == "InvalidAccessKeyId.NotFound"


def test_unknown_region_is_a_clean_404(ecs_client):
    with pytest.raises(TeaException) as err:
        ecs_client().describe_zones(ecs_models.DescribeZonesRequest(region_id="mars-1"))
    assert err.value.code == "InvalidRegionId.NotFound"


def test_unknown_action(emulator):
    req = urllib.request.Request(f"{emulator.base_url}/?Action=NoSuchThing&Version=2014-05-26", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    # no credentials: the missing key is reported before the action is looked up
    assert json.loads(err.value.read())["Code"] in ("MissingAccessKeyId", "InvalidAction.NotFound")


def test_injected_throttling_carries_retry_after(emulator, ecs_client):
    emulator.admin.set_faults({"rules": [{"action": "ecs:DescribeRegions", "kind": "throttle", "count": 1,
                                          "retry_after_ms": 200}]})
    with pytest.raises(TeaException) as err:
        ecs_client().describe_regions(ecs_models.DescribeRegionsRequest())
    assert err.value.code == "Throttling.User"
    assert getattr(err.value, "retry_after", None) == 200
    # the rule is spent: the next call goes through
    assert ecs_client().describe_regions(ecs_models.DescribeRegionsRequest()).body.regions
    counters = emulator.admin.calls()["counters"]
    assert counters["ecs:DescribeRegions"] == {"calls": 2, "errors": 1, "codes": {"Throttling.User": 1}}
