"""Fixtures for the aliyun_ops hook tests.

    aliyun_env   -- ``aliyun_env(conn_id="aliyun_default", **extra)`` sets ``AIRFLOW_CONN_<ID>`` to an
                    ``aliyun`` connection pointing at the emulator (fast retries by default) and returns
                    the emulator
    has_action   -- ``has_action("ecs", "CreateImage")``: is that action implemented by the emulator yet?
"""

from __future__ import annotations

import json

import pytest

FAST_RETRIES = {"retry_base_delay": 0.01, "retry_max_delay": 0.05}


def conn_json(emu, region: str = "cn-hangzhou", **extra) -> str:
    return json.dumps({"conn_type": "aliyun", "extra": {
        "access_key_id": emu.access_key_id, "access_key_secret": emu.access_key_secret,
        "region": region, "endpoint": emu.base_url, **FAST_RETRIES, **extra}})


@pytest.fixture
def aliyun_env(emulator, monkeypatch):
    def make(conn_id: str = "aliyun_default", **extra):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json(emulator, **extra))
        return emulator

    make()
    return make


@pytest.fixture(scope="session")
def has_action():
    from emulator import products, rpc

    products.load()

    def check(product: str, name: str) -> bool:
        return (product, name) in rpc.ACTIONS

    return check


@pytest.fixture
def require(has_action):
    def check(product: str, *names: str) -> None:
        missing = [n for n in names if not has_action(product, n)]
        if missing:
            pytest.skip(f"emulator does not implement {product}:{','.join(missing)} yet")

    return check
