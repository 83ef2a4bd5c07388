"""RAM policy documents on access keys: Action wildcards, Resource ARNs, Deny over Allow, tag conditions, the
Forbidden.RAM answer."""

from __future__ import annotations

import fnmatch

import pytest
from alibabacloud_ecs20140526 import models as ecs
from hypothesis import given
from hypothesis import strategies as st
from Tea.exceptions import TeaException

from emulator.control import AdminError
from emulator.ram import InvalidPolicy, parse_policy, wildcard_match

MANAGED = {"Key": "ops:managed-by", "Value": "airflow-aliyun-ops"}


def policy(*statements: dict) -> dict:
    return {"Version": "1", "Statement": list(statements)}


@pytest.fixture
def images(emulator, ecs_client):
    emulator.admin.clock(freeze=True)
    emulator.admin.load_fleet({"instances": [{"region": "cn-hangzhou", "count": 1}]})
    client = ecs_client()
    instance = client.describe_instances(ecs.DescribeInstancesRequest(region_id="cn-hangzhou")).body
    iid = instance.instances.instance[0].instance_id
    made = {}
    for name, tags in (("managed", [ecs.CreateImageRequestTag(key=MANAGED["Key"], value=MANAGED["Value"])]),
                       ("foreign", None)):
        made[name] = client.create_image(ecs.CreateImageRequest(region_id="cn-hangzhou", instance_id=iid,
                                                                image_name=f"img-{name}", tag=tags)).body.image_id
    emulator.admin.advance(3600)
    return made


def client_for(emulator, ecs_client, key_id: str, doc: dict):
    emulator.admin.put_keys({"access_key_id": key_id, "access_key_secret": f"{key_id}-secret", "policy": doc})
    return ecs_client(access_key_id=key_id, access_key_secret=f"{key_id}-secret")


def denied(call) -> TeaException:
    with pytest.raises(TeaException) as err:
        call()
    assert err.value.code == "Forbidden.RAM" and err.value.data["statusCode"] == 403
    return err.value


def test_actions_with_wildcards_and_implicit_deny(emulator, ecs_client, images):
    c = client_for(emulator, ecs_client, "ReadOnlyKey", policy({"Effect": "Allow", "Action": "ecs:Describe*",
                                                               "Resource": "*"}))
    assert c.describe_images(ecs.DescribeImagesRequest(region_id="cn-hangzhou")).body.total_count >= 2
    err = denied(lambda: c.delete_image(ecs.DeleteImageRequest(region_id="cn-hangzhou", image_id=images["foreign"])))
    detail = err.data["AccessDeniedDetail"]
    assert detail["AuthAction"] == "ecs:DeleteImage" and detail["NoPermissionType"] == "ImplicitDeny"


def test_deny_wins_over_allow(emulator, ecs_client, images):
    c = client_for(emulator, ecs_client, "DenyKey", policy(
        {"Effect": "Allow", "Action": "ecs:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "ecs:Delete*", "Resource": "*"}))
    err = denied(lambda: c.delete_image(ecs.DeleteImageRequest(region_id="cn-hangzhou", image_id=images["managed"])))
    assert err.data["AccessDeniedDetail"]["NoPermissionType"] == "ExplicitDeny"
    assert c.describe_images(ecs.DescribeImagesRequest(region_id="cn-hangzhou")).body.total_count >= 2


def test_a_tag_condition_lets_only_managed_images_be_deleted(emulator, ecs_client, images):
    c = client_for(emulator, ecs_client, "PruneKey", policy(
        {"Effect": "Allow", "Action": "ecs:DescribeImages", "Resource": "*"},
        {"Effect": "Allow", "Action": "ecs:DeleteImage", "Resource": "acs:ecs:*:*:image/*",
         "Condition": {"StringEquals": {"acs:ResourceTag/ops:managed-by": "airflow-aliyun-ops"}}}))
    denied(lambda: c.delete_image(ecs.DeleteImageRequest(region_id="cn-hangzhou", image_id=images["foreign"])))
    c.delete_image(ecs.DeleteImageRequest(region_id="cn-hangzhou", image_id=images["managed"]))
    # a retry after a lost answer (the image is gone) gets the handler's NotFound, not a RAM denial
    with pytest.raises(TeaException) as err:
        c.delete_image(ecs.DeleteImageRequest(region_id="cn-hangzhou", image_id=images["managed"]))
    assert err.value.code != "Forbidden.RAM"


@pytest.mark.parametrize("doc, match", [
    ({"Version": "2", "Statement": [{"Effect": "Allow", "Action": "*"}]}, "Version"),
    ({"Version": "1", "Statement": []}, "non-empty"),
    ({"Version": "1", "Statement": [{"Effect": "Maybe", "Action": "*"}]}, "Effect"),
    ({"Version": "1", "Statement": [{"Effect": "Allow"}]}, "Action"),
    ({"Version": "1", "Statement": [{"Effect": "Allow", "Action": "DeleteImage"}]}, "product:Action"),
    ({"Version": "1", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "image/*"}]}, "ARN"),
    ({"Version": "1", "Statement": [{"Effect": "Allow", "Action": "*",
                                     "Condition": {"IpAddress": {"acs:SourceIp": "1.2.3.4"}}}]}, "operator"),
    ({"Version": "1", "Statement": [{"Effect": "Allow", "Action": "*", "Bogus": 1}]}, "unknown"),
])
def test_bad_policies_are_refused(emulator, doc, match):
    with pytest.raises(InvalidPolicy, match=match):
        parse_policy(doc)
    with pytest.raises(AdminError, match="policy"):
        emulator.admin.put_keys({"access_key_id": "BadKey", "access_key_secret": "s", "policy": doc})


# -- Resource: the ARNs of what a call names ----------------------------------------------------------------
ACCOUNT = "1234567890123456"


@pytest.fixture
def fleet(emulator):
    """Two Running instances in cn-hangzhou, one in cn-shanghai: ``{"hz": [id, id], "sh": [id]}``."""
    emulator.admin.clock(freeze=True)
    hz = emulator.admin.load_fleet({"instances": [{"region": "cn-hangzhou", "count": 2}]})["instances"]
    sh = emulator.admin.load_fleet({"instances": [{"region": "cn-shanghai", "count": 1}]})["instances"]
    return {"hz": hz, "sh": sh}


def stop(client, region: str, *ids: str):
    return client.stop_instances(ecs.StopInstancesRequest(region_id=region, instance_id=list(ids)))


def statuses(emulator) -> dict[str, str]:
    return {i: rec["Status"] for i, rec in emulator.admin.table("ecs.instances").items()}


def test_a_statement_narrowed_to_images_does_not_authorise_an_instance(emulator, ecs_client, fleet):
    c = client_for(emulator, ecs_client, "ImagesOnly", policy(
        {"Effect": "Allow", "Action": "ecs:*", "Resource": "acs:ecs:*:*:image/*"}))
    err = denied(lambda: c.start_instances(ecs.StartInstancesRequest(region_id="cn-hangzhou",
                                                                     instance_id=[fleet["hz"][0]])))
    detail = err.data["AccessDeniedDetail"]
    assert detail["AuthAction"] == "ecs:StartInstances" and detail["NoPermissionType"] == "ImplicitDeny"
    denied(lambda: c.describe_instances(ecs.DescribeInstancesRequest(region_id="cn-hangzhou")))  # instance/*
    denied(lambda: c.describe_regions(ecs.DescribeRegionsRequest()))   # no resource-level permission: "*" only
    assert c.describe_images(ecs.DescribeImagesRequest(region_id="cn-hangzhou")).body.total_count >= 1  # image/*


def test_a_region_narrowed_arn_allows_that_region_only(emulator, ecs_client, fleet):
    c = client_for(emulator, ecs_client, "HangzhouOnly", policy(
        {"Effect": "Allow", "Action": "ecs:StopInstances", "Resource": "acs:ecs:cn-hangzhou:*:instance/*"}))
    stop(c, "cn-hangzhou", fleet["hz"][0])
    err = denied(lambda: stop(c, "cn-shanghai", fleet["sh"][0]))
    assert err.data["AccessDeniedDetail"]["AuthAction"] == "ecs:StopInstances"
    assert statuses(emulator)[fleet["sh"][0]] == "Running"


def test_an_arn_naming_one_instance_allows_that_instance_only(emulator, ecs_client, fleet):
    mine, other = fleet["hz"]
    c = client_for(emulator, ecs_client, "OneInstance", policy(
        {"Effect": "Allow", "Action": ["ecs:StopInstances"], "Resource": f"acs:ecs:*:{ACCOUNT}:instance/{mine}"}))
    denied(lambda: stop(c, "cn-hangzhou", other))
    # a batch with one id the key may not touch is refused whole: nothing is stopped
    denied(lambda: stop(c, "cn-hangzhou", mine, other))
    assert statuses(emulator)[mine] == statuses(emulator)[other] == "Running"
    stop(c, "cn-hangzhou", mine)
    assert statuses(emulator)[mine] in ("Stopping", "Stopped")


def test_a_narrow_deny_refuses_only_what_it_names(emulator, ecs_client, fleet):
    keep, spare = fleet["hz"]
    c = client_for(emulator, ecs_client, "AllButOne", policy(
        {"Effect": "Allow", "Action": "ecs:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "ecs:Stop*", "Resource": [f"acs:ecs:*:*:instance/{keep}"]}))
    err = denied(lambda: stop(c, "cn-hangzhou", spare, keep))
    assert err.data["AccessDeniedDetail"]["NoPermissionType"] == "ExplicitDeny"
    stop(c, "cn-hangzhou", spare)


def test_every_resource_of_create_image_and_copy_image_must_be_allowed(emulator, ecs_client, fleet):
    iid = fleet["hz"][0]
    c = client_for(emulator, ecs_client, "ImageMaker", policy(
        {"Effect": "Allow", "Action": ["ecs:CreateImage", "ecs:CopyImage"], "Resource": "acs:ecs:*:*:image/*"}))
    request = ecs.CreateImageRequest(region_id="cn-hangzhou", instance_id=iid, image_name="from-instance")
    err = denied(lambda: c.create_image(request))                       # the instance is not covered
    assert err.data["AccessDeniedDetail"]["AuthAction"] == "ecs:CreateImage"
    c = client_for(emulator, ecs_client, "ImageMaker", policy(
        {"Effect": "Allow", "Action": "ecs:CreateImage", "Resource": ["acs:ecs:*:*:image/*", f"acs:ecs:*:*:instance/{iid}"]},
        {"Effect": "Allow", "Action": "ecs:CopyImage", "Resource": "acs:ecs:cn-hangzhou:*:image/*"}))
    image_id = c.create_image(request).body.image_id
    emulator.admin.advance(3600)
    # the copy is a new image in the destination region: a statement on cn-hangzhou's images does not cover it
    denied(lambda: c.copy_image(ecs.CopyImageRequest(region_id="cn-hangzhou", image_id=image_id,
                                                     destination_region_id="cn-shanghai")))
    c = client_for(emulator, ecs_client, "ImageMaker", policy(
        {"Effect": "Allow", "Action": "ecs:CopyImage", "Resource": "acs:ecs:*:*:image/*"}))
    assert c.copy_image(ecs.CopyImageRequest(region_id="cn-hangzhou", image_id=image_id,
                                             destination_region_id="cn-shanghai")).body.image_id


def test_tag_resources_checks_the_type_and_every_id(emulator, ecs_client, images):
    c = client_for(emulator, ecs_client, "Tagger", policy(
        {"Effect": "Allow", "Action": "ecs:TagResources", "Resource": [f"acs:ecs:*:*:image/{images['managed']}",
                                                                      "acs:ecs:*:*:snapshot/*"]}))

    def tag(*ids: str):
        return c.tag_resources(ecs.TagResourcesRequest(region_id="cn-hangzhou", resource_type="image",
                                                       resource_id=list(ids), tag=[ecs.TagResourcesRequestTag(
                                                           key="seen", value="yes")]))

    denied(lambda: tag(images["managed"], images["foreign"]))
    assert "seen" not in (emulator.admin.table("ecs.images")[images["managed"]].get("Tags") or {})
    tag(images["managed"])


@pytest.mark.parametrize("pattern, allowed", [
    ("acs:ecs:*:*:instance/*", False), ("acs:ecs:*:*:*", True), ("*", True),
    (f"acs:ecs:cn-hangzhou:{ACCOUNT}:*", True), ("acs:ecs:cn-beijing:*:*", False), ("acs:vpc:*:*:*", False)])
def test_actions_without_resource_level_permission_need_a_wide_pattern(emulator, ecs_client, pattern, allowed):
    # DescribeAccountAttributes names no resource: it is checked as acs:ecs:<region>:<account>:*
    c = client_for(emulator, ecs_client, "Quotas", policy(
        {"Effect": "Allow", "Action": "ecs:DescribeAccountAttributes", "Resource": pattern}))

    def call():
        return c.describe_account_attributes(ecs.DescribeAccountAttributesRequest(region_id="cn-hangzhou"))

    if allowed:
        assert call().body.account_attribute_items.account_attribute_item
    else:
        denied(call)


def test_rds_instance_arns(emulator, rds_client):
    from alibabacloud_rds20140815 import models as rds

    emulator.admin.load_fleet({"rds_instances": [{"region": "cn-hangzhou", "id": "rm-mine"},
                                                 {"region": "cn-beijing", "id": "rm-theirs"}]})
    emulator.admin.put_keys({"access_key_id": "RdsKey", "access_key_secret": "RdsKey-secret", "policy": policy(
        {"Effect": "Allow", "Action": "rds:DescribeBackups", "Resource": "acs:rds:cn-hangzhou:*:dbinstance/rm-*"},
        {"Effect": "Allow", "Action": "rds:DescribeDBInstances", "Resource": "acs:rds:*:*:dbinstance/*"})})
    c = rds_client(access_key_id="RdsKey", access_key_secret="RdsKey-secret")
    assert c.describe_dbinstances(rds.DescribeDBInstancesRequest(region_id="cn-hangzhou")).body.items
    c.describe_backups(rds.DescribeBackupsRequest(dbinstance_id="rm-mine"))
    with pytest.raises(TeaException) as err:  # the request names no region: the instance's own (cn-beijing) counts
        c.describe_backups(rds.DescribeBackupsRequest(dbinstance_id="rm-theirs"))
    assert err.value.code == "Forbidden.RAM"


# -- OSS: acs:oss:*:<account>:<bucket> and <bucket>/<key> ----------------------------------------------------
def test_oss_bucket_and_object_arns(emulator, oss_client):
    import alibabacloud_oss_v2 as oss

    admin = oss_client()
    for bucket in ("ram-bkt", "ram-other"):
        admin.put_bucket(oss.PutBucketRequest(bucket=bucket))
    admin.put_object(oss.PutObjectRequest(bucket="ram-other", key="secret", body=b"s"))
    emulator.admin.put_keys({"access_key_id": "OssKey", "access_key_secret": "OssKey-secret", "policy": policy(
        {"Effect": "Allow", "Action": ["oss:PutObject", "oss:GetObject", "oss:DeleteObject"],
         "Resource": "acs:oss:*:*:ram-bkt/reports/*"},
        {"Effect": "Allow", "Action": "oss:ListObjects", "Resource": f"acs:oss:*:{ACCOUNT}:ram-bkt"})})
    c = oss_client(access_key_id="OssKey", access_key_secret="OssKey-secret")

    def refused(call) -> None:
        with pytest.raises(oss.exceptions.OperationError) as exc:
            call()
        inner = exc.value.unwrap()
        assert inner.status_code == 403 and inner.code == "AccessDenied", repr(inner)

    c.put_object(oss.PutObjectRequest(bucket="ram-bkt", key="reports/a", body=b"a"))
    assert c.get_object(oss.GetObjectRequest(bucket="ram-bkt", key="reports/a")).body.read() == b"a"
    assert c.list_objects_v2(oss.ListObjectsV2Request(bucket="ram-bkt")).key_count == 1
    refused(lambda: c.put_object(oss.PutObjectRequest(bucket="ram-bkt", key="other/a", body=b"a")))
    refused(lambda: c.list_objects_v2(oss.ListObjectsV2Request(bucket="ram-other")))
    refused(lambda: c.list_buckets(oss.ListBucketsRequest()))                       # acs:oss:*:<account>:*
    # CopyObject reads its source (oss:GetObject on ram-other/secret): refused though the target is allowed
    refused(lambda: c.copy_object(oss.CopyObjectRequest(bucket="ram-bkt", key="reports/copy",
                                                        source_bucket="ram-other", source_key="secret")))
    admin.put_object(oss.PutObjectRequest(bucket="ram-bkt", key="keep", body=b"k"))
    # DeleteMultipleObjects: oss:DeleteObject on every key, before any is deleted
    refused(lambda: c.delete_multiple_objects(oss.DeleteMultipleObjectsRequest(
        bucket="ram-bkt", objects=[oss.DeleteObject(key="reports/a"), oss.DeleteObject(key="keep")])))
    assert admin.list_objects_v2(oss.ListObjectsV2Request(bucket="ram-bkt")).key_count == 2
    c.delete_multiple_objects(oss.DeleteMultipleObjectsRequest(bucket="ram-bkt",
                                                               objects=[oss.DeleteObject(key="reports/a")]))
    assert admin.list_objects_v2(oss.ListObjectsV2Request(bucket="ram-bkt")).key_count == 1


# -- the pure matcher ---------------------------------------------------------------------------------------
LITERAL = st.text(alphabet="ab-_.:/+()[]^$|{}\\", max_size=12)   # ARN characters and regex metacharacters


@given(LITERAL, st.data())
def test_a_wildcard_standing_for_any_part_of_an_arn_matches_it(text, data):
    assert wildcard_match(text, text) and wildcard_match("*", text)
    i = data.draw(st.integers(0, len(text)))
    j = data.draw(st.integers(i, len(text)))
    assert wildcard_match(text[:i] + "*" + text[j:], text)       # "*" spans ":" and "/" too
    if text:
        k = data.draw(st.integers(0, len(text) - 1))
        assert wildcard_match(text[:k] + "?" + text[k + 1:], text)


@given(LITERAL, LITERAL)
def test_without_wildcards_only_the_same_text_matches(pattern, text):
    assert wildcard_match(pattern, text) == (pattern == text)


@given(st.text(alphabet="ab:/*?", max_size=8), st.text(alphabet="abAB:/", max_size=8))
def test_wildcards_mean_what_fnmatch_means_without_brackets(pattern, text):
    assert wildcard_match(pattern, text) == fnmatch.fnmatchcase(text, pattern)   # case-sensitive
