"""RAM policy documents on access keys: Action wildcards, Deny over Allow, tag conditions, the Forbidden.RAM answer."""

from __future__ import annotations

import pytest
from alibabacloud_ecs20140526 import models as ecs
from Tea.exceptions import TeaException

from emulator.control import AdminError
from emulator.ram import InvalidPolicy, parse_policy

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
