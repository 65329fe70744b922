"""The Prefect UI in a real headless Chromium: Deployments → ingest → Run → Quick run.

Chromium is Debian's ``chromium`` package (``make test`` installs it); Playwright drives it
through ``executable_path`` because browsers cannot be downloaded here. Prefect 3.8's UI opens
a "Run Deployment" dialog, filled with the deployment's defaults, when Quick run is pressed on a
flow with a required parameter (every segflow flow takes a required ``params``), so the test
presses that dialog's Run as a user would. Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from storage import open_store
from storage.sequences import SequenceRepository
from tests.server.conftest import ROOT, RetryBusyTransport, Server, wait_until
from tests.server.test_deployments import Served, _wait_completed, served  # noqa: F401

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 20_000  # one UI step on a loaded 2-core machine


@pytest.fixture(scope="module")
def ingest_deployment(api: httpx.Client, served: Served) -> Iterator[str]:  # noqa: F811
    """The served ingest deployment, once its defaults point at this module's store.

    Deployments are upserted by name on the shared server, so one left by an earlier module's
    ``segflow serve`` carries that module's defaults until this one's process re-registers it.
    This module deletes its deployments afterwards so a later module waits for its own.
    """
    deployment = served.ids["segflow-ingest/ingest"]

    def current() -> bool:
        params = api.get(f"/deployments/{deployment}").json()["parameters"]["params"]
        return params["store"]["url"] == served.store

    wait_until(current, 60, "the ingest deployment to carry this module's defaults")
    try:
        yield deployment
    finally:
        for deployment_id in served.ids.values():
            api.delete(f"/deployments/{deployment_id}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.fail(
            "Debian's chromium is missing: `make test` installs it "
            "(apt-get install chromium); Playwright cannot download browsers here"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def _retry_busy(route: Route) -> None:
    """Send the UI's API request again while the server answers 503 (a locked SQLite database).

    The UI shows such an answer as an error; a user would press again, which this does for it.
    """
    response = route.fetch()
    for attempt in range(RetryBusyTransport.ATTEMPTS - 1):
        if response.status != 503:
            break
        time.sleep(0.25 * 2**attempt)
        response = route.fetch()
    route.fulfill(response=response)


@pytest.fixture
def page(browser: Browser, prefect_api: Server) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.route(f"{prefect_api.api}/**", _retry_busy)
    try:
        yield context.new_page()
    finally:
        context.close()


def _quick_run(page: Page, ui: str, store: str) -> str:
    """Open the UI, find the ingest deployment, press Run → Quick run; the created run's id."""
    page.goto(ui, wait_until="networkidle")
    page.get_by_role("link", name="Deployments").first.click()
    page.get_by_role("link", name="ingest", exact=True).first.click()
    page.get_by_role("button", name="Run").click()
    page.get_by_role("menuitem", name="Quick run").click()
    dialog = page.get_by_role("dialog", name="Run Deployment")
    dialog.locator("textarea").first.wait_for()
    assert store in [box.input_value() for box in dialog.locator("textarea").all()]  # the defaults
    with page.expect_response(lambda r: r.url.endswith("/create_flow_run")) as created:
        dialog.get_by_role("button", name="Run", exact=True).click()
    assert created.value.status == 201, created.value.text()
    expect(page.get_by_text("Flow run created")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "prefect-ui-run.png", animations="disabled")
    page.get_by_role("button", name="View run").click()  # the toast's link to the run's page
    return created.value.json()["id"]


def test_quick_run_from_the_prefect_ui_completes_with_outputs_in_the_store(
    prefect_api: Server,
    api: httpx.Client,
    served: Served,  # noqa: F811  (the fixture imported above)
    ingest_deployment: str,
    page: Page,
) -> None:
    ui = prefect_api.api.removesuffix("/api") + "/"
    run_id = _quick_run(page, ui, served.store)
    run = _wait_completed(api, run_id, served)
    assert run["deployment_id"] == ingest_deployment
    repo = SequenceRepository(open_store(served.store))
    assert repo.ids() == ["a", "b"] and repo.meta("a").length == 10
    # The run's page, reloaded, shows it Completed.
    expect(page.get_by_text(run["name"]).first).to_be_visible()
    page.reload(wait_until="networkidle")
    expect(page.get_by_text("Completed", exact=True).first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "prefect-ui-run-completed.png", animations="disabled")
