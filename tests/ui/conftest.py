"""Browser tests of the Airflow UI: Playwright for Python driving Debian's chromium against a private Airflow.

Fixtures:
    browser      -- a headless chromium (session); the tests skip, with the reason, only when it cannot start
    ui_emulator  -- an emulator seeded with include/demo_fleet.yaml (session)
    airflow      -- :class:`deploy.rest.AirflowRest` of a private Airflow (:class:`deploy.airflow_cluster.AirflowCluster`:
                    api-server, scheduler, dag-processor, triggerer, LocalExecutor, PostgreSQL when it answers,
                    else SQLite) on free loopback ports, wired to ``ui_emulator``; its UI is at ``airflow.base``
    anon_page    -- a page in a fresh browser context (not logged in)
    page         -- a page in a context logged in as admin

A failing test leaves a full-page screenshot of every page it had open in ``$ALIYUN_OPS_TEST_ARTIFACTS``
(default ``tests/ui/artifacts/``), named after the test; the path is printed in the report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.airflow_cluster import AirflowCluster
from deploy.rest import AirflowRest
from emulator.control import EmulatorProcess

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "admin", "admin-ui-tests"

ARTIFACTS = Path(os.environ.get("ALIYUN_OPS_TEST_ARTIFACTS") or ROOT / "tests" / "ui" / "artifacts")
# no internet here: without these chromium waits on network services (updates, sync, QUIC probes) and hangs
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIME_SCALE = float(os.environ.get("EMULATOR_TEST_TIME_SCALE", "1000"))
IMAGE_WAIT_SECONDS = 10.0
"""Real seconds every image build and copy takes in the emulator. Not ~0 (the demo fleet's images at TIME_SCALE):
a trigger that fires right after its task deferred hits Airflow 3.3's race (apache/airflow#72716): the stale
success event of the deferring attempt, drained after the resumed attempt started, fails the task, and the DAG's
2-minute retry delay then dominates the test."""
TIMEOUT_MS = 60_000  # a busy 2-core machine: the SPA's first load can take several seconds


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless chromium; skips every browser test, with the reason, when it cannot be started."""
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's `chromium` package)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        pytest.skip(f"playwright is not installed: {exc}")
    expect.set_options(timeout=TIMEOUT_MS)
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS,
                                              timeout=TIMEOUT_MS)
    except Exception as exc:
        playwright.stop()
        pytest.skip(f"chromium at {path} cannot be started: {str(exc).splitlines()[0]}")
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()


@pytest.fixture(scope="session")
def ui_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """The emulator the UI's ``aliyun_default`` points at, seeded with the demo fleet (as ``make demo``)."""
    data_dir = tmp_path_factory.mktemp("ui-emulator")
    with EmulatorProcess(time_scale=TIME_SCALE, data_dir=data_dir,
                         seed_file=str(ROOT / "include" / "demo_fleet.yaml")) as emu:
        wait = IMAGE_WAIT_SECONDS * TIME_SCALE  # simulated seconds, whatever the image's size
        emu.admin.request("POST", "timings", {"image_create_base": wait, "image_create_per_gib": 0,
                                              "copy_base": wait, "copy_per_gib": 0})
        yield emu


def expected_dag_files() -> list[Path]:
    """The DAG files in dags/ (each defines one DAG, named after the file)."""
    return sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="session")
def airflow(browser: Any, ui_emulator: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[AirflowRest]:
    """Airflow for the session (after ``browser``: no browser, no reason to start it); stopped whatever happens.

    Scheduled runs are off (only the runs a test triggers); login through the simple auth manager's form."""
    work = tmp_path_factory.mktemp("ui-airflow")
    passwords = work / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    connection = {"conn_type": "aliyun", "extra": {
        "access_key_id": ui_emulator.access_key_id, "access_key_secret": ui_emulator.access_key_secret,
        "region": "cn-hangzhou", "endpoint": ui_emulator.base_url}}
    cluster = AirflowCluster(work / "airflow", connection, parallelism=4, extra_env={
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "ALIYUN_OPS_REPORT_DIR": str(work / "reports")})
    with cluster:
        cluster.prepare_db()
        cluster.start(timeout=300)
        rest = AirflowRest(f"http://127.0.0.1:{cluster.port}", USER, PASSWORD)
        deadline = time.monotonic() + 300
        while len(rest.dag_ids()) < len(expected_dag_files()):  # start() waited for one DAG only
            assert time.monotonic() < deadline, f"not every DAG was parsed within 300 s; logs in {cluster.logs}"
            time.sleep(2)
        yield rest


def new_page(browser: Any, airflow: AirflowRest, storage_state: dict | None = None) -> Any:
    context = browser.new_context(base_url=airflow.base, viewport={"width": 1400, "height": 1000},
                                  storage_state=storage_state)
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def log_in(page: Any, user: str = USER, password: str = PASSWORD) -> None:
    """Fill and submit the simple auth manager's sign-in form (the page must be on it)."""
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture(scope="session")
def login_state(browser: Any, airflow: AirflowRest) -> dict:
    """Cookies and storage of a browser logged in as admin through the sign-in page."""
    page = new_page(browser, airflow)
    try:
        page.goto("/")
        log_in(page)
        page.wait_for_url(lambda url: "/auth/login" not in url)
        page.get_by_role("link", name="Dags").first.wait_for()
        return page.context.storage_state()
    finally:
        page.context.close()


@pytest.fixture
def anon_page(browser: Any, airflow: AirflowRest) -> Iterator[Any]:
    page = new_page(browser, airflow)
    yield page
    page.context.close()


@pytest.fixture
def page(browser: Any, airflow: AirflowRest, login_state: dict) -> Iterator[Any]:
    page = new_page(browser, airflow, login_state)
    yield page
    page.context.close()


def open_pages(item: pytest.Item) -> list[Any]:
    """Every open page of the Playwright pages and contexts among the test's fixtures."""
    pages = []
    for value in getattr(item, "funcargs", {}).values():
        context = getattr(value, "context", None)
        if context is not None and hasattr(context, "pages") and hasattr(value, "screenshot"):
            pages += [p for p in context.pages if p not in pages and not p.is_closed()]
    return pages


def save_screenshots(item: pytest.Item) -> list[Path]:
    """Full-page screenshots of the test's open pages: ``<artifacts>/<test name>[-N].png``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.name)
    saved = []
    for i, page in enumerate(open_pages(item)):
        path = ARTIFACTS / (f"{name}.png" if i == 0 else f"{name}-{i}.png")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(path), full_page=True, timeout=30_000)
        except Exception as exc:  # a crashed page must not hide the test's own failure
            print(f"screenshot of {page.url} failed: {exc}")
            continue
        saved.append(path)
    return saved


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        for path in save_screenshots(item):
            print(f"\nscreenshot: {path}")
            report.sections.append(("screenshot", str(path)))
    return report
