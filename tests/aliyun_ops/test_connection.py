"""The ``aliyun`` connection: settings parsing, credentials modes, endpoint override, UI metadata,
provider registration and ``test_connection`` against the emulator.

Every credential mode is exercised against the emulator: AccessKey, STS token, RAM role ARN (AssumeRole with
session name and duration, refreshed before expiry over a long wait), ECS instance RAM role (the emulator's
metadata service) and the default chain; secrets stay out of reprs, log lines and error messages, and Airflow's
secrets masker knows them (connection secrets and the temporary keys the SDK fetches)."""

from __future__ import annotations

import json
import logging

import pytest

from aliyun_ops.hooks.base import AliyunBaseHook, ConnectionSettings, build_credential_client

SECRET = "super-secret-value-1234567890"


# -- settings parsing ---------------------------------------------------------------------------

def test_keys_from_extras():
    s = ConnectionSettings.from_extras({"access_key_id": "LTAI1234567", "access_key_secret": SECRET,
                                        "region": "cn-beijing"})
    assert (s.access_key_id, s.access_key_secret, s.region) == ("LTAI1234567", SECRET, "cn-beijing")
    assert s.credential_mode == "access_key"
    assert s.role_session_name == "aliyun-ops"
    assert s.max_attempts == 6
    assert s.endpoint is None and s.endpoint_host is None and s.endpoint_protocol is None


def test_keys_from_login_password():
    s = ConnectionSettings.from_extras({}, login="LTAIlogin", password=SECRET)
    assert (s.access_key_id, s.access_key_secret, s.credential_mode) == ("LTAIlogin", SECRET, "access_key")


def test_extras_win_over_login_password():
    s = ConnectionSettings.from_extras({"access_key_id": "A_EXTRA", "access_key_secret": "S_EXTRA"},
                                       login="A_LOGIN", password="S_LOGIN")
    assert (s.access_key_id, s.access_key_secret) == ("A_EXTRA", "S_EXTRA")


def test_security_token_means_sts():
    s = ConnectionSettings.from_extras({"access_key_id": "STS.x", "access_key_secret": SECRET,
                                        "security_token": "tok"})
    assert s.credential_mode == "sts"
    cred = build_credential_client(s).get_credential()
    assert (cred.access_key_id, cred.access_key_secret, cred.security_token) == ("STS.x", SECRET, "tok")


def test_ram_role_arn_settings():
    s = ConnectionSettings.from_extras({"access_key_id": "AK", "access_key_secret": SECRET,
                                        "ram_role_arn": "acs:ram::123456789012:role/airflow",
                                        "role_session_name": "nightly", "endpoint": "http://127.0.0.1:9100"})
    assert s.credential_mode == "ram_role_arn"
    assert s.role_session_name == "nightly"
    client = build_credential_client(s)  # no call yet: STS is only contacted on first use
    assert client.cloud_credential.get_type() == "ram_role_arn"


def test_role_session_duration():
    s = ConnectionSettings.from_extras({"ram_role_arn": "acs:ram::123456789012:role/airflow"})
    assert s.role_session_duration == 3600
    s = ConnectionSettings.from_extras({"ram_role_arn": "acs:ram::123456789012:role/airflow",
                                        "role_session_duration": "900"})
    assert s.role_session_duration == 900
    client = build_credential_client(s)
    assert client.cloud_credential.provider._duration_seconds == 900


def _imds_enabled(monkeypatch) -> None:
    """The tests disable the metadata service for the SDK (ALIBABA_CLOUD_ECS_METADATA_DISABLED, read at import,
    so the default chain never probes 100.100.100.200): enable it where a test asks for the instance role."""
    from alibabacloud_credentials.utils import auth_util

    monkeypatch.setattr(auth_util, "environment_ecs_metadata_disabled", "false")


def test_ecs_ram_role_honours_metadata_disabled(monkeypatch):
    from alibabacloud_credentials.utils import auth_util

    monkeypatch.setattr(auth_util, "environment_ecs_metadata_disabled", "true")
    s = ConnectionSettings.from_extras({"ecs_ram_role": "EcsRamRoleDemo"}, conn_id="worker")
    with pytest.raises(ValueError, match="ALIBABA_CLOUD_ECS_METADATA_DISABLED"):
        build_credential_client(s)


def test_ecs_ram_role_settings(monkeypatch):
    _imds_enabled(monkeypatch)
    s = ConnectionSettings.from_extras({"ecs_ram_role": "EcsRamRoleDemo", "region": "cn-hangzhou"})
    assert (s.credential_mode, s.ecs_ram_role, s.ecs_metadata_endpoint) == ("ecs_ram_role", "EcsRamRoleDemo", None)
    provider = build_credential_client(s).cloud_credential.provider
    assert build_credential_client(s).cloud_credential.get_type() == "ecs_ram_role"
    assert provider._EcsRamRoleCredentialsProvider__metadata_service_host == "100.100.100.200"  # the real one
    assert provider._role_name == "EcsRamRoleDemo"
    s = ConnectionSettings.from_extras({"ecs_ram_role": True, "ecs_metadata_endpoint": "http://127.0.0.1:9100/"})
    assert (s.credential_mode, s.ecs_ram_role, s.ecs_metadata_endpoint) == ("ecs_ram_role", True,
                                                                            "http://127.0.0.1:9100")
    provider = build_credential_client(s).cloud_credential.provider
    assert provider._EcsRamRoleCredentialsProvider__metadata_service_host == "127.0.0.1:9100"
    assert provider._role_name is None  # asked from the metadata service
    assert ConnectionSettings.from_extras({"ecs_ram_role": False}).credential_mode == "default"
    # the instance role as the source of an AssumeRole
    s = ConnectionSettings.from_extras({"ecs_ram_role": "EcsRamRoleDemo",
                                        "ram_role_arn": "acs:ram::123456789012:role/airflow"})
    assert s.credential_mode == "ram_role_arn"
    provider = build_credential_client(s).cloud_credential.provider
    assert provider._credentials_provider.get_provider_name() == "ecs_ram_role"


def test_ram_role_arn_without_keys_uses_chain_as_source():
    s = ConnectionSettings.from_extras({"ram_role_arn": "acs:ram::123456789012:role/airflow"})
    assert s.credential_mode == "ram_role_arn"
    assert build_credential_client(s).cloud_credential.get_type() == "ram_role_arn"


def test_no_keys_means_credentials_chain(monkeypatch):
    s = ConnectionSettings.from_extras({"region": "cn-hangzhou"})
    assert s.credential_mode == "default"
    client = build_credential_client(s)
    assert client.cloud_credential.get_type() == "default"
    _chain_env(monkeypatch, "ENV_AK", "ENV_SK")
    cred = build_credential_client(s).get_credential()
    assert (cred.access_key_id, cred.access_key_secret) == ("ENV_AK", "ENV_SK")


def _chain_env(monkeypatch, ak: str, sk: str) -> None:
    """alibabacloud-credentials reads ALIBABA_CLOUD_* at import time: patch the values it keeps."""
    from alibabacloud_credentials.utils import auth_util

    monkeypatch.setattr(auth_util, "environment_access_key_id", ak)
    monkeypatch.setattr(auth_util, "environment_access_key_secret", sk)
    monkeypatch.setattr(auth_util, "environment_security_token", None)


def test_credentials_chain_against_emulator(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ALIYUN_DEFAULT", json.dumps({"conn_type": "aliyun", "extra": {
        "region": "cn-hangzhou", "endpoint": emulator.base_url}}))
    _chain_env(monkeypatch, emulator.access_key_id, emulator.access_key_secret)
    ok, message = AliyunBaseHook().test_connection()
    assert ok, message
    assert "credentials: default" in message


@pytest.mark.parametrize("extras, message", [
    ({"access_key_id": "AK"}, "together"),
    ({"access_key_secret": "SK"}, "together"),
    ({"security_token": "tok"}, "security_token"),
    ({"endpoint": "ftp://x"}, "endpoint"),
    ({"max_attempts": "many"}, "max_attempts"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"rate_limits": "[1, 2]"}, "rate_limits"),
    ({"rate_limits": "{not json"}, "rate_limits"),
    ({"role_session_duration": 899}, "role_session_duration"),
    ({"role_session_duration": 43201}, "role_session_duration"),
    ({"role_session_duration": "900.5"}, "role_session_duration"),
    ({"ecs_ram_role": "bad role!"}, "ecs_ram_role"),
    ({"ecs_ram_role": 3}, "ecs_ram_role"),
    ({"ecs_ram_role": "EcsRole", "access_key_id": "AK", "access_key_secret": "SK"}, "not both"),
    ({"ecs_metadata_endpoint": "http://127.0.0.1:1"}, "needs ecs_ram_role"),
    ({"ecs_ram_role": "EcsRole", "ecs_metadata_endpoint": "ftp://x"}, "ecs_metadata_endpoint"),
])
def test_bad_extras_fail_clearly(extras, message):
    with pytest.raises(ValueError, match=message):
        ConnectionSettings.from_extras(extras)


def test_numbers_and_json_strings_from_the_ui_form():
    s = ConnectionSettings.from_extras({"extra__aliyun__region": "cn-shanghai", "max_attempts": "3",
                                        "read_timeout": "12.5", "connect_timeout": 2,
                                        "rate_limits": '{"DescribeImages": 10, "*": "20", "Off": 0}',
                                        "endpoint": "  ", "security_token": ""})
    assert s.region == "cn-shanghai"
    assert s.max_attempts == 3 and s.read_timeout == 12.5 and s.connect_timeout == 2.0
    assert dict(s.rate_limits) == {"DescribeImages": 10.0, "*": 20.0}
    assert s.endpoint is None and s.security_token is None


@pytest.mark.parametrize("endpoint, host, protocol, url", [
    ("http://127.0.0.1:9100", "127.0.0.1:9100", "http", "http://127.0.0.1:9100"),
    ("http://emulator:9100/", "emulator:9100", "http", "http://emulator:9100"),
    ("https://ecs.example.com", "ecs.example.com", "https", "https://ecs.example.com"),
    ("ecs-vpc.cn-hangzhou.aliyuncs.com", "ecs-vpc.cn-hangzhou.aliyuncs.com", "https",
     "https://ecs-vpc.cn-hangzhou.aliyuncs.com"),
])
def test_endpoint_override_parsing(endpoint, host, protocol, url):
    s = ConnectionSettings.from_extras({"endpoint": endpoint})
    assert (s.endpoint_host, s.endpoint_protocol, s.endpoint_url) == (host, protocol, url)


def test_repr_never_shows_secrets():
    s = ConnectionSettings.from_extras({"access_key_id": "LTAI5tABCDEFGH", "access_key_secret": SECRET,
                                        "security_token": "TOKEN-" + SECRET, "ram_role_arn": "acs:ram::1:role/r",
                                        "role_session_duration": 1800})
    for text in (repr(s), str(s), f"{s}"):
        assert SECRET not in text
        assert "LTAI5tABCDEFGH" not in text
        assert "***" in text
        assert "role_session_duration=1800" in text


def test_settings_are_frozen():
    s = ConnectionSettings.from_extras({})
    with pytest.raises(AttributeError):
        s.region = "x"  # type: ignore[misc]


# -- Airflow connection from the environment ----------------------------------------------------

def test_connection_from_env_json(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ALIYUN_DEFAULT", json.dumps({
        "conn_type": "aliyun", "login": "LTAIenv", "password": SECRET,
        "extra": {"region": "cn-shenzhen", "endpoint": "http://127.0.0.1:1", "rate_limits": {"*": 5}}}))
    hook = AliyunBaseHook()
    s = hook.settings
    assert (s.conn_id, s.access_key_id, s.access_key_secret) == ("aliyun_default", "LTAIenv", SECRET)
    assert hook.region == "cn-shenzhen"
    assert hook.resolve_region("cn-beijing") == "cn-beijing"
    assert AliyunBaseHook(region="ap-southeast-1").region == "ap-southeast-1"
    assert hook.rate_limiter.limit_for("DescribeImages") == 5.0


def test_no_region_anywhere_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ALIYUN_NOREGION", json.dumps({"conn_type": "aliyun", "extra": {}}))
    hook = AliyunBaseHook(aliyun_conn_id="aliyun_noregion")
    assert hook.region is None
    with pytest.raises(ValueError, match="region"):
        hook.resolve_region()


def test_hook_init_does_no_lookup():
    hook = AliyunBaseHook(aliyun_conn_id="does_not_exist")  # must not raise: lookup is lazy
    assert hook.aliyun_conn_id == "does_not_exist"


def test_openapi_config_with_endpoint_override(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ALIYUN_DEFAULT", json.dumps({"conn_type": "aliyun", "extra": {
        "access_key_id": "AK", "access_key_secret": SECRET, "region": "cn-hangzhou",
        "endpoint": "http://127.0.0.1:9100", "read_timeout": 7, "connect_timeout": 3}}))
    cfg = AliyunBaseHook().openapi_config("cn-beijing")
    assert (cfg.endpoint, cfg.protocol, cfg.region_id) == ("127.0.0.1:9100", "http", "cn-beijing")
    assert (cfg.read_timeout, cfg.connect_timeout) == (7000, 3000)
    assert cfg.credential is not None


def test_openapi_config_without_override_uses_sdk_endpoints(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ALIYUN_DEFAULT", json.dumps({"conn_type": "aliyun", "extra": {
        "access_key_id": "AK", "access_key_secret": SECRET, "region": "cn-hangzhou"}}))
    hook = AliyunBaseHook()
    cfg = hook.openapi_config()
    assert cfg.endpoint is None and cfg.protocol in (None, "https", "HTTPS")
    from alibabacloud_ecs20140526.client import Client

    assert "cn-hangzhou" in Client(cfg)._endpoint or "aliyuncs.com" in Client(cfg)._endpoint


def test_oss_credentials_bridge(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ALIYUN_DEFAULT", json.dumps({"conn_type": "aliyun", "extra": {
        "access_key_id": "AK", "access_key_secret": SECRET, "security_token": "TOK"}}))
    creds = AliyunBaseHook().oss_credentials_provider().get_credentials()
    assert (creds.access_key_id, creds.access_key_secret, creds.security_token) == ("AK", SECRET, "TOK")


# -- UI metadata and provider registration ------------------------------------------------------

def test_ui_field_behaviour():
    behaviour = AliyunBaseHook.get_ui_field_behaviour()
    assert set(behaviour["hidden_fields"]) == {"host", "schema", "port"}
    assert behaviour["relabeling"] == {"login": "AccessKey ID", "password": "AccessKey Secret"}
    json.loads(behaviour["placeholders"]["extra"])


def test_connection_form_widgets():
    pytest.importorskip("wtforms")
    pytest.importorskip("flask_appbuilder")
    widgets = AliyunBaseHook.get_connection_form_widgets()
    assert set(widgets) == {"region", "endpoint", "ram_role_arn", "ecs_ram_role", "security_token"}


def test_class_attributes():
    assert AliyunBaseHook.conn_name_attr == "aliyun_conn_id"
    assert AliyunBaseHook.default_conn_name == "aliyun_default"
    assert AliyunBaseHook.conn_type == "aliyun"
    assert AliyunBaseHook.hook_name == "Alibaba Cloud (aliyun-ops)"


def test_provider_registers_connection_type():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hook_info = ProvidersManagerTaskRuntime().hooks.get("aliyun")
    assert hook_info is not None
    assert hook_info.hook_class_name == "aliyun_ops.hooks.base.AliyunBaseHook"
    assert hook_info.connection_id_attribute_name == "aliyun_conn_id"
    assert hook_info.connection_testable
    pm = ProvidersManager()
    assert "aliyun-ops" in pm.providers
    assert {"extra__aliyun__region", "extra__aliyun__endpoint", "extra__aliyun__ram_role_arn",
            "extra__aliyun__security_token"} <= set(pm.connection_form_widgets)
    assert pm.connection_form_widgets["extra__aliyun__security_token"].is_sensitive
    assert pm.field_behaviours["aliyun"]["relabeling"]["login"] == "AccessKey ID"


def test_provider_info_lists_only_what_exists():
    """Every module listed imports, and every public class it exports (``__all__``) exists."""
    import importlib

    from aliyun_ops.provider_info import get_provider_info

    info = get_provider_info()
    for group in ("hooks", "operators", "sensors", "triggers"):
        modules = [m for e in info[group] for m in e["python-modules"]]
        assert modules, group
        for name in modules:
            assert name.startswith(f"aliyun_ops.{group}.")
            module = importlib.import_module(name)
            for exported in getattr(module, "__all__", []):
                assert getattr(module, exported, None) is not None, f"{name}.{exported}"
    hook = info["connection-types"][0]["hook-class-name"]
    module, _, cls = hook.rpartition(".")
    assert getattr(importlib.import_module(module), cls).conn_type == "aliyun"


# -- test_connection against the emulator -------------------------------------------------------

def test_test_connection_ok(aliyun_env):
    ok, message = AliyunBaseHook().test_connection()
    assert ok, message
    assert "DescribeRegions" in message and "RequestId=" in message


def test_test_connection_bad_secret(aliyun_env, emulator, monkeypatch):
    aliyun_env(access_key_secret="wrong-" + SECRET)
    ok, message = AliyunBaseHook().test_connection()
    assert not ok
    assert "SignatureDoesNotMatch" in message
    assert SECRET not in message


def test_test_connection_unreachable(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ALIYUN_DEFAULT", json.dumps({"conn_type": "aliyun", "extra": {
        "access_key_id": "AK", "access_key_secret": SECRET, "region": "cn-hangzhou",
        "endpoint": "http://127.0.0.1:9", "connect_timeout": 1}}))
    ok, message = AliyunBaseHook().test_connection()
    assert not ok
    assert "NetworkError" in message


def test_ram_role_arn_assumes_role_through_emulator_sts(aliyun_env, emulator, require, caplog):
    require("sts", "AssumeRole")
    aliyun_env(ram_role_arn="acs:ram::123456789012:role/airflow-deployer")
    caplog.set_level(logging.DEBUG)
    emulator.admin.clear_calls()
    ok, message = AliyunBaseHook().test_connection()
    assert ok, message
    counters = emulator.admin.calls()["counters"]
    assert counters.get("sts:AssumeRole", {}).get("calls") == 1
    recent = emulator.admin.calls()["recent"]
    ecs_keys = {c.get("access_key_id") for c in recent if c.get("action", "").startswith("ecs:")}
    assert ecs_keys and emulator.access_key_id not in ecs_keys  # the ECS call used the temporary key


# -- every credential mode against the emulator ---------------------------------------------------------------
ROLE_ARN = "acs:ram::123456789012:role/airflow-deployer"


def _ecs_keys(emulator) -> list[str]:
    """Access key ids of the emulator's recent ECS calls, oldest first."""
    return [c["access_key_id"] for c in emulator.admin.calls()["recent"] if c["action"].startswith("ecs:")]


def _assume_role_via_sdk(emulator, duration: int = 3600):
    """A temporary key from the emulator's STS AssumeRole, called with the official STS SDK."""
    from alibabacloud_sts20150401 import models as sts_models
    from alibabacloud_sts20150401.client import Client as StsClient
    from alibabacloud_tea_openapi.models import Config

    sts = StsClient(Config(access_key_id=emulator.access_key_id, access_key_secret=emulator.access_key_secret,
                           endpoint=emulator.endpoint, protocol="http", region_id="cn-hangzhou"))
    return sts.assume_role(sts_models.AssumeRoleRequest(role_arn=ROLE_ARN, role_session_name="sts-mode",
                                                        duration_seconds=duration)).body.credentials


def _metadata_conn(monkeypatch, emulator, conn_id: str = "aliyun_default", **extra) -> None:
    """An ``aliyun`` connection with no keys: the ECS instance RAM role, metadata service = the emulator."""
    _imds_enabled(monkeypatch)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "aliyun", "extra": {
        "region": "cn-hangzhou", "endpoint": emulator.base_url, "ecs_metadata_endpoint": emulator.base_url,
        "retry_base_delay": 0.01, "retry_max_delay": 0.05, **extra}}))


def test_access_key_mode_against_emulator(aliyun_env, emulator):
    emulator.admin.clear_calls()
    ok, message = AliyunBaseHook().test_connection()
    assert ok, message
    assert "credentials: access_key" in message
    assert _ecs_keys(emulator) == [emulator.access_key_id]


def test_sts_token_mode_against_emulator(aliyun_env, emulator):
    creds = _assume_role_via_sdk(emulator)
    aliyun_env(access_key_id=creds.access_key_id, access_key_secret=creds.access_key_secret,
               security_token=creds.security_token)
    emulator.admin.clear_calls()
    ok, message = AliyunBaseHook().test_connection()
    assert ok, message
    assert "credentials: sts" in message
    assert _ecs_keys(emulator) == [creds.access_key_id]  # the temporary key, with its token

    wrong = creds.security_token[:-4] + ("AAAA" if not creds.security_token.endswith("AAAA") else "BBBB")
    aliyun_env(access_key_id=creds.access_key_id, access_key_secret=creds.access_key_secret, security_token=wrong)
    ok, message = AliyunBaseHook().test_connection()
    assert not ok
    assert "InvalidSecurityToken.MismatchWithAccessKey" in message
    assert wrong not in message and creds.access_key_secret not in message


def test_ram_role_arn_session_name_and_duration(aliyun_env, emulator):
    aliyun_env(ram_role_arn=ROLE_ARN, role_session_name="nightly-backup", role_session_duration=900)
    hook = AliyunBaseHook()
    ok, message = hook.test_connection()
    assert ok, message
    key_id = _ecs_keys(emulator)[-1]
    record = emulator.admin.table("sts.keys")[key_id]
    assert record["principal"] == "airflow-deployer:nightly-backup" and record["role_arn"] == ROLE_ARN
    clock = emulator.admin.request("GET", "sts/clock")
    assert 900 - 5 <= record["expires_at"] - clock["now"] <= 900  # DurationSeconds=900 went to AssumeRole


def test_ecs_ram_role_through_emulator_metadata(emulator, monkeypatch):
    _metadata_conn(monkeypatch, emulator, ecs_ram_role="EcsRamRoleDemo")
    emulator.admin.clear_calls()
    hook = AliyunBaseHook()
    ok, message = hook.test_connection()
    assert ok, message
    assert "credentials: ecs_ram_role" in message
    counters = emulator.admin.calls()["counters"]
    assert counters["ecs-metadata:GetRoleCredentials"]["calls"] == 1
    assert counters["ecs-metadata:PutToken"]["calls"] == 1  # IMDSv2: the SDK asks for a token first
    assert "sts:AssumeRole" not in counters
    [key_id] = _ecs_keys(emulator)
    assert key_id.startswith("STS.") and key_id != emulator.access_key_id  # the metadata's temporary key
    record = emulator.admin.table("sts.keys")[key_id]
    assert record["principal"] == "ecsramroledemo:ecs-instance" and record["security_token"] == "***"

    # the async path (triggers) uses the same provider and the same key
    import asyncio

    from alibabacloud_ecs20140526 import models as ecs_models
    from alibabacloud_ecs20140526.client import Client as EcsClient

    client = EcsClient(hook.openapi_config())
    resp = asyncio.run(hook.acall("DescribeRegions", client.describe_regions_async,
                                  ecs_models.DescribeRegionsRequest(), region="cn-hangzhou"))
    assert resp.body.regions.region
    assert _ecs_keys(emulator) == [key_id, key_id]


def test_ecs_ram_role_name_from_metadata_and_imdsv2_only(emulator, monkeypatch):
    emulator.admin.request("PUT", "metadata", {"role_name": "AirflowWorker", "imdsv2_required": True})
    _metadata_conn(monkeypatch, emulator, ecs_ram_role=True)
    emulator.admin.clear_calls()
    ok, message = AliyunBaseHook().test_connection()
    assert ok, message
    counters = emulator.admin.calls()["counters"]
    assert counters["ecs-metadata:GetRoleName"] == {"calls": 1, "errors": 0, "codes": {}}
    assert emulator.admin.table("sts.keys")[_ecs_keys(emulator)[-1]]["principal"] == "airflowworker:ecs-instance"


def test_ecs_ram_role_not_attached_fails_clearly(emulator, monkeypatch):
    _metadata_conn(monkeypatch, emulator, ecs_ram_role="SomeOtherRole")
    ok, message = AliyunBaseHook().test_connection()
    assert not ok
    assert "ECS metadata" in message and "404" in message
    emulator.admin.request("PUT", "metadata", {"role_name": None})  # no role attached to the instance
    _metadata_conn(monkeypatch, emulator, ecs_ram_role=True)
    ok, message = AliyunBaseHook().test_connection()
    assert not ok and "404" in message


def test_ecs_ram_role_as_source_of_assume_role(emulator, monkeypatch):
    _metadata_conn(monkeypatch, emulator, ecs_ram_role="EcsRamRoleDemo", ram_role_arn=ROLE_ARN)
    emulator.admin.clear_calls()
    ok, message = AliyunBaseHook().test_connection()
    assert ok, message
    recent = emulator.admin.calls()["recent"]
    assume = [c for c in recent if c["action"] == "sts:AssumeRole"]
    assert len(assume) == 1 and assume[0]["access_key_id"].startswith("STS.")  # signed with the instance's key
    assert _ecs_keys(emulator)[-1] not in (assume[0]["access_key_id"], emulator.access_key_id)


# -- refresh before expiry over a long wait ----------------------------------------------------------------
class _ShiftedTime:
    """Stands in for the ``time`` module of the credentials SDK's refresh logic: real time plus ``offset``."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        import time

        return time.time() + self.offset

    def localtime(self, secs: float | None = None):
        import time

        return time.localtime(self.time() if secs is None else secs)

    def __getattr__(self, name: str):
        import time

        return getattr(time, name)


@pytest.mark.parametrize("mode", ["ram_role_arn", "ecs_ram_role"])
def test_long_wait_refreshes_credentials_before_expiry(aliyun_env, emulator, monkeypatch, mode):
    """Three hours of polling with 30-minute credentials, compressed: the client's clock (the SDK's refresh
    decisions) and the emulator's credential clock (what it accepts) move forward together by 5 minutes between
    calls. Every call succeeds; each key is replaced while it still has 15 minutes left; the first key is refused
    as expired at the end, so the wait really outlived it."""
    from alibabacloud_credentials.provider import ecs_ram_role as ecs_provider_module
    from alibabacloud_credentials.provider import refreshable

    duration, step, span = 1800, 300, 3 * 3600
    clock = _ShiftedTime()
    monkeypatch.setattr(refreshable, "time", clock)
    monkeypatch.setattr(ecs_provider_module, "time", clock)
    if mode == "ram_role_arn":
        aliyun_env(ram_role_arn=ROLE_ARN, role_session_duration=duration)
    else:
        emulator.admin.request("PUT", "metadata", {"duration": duration})
        _metadata_conn(monkeypatch, emulator, ecs_ram_role="EcsRamRoleDemo")
    emulator.admin.clear_calls()
    hook = AliyunBaseHook()
    first = None
    used: list[tuple[float, str]] = []  # (credential clock at the call, key id)
    for _ in range(span // step + 1):
        ok, message = hook.test_connection()
        assert ok, message
        first = first or hook.credential_client.get_credential()
        used.append((clock.time(), _ecs_keys(emulator)[-1]))
        clock.offset += step
        emulator.admin.request("POST", "sts/clock", {"advance": step})

    keys = emulator.admin.table("sts.keys")
    distinct = list(dict.fromkeys(key_id for _, key_id in used))
    assert len(distinct) >= span // duration + 1  # refreshed again and again
    for when, key_id in used:
        assert keys[key_id]["expires_at"] - when > 14 * 60, "a key was used in its last 15 minutes"
    counters = emulator.admin.calls()["counters"]
    assert all(c["errors"] == 0 for c in counters.values()), counters
    fetches = counters["sts:AssumeRole" if mode == "ram_role_arn" else "ecs-metadata:GetRoleCredentials"]["calls"]
    assert fetches == len(distinct)  # one fetch per key: no refresh on every call

    from alibabacloud_ecs20140526 import models as ecs_models
    from alibabacloud_ecs20140526.client import Client as EcsClient
    from alibabacloud_tea_openapi.models import Config
    from Tea.exceptions import TeaException

    stale = EcsClient(Config(access_key_id=first.access_key_id, access_key_secret=first.access_key_secret,
                             security_token=first.security_token, endpoint=emulator.endpoint, protocol="http",
                             region_id="cn-hangzhou"))
    with pytest.raises(TeaException) as err:
        stale.describe_regions(ecs_models.DescribeRegionsRequest())
    assert err.value.code == "InvalidSecurityToken.Expired"


# -- secrets stay masked ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["access_key", "sts", "ram_role_arn", "ecs_ram_role"])
def test_secrets_never_logged_and_known_to_the_masker(aliyun_env, emulator, monkeypatch, caplog, mode):
    from airflow.sdk._shared.secrets_masker import redact

    secrets = [emulator.access_key_secret]
    if mode == "sts":
        creds = _assume_role_via_sdk(emulator)
        aliyun_env(access_key_id=creds.access_key_id, access_key_secret=creds.access_key_secret,
                   security_token=creds.security_token)
        secrets = [creds.access_key_secret, creds.security_token]
    elif mode == "ram_role_arn":
        aliyun_env(ram_role_arn=ROLE_ARN)
    elif mode == "ecs_ram_role":
        _metadata_conn(monkeypatch, emulator, ecs_ram_role="EcsRamRoleDemo")
        secrets = []
    caplog.set_level(logging.DEBUG)
    hook = AliyunBaseHook()
    ok, message = hook.test_connection()
    assert ok, message
    cred = hook.credential_client.get_credential()
    secrets += [cred.access_key_secret, cred.security_token]  # temporary ones too, where the SDK fetched them
    secrets = [v for v in secrets if v]
    assert secrets
    texts = {"log": caplog.text, "message": message, "settings": f"{hook.settings!r} {hook.settings}"}
    for secret in secrets:
        for where, text in texts.items():
            assert secret not in text, f"a secret appears in the {where}"
        assert redact(f"before {secret} after") == "before *** after", "Airflow's masker does not know a secret"


@pytest.mark.parametrize("extra", [{"access_key_secret": "wrong-" + SECRET},
                                   {"access_key_secret": "wrong-" + SECRET, "ram_role_arn": ROLE_ARN},
                                   {"access_key_secret": "wrong-" + SECRET, "security_token": "TOKEN-" + SECRET}])
def test_errors_never_show_secrets(aliyun_env, emulator, caplog, extra):
    aliyun_env(**extra)
    caplog.set_level(logging.DEBUG)
    ok, message = AliyunBaseHook().test_connection()
    assert not ok
    assert "SignatureDoesNotMatch" in message or "InvalidSecurityToken" in message or "InvalidAccessKeyId" in message
    for text in (message, caplog.text):
        assert SECRET not in text


def test_temporary_keys_registered_from_async_code(emulator, monkeypatch):
    """Triggers fetch credentials on the event loop: ``amask_secret`` there (never the blocking ``mask_secret``,
    which could deadlock against the supervisor channel); a sync fetch on the loop thread masks locally only."""
    import asyncio

    import airflow.sdk.log as sdk_log
    from airflow.sdk._shared.secrets_masker import redact
    from alibabacloud_ecs20140526 import models as ecs_models
    from alibabacloud_ecs20140526.client import Client as EcsClient

    sent: dict[str, list] = {"sync": [], "async": []}
    real_amask = sdk_log.amask_secret

    async def amask(secret, name=None):
        sent["async"].append(secret)
        await real_amask(secret, name)

    monkeypatch.setattr(sdk_log, "amask_secret", amask)
    monkeypatch.setattr(sdk_log, "mask_secret", lambda secret, name=None: sent["sync"].append(secret))
    _metadata_conn(monkeypatch, emulator, ecs_ram_role="EcsRamRoleDemo")
    hook = AliyunBaseHook()

    async def run():
        client = EcsClient(hook.openapi_config())
        await hook.acall("DescribeRegions", client.describe_regions_async, ecs_models.DescribeRegionsRequest(),
                         region="cn-hangzhou")
        return await hook.credential_client.get_credential_async()

    cred = asyncio.run(run())
    temporary = [cred.access_key_secret, cred.security_token]
    assert sent["async"] == temporary
    assert not set(temporary) & {v for v in sent["sync"] if isinstance(v, str)}  # (Airflow masks the extras dict)

    # the next key, fetched by sync code running on the event loop thread
    emulator.admin.request("POST", "sts/clock", {"advance": 6 * 3600})
    fresh = AliyunBaseHook()

    async def sync_on_loop():
        return fresh.credential_client.get_credential()

    new = asyncio.run(sync_on_loop())
    assert new.access_key_id != cred.access_key_id
    assert new.security_token not in sent["async"] and new.security_token not in sent["sync"]
    assert redact(new.security_token) == "***"  # known to this process's masker all the same
