"""Shared fixtures: one emulator process per test session, reset before every test.

Fixtures:
    emulator      -- the running :class:`emulator.control.EmulatorProcess` (state reset per test)
    ecs_client    -- ``ecs_client(region="cn-hangzhou", **config)`` -> alibabacloud ECS client
    vpc_client, rds_client -- the same for VPC and RDS
    oss_client    -- ``oss_client(region="cn-hangzhou")`` -> alibabacloud_oss_v2 Client
"""

from __future__ import annotations

import os

import pytest

from emulator.control import EmulatorProcess

# darabonba ignores NO_PROXY: never let a proxy setting send loopback calls elsewhere.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_var, None)
os.environ.setdefault("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")

TIME_SCALE = float(os.environ.get("EMULATOR_TEST_TIME_SCALE", "1000"))


@pytest.fixture(scope="session")
def emulator_session():
    with EmulatorProcess(time_scale=TIME_SCALE) as emu:
        yield emu


@pytest.fixture
def emulator(emulator_session):
    emulator_session.admin.reset()
    emulator_session.admin.clock(time_scale=TIME_SCALE, freeze=False)
    yield emulator_session


def _openapi_config(emu: EmulatorProcess, region: str, **overrides):
    from alibabacloud_tea_openapi.models import Config

    settings = {"access_key_id": emu.access_key_id, "access_key_secret": emu.access_key_secret,
                "region_id": region, "endpoint": emu.endpoint, "protocol": "http",
                "read_timeout": 30000, "connect_timeout": 5000}
    settings.update(overrides)
    return Config(**settings)


@pytest.fixture
def ecs_client(emulator):
    from alibabacloud_ecs20140526.client import Client

    def make(region: str = "cn-hangzhou", **overrides) -> Client:
        return Client(_openapi_config(emulator, region, **overrides))

    return make


@pytest.fixture
def vpc_client(emulator):
    from alibabacloud_vpc20160428.client import Client

    def make(region: str = "cn-hangzhou", **overrides) -> Client:
        return Client(_openapi_config(emulator, region, **overrides))

    return make


@pytest.fixture
def rds_client(emulator):
    from alibabacloud_rds20140815.client import Client

    def make(region: str = "cn-hangzhou", **overrides) -> Client:
        return Client(_openapi_config(emulator, region, **overrides))

    return make


@pytest.fixture
def oss_client(emulator):
    import alibabacloud_oss_v2 as oss

    def make(region: str = "cn-hangzhou", access_key_id: str | None = None, access_key_secret: str | None = None):
        cfg = oss.config.load_default()
        cfg.region = region
        cfg.endpoint = emulator.base_url
        cfg.use_path_style = True
        cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
            access_key_id or emulator.access_key_id, access_key_secret or emulator.access_key_secret)
        return oss.Client(cfg)

    return make
