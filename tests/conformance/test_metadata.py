"""The ECS instance metadata service (``/latest/...``): IMDSv2 tokens, the RAM role's name and its temporary
credentials, served at the real paths without the admin token; the credentials work against the emulator,
rotate before they expire and are refused once expired."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi.models import Config
from Tea.exceptions import TeaException

from emulator.clock import parse_iso
from emulator.control import AdminError

CREDS = "/latest/meta-data/ram/security-credentials/"
TTL = "X-aliyun-ecs-metadata-token-ttl-seconds"
TOKEN = "X-aliyun-ecs-metadata-token"


def http(emulator, method: str, path: str, headers: dict | None = None) -> tuple[int, str]:
    req = urllib.request.Request(emulator.base_url + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def token(emulator, ttl: int = 21600) -> str:
    status, body = http(emulator, "PUT", "/latest/api/token", {TTL: str(ttl)})
    assert status == 200, body
    return body


def credentials(emulator, role: str = "EcsRamRoleDemo", **headers) -> dict:
    status, body = http(emulator, "GET", CREDS + role, headers)
    assert status == 200, body
    return json.loads(body)


def ecs(emulator, creds: dict) -> EcsClient:
    return EcsClient(Config(access_key_id=creds["AccessKeyId"], access_key_secret=creds["AccessKeySecret"],
                            security_token=creds["SecurityToken"], endpoint=emulator.endpoint, protocol="http",
                            region_id="cn-hangzhou"))


def test_role_name_and_credentials_imdsv2(emulator):
    tok = token(emulator)
    assert http(emulator, "GET", CREDS, {TOKEN: tok}) == (200, "EcsRamRoleDemo")
    creds = credentials(emulator, **{TOKEN: tok})
    assert set(creds) == {"Code", "AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration", "LastUpdated"}
    assert creds["Code"] == "Success" and creds["AccessKeyId"].startswith("STS.")
    assert creds["SecurityToken"].startswith("CAIS") and len(creds["AccessKeySecret"]) >= 30
    # six hours by default, in real time (what the SDK compares it with)
    assert 21600 - 60 <= parse_iso(creds["Expiration"]) - time.time() <= 21600 + 1
    assert abs(parse_iso(creds["LastUpdated"]) - time.time()) < 60
    # they are STS keys: accepted with their token, refused with another
    body = ecs(emulator, creds).describe_regions(ecs_models.DescribeRegionsRequest()).body
    assert body.regions.region
    wrong = {**creds, "SecurityToken": creds["SecurityToken"][:-4] + "AAAA"}
    with pytest.raises(TeaException) as err:
        ecs(emulator, wrong).describe_regions(ecs_models.DescribeRegionsRequest())
    assert err.value.code == "InvalidSecurityToken.MismatchWithAccessKey"
    calls = emulator.admin.calls()["counters"]
    assert calls["ecs-metadata:PutToken"]["calls"] == 1 and calls["ecs-metadata:GetRoleCredentials"]["calls"] == 1


def test_imdsv1_and_same_key_until_rotation(emulator):
    emulator.admin.request("PUT", "metadata", {"duration": 3600})
    first = credentials(emulator)  # no token: IMDSv1, allowed by default
    again = credentials(emulator)
    assert again["AccessKeyId"] == first["AccessKeyId"] and again["LastUpdated"] == first["LastUpdated"]
    emulator.admin.request("POST", "sts/clock", {"advance": 1790})  # 30 min 10 s left: still the same key
    assert credentials(emulator)["AccessKeyId"] == first["AccessKeyId"]
    emulator.admin.request("POST", "sts/clock", {"advance": 20})  # under 30 minutes left: a new key
    second = credentials(emulator)
    assert second["AccessKeyId"] != first["AccessKeyId"]
    assert parse_iso(second["Expiration"]) - parse_iso(first["Expiration"]) == pytest.approx(1810, abs=2)
    # the old key works until its own expiry, then is refused; the new one goes on
    assert ecs(emulator, first).describe_regions(ecs_models.DescribeRegionsRequest()).body.regions
    emulator.admin.request("POST", "sts/clock", {"advance": 1800})
    with pytest.raises(TeaException) as err:
        ecs(emulator, first).describe_regions(ecs_models.DescribeRegionsRequest())
    assert err.value.code == "InvalidSecurityToken.Expired"
    assert ecs(emulator, second).describe_regions(ecs_models.DescribeRegionsRequest()).body.regions


def test_simulated_clock_does_not_age_metadata_credentials(emulator):
    creds = credentials(emulator)
    emulator.admin.advance(10 * 86400)
    assert credentials(emulator)["AccessKeyId"] == creds["AccessKeyId"]
    assert ecs(emulator, creds).describe_regions(ecs_models.DescribeRegionsRequest()).body.regions


def test_tokens(emulator):
    for bad in ("", "0", "21601", "abc", "-5"):
        status, _ = http(emulator, "PUT", "/latest/api/token", {TTL: bad})
        assert status == 400, bad
    assert http(emulator, "PUT", "/latest/api/token")[0] == 400  # the TTL header is required
    assert http(emulator, "GET", "/latest/api/token")[0] == 405
    short = token(emulator, ttl=60)
    assert http(emulator, "GET", CREDS, {TOKEN: short})[0] == 200
    emulator.admin.request("POST", "sts/clock", {"advance": 61})
    assert http(emulator, "GET", CREDS, {TOKEN: short})[0] == 401  # expired
    for forged in ("not-a-token", short[:-2] + ("AA" if not short.endswith("AA") else "BB"), "A" * 43):
        assert http(emulator, "GET", CREDS, {TOKEN: forged})[0] == 401


def test_imdsv2_required(emulator):
    emulator.admin.request("PUT", "metadata", {"imdsv2_required": True})
    assert http(emulator, "GET", CREDS)[0] == 401
    assert http(emulator, "GET", CREDS + "EcsRamRoleDemo")[0] == 401
    tok = token(emulator)
    assert http(emulator, "GET", CREDS, {TOKEN: tok}) == (200, "EcsRamRoleDemo")


def test_role_configuration_and_not_found(emulator):
    assert emulator.admin.request("GET", "metadata") == {"role_name": "EcsRamRoleDemo", "duration": 21600,
                                                         "imdsv2_required": False, "allow": None}
    assert http(emulator, "GET", CREDS + "SomeOtherRole")[0] == 404
    assert http(emulator, "GET", "/latest/meta-data/instance-id")[0] == 404
    assert http(emulator, "POST", CREDS + "EcsRamRoleDemo")[0] == 405

    emulator.admin.request("PUT", "metadata", {"role_name": "ReadOnlyWorker", "allow": ["ecs:Describe*"]})
    assert http(emulator, "GET", CREDS) == (200, "ReadOnlyWorker")
    assert http(emulator, "GET", CREDS + "EcsRamRoleDemo")[0] == 404
    creds = credentials(emulator, "ReadOnlyWorker")
    client = ecs(emulator, creds)
    assert client.describe_regions(ecs_models.DescribeRegionsRequest()).body.regions
    with pytest.raises(TeaException) as err:
        client.create_image(ecs_models.CreateImageRequest(region_id="cn-hangzhou", instance_id="i-nothing"))
    assert err.value.code == "Forbidden.RAM"
    assert err.value.data["AccessDeniedDetail"]["AuthPrincipalDisplayName"] == "readonlyworker:ecs-instance"

    emulator.admin.request("PUT", "metadata", {"role_name": None})  # no role attached
    assert http(emulator, "GET", CREDS)[0] == 404
    assert http(emulator, "GET", CREDS + "ReadOnlyWorker")[0] == 404


@pytest.mark.parametrize("body", [{"role_name": "bad name"}, {"role_name": 5}, {"duration": 899},
                                  {"duration": "3600"}, {"imdsv2_required": "yes"}, {"allow": "ecs:*"},
                                  {"colour": "blue"}])
def test_bad_configuration_is_refused(emulator, body):
    with pytest.raises(AdminError) as err:
        emulator.admin.request("PUT", "metadata", body)
    assert err.value.status == 400
    assert emulator.admin.request("GET", "metadata")["role_name"] == "EcsRamRoleDemo"


def test_metadata_needs_no_admin_token_but_its_configuration_does(emulator):
    from emulator.control import AdminClient

    assert http(emulator, "GET", CREDS)[0] == 200  # no Authorization at all, as on an instance
    with pytest.raises(AdminError) as err:
        AdminClient(emulator.base_url, token="wrong").request("GET", "metadata")
    assert err.value.status == 401
    with pytest.raises(AdminError) as err:
        AdminClient(emulator.base_url, token="wrong").request("POST", "sts/clock", {"advance": 1})
    assert err.value.status == 401


def test_oss_bucket_named_latest_still_works(emulator):
    """Signed OSS requests for a bucket called ``latest`` are OSS's, not the metadata service's."""
    import alibabacloud_oss_v2 as oss

    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(emulator.access_key_id,
                                                                          emulator.access_key_secret)
    cfg.region = "cn-hangzhou"
    cfg.endpoint = emulator.base_url
    cfg.use_path_style = True
    client = oss.Client(cfg)
    client.put_bucket(oss.PutBucketRequest(bucket="latest"))
    client.put_object(oss.PutObjectRequest(bucket="latest", key="api/token", body=b"object, not a token"))
    got = client.get_object(oss.GetObjectRequest(bucket="latest", key="api/token")).body.read()
    assert got == b"object, not a token"
    assert http(emulator, "GET", CREDS) == (200, "EcsRamRoleDemo")  # unsigned: still the metadata service
