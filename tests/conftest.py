"""Shared fixtures: one emulator process per test session, reset before every test.

Fixtures:
    airflow_db    -- a migrated SQLite metadata DB in a private AIRFLOW_HOME (for dag.test())
    aliyun_conn   -- sets AIRFLOW_CONN_ALIYUN_DEFAULT to the emulator (endpoint, default keys, cn-hangzhou)
    run_dag       -- run_dag("dag_id", conf={...}) -> DagRun, via dag.test(); DAG files live in dags/
                     and tests/dag_files/ (dag.test needs the DAG in a bundle folder)
    emulator      -- the running :class:`emulator.control.EmulatorProcess` (state reset per test)
    ecs_client    -- ``ecs_client(region="cn-hangzhou", **config)`` -> alibabacloud ECS client
    vpc_client, rds_client -- the same for VPC and RDS
    oss_client    -- ``oss_client(region="cn-hangzhou")`` -> alibabacloud_oss_v2 Client
    smtp_server   -- a loopback SMTP server as ``smtp_default``: ``(received envelopes, threading.Event)``
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from emulator.auth import DEFAULT_ACCESS_KEY_SECRET as DEFAULT_SECRET
from emulator.control import EmulatorProcess

ROOT = Path(__file__).resolve().parent.parent

# Airflow reads its configuration at import: point it at a private home before anything imports it.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="aliyun-ops-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps([
    {"name": "project-dags", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
     "kwargs": {"path": str(ROOT / "dags"), "refresh_interval": 0}},
    {"name": "test-dags", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
     "kwargs": {"path": str(ROOT / "tests" / "dag_files"), "refresh_interval": 0}},
])
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

# darabonba ignores NO_PROXY: never let a proxy setting send loopback calls elsewhere.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_var, None)
os.environ.setdefault("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")

# `make test` runs with --hypothesis-profile=ci (pyproject addopts): no per-example deadline on a busy 2-core CI
# machine; tests that need more examples than the default ask the profile name (the retention planner: 10,000).
settings.register_profile("ci", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)

TIME_SCALE = float(os.environ.get("EMULATOR_TEST_TIME_SCALE", "1000"))


@pytest.fixture(scope="session")
def emulator_session():
    with EmulatorProcess(time_scale=TIME_SCALE) as emu:
        yield emu
        emu.stop()
        if emu.log_path.exists():  # the emulator's own log goes before its data dir does
            SCANNED_LOGS.append((str(emu.log_path), emu.log_path.read_text(errors="replace")))


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


@pytest.fixture(scope="session")
def airflow_db():
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=os.environ.copy(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return _AIRFLOW_HOME


def connection_uri(emu: EmulatorProcess, region: str = "cn-hangzhou", **extra) -> str:
    """JSON form of an ``aliyun`` connection that points at the emulator."""
    return json.dumps({"conn_type": "aliyun", "extra": {
        "access_key_id": emu.access_key_id, "access_key_secret": emu.access_key_secret,
        "region": region, "endpoint": emu.base_url, **extra}})


@pytest.fixture
def aliyun_conn(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ALIYUN_DEFAULT", connection_uri(emulator))
    return emulator


@pytest.fixture
def run_dag(airflow_db, aliyun_conn):
    """Run a DAG from dags/ or tests/dag_files/ with dag.test(); returns the DagRun."""
    from airflow.dag_processing.dagbag import DagBag

    def run(dag_id: str, conf: dict | None = None, logical_date=None, *, retries: int | None = None, **kwargs):
        # a fresh DagBag per run: dag.test() renders templates into the task objects in place, so a
        # second run of the same DAG object would see the first run's rendered values
        for folder in (ROOT / "dags", ROOT / "tests" / "dag_files"):
            own_file = folder / f"{dag_id}.py"  # parse only that file when the DAG is named after it (faster)
            bag = DagBag(dag_folder=str(own_file if own_file.exists() else folder))
            if dag_id in bag.dags:
                dag = bag.dags[dag_id]
                if retries is not None:  # e.g. 0 where a retry cannot change the outcome (dag.test() waits it out)
                    for t in dag.tasks:
                        t.retries = retries
                return dag.test(run_conf=conf, logical_date=logical_date, **kwargs)
        raise LookupError(f"DAG {dag_id!r} not found in dags/ or tests/dag_files/")

    return run


@pytest.fixture
def smtp_server(monkeypatch):
    """A real SMTP server on loopback, wired as ``smtp_default``; yields ``(received envelopes, got-one Event)``."""
    import socket
    import threading

    from aiosmtpd.controller import Controller

    received: list = []
    got = threading.Event()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            got.set()
            return "250 OK"

    with socket.socket() as probe:           # a free port (aiosmtpd's readiness check cannot use port 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT",
                       f'{{"conn_type": "smtp", "host": "127.0.0.1", "port": {port}, '
                       f'"extra": {{"disable_tls": true, "disable_ssl": true}}}}')
    try:
        yield received, got
    finally:
        controller.stop()


# -- no secret in any file the tests leave behind -----------------------------------------------------------
SECRET_PATTERNS = (re.compile(re.escape(DEFAULT_SECRET)), re.compile(r"RamTest[A-Za-z]+-secret"),
                   re.compile(r"cluster-backup-key-secret"),  # tests/system's key
                   re.compile(r"CAIS[A-Za-z0-9+/]{40,}"))  # the emulator's key, the RAM test keys, STS tokens


SCANNED_LOGS: list[tuple[str, str]] = []


def _scanned_files(session) -> list[Path]:
    """The tests' AIRFLOW_HOME, and every ``logs``/``reports`` folder under pytest's temporary directory (the
    Airflow deployments of tests/system and tests/ui: component logs, task logs, reports)."""
    files = list(Path(_AIRFLOW_HOME).rglob("*"))
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        base = factory.getbasetemp()
        files += [p for p in base.rglob("*") if {"logs", "reports"} & set(p.relative_to(base).parts[:-1])]
    return files


def pytest_sessionfinish(session, exitstatus):
    """Scan every file under the tests' AIRFLOW_HOME and the tests' Airflow deployments' logs and reports, and
    the emulator's log, for access key secrets and STS tokens; finding one fails the session: secrets must stay
    masked everywhere."""
    found = [f"{name}: {p.pattern[:40]}" for name, text in SCANNED_LOGS for p in SECRET_PATTERNS if p.search(text)]
    for path in _scanned_files(session):
        if not path.is_file() or path.suffix in (".db", ".sqlite", ".pyc") or path.stat().st_size > 20 * 1024**2:
            continue
        text = path.read_text(errors="replace")
        found += [f"{path}: {p.pattern[:40]}" for p in SECRET_PATTERNS if p.search(text)]
    if found:
        print("\nSECRET SCAN: secrets found in test artifacts:\n  " + "\n  ".join(found[:20]))
        session.exitstatus = 1
