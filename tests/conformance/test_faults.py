"""Fault injection through the admin API: drop_after (executed, then no answer), corrupt (an upload's
body damaged in transit) and config validation."""

from __future__ import annotations

import base64
import hashlib

import alibabacloud_oss_v2 as oss
import crcmod
import pytest
from alibabacloud_ecs20140526 import models as m
from darabonba.policy.retry import RetryOptions
from Tea.exceptions import TeaException, UnretryableException

from emulator.control import AdminError

from .helpers import api_error, fleet

_crc64 = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True)
HZ = "cn-hangzhou"
BUCKET = "faults-bkt"
# the SDK's own retry, on connection errors only (darabonba names them RetryError)
SDK_RETRY = RetryOptions({"retryable": True, "retryCondition": [
    {"exception": ["RetryError"], "maxAttempts": 3, "backoff": {"policy": "Fixed", "period": 10}}]})


def dropped(emulator, action: str, code: str = "ConnectionDroppedAfter") -> int:
    return sum(1 for c in emulator.admin.calls()["recent"] if c["action"] == action and c["code"] == code)


def status_of(client, instance_id: str) -> str:
    (inst,) = client.describe_instances(m.DescribeInstancesRequest(
        region_id=HZ, instance_ids=f'["{instance_id}"]')).body.instances.instance
    return inst.status


def start(client, instance_id: str):
    return client.start_instances(m.StartInstancesRequest(region_id=HZ, instance_id=[instance_id]))


# -- drop_after ------------------------------------------------------------------------------
def test_drop_after_executes_the_call_then_gives_no_answer(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": HZ, "status": "Stopped"}])["instances"]
    frozen.admin.set_faults({"rules": [{"action": "ecs:StartInstances", "kind": "drop_after", "count": 1}]})
    client = ecs_client()  # no retry_options: the SDK makes one attempt
    with pytest.raises(UnretryableException) as err:
        start(client, iid)
    assert "Remote end closed connection without response" in str(err.value)
    assert status_of(client, iid) == "Starting"  # the start happened, only its answer was lost
    frozen.admin.advance(40)
    assert status_of(client, iid) == "Running"
    assert dropped(frozen, "ecs:StartInstances") == 1
    assert frozen.admin.calls()["counters"]["ecs:StartInstances"] == {"calls": 1, "errors": 0, "codes": {}}


def test_drop_after_then_sdk_retry_gets_incorrect_instance_status(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": HZ, "status": "Stopped"}])["instances"]
    frozen.admin.set_faults({"rules": [{"action": "ecs:StartInstances", "kind": "drop_after", "count": 1}]})
    client = ecs_client(retry_options=SDK_RETRY)
    # the retry reaches an instance that is already Starting, as on the real cloud
    assert api_error(start, client, iid) == ("IncorrectInstanceStatus", 403)
    assert status_of(client, iid) == "Starting"
    recent = [c for c in frozen.admin.calls()["recent"] if c["action"] == "ecs:StartInstances"]
    assert [(c["status"], c["code"]) for c in recent] == [(0, "ConnectionDroppedAfter"),
                                                          (403, "IncorrectInstanceStatus")]


def test_drop_does_not_execute_the_call(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": HZ, "status": "Stopped"}])["instances"]
    frozen.admin.set_faults({"rules": [{"action": "ecs:StartInstances", "kind": "drop", "count": 1}]})
    client = ecs_client()
    with pytest.raises(UnretryableException):
        start(client, iid)
    assert status_of(client, iid) == "Stopped"
    assert dropped(frozen, "ecs:StartInstances", "ConnectionDropped") == 1
    start(client, iid)  # the rule is spent
    assert status_of(client, iid) == "Starting"


def test_drop_after_by_rate_fails_even_an_error_answer(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": HZ, "status": "Running"}])["instances"]
    frozen.admin.set_faults({"rules": [{"action": "ecs:Start*", "kind": "drop_after", "rate": 1.0}]})
    client = ecs_client()
    for _ in range(2):  # IncorrectInstanceStatus (Running) is computed, then lost with the connection
        with pytest.raises(UnretryableException):
            start(client, iid)
    assert dropped(frozen, "ecs:StartInstances") == 2
    assert status_of(client, iid) == "Running"


def test_oss_drop_after_stores_the_object(emulator, oss_client):
    client = oss_client()
    client.put_bucket(oss.PutBucketRequest(bucket=BUCKET))
    emulator.admin.set_faults({"rules": [{"action": "oss:PutObject", "kind": "drop_after", "count": 1},
                                         {"action": "oss:GetObject", "kind": "drop_after", "count": 1}]})
    no_retry = oss.retry.NopRetryer()
    with pytest.raises(oss.exceptions.OperationError) as err:
        client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="k", body=b"payload"), retryer=no_retry)
    assert isinstance(err.value.unwrap(), oss.exceptions.RequestError)  # no answer, not an error answer
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="k"))
    assert head.content_length == 7  # stored, though the client never heard so
    with pytest.raises(oss.exceptions.OperationError) as err:  # GetObject is cut before its body
        client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="k"), retryer=no_retry)
    assert isinstance(err.value.unwrap(), oss.exceptions.RequestError)
    assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="k")).body.read() == b"payload"
    assert dropped(emulator, "oss:PutObject") == 1 and dropped(emulator, "oss:GetObject") == 1


# -- corrupt ---------------------------------------------------------------------------------
def _flipped(data: bytes) -> bytes:
    return bytes([data[0] ^ 0xFF]) + data[1:]


def _etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest().upper() + '"'


def corrupted(emulator, action: str) -> int:
    return dropped(emulator, action, "BodyCorrupted")


@pytest.fixture
def bucket_client(oss_client):
    client = oss_client()
    client.put_bucket(oss.PutBucketRequest(bucket=BUCKET))
    return client


def _part(client, upload_id: str, body: bytes, **kw):
    return client.upload_part(oss.UploadPartRequest(bucket=BUCKET, key="mp", upload_id=upload_id, part_number=1,
                                                    body=body, **kw))


def test_corrupt_upload_part_fails_the_sdk_crc_check_on_every_attempt(emulator, bucket_client):
    client = bucket_client
    init = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=BUCKET, key="mp"))
    emulator.admin.set_faults({"rules": [{"action": "oss:UploadPart", "kind": "corrupt", "rate": 1.0}]})
    data = b"part payload"
    with pytest.raises(oss.exceptions.OperationError) as err:
        _part(client, init.upload_id, data)
    inner = err.value.unwrap()
    assert isinstance(inner, oss.exceptions.InconsistentError)  # the SDK's own CRC64 check, retried then raised
    assert str(_crc64(data)) in str(inner) and str(_crc64(_flipped(data))) in str(inner)
    assert corrupted(emulator, "oss:UploadPart") == 3  # the SDK's default retryer: 3 attempts, each corrupted
    (part,) = client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key="mp", upload_id=init.upload_id)).parts
    assert part.size == len(data) and part.etag == _etag(_flipped(data)) != _etag(data)
    assert part.hash_crc64 == str(_crc64(_flipped(data)))


def test_corrupt_once_is_healed_by_the_sdk_retry(emulator, bucket_client):
    client = bucket_client
    init = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=BUCKET, key="mp"))
    emulator.admin.set_faults({"rules": [{"action": "oss:UploadPart", "kind": "corrupt", "count": 1}]})
    data = bytes(range(256)) * 512
    res = _part(client, init.upload_id, data)
    assert res.hash_crc64 == str(_crc64(data)) and res.etag == _etag(data)
    recent = [c for c in emulator.admin.calls()["recent"] if c["action"] == "oss:UploadPart"]
    assert [(c["status"], c["code"]) for c in recent] == [(200, "BodyCorrupted"), (200, None)]
    (part,) = client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key="mp", upload_id=init.upload_id)).parts
    assert part.etag == _etag(data) and part.hash_crc64 == str(_crc64(data))
    client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
        bucket=BUCKET, key="mp", upload_id=init.upload_id,
        complete_multipart_upload=oss.CompleteMultipartUpload(parts=[oss.UploadPart(part_number=1,
                                                                                    etag=res.etag)])))
    assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="mp")).body.read() == data


def test_corrupt_put_object_without_retry_stores_the_damaged_bytes(emulator, bucket_client):
    client = bucket_client
    emulator.admin.set_faults({"rules": [{"action": "oss:*", "kind": "corrupt", "count": 2}]})
    # an empty body stays empty (the rule still counts the call; not logged as corrupted)
    assert client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="empty", body=b"")).hash_crc64 == "0"
    assert corrupted(emulator, "oss:PutObject") == 0
    with pytest.raises(oss.exceptions.OperationError) as err:
        client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="k", body=b"abc"),
                          retryer=oss.retry.NopRetryer())
    assert isinstance(err.value.unwrap(), oss.exceptions.InconsistentError)
    assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="k")).body.read() == _flipped(b"abc")
    assert corrupted(emulator, "oss:PutObject") == 1
    # the rule is spent: the next upload arrives intact
    client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="k", body=b"abc"))
    assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="k")).body.read() == b"abc"


def test_corrupt_rule_is_not_spent_by_calls_it_cannot_corrupt(emulator, bucket_client):
    client = bucket_client
    emulator.admin.set_faults({"rules": [{"action": "*", "kind": "corrupt", "count": 1}]})
    client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET))
    client.get_bucket_info(oss.GetBucketInfoRequest(bucket=BUCKET))
    assert emulator.admin.request("GET", "faults")["rules"][0]["count"] == 1
    # the SDK's append_object makes no CRC check of its own: the damage shows in the answer's CRC
    res = client.append_object(oss.AppendObjectRequest(bucket=BUCKET, key="log", position=0, body=b"xyz"))
    assert res.hash_crc64 == str(_crc64(_flipped(b"xyz"))) != str(_crc64(b"xyz"))
    assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="log")).body.read() == _flipped(b"xyz")
    assert emulator.admin.request("GET", "faults")["rules"][0]["count"] == 0


def test_corrupt_body_with_content_md5_is_refused(emulator, bucket_client):
    client = bucket_client
    emulator.admin.set_faults({"rules": [{"action": "oss:PutObject", "kind": "corrupt", "count": 1}]})
    md5 = base64.b64encode(hashlib.md5(b"abc").digest()).decode()
    with pytest.raises(oss.exceptions.OperationError) as err:
        client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="k", body=b"abc", content_md5=md5),
                          retryer=oss.retry.NopRetryer())
    inner = err.value.unwrap()
    assert isinstance(inner, oss.exceptions.ServiceError)
    assert (inner.code, inner.status_code) == ("InvalidDigest", 400)
    assert not client.is_object_exist(BUCKET, "k")


def test_corrupt_rule_on_a_call_without_upload_body_is_refused(emulator):
    with pytest.raises(AdminError) as err:
        emulator.admin.set_faults({"rules": [{"action": "ecs:CreateImage", "kind": "corrupt", "rate": 1.0}]})
    assert err.value.status == 400 and err.value.body["Code"] == "InvalidFaultConfig"
    assert "corrupt" in err.value.body["Message"] and "oss:UploadPart" in err.value.body["Message"]


# -- skip, resource_ids, dry_run: aiming a rule at one call ----------------------------------------
def start_one(client, instance_id: str, dry_run: bool = False):
    return client.start_instance(m.StartInstanceRequest(instance_id=instance_id, dry_run=dry_run))


def stop_one(client, instance_id: str):
    return client.stop_instance(m.StopInstanceRequest(instance_id=instance_id, force_stop=True))


def start_calls(emulator) -> list[tuple[int, str | None, dict | None]]:
    return [(c["status"], c["code"], c["fault"]) for c in emulator.admin.calls()["recent"]
            if c["action"] == "ecs:StartInstance"]


def faults_left(emulator) -> dict:
    (rule,) = emulator.admin.request("GET", "faults")["rules"]
    return {k: rule[k] for k in ("skip", "count") if k in rule}


def test_rule_aimed_at_the_second_start_of_one_instance(frozen, ecs_client):
    target, other = fleet(frozen, instances=[{"region": HZ, "status": "Stopped", "count": 2}])["instances"]
    frozen.admin.set_faults({"rules": [{"action": "ecs:StartInstance", "kind": "error", "status": 503,
                                        "skip": 1, "count": 1, "resource_ids": [target]}]})
    client = ecs_client()
    start_one(client, other)                  # another instance: does not match, consumes nothing
    assert faults_left(frozen) == {"skip": 1, "count": 1}
    start_one(client, target)                 # 1st matching call: skipped
    assert faults_left(frozen) == {"skip": 0, "count": 1}
    frozen.admin.advance(40)
    stop_one(client, target)
    frozen.admin.advance(10)
    with pytest.raises(TeaException) as err:  # 2nd matching call: faulted
        start_one(client, target)
    assert (err.value.code, err.value.status_code) == ("ServiceUnavailable", 503)
    assert status_of(client, target) == "Stopped"
    start_one(client, target)                 # the rule is spent
    assert faults_left(frozen) == {"skip": 0, "count": 0}
    fault = {"rule": 0, "kind": "error", "resource_ids": [target]}
    assert start_calls(frozen) == [(200, None, None), (200, None, None), (503, "ServiceUnavailable", fault),
                                   (200, None, None)]


def test_resource_ids_match_every_id_form_of_a_call(frozen, ecs_client):
    a, b = fleet(frozen, instances=[{"region": HZ, "status": "Stopped", "count": 2}])["instances"]
    frozen.admin.set_faults({"rules": [{"action": "ecs:*", "kind": "throttle", "rate": 1.0, "resource_ids": [b]}]})
    client = ecs_client()
    # InstanceIds as a JSON array, InstanceId.N, a plain InstanceId: each names b
    assert api_error(client.describe_instances, m.DescribeInstancesRequest(
        region_id=HZ, instance_ids=f'["{a}", "{b}"]')) == ("Throttling.User", 400)
    assert api_error(start, client, b) == ("Throttling.User", 400)
    assert api_error(start_one, client, b) == ("Throttling.User", 400)
    assert api_error(client.tag_resources, m.TagResourcesRequest(
        region_id=HZ, resource_type="instance", resource_id=[a, b],
        tag=[m.TagResourcesRequestTag(key="k", value="v")])) == ("Throttling.User", 400)
    # calls that do not name b go through
    client.describe_instances(m.DescribeInstancesRequest(region_id=HZ, instance_ids=f'["{a}"]'))
    client.describe_instances(m.DescribeInstancesRequest(region_id=HZ))
    start(client, a)


def test_oss_rule_by_bucket_and_key(emulator, bucket_client):
    client = bucket_client
    emulator.admin.set_faults({"rules": [{"action": "oss:PutObject", "kind": "error", "status": 500, "count": 1,
                                          "resource_ids": ["target-key"]}]})
    client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="other-key", body=b"x"))
    assert emulator.admin.request("GET", "faults")["rules"][0]["count"] == 1
    with pytest.raises(oss.exceptions.OperationError) as err:
        client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="target-key", body=b"x"),
                          retryer=oss.retry.NopRetryer())
    assert err.value.unwrap().status_code == 500
    emulator.admin.set_faults({"rules": [{"action": "oss:*", "kind": "error", "status": 503, "rate": 1.0,
                                          "resource_ids": [BUCKET]}]})
    with pytest.raises(oss.exceptions.OperationError):
        client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="other-key"), retryer=oss.retry.NopRetryer())
    client.list_buckets(oss.ListBucketsRequest())  # names no bucket


def test_dry_run_false_is_neither_triggered_nor_consumed_by_the_permission_check(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": HZ, "status": "Stopped"}])["instances"]
    frozen.admin.set_faults({"rules": [{"action": "ecs:StartInstance", "kind": "drop_after", "count": 1,
                                        "dry_run": False, "resource_ids": [iid]}]})
    client = ecs_client()
    # the permission check our hooks send first (hooks/ecs.py check_allowed): DryRun answers as usual
    assert api_error(start_one, client, iid, dry_run=True) == ("DryRunOperation", 400)
    assert faults_left(frozen) == {"count": 1}
    with pytest.raises(UnretryableException):  # the real call: executed, its answer lost
        start_one(client, iid)
    assert status_of(client, iid) == "Starting"
    assert faults_left(frozen) == {"count": 0}
    assert start_calls(frozen) == [
        (400, "DryRunOperation", None),
        (0, "ConnectionDroppedAfter", {"rule": 0, "kind": "drop_after", "resource_ids": [iid]})]


def test_without_dry_run_the_permission_check_consumes_the_rule(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": HZ, "status": "Stopped"}])["instances"]
    frozen.admin.set_faults({"rules": [{"action": "ecs:StartInstance", "kind": "drop", "count": 1}]})
    client = ecs_client()
    with pytest.raises(UnretryableException):  # today's behaviour: the DryRun call is the one dropped
        start_one(client, iid, dry_run=True)
    start_one(client, iid)
    assert status_of(client, iid) == "Starting"
    assert [c[:2] for c in start_calls(frozen)] == [(0, "ConnectionDropped"), (200, None)]


def test_dry_run_true_faults_only_dry_run_calls(frozen, ecs_client):
    (iid,) = fleet(frozen, instances=[{"region": HZ, "status": "Stopped"}])["instances"]
    frozen.admin.set_faults({"rules": [{"action": "ecs:StartInstance", "kind": "error", "status": 403,
                                        "code": "Forbidden.RAM", "rate": 1.0, "dry_run": True}]})
    client = ecs_client()
    assert api_error(start_one, client, iid, dry_run=True) == ("Forbidden.RAM", 403)
    start_one(client, iid)
    assert status_of(client, iid) == "Starting"


def test_skip_with_rate_draws_after_the_skipped_calls(frozen, ecs_client):
    frozen.admin.set_faults({"rules": [{"action": "ecs:DescribeRegions", "kind": "throttle", "rate": 1.0,
                                        "skip": 2}]})
    client = ecs_client()
    for _ in range(2):
        client.describe_regions(m.DescribeRegionsRequest())
    for _ in range(2):
        assert api_error(client.describe_regions, m.DescribeRegionsRequest()) == ("Throttling.User", 400)


def test_a_skipping_rule_lets_the_next_rule_decide(frozen, ecs_client):
    frozen.admin.set_faults({"rules": [
        {"action": "ecs:DescribeRegions", "kind": "error", "status": 500, "count": 1, "skip": 1},
        {"action": "ecs:DescribeRegions", "kind": "throttle", "count": 1}]})
    client = ecs_client()
    assert api_error(client.describe_regions, m.DescribeRegionsRequest()) == ("Throttling.User", 400)
    with pytest.raises(TeaException) as err:
        client.describe_regions(m.DescribeRegionsRequest())
    assert err.value.code == "InternalError"
    client.describe_regions(m.DescribeRegionsRequest())


# -- validation ------------------------------------------------------------------------------
GOOD = {"rules": [{"action": "ecs:StartInstances", "kind": "throttle", "count": 2, "retry_after_ms": 50}]}

VALID = [
    {},
    GOOD,
    {"seed": 7,
     "rules": [{"action": "ecs:CreateImage", "kind": "throttle", "count": 2, "retry_after_ms": 500},
               {"action": "ecs:Describe*", "kind": "error", "status": 503, "rate": 0.1},
               {"action": "ecs:DescribeImages", "kind": "error", "status": 403, "code": "Forbidden.RAM",
                "message": "denied", "count": 50},
               {"action": "*", "kind": "drop", "rate": 0.01},
               {"action": "oss:PutObject", "kind": "drop_after", "count": 0}],
     "qps": {"ecs:DescribeImages": 20, "ecs:*": 0.5},
     "image_create_fail": {"rate": 0.0, "instance_ids": ["i-1"]},
     "copy_fail": {"rate": 0.5, "regions": ["cn-beijing"]},
     "rds_backup_fail": {"rate": 1.0, "instance_ids": ["rm-1"]},
     "slow_regions": {"cn-beijing": 3.0, "cn-shanghai": 0},
     "image_quota": {"cn-hangzhou": 100}},
    {"image_quota": 1000, "copy_fail": {"regions": ["cn-shenzhen"]}, "rds_backup_fail": {"rate": 1.0}},
    {"rules": [{"action": "ecs:StartInstance", "kind": "drop_after", "count": 1, "skip": 1,
                "resource_ids": ["i-1", "i-2"], "dry_run": False},
               {"action": "ecs:StartInstance", "kind": "throttle", "rate": 0.5, "skip": 0, "dry_run": True},
               {"action": "oss:PutObject", "kind": "corrupt", "count": 1, "resource_ids": ["bkt", "key"]}]},
    {"rules": [{"action": "oss:UploadPart", "kind": "corrupt", "count": 1},
               {"action": "oss:*", "kind": "corrupt", "rate": 0.5},
               {"action": "*", "kind": "corrupt", "rate": 0.01}]},
]

INVALID = [
    ({"rules": [{"action": "ecs:StartInstances", "kind": "explode", "count": 1}]}, "rules[0].kind"),
    ({"rules": [{"action": "ecs:StartInstances", "count": 1}]}, "rules[0].kind"),
    ({"rulez": []}, "rulez"),
    ({"rules": [GOOD["rules"][0], {"action": "ecs:StartInstances", "kind": "drop", "count": 1, "rate": 0.5}]},
     "rules[1] needs exactly one of count"),
    ({"rules": [{"action": "ecs:StartInstances", "kind": "drop"}]}, "rules[0] needs exactly one of count"),
    ({"rules": [{"action": "ecs:StartInstances", "kind": "drop", "rate": 1.5}]}, "rules[0].rate"),
    ({"rules": [{"action": "ecs:StartInstances", "kind": "drop", "rate": -0.1}]}, "rules[0].rate"),
    ({"rules": [{"action": "ecs:StartInstances", "kind": "drop", "rate": True}]}, "rules[0].rate"),
    ({"rules": [{"action": "ecs:StartInstances", "kind": "drop", "count": 1.5}]}, "rules[0].count"),
    ({"rules": [{"action": "ecs:StartInstances", "kind": "drop", "count": "2"}]}, "rules[0].count"),
    ({"rules": [{"action": "ecs:StartInstances", "kind": "drop", "count": -1}]}, "rules[0].count"),
    ({"rules": [{"action": "ecs:StartInstances", "kind": "error", "status": 200, "count": 1}]}, "rules[0].status"),
    ({"rules": [{"action": "ecs:StartInstances", "kind": "error", "status": 600, "count": 1}]}, "rules[0].status"),
    ({"rules": [{"action": "ecs:StartInstances", "kind": "error", "status": "503", "count": 1}]},
     "rules[0].status"),
    ({"rules": [{"action": "ecs:StartInstances", "kind": "throttle", "status": 503, "count": 1}]}, "status"),
    ({"rules": [{"action": "ecs:StartInstances", "kind": "error", "count": 1, "cont": 2}]}, "cont"),
    ({"rules": [{"action": "ecs:StartInstances", "kind": "throttle", "count": 1, "retry_after_ms": 0.5}]},
     "rules[0].retry_after_ms"),
    ({"rules": ["drop everything"]}, "rules[0] must be an object"),
    ({"rules": {"action": "*"}}, "rules must be a list"),
    ({"rules": [{"kind": "drop", "count": 1}]}, "rules[0].action"),
    ({"rules": [{"action": "StartInstances", "kind": "drop", "count": 1}]}, "rules[0].action"),
    ({"rules": [{"action": "ecs:StartInstancez", "kind": "drop", "count": 1}]}, "rules[0].action"),
    ({"rules": [{"action": "ecs:CreateImage", "kind": "corrupt", "count": 1}]},
     "rules[0].action 'ecs:CreateImage' matches no call kind corrupt can act on"),
    ({"rules": [{"action": "oss:Get*", "kind": "corrupt", "rate": 1.0}]}, "only of oss:PutObject"),
    ({"rules": [{"action": "oss:PutObject", "kind": "corrupt", "count": 1, "status": 500}]}, "status"),
    ({"rules": [{"action": "ecs:StartInstance", "kind": "drop", "count": 1, "skip": -1}]}, "rules[0].skip"),
    ({"rules": [{"action": "ecs:StartInstance", "kind": "drop", "count": 1, "skip": 1.5}]}, "rules[0].skip"),
    ({"rules": [{"action": "ecs:StartInstance", "kind": "drop", "count": 1, "skip": "1"}]}, "rules[0].skip"),
    ({"rules": [{"action": "ecs:StartInstance", "kind": "drop", "count": 1, "skip": True}]}, "rules[0].skip"),
    ({"rules": [{"action": "ecs:StartInstance", "kind": "drop", "count": 1, "resource_ids": []}]},
     "rules[0].resource_ids"),
    ({"rules": [{"action": "ecs:StartInstance", "kind": "drop", "count": 1, "resource_ids": "i-1"}]},
     "rules[0].resource_ids"),
    ({"rules": [{"action": "ecs:StartInstance", "kind": "drop", "count": 1, "resource_ids": ["i-1", ""]}]},
     "rules[0].resource_ids"),
    ({"rules": [{"action": "ecs:StartInstance", "kind": "drop", "count": 1, "resource_ids": ["i-1", 7]}]},
     "rules[0].resource_ids"),
    ({"rules": [{"action": "ecs:StartInstance", "kind": "drop", "count": 1, "dry_run": "false"}]},
     "rules[0].dry_run"),
    ({"rules": [{"action": "ecs:StartInstance", "kind": "drop", "count": 1, "dry_run": 0}]}, "rules[0].dry_run"),
    ({"rules": [{"action": "ecs:StartInstance", "kind": "drop", "count": 1, "resource_id": ["i-1"]}]},
     "resource_id"),
    ({"rules": [{"action": "ecs:StartInstance", "kind": "drop", "count": 1, "dryrun": False}]}, "dryrun"),
    ({"seed": "seven"}, "seed"),
    ({"qps": {"ecs:DescribeImages": 0}}, "qps.ecs:DescribeImages"),
    ({"qps": {"DescribeImages": 5}}, "qps key"),
    ({"qps": [20]}, "qps must be an object"),
    ({"image_create_fail": {"rate": 2}}, "image_create_fail.rate"),
    ({"image_create_fail": {"instance_ids": "i-1"}}, "image_create_fail.instance_ids"),
    ({"image_create_fail": {"instances": ["i-1"]}}, "image_create_fail has unknown key"),
    ({"copy_fail": {"regions": ["cn-hangzou"]}}, "copy_fail.regions"),
    ({"rds_backup_fail": {"instance_ids": ["rm-1"]}}, "rds_backup_fail.rate"),
    ({"slow_regions": {"cn-beijing": "3"}}, "slow_regions.cn-beijing"),
    ({"slow_regions": {"cn-beijing": -1}}, "slow_regions.cn-beijing"),
    ({"slow_regions": {"mars-1": 2}}, "slow_regions has unknown key"),
    ({"slow_regions": [["cn-beijing", 3]]}, "slow_regions must be an object"),
    ({"image_quota": 10.5}, "image_quota"),
    ({"image_quota": {"cn-hangzhou": -1}}, "image_quota.cn-hangzhou"),
]


@pytest.mark.parametrize("cfg", VALID)
def test_valid_configs_are_accepted_as_written(emulator, cfg):
    emulator.admin.set_faults(cfg)
    assert emulator.admin.request("GET", "faults") == {"rules": [], **cfg}


@pytest.mark.parametrize(("cfg", "mentions"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_config_is_refused_and_previous_stays(emulator, cfg, mentions):
    emulator.admin.set_faults(GOOD)
    with pytest.raises(AdminError) as err:
        emulator.admin.set_faults(cfg)
    assert err.value.status == 400
    assert err.value.body["Code"] == "InvalidFaultConfig"
    assert mentions in err.value.body["Message"]
    assert emulator.admin.request("GET", "faults") == GOOD


def test_previous_config_stays_in_force(emulator, ecs_client):
    emulator.admin.set_faults({"rules": [{"action": "ecs:DescribeRegions", "kind": "throttle", "count": 1}]})
    with pytest.raises(AdminError):
        emulator.admin.set_faults({"rules": [{"action": "ecs:DescribeRegions", "kind": "drop"}]})
    with pytest.raises(TeaException) as err:
        ecs_client().describe_regions(m.DescribeRegionsRequest())
    assert err.value.code == "Throttling.User"


def test_fractional_qps_lets_a_call_through(emulator, ecs_client):
    emulator.admin.set_faults({"qps": {"ecs:DescribeRegions": 0.5}})  # one call per 2 s, never none
    client = ecs_client()
    assert client.describe_regions(m.DescribeRegionsRequest()).body.regions
    with pytest.raises(TeaException) as err:
        client.describe_regions(m.DescribeRegionsRequest())
    assert err.value.code == "Throttling.User"


@pytest.mark.parametrize(("cfg", "named"), [
    ({"rules": [{"action": "ecs:StartInstance", "kind": "explode", "count": 1}]}, "'explode'"),
    ({"rules": [{"action": "ecs:StartInstance", "kind": "drop", "count": 1, "sikp": 1}]}, "sikp"),
    ({"rules": [], "rulez": []}, "rulez"),
    ({"rules": [{"action": "ecs:StartInstancez", "kind": "drop", "count": 1}]}, "'ecs:StartInstancez'"),
    ({"rules": [{"action": "rds:StartInstance", "kind": "drop", "count": 1}]}, "'rds:StartInstance'"),
], ids=["kind", "rule-field", "top-level-key", "action", "action-of-another-product"])
def test_a_config_mistake_is_refused_naming_it_never_answered_with_503(frozen, ecs_client, cfg, named):
    (iid,) = fleet(frozen, instances=[{"region": HZ, "status": "Stopped"}])["instances"]
    with pytest.raises(AdminError) as err:
        frozen.admin.set_faults(cfg)
    assert (err.value.status, err.value.body["Code"]) == (400, "InvalidFaultConfig")
    assert named in err.value.body["Message"]
    start_one(ecs_client(), iid)  # nothing was installed: the call is served
    assert start_calls(frozen) == [(200, None, None)]
