"""A missing RAM permission: named in the error, never retried by Airflow, and checked before a step whose undo
needs it (stop -> StartInstances, a temporary instance -> DescribeInstances + DeleteInstance)."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from aliyun_ops.exceptions import AliyunApiError, AliyunPermissionError
from aliyun_ops.hooks.ecs import EcsHook
from aliyun_ops.operators.ecs_instances import RunInstancesOperator, StopInstancesOperator

HZ = "cn-hangzhou"


class FakeTI:
    dag_id, task_id, map_index, try_number = "perm_dag", "task", -1, 1

    def xcom_push(self, key, value):
        pass


def ctx():
    return {"ti": FakeTI(), "run_id": "manual__1", "task_state_store": None}


def limited(emulator, aliyun_env, name: str, *actions: str):
    """The aliyun_default connection now uses a key allowed only ``actions``."""
    emulator.admin.put_keys({"access_key_id": name, "access_key_secret": f"{name}-secret", "policy": {
        "Version": "1", "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]}})
    aliyun_env(access_key_id=name, access_key_secret=f"{name}-secret", max_attempts=1)


def calls(emulator, action):
    return emulator.admin.calls()["counters"].get(f"ecs:{action}", {}).get("calls", 0)


@pytest.fixture
def running(aliyun_env, emulator):
    emulator.admin.load_fleet({"instances": [{"region": HZ, "count": 2, "status": "Running"}]})
    emulator.admin.clear_calls()
    return list(emulator.admin.table("ecs.instances"))


def test_the_error_names_the_permission_and_fails_without_retries(running, emulator, aliyun_env):
    limited(emulator, aliyun_env, "ReadNothing", "ecs:DescribeRegions")
    with pytest.raises(AliyunPermissionError) as err:
        EcsHook(region=HZ).describe_instances(HZ)
    assert isinstance(err.value, AliyunApiError) and isinstance(err.value, AirflowFailException)
    assert "missing RAM permission: ecs:DescribeInstances (ImplicitDeny)" in str(err.value)
    assert calls(emulator, "DescribeInstances") == 1


def test_nothing_is_stopped_that_could_not_be_started_again(running, emulator, aliyun_env):
    limited(emulator, aliyun_env, "StopOnly", "ecs:DescribeInstances", "ecs:StopInstances")
    op = StopInstancesOperator(task_id="stop", instances=running, region=HZ, poll_interval=0.1, deferrable=False)
    with pytest.raises(Exception, match="ecs:StartInstances"):
        op.execute(ctx())
    assert calls(emulator, "StopInstances") == 0
    assert {r["Status"] for r in emulator.admin.table("ecs.instances").values()} == {"Running"}


@pytest.mark.parametrize("missing", ["ecs:DeleteInstance", "ecs:DescribeInstances"])
def test_no_temporary_instance_is_made_that_could_not_be_watched_and_released(emulator, aliyun_env, missing):
    allowed = {"ecs:RunInstances", "ecs:DescribeInstances", "ecs:DeleteInstance", "ecs:DescribeVSwitches",
               "vpc:DescribeVSwitches", "ecs:DescribeSecurityGroups", "ecs:DescribeImages"} - {missing}
    limited(emulator, aliyun_env, "NoUndo" + missing.split(":")[1], *sorted(allowed))
    op = RunInstancesOperator(task_id="run", image_id="aliyun_3_x64_20G_alibase_20240819.vhd",
                              instance_type="ecs.g7.large", region=HZ)
    with pytest.raises(AliyunPermissionError, match=missing):
        op.execute(ctx())
    assert calls(emulator, "RunInstances") == 0 and emulator.admin.table("ecs.instances") == {}


@pytest.mark.parametrize("effect, kind", [("Allow", "ImplicitDeny"), ("Deny", "ExplicitDeny")])
def test_an_oss_denial_names_the_permission_too(emulator, aliyun_env, effect, kind):
    """OSS answers ``AccessDenied`` with an ``AccessDeniedDetail`` body; the SDK drops it, the hook reads it."""
    from aliyun_ops.hooks.oss import OssHook

    emulator.admin.load_fleet({"buckets": [{"name": "perm-archive", "region": HZ}]})
    statements = [{"Effect": "Allow", "Action": ["oss:GetBucketInfo", "oss:GetObject"], "Resource": "*"}]
    if effect == "Deny":
        statements += [{"Effect": "Allow", "Action": "oss:*", "Resource": "*"},
                       {"Effect": "Deny", "Action": "oss:PutObject", "Resource": "*"}]
    emulator.admin.put_keys({"access_key_id": "NoPut", "access_key_secret": "NoPut-secret",
                             "policy": {"Version": "1", "Statement": statements}})
    aliyun_env(access_key_id="NoPut", access_key_secret="NoPut-secret", max_attempts=1)
    with pytest.raises(AliyunPermissionError) as err:
        OssHook().put_json("perm-archive", "manifests/x.json", {"a": 1})
    assert f"[missing RAM permission: oss:PutObject ({kind})]" in str(err.value)
    assert not emulator.admin.table("oss.objects")
