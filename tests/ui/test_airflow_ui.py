"""The Airflow UI in a real browser: sign-in, the DAG list, the backup DAG's trigger form, the aliyun connection form.

Everything runs against a private Airflow (api-server, scheduler, dag-processor, triggerer) whose ``aliyun_default``
points at the emulator (see conftest.py). Expected values come from the project (dags/, the DAG's params through the REST API, the
connection type's fields), not from copies in this file.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from deploy.rest import AirflowRest

from .conftest import expected_dag_files, log_in

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect
if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.slow

DAG_ID = "ecs_cross_region_backup"
BAD_REGION = "Not A Region"
# small and fast: one source region of the demo fleet (4 instances tagged backup=daily), one destination
RUN_CHANGES = {"source_regions": ["cn-hangzhou"], "destination_regions": ["cn-shanghai"], "poll_interval": 1}
RUN_TIMEOUT = 300


def test_login(anon_page: Page) -> None:
    """An anonymous visitor is sent to the sign-in page; a wrong password is refused, the right one lets in."""
    page = anon_page
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/auth/login"))
    log_in(page, password="not-the-password")
    expect(page.get_by_text("Invalid credentials")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/auth/login"))
    log_in(page)
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    expect(page.get_by_role("link", name="Dags").first).to_be_visible()
    assert "/auth/login" not in page.url


def test_dag_list_shows_every_dag_and_no_import_errors(page: Page, airflow: AirflowRest) -> None:
    """Every file in dags/ gave a DAG, every DAG is listed in the UI, and neither the home page nor the API
    reports a DAG or plugin import error."""
    dags = airflow.call("GET", "/api/v2/dags?limit=100")["dags"]
    assert {p.name for p in expected_dag_files()} <= {Path(d["fileloc"]).name for d in dags}, \
        "a file in dags/ produced no DAG"

    with page.expect_response(lambda r: "/api/v2/importErrors" in r.url) as dag_errors, \
            page.expect_response(lambda r: "/api/v2/plugins/importErrors" in r.url) as plugin_errors:
        page.goto("/")
    expect(page.get_by_text("Failed Dags")).to_be_visible()  # the stats row, where import errors would show
    assert dag_errors.value.json()["total_entries"] == 0, dag_errors.value.json()
    assert plugin_errors.value.json()["total_entries"] == 0, plugin_errors.value.json()
    expect(page.get_by_text(re.compile(r"Import Error", re.I))).to_have_count(0)
    assert airflow.call("GET", "/api/v2/importErrors")["total_entries"] == 0

    page.goto("/dags")
    expect(page.get_by_role("heading", name=f"{len(dags)} Dags")).to_be_visible()
    for dag in dags:
        expect(page.get_by_role("link", name=dag["dag_id"], exact=True)).to_be_visible()


# -- the trigger form ------------------------------------------------------------------------------------------
def param_field(dialog: Locator, name: str) -> Locator:
    """The form group of param ``name`` (the UI names each param's input ``element_<name>``)."""
    element = dialog.page.locator(f'[name="element_{name}"], [id="element_{name}"]')
    return dialog.get_by_role("group").filter(has=element).first


def shown_value(field: Locator, name: str) -> tuple[Any, bool]:
    """What the form shows for a param, decoded like the param's value (list, bool, JSON object or text), and
    whether it is shown in a JSON editor. Every input is named ``element_<name>`` (a select's in a hidden input)
    except the Monaco editor of objects, inside ``<div id="element_<name>">``."""
    element = field.locator(f'[name="element_{name}"]')
    if not element.count():
        lines = field.locator(f'div[id="element_{name}"] .view-lines')
        expect(lines).to_be_visible()  # the editor loads lazily
        text = lines.inner_text().replace("\u00a0", " ").strip()
        return (json.loads(text) if text else None), True
    if element.evaluate("e => e.tagName.toLowerCase()") == "textarea":
        return [line for line in element.input_value().splitlines() if line.strip()], False
    if element.get_attribute("type") == "checkbox":
        return element.is_checked(), False
    return element.input_value(), False


def expected_shown(default: Any, editor: bool) -> Any:
    """How the form shows a default: lists and booleans as such, objects in a JSON editor (null as ``{}``: the
    form still submits null, which the conf check of the run proves), anything else as text (null as empty)."""
    if editor:
        return {} if default is None else default
    if isinstance(default, list | bool):
        return default
    return "" if default is None else str(default)


def check_param_shown(dialog: Locator, name: str, param: dict) -> None:
    """The param's field is in the form, labelled with the param's title and showing its default."""
    field = param_field(dialog, name)
    expect(field, f"param {name} is not in the form").to_be_visible()
    title = param["schema"].get("title")
    assert title, f"param {name} has no title"
    label = field.locator('label[data-part="label"]').first.inner_text()
    assert label.replace("*", "").strip() == title, f"param {name}: label {label!r}, title {title!r}"
    (shown, editor), default = shown_value(field, name), param["value"]
    assert shown == expected_shown(default, editor), f"param {name}: form shows {shown!r}, default {default!r}"


def open_trigger_form(page: Page, dag_id: str) -> Locator:
    page.goto(f"/dags/{dag_id}")
    page.get_by_role("button", name="Trigger Dag").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name=re.compile(f"Trigger Dag.*{dag_id}"))).to_be_visible()
    expect(dialog.get_by_text("Run Parameters")).to_be_visible()
    return dialog


def submit(dialog: Locator) -> None:
    dialog.get_by_role("contentinfo").get_by_role("button", name="Trigger").click()


def test_trigger_form_params_validation_and_run(page: Page, airflow: AirflowRest) -> None:
    """The backup DAG's trigger form shows every param with its title and default; an invalid region is refused
    in the dialog and creates no run; a valid submission sends the defaults plus the changes and its run
    succeeds."""
    params = airflow.call("GET", f"/api/v2/dags/{DAG_ID}/details")["params"]
    runs_before = {r["dag_run_id"] for r in airflow.dag_runs(DAG_ID)}
    dialog = open_trigger_form(page, DAG_ID)
    for name, param in params.items():
        check_param_shown(dialog, name, param)

    # an invalid region: the dialog shows the param's validation error and no run is created
    dialog.locator('[name="element_source_regions"]').fill(BAD_REGION)
    submit(dialog)
    expect(dialog.get_by_text(re.compile(r"Invalid input for param source_regions"))).to_be_visible()
    expect(dialog.get_by_text(BAD_REGION, exact=False).first).to_be_visible()
    assert {r["dag_run_id"] for r in airflow.dag_runs(DAG_ID)} == runs_before
    # the error's toast covers the Trigger button until it times out (it pauses while the pointer is on it)
    page.mouse.move(0, 0)
    expect(page.get_by_role("region", name=re.compile("Notifications")).get_by_role("status")).to_have_count(0)

    # a valid submission: the run's conf is the defaults plus what was changed
    dialog.locator('[name="element_source_regions"]').fill("\n".join(RUN_CHANGES["source_regions"]))
    dialog.locator('[name="element_destination_regions"]').fill("\n".join(RUN_CHANGES["destination_regions"]))
    param_field(dialog, "poll_interval").get_by_role("spinbutton").fill(str(RUN_CHANGES["poll_interval"]))
    with page.expect_response(lambda r: r.request.method == "POST" and f"/dags/{DAG_ID}/dagRuns" in r.url) as resp:
        submit(dialog)
    assert resp.value.status < 300, resp.value.text()
    run = resp.value.json()
    expect(dialog).to_be_hidden()
    assert run["triggered_by"] == "ui"
    assert run["conf"] == {**{name: p["value"] for name, p in params.items()}, **RUN_CHANGES}

    state = airflow.wait_run(DAG_ID, run["dag_run_id"], timeout=RUN_TIMEOUT)
    assert state == "success", f"run {run['dag_run_id']}: {state}; tasks {airflow.task_states(DAG_ID, run['dag_run_id'])}"


# -- the connection form ---------------------------------------------------------------------------------------
CONN_ID = "aliyun_ui_test"


def form_field(dialog: Locator, label: str) -> Locator:
    """The input of the connection form field labelled ``label`` (a label that starts with it)."""
    label_re = re.compile(rf"^\s*{re.escape(label)}")
    group = dialog.get_by_role("group").filter(has=dialog.page.locator("label", has_text=label_re)).first
    return group.locator("input").first


def test_connection_form_offers_aliyun_with_its_fields(page: Page, airflow: AirflowRest) -> None:
    """Add Connection offers the ``aliyun`` type with AccessKey ID, a masked AccessKey Secret, region, endpoint
    and RAM role fields; what is saved is an ``aliyun`` connection holding those values."""
    with page.expect_response(lambda r: "/connections/hook_meta" in r.url) as meta:
        page.goto("/connections")
        page.get_by_role("button", name="Add Connection").click()
    hooks = {h["connection_type"]: h for h in meta.value.json()}
    assert "aliyun" in hooks, f"no aliyun connection type in {sorted(hooks)}"
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("combobox", name="Connection Type").click()
    page.get_by_role("option", name=hooks["aliyun"]["hook_name"], exact=True).click()

    dialog.get_by_label("Connection ID").fill(CONN_ID)
    key_id, secret = form_field(dialog, "AccessKey ID"), form_field(dialog, "AccessKey Secret")
    key_id.fill("LTAIuiTestKeyId")
    secret.fill("ui-test-secret-value")
    expect(secret).to_have_attribute("type", "password")  # typed, and still masked
    for hidden in ("Host", "Schema", "Port"):
        expect(dialog.locator("label", has_text=re.compile(rf"^\s*{hidden}\s*$"))).to_have_count(0)

    dialog.get_by_role("button", name="Extra Fields", exact=True).click()  # closes the standard fields
    extras = {"region": ("Region", "cn-beijing"), "endpoint": ("Endpoint", "http://127.0.0.1:9100"),
              "ram_role_arn": ("RAM role", "acs:ram::1234567890123456:role/aliyun-ops-ui-test")}
    for label, value in extras.values():
        form_field(dialog, label).fill(value)
    try:
        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_be_hidden()
        saved = airflow.call("GET", f"/api/v2/connections/{CONN_ID}")
        assert saved["conn_type"] == "aliyun"
        assert saved["login"] == "LTAIuiTestKeyId"
        extra = json.loads(saved["extra"] or "{}")
        assert {name: extra.get(name) for name in extras} == {name: value for name, (_, value) in extras.items()}
    finally:
        with contextlib.suppress(RuntimeError, OSError):  # RuntimeError: an HTTP error (e.g. 404: never saved)
            airflow.call("DELETE", f"/api/v2/connections/{CONN_ID}")
