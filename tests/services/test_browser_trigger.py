"""The Airflow UI in headless Chromium: log in, trigger the DAG with a changed param.

Needs Debian's chromium at /usr/bin/chromium (CHROMIUM overrides the path). Playwright
drives it; its own browser downloads are not used. The screenshot of the new run's page
is saved as test-artifacts/airflow-ui-triggered-run.png.
"""

from __future__ import annotations

import os
import re
import shutil
from urllib.parse import unquote

import pytest
from services_support import DAG_ID
from support import REPOSITORY

pytestmark = [pytest.mark.services, pytest.mark.browser]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Without the networking flags Chromium tries to reach Google's servers at start-up,
# which a closed network refuses many times over.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPOSITORY / "test-artifacts"
SCREENSHOT = ARTIFACTS / "airflow-ui-triggered-run.png"
CHANGED_EPOCHS = 3
UI_TIMEOUT_MS = 60_000


@pytest.fixture
def page(tmp_path):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not found; install Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # launch_persistent_context takes the fresh profile folder that --user-data-dir
        # would name.
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1400},
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield context.new_page()
        finally:
            context.close()


def log_in(page, twin, path: str) -> None:
    """Open ``path`` of the UI, which redirects to the login form, and log in."""
    page.goto(f"{twin.api_url}{path}")
    page.get_by_label("Username").fill(twin.username)
    page.get_by_label("Password").fill(twin.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)


@pytest.fixture
def ui_run(local_twin, api, page, adult_dir):
    """Trigger the DAG through the UI's form; yield the run id; then stop the run."""
    log_in(page, local_twin, f"/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=element_epochs]").fill(str(CHANGED_EPOCHS))
    # The form treats the empty default of a string param as missing and keeps Trigger
    # disabled, so the test names the data folder here.
    dialog.locator("#element_data_source").fill(str(adult_dir))
    dialog.get_by_role("button", name="Trigger").click()
    page.wait_for_url(re.compile(rf".*/dags/{DAG_ID}/runs/[^/]+$"))
    run_id = unquote(page.url.rsplit("/", 1)[1])
    try:
        yield run_id
    finally:
        # The run would hold the DAG's only active run slot for the tests after this one.
        run = api.get_run(DAG_ID, run_id)
        if run["state"] not in ("success", "failed"):
            api.mark_run_failed(DAG_ID, run_id)
        api.wait_for_run(DAG_ID, run_id, timeout=120)


def test_ui_trigger_starts_run_with_changed_conf(api, page, ui_run, adult_dir):
    from playwright.sync_api import expect

    page.get_by_role("link", name="Details", exact=True).click()
    # The conf is shown in a code editor, which renders spaces as no-break spaces.
    conf = page.get_by_role("row", name=re.compile(r"^Conf\b"))
    expect(conf).to_contain_text(re.compile(rf'"epochs":\s*{CHANGED_EPOCHS}\b'))
    state = page.get_by_role("row", name=re.compile(r"^State\b"))
    expect(state).to_contain_text(re.compile("Queued|Running"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    run = api.get_run(DAG_ID, ui_run)
    assert run["run_type"] == "manual"
    assert run["triggered_by"] == "ui"
    assert run["state"] in ("queued", "running")
    assert run["conf"]["epochs"] == CHANGED_EPOCHS
    assert run["conf"]["data_source"] == str(adult_dir)
    # "Unpause adult_income_dp on trigger" is ticked in the form by default.
    assert api.get_dag(DAG_ID)["is_paused"] is False


@pytest.mark.slow
def test_ui_shows_mlflow_links(local_twin, api, page, rest_run):
    run_id = rest_run["triggered"]["dag_run_id"]
    promoted = api.xcom_value(DAG_ID, run_id, "promote")
    log_in(page, local_twin, f"/dags/{DAG_ID}/runs/{run_id}/tasks/register")
    # The task instance's Details tab lists its extra links.
    page.get_by_role("link", name="Details", exact=True).click()
    run_link = page.get_by_role("link", name="MLflow run")
    version_link = page.get_by_role("link", name="MLflow model version")
    assert run_link.get_attribute("href") == (
        f"{local_twin.mlflow_url}/#/runs/{promoted['mlflow_run_id']}"
    )
    assert version_link.get_attribute("href") == (
        f"{local_twin.mlflow_url}/#/models/{promoted['model_name']}/versions/{promoted['version']}"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "airflow-ui-mlflow-links.png"), full_page=True)
