"""VPC (DescribeVpcs, DescribeVSwitches) and STS (AssumeRole, temporary keys, RAM allow lists)."""

from __future__ import annotations

import json

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi.models import Config
from alibabacloud_vpc20160428 import models as vpc_models
from Tea.exceptions import TeaException

from emulator.control import EmulatorProcess

ROLE_ARN = "acs:ram::1234567890123456:role/airflow-deployer"


# -- VPC --------------------------------------------------------------------------------------
def test_describe_vpcs_default_vpc_per_region(vpc_client):
    body = vpc_client().describe_vpcs(vpc_models.DescribeVpcsRequest(region_id="cn-hangzhou")).body
    assert body.total_count == 1 and body.page_number == 1 and body.page_size == 10
    vpc = body.vpcs.vpc[0]
    assert vpc.vpc_id.startswith("vpc-") and vpc.is_default is True and vpc.region_id == "cn-hangzhou"
    assert vpc.status == "Available" and vpc.cidr_block
    assert len(vpc.v_switch_ids.v_switch_id) == 3


def test_describe_vpcs_filters(vpc_client):
    client = vpc_client()
    vpc_id = client.describe_vpcs(vpc_models.DescribeVpcsRequest(region_id="cn-beijing")).body.vpcs.vpc[0].vpc_id
    got = client.describe_vpcs(vpc_models.DescribeVpcsRequest(region_id="cn-beijing", vpc_id=vpc_id)).body
    assert [v.vpc_id for v in got.vpcs.vpc] == [vpc_id]
    # an id from another region, a non-default filter: empty pages, not errors
    assert client.describe_vpcs(vpc_models.DescribeVpcsRequest(region_id="cn-hangzhou", vpc_id=vpc_id)
                                ).body.total_count == 0
    assert client.describe_vpcs(vpc_models.DescribeVpcsRequest(region_id="cn-beijing", is_default=False)
                                ).body.vpcs.vpc == []


def test_describe_vpcs_errors(vpc_client):
    with pytest.raises(TeaException) as err:
        vpc_client().describe_vpcs(vpc_models.DescribeVpcsRequest(region_id="mars-1"))
    assert err.value.code == "InvalidRegionId.NotFound"
    with pytest.raises(TeaException) as err:
        vpc_client().describe_vpcs(vpc_models.DescribeVpcsRequest(region_id="cn-hangzhou", page_size=51))
    assert err.value.code == "InvalidParameter.PageSize"


def test_describe_vswitches_filters_and_pages(vpc_client):
    client = vpc_client("cn-shanghai")
    body = client.describe_vswitches(vpc_models.DescribeVSwitchesRequest(region_id="cn-shanghai")).body
    assert body.total_count == 3
    zones = [v.zone_id for v in body.v_switches.v_switch]
    assert zones == ["cn-shanghai-e", "cn-shanghai-f", "cn-shanghai-g"]
    vsw = body.v_switches.v_switch[0]
    assert vsw.v_switch_id.startswith("vsw-") and vsw.is_default is True
    assert isinstance(vsw.available_ip_address_count, int) and vsw.route_table.route_table_type == "System"

    by_zone = client.describe_vswitches(vpc_models.DescribeVSwitchesRequest(
        region_id="cn-shanghai", zone_id="cn-shanghai-f")).body
    assert [v.zone_id for v in by_zone.v_switches.v_switch] == ["cn-shanghai-f"]

    by_vpc = client.describe_vswitches(vpc_models.DescribeVSwitchesRequest(
        region_id="cn-shanghai", vpc_id=vsw.vpc_id, page_size=2, page_number=2)).body
    assert by_vpc.total_count == 3 and len(by_vpc.v_switches.v_switch) == 1 and by_vpc.page_number == 2

    one = client.describe_vswitches(vpc_models.DescribeVSwitchesRequest(
        region_id="cn-shanghai", v_switch_id=vsw.v_switch_id)).body
    assert [v.v_switch_id for v in one.v_switches.v_switch] == [vsw.v_switch_id]


# -- STS --------------------------------------------------------------------------------------
def _sts_credential(emulator, **extra):
    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_credentials.models import Config as CredConfig

    return CredentialClient(CredConfig(
        type="ram_role_arn", access_key_id=emulator.access_key_id, access_key_secret=emulator.access_key_secret,
        role_arn=ROLE_ARN, role_session_name="airflow", sts_endpoint=emulator.base_url, **extra))


def _ecs(emulator, **settings) -> EcsClient:
    return EcsClient(Config(region_id="cn-hangzhou", endpoint=emulator.endpoint, protocol="http",
                            read_timeout=30000, connect_timeout=5000, **settings))


def _assume(emulator, **params) -> dict:
    """AssumeRole through alibabacloud-credentials and return the raw credential model."""
    cred = _sts_credential(emulator, **params)
    model = cred.get_credential()
    return {"id": model.access_key_id, "secret": model.access_key_secret, "token": model.security_token}


def test_assume_role_then_ecs_call_with_sts_key(emulator):
    cred = _sts_credential(emulator)
    client = _ecs(emulator, credential=cred)
    body = client.describe_regions(ecs_models.DescribeRegionsRequest()).body
    assert "cn-hangzhou" in [r.region_id for r in body.regions.region]
    model = cred.get_credential()
    assert model.access_key_id.startswith("STS.") and model.security_token
    calls = emulator.admin.calls()["recent"]
    regions_calls = [c for c in calls if c["action"] == "ecs:DescribeRegions"]
    assert regions_calls and regions_calls[-1]["access_key_id"] == model.access_key_id
    keys = emulator.admin.table("sts.keys")
    assert model.access_key_id in keys


def test_expired_token_is_rejected(emulator):
    creds = _assume(emulator, role_session_expiration=900)
    client = _ecs(emulator, access_key_id=creds["id"], access_key_secret=creds["secret"],
                  security_token=creds["token"])
    assert client.describe_regions(ecs_models.DescribeRegionsRequest()).body.regions
    emulator.admin.request("POST", "sts/clock", {"advance": 890})  # the credential clock, not the simulated one
    assert client.describe_regions(ecs_models.DescribeRegionsRequest()).body.regions
    emulator.admin.request("POST", "sts/clock", {"advance": 11})
    with pytest.raises(TeaException) as err:
        client.describe_regions(ecs_models.DescribeRegionsRequest())
    assert err.value.code == "InvalidSecurityToken.Expired"
    assert emulator.admin.table("sts.keys")[creds["id"]]  # still known (answered "Expired") for a day...
    emulator.admin.request("POST", "sts/clock", {"advance": 86400})
    _assume(emulator)  # ...then forgotten (when the next key is minted)
    assert creds["id"] not in emulator.admin.table("sts.keys")
    with pytest.raises(TeaException) as err:
        client.describe_regions(ecs_models.DescribeRegionsRequest())
    assert err.value.code == "InvalidAccessKeyId.NotFound"


def test_simulated_time_does_not_age_sts_keys(emulator):
    """Keys live by the real clock, as the SDK that refreshes them does: neither the time scale (1000 here) nor
    an ``advance`` of the simulated clock expires them."""
    import time

    creds = _assume(emulator, role_session_expiration=900)
    client = _ecs(emulator, access_key_id=creds["id"], access_key_secret=creds["secret"],
                  security_token=creds["token"])
    emulator.admin.advance(30 * 86400)
    time.sleep(1.0)  # 1000 simulated seconds, more than the key's 900
    assert client.describe_regions(ecs_models.DescribeRegionsRequest()).body.regions
    record = emulator.admin.table("sts.keys")[creds["id"]]
    assert 880 <= record["expires_at"] - time.time() <= 900


@pytest.mark.parametrize("body", [{"advance": -1}, {"advance": "x"}, {"advance": True}, {"advance": 1e12},
                                  {"rewind": 5}])
def test_sts_clock_refuses_bad_changes(emulator, body):
    from emulator.control import AdminError

    with pytest.raises(AdminError) as err:
        emulator.admin.request("POST", "sts/clock", body)
    assert err.value.status == 400
    assert emulator.admin.request("GET", "sts/clock")["offset"] == 0.0


def test_wrong_or_missing_token_is_rejected(emulator):
    creds = _assume(emulator)
    wrong = _ecs(emulator, access_key_id=creds["id"], access_key_secret=creds["secret"],
                 security_token=creds["token"][:-4] + "AAAA")
    with pytest.raises(TeaException) as err:
        wrong.describe_regions(ecs_models.DescribeRegionsRequest())
    assert err.value.code == "InvalidSecurityToken.MismatchWithAccessKey"
    missing = _ecs(emulator, access_key_id=creds["id"], access_key_secret=creds["secret"])
    with pytest.raises(TeaException) as err:
        missing.describe_regions(ecs_models.DescribeRegionsRequest())
    assert err.value.code == "MissingSecurityToken"


def test_policy_restricted_token(emulator):
    # compact JSON: alibabacloud-credentials signs with quote_plus (space -> "+"), see the report
    policy = json.dumps({"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": ["ecs:DescribeRegions"], "Resource": "*"}]}, separators=(",", ":"))
    creds = _assume(emulator, policy=policy)
    client = _ecs(emulator, access_key_id=creds["id"], access_key_secret=creds["secret"],
                  security_token=creds["token"])
    assert client.describe_regions(ecs_models.DescribeRegionsRequest()).body.regions
    with pytest.raises(TeaException) as err:
        client.describe_zones(ecs_models.DescribeZonesRequest(region_id="cn-hangzhou"))
    assert err.value.code == "Forbidden.RAM"
    assert err.value.data["statusCode"] == 403
    detail = err.value.data["AccessDeniedDetail"]
    assert detail["AuthAction"] == "ecs:DescribeZones" and detail["AuthPrincipalType"] == "AssumedRoleUser"


def _raw_assume(emulator, **params):
    """AssumeRole with arbitrary (possibly invalid) parameters, signed per the RPC HMAC-SHA1 spec."""
    import base64
    import hashlib
    import hmac
    import urllib.error
    import urllib.request
    import uuid
    from datetime import UTC, datetime
    from urllib.parse import quote, urlencode

    query = {"Action": "AssumeRole", "Format": "JSON", "Version": "2015-04-01", "SignatureMethod": "HMAC-SHA1",
             "SignatureVersion": "1.0", "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "SignatureNonce": uuid.uuid4().hex, "AccessKeyId": emulator.access_key_id, **params}
    canonical = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(query.items()))
    to_sign = f"GET&%2F&{quote(canonical, safe='~')}"
    digest = hmac.new(f"{emulator.access_key_secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    query["Signature"] = base64.b64encode(digest).decode()
    try:
        with urllib.request.urlopen(f"{emulator.base_url}/?{urlencode(query, quote_via=quote)}") as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("params, code", [
    ({"RoleSessionName": "s1"}, "MissingRoleArn"),
    ({"RoleArn": "acs:ram::abc:role/x", "RoleSessionName": "s1"}, "InvalidParameter.RoleArn"),
    ({"RoleArn": "arn:aws:iam::1:role/x", "RoleSessionName": "s1"}, "InvalidParameter.RoleArn"),
    ({"RoleArn": ROLE_ARN}, "MissingRoleSessionName"),
    ({"RoleArn": ROLE_ARN, "RoleSessionName": "x"}, "InvalidParameter.RoleSessionName"),
    ({"RoleArn": ROLE_ARN, "RoleSessionName": "bad name!"}, "InvalidParameter.RoleSessionName"),
    ({"RoleArn": ROLE_ARN, "RoleSessionName": "s1", "DurationSeconds": "899"}, "InvalidParameter.DurationSeconds"),
    ({"RoleArn": ROLE_ARN, "RoleSessionName": "s1", "DurationSeconds": "43201"},
     "InvalidParameter.DurationSeconds"),
    ({"RoleArn": ROLE_ARN, "RoleSessionName": "s1", "Policy": "{not json"}, "InvalidParameter.PolicyGrammar"),
    ({"RoleArn": ROLE_ARN, "RoleSessionName": "s1", "Policy": "{\"Statement\": []}"},
     "InvalidParameter.PolicyGrammar"),
])
def test_assume_role_validation(emulator, params, code):
    status, body = _raw_assume(emulator, **params)
    assert status == 400 and body["Code"] == code


def test_assume_role_response_shape(emulator):
    status, body = _raw_assume(emulator, RoleArn=ROLE_ARN, RoleSessionName="ops@example.com",
                               DurationSeconds="43200")
    assert status == 200
    assert body["AssumedRoleUser"]["Arn"].endswith(":role/airflow-deployer/ops@example.com")
    assert body["AssumedRoleUser"]["AssumedRoleId"].endswith(":ops@example.com")
    cred = body["Credentials"]
    assert cred["AccessKeyId"].startswith("STS.") and cred["AccessKeySecret"] and cred["SecurityToken"]
    import time

    from emulator.clock import parse_iso

    # Expiration is in real time (what the SDK compares it with), not the simulated clock's
    assert 43200 - 60 <= parse_iso(cred["Expiration"]) - time.time() <= 43200 + 1


# -- per-key RAM allow list (a second emulator with a keys file) ------------------------------
@pytest.fixture(scope="module")
def restricted_emulator(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    path.write_text(json.dumps([{"access_key_id": "RO_KEY", "access_key_secret": "ro-secret",
                                 "allow": ["ecs:Describe*"], "principal": "readonly"}]))
    with EmulatorProcess(time_scale=1000, extra_args=["--keys-file", str(path)]) as emu:
        yield emu


def test_keys_file_allow_list(restricted_emulator):
    client = _ecs(restricted_emulator, access_key_id="RO_KEY", access_key_secret="ro-secret")
    assert client.describe_regions(ecs_models.DescribeRegionsRequest()).body.regions
    with pytest.raises(TeaException) as err:
        client.create_image(ecs_models.CreateImageRequest(region_id="cn-hangzhou", instance_id="i-nothing"))
    exc = err.value
    assert exc.code == "Forbidden.RAM"
    assert exc.data["statusCode"] == 403
    detail = exc.access_denied_detail  # tea-openapi parses it onto the ClientException
    assert detail == exc.data["AccessDeniedDetail"]
    assert detail["AuthAction"] == "ecs:CreateImage"
    assert detail["AuthPrincipalDisplayName"] == "readonly"
    assert detail["NoPermissionType"] == "ImplicitDeny"
    # the default (unrestricted) key of the same emulator still works for the same call's auth step
    admin = _ecs(restricted_emulator, access_key_id=restricted_emulator.access_key_id,
                 access_key_secret=restricted_emulator.access_key_secret)
    with pytest.raises(TeaException) as err:
        admin.create_image(ecs_models.CreateImageRequest(region_id="cn-hangzhou", instance_id="i-nothing"))
    assert err.value.code != "Forbidden.RAM"
