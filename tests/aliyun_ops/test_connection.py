"""The ``aliyun`` connection: settings parsing, credentials modes, endpoint override, UI metadata,
provider registration and ``test_connection`` against the emulator."""

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
                                        "security_token": "TOKEN-" + SECRET})
    for text in (repr(s), str(s), f"{s}"):
        assert SECRET not in text
        assert "LTAI5tABCDEFGH" not in text
        assert "***" in text


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
    assert set(widgets) == {"region", "endpoint", "ram_role_arn", "security_token"}


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
