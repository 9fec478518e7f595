"""The operator journey in a real Chromium against real processes.

Emulator (SP-API) subprocess, sample app served by ``flask run``, a real RQ worker
(``flask --app sample_app xsale-amazon worker``), Redis db 11 and a fresh database, once on
each supported database (SQLite, PostgreSQL, MariaDB).
The tests run in file order and build on each other (import, link, auto-link, re-import, ...).

    /work/venv/bin/pytest -q -m browser tests/test_browser.py
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .browser_support import (
    BROWSER_TIMEOUT,
    CHROMIUM,
    REPO,
    XSS_NAME,
    XSS_SKU,
    Stack,
    backend_of,
    click_and_wait,
    new_context,
    running_stack,
    screenshot,
    settle,
)
from .conftest import BACKENDS
from .processes import tail

pytestmark = [pytest.mark.browser, pytest.mark.steps]

playwright_sync = pytest.importorskip("playwright.sync_api")
if not os.path.exists(CHROMIUM):  # never download a browser
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

RUN_TIMEOUT = 60.0  # s, an emulated import takes a few seconds
OFFERS = "/admin/xsale-amazon/offers/"
INTEGRATIONS = "/admin/xsale-amazon/integrations/"
MANUAL_OFFER_INDEX = 50  # a demo listing with no same-SKU product (products are the first 40)
MANUAL_PRODUCT_INDEX = 3


def demo_rows() -> list[dict[str, Any]]:
    from xsale_amazon_plugin.emulator.report_builder import demo_listings

    return list(demo_listings(60, seed=7, marketplace="DE"))


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: Any) -> Iterator[Stack]:
    with running_stack(backend=request.param) as s:
        yield s


class Session:
    """One operator's browser tab, recording every JS dialog and page error."""

    def __init__(self, browser: Any, stack: Stack) -> None:
        self.stack = stack
        self.context = new_context(browser, stack.base_url)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._on_dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def goto(self, path: str) -> Any:
        response = self.page.goto(path)
        assert response is not None and response.status == 200, (path, response and
                                                                  response.status)
        return response

    def shot(self, name: str, *, full_page: bool = True) -> str:
        """Save ``NN-name.png`` (``NN-name-sqlite.png`` on SQLite, ``-mariadb`` on MariaDB); open
        modals are shot in the viewport (their backdrop is fixed)."""
        return screenshot(self.page, name, backend_of(self.stack.env["DATABASE_URL"]),
                          full_page=full_page)

    def flash(self, kind: str = "success") -> str:
        alert = self.page.locator(f".alert-{kind}").first
        alert.wait_for(state="visible")
        return alert.inner_text()


@pytest.fixture(scope="module")
def ui(browser: Any, stack: Stack) -> Iterator[Session]:
    session = Session(browser, stack)
    try:
        yield session
    finally:
        session.context.close()
    # Every page of the journey must run without script errors.
    assert not session.errors, session.errors


@pytest.fixture(scope="module")
def journey(stack: Stack) -> dict[str, Any]:
    """State handed from one step to the next (one per stack: per database)."""
    return {}


# -- helpers --------------------------------------------------------------------------------------
def open_integration(ui: Session, name: str) -> None:
    ui.goto(INTEGRATIONS)
    row = ui.page.locator("table.model-list tbody tr").filter(
        has=ui.page.locator("td.col-name", has_text=re.compile(rf"^\s*{re.escape(name)}\s*$")))
    assert row.count() == 1, f"one row for {name!r}"
    row.locator("a[href*='/edit/']").first.click()
    ui.page.wait_for_url(re.compile(r"/xsale-amazon/integrations/edit/"))


def wait_run_end(ui: Session, on_progress: Any = None) -> tuple[str, list[str], int]:
    """Watch the live run page until it ends (no manual reload); return status, stages seen
    and how many times the page navigated by itself."""
    page = ui.page
    navigations: list[str] = []

    def on_nav(frame: Any) -> None:
        if frame == page.main_frame:
            navigations.append(frame.url)

    page.on("framenavigated", on_nav)
    stages: list[str] = []
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while time.monotonic() < deadline:
            try:
                status = page.locator("#xa-run .xa-status").get_attribute("data-status",
                                                                          timeout=2_000)
                stage = page.locator("#xa-stage").inner_text(timeout=2_000).strip()
                active = page.locator("#xa-run").get_attribute("data-active", timeout=2_000)
            except playwright_sync.Error:  # the page is reloading itself
                page.wait_for_timeout(100)
                continue
            if not stages or stages[-1] != stage:
                stages.append(stage)
            if on_progress is not None:
                on_progress(stage)
            if active == "false" and status not in ("queued", "requesting", "waiting",
                                                    "processing"):
                page.wait_for_load_state("load")
                return status or "", stages, len(navigations)
            page.wait_for_timeout(150)
    finally:
        page.remove_listener("framenavigated", on_nav)
    raise AssertionError(f"run did not end within {RUN_TIMEOUT}s; stages {stages}\n"
                         + tail(ui.stack.logs["worker"]))


def expect_url(ui: Session, pattern: str) -> None:
    """Wait for the navigation a form submit starts; on failure show the page's flashes."""
    try:
        ui.page.wait_for_url(re.compile(pattern), timeout=BROWSER_TIMEOUT)
    except playwright_sync.Error:
        alerts = [a.inner_text() for a in ui.page.locator(".alert").all()]
        raise AssertionError(f"expected {pattern!r}, still on {ui.page.url}; flashes: {alerts}"
                             ) from None


def needs(journey: dict[str, Any], *keys: str) -> None:
    missing = [k for k in keys if k not in journey]
    if missing:
        pytest.skip(f"an earlier step of the journey failed (no {', '.join(missing)})")


def run_id_from_url(url: str) -> int:
    match = re.search(r"[?&]id=(\d+)", url)
    assert match, url
    return int(match.group(1))


def linked_count(stack: Stack) -> int:
    return stack.sql("SELECT count(*) FROM xsale_amazon_offer_product_link")[0][0]


# -- the journey ----------------------------------------------------------------------------------
def test_01_import_with_live_progress(ui: Session, journey: dict[str, Any]) -> None:
    page = ui.page
    ui.goto(INTEGRATIONS)
    page.locator("td.col-name", has_text="Amazon FR").wait_for()
    ui.shot("01-integrations-list")

    open_integration(ui, "Amazon DE")
    tabs = page.locator(".xa-tabs .nav-link")
    assert tabs.first.get_attribute("id") == "xa-tab-connection"
    assert "active" in (tabs.first.get_attribute("class") or "")
    assert page.locator("#xa-connection").is_visible()
    actions = page.locator("#xa-service-actions")
    assert actions.is_visible()
    assert "Service actions" in actions.inner_text()
    ui.shot("02-integration-edit-connection")

    page.locator("#xa-import-button").click()
    modal = page.locator("#xa-import-modal")
    modal.wait_for(state="visible")
    page.wait_for_timeout(300)  # fade-in, for the screenshot
    assert "from a dozen minutes to a dozen hours" in modal.inner_text()
    assert page.locator("#xa-import-modal .xa-asin-instruction").count() == 0  # DE has ASINs
    ui.shot("03-import-confirmation", full_page=False)

    page.locator("#xa-import-confirm").click()
    expect_url(ui, r"/xsale-amazon/runs/details/\?id=\d+")
    journey["run_url"] = page.url
    assert "from a dozen minutes to a dozen hours" in ui.flash("success")

    shot_taken: list[bool] = []

    def progress_shot(stage: str) -> None:
        if not shot_taken and stage not in ("Queued", ""):
            ui.shot("04-run-in-progress")
            shot_taken.append(True)

    status, stages, navigations = wait_run_end(ui, progress_shot)
    assert status == "succeeded", (status, stages)
    assert len(set(stages)) >= 2, f"the stage text never changed live: {stages}"
    assert navigations == 1, f"the page should reload itself exactly once, not {navigations}"
    assert page.locator("#xa-run .xa-status").inner_text().strip() == "Succeeded"
    bar = page.locator("#xa-progress")
    assert bar.get_attribute("aria-valuenow") == "100"
    assert "bg-success" in (bar.get_attribute("class") or "")
    created = int(page.locator("#xa-summary [data-count=created]").inner_text())
    assert created > 0
    journey["created"] = created
    if not shot_taken:
        pytest.fail(f"never saw the run in progress: {stages}")
    ui.shot("05-run-succeeded")


def test_02_link_one_offer_with_the_picker(ui: Session, stack: Stack,
                                           journey: dict[str, Any]) -> None:
    needs(journey, "run_url")
    page = ui.page
    rows = demo_rows()
    offer_sku = rows[MANUAL_OFFER_INDEX]["seller_sku"]
    product_sku = rows[MANUAL_PRODUCT_INDEX]["seller_sku"]
    journey["manual"] = (offer_sku, product_sku)

    ui.goto(OFFERS)
    default = page.locator(".xa-mapping-views .nav-link.active")
    assert default.get_attribute("id") == "xa-view-unlinked"
    assert "Offers without a linked product" in default.inner_text()
    assert page.locator("table.model-list tbody tr").count() > 1
    ui.shot("06-offers-unlinked")

    # Narrow the default view down to the offer with Flask-Admin's search box.
    page.locator("input[name=search]").fill(offer_sku)
    page.locator("input[name=search]").press("Enter")
    page.wait_for_url(re.compile(r"search="))
    row = page.locator("table.model-list tbody tr", has_text=offer_sku)
    assert row.count() == 1
    row.locator(".xa-link").click()
    modal = page.locator("#xa-link-modal")
    modal.wait_for(state="visible")
    assert offer_sku in page.locator("#xa-link-offer-label").inner_text()

    page.locator("#s2id_xa-link-product a.select2-choice").click()
    search = page.locator(".select2-drop-active input.select2-input")
    search.wait_for(state="visible")
    search.fill(product_sku[2:])  # part of the SKU
    result = page.locator(".select2-drop-active .select2-result-selectable",
                          has_text=product_sku).first
    result.wait_for(state="visible")
    ui.shot("07-link-picker", full_page=False)
    result.click()
    assert page.locator("#xa-link-product").input_value() != ""
    click_and_wait(page, page.locator("#xa-link-submit"))
    assert re.search(r"Linked 1\b", ui.flash("success")), ui.flash("success")
    ui.shot("08-linked-flash")

    page.locator("#xa-view-linked").click()  # keeps the search
    page.wait_for_url(re.compile(r"view=linked"))
    linked_row = page.locator("table.model-list tbody tr", has_text=offer_sku)
    assert linked_row.count() == 1
    assert product_sku in linked_row.locator("td.col-product").inner_text()
    assert linked_count(stack) == 1
    journey["manual_linked"] = True


def test_03_autolink_selected_by_sku(ui: Session, stack: Stack, journey: dict[str, Any]) -> None:
    needs(journey, "run_url")
    page = ui.page
    ui.goto(OFFERS + "?view=unlinked&page_size=100")
    assert page.locator("#xa-view-unlinked.active").count() == 1
    page.locator("input.action-rowtoggle").check()
    checked = page.locator("input.action-checkbox:checked").count()
    assert checked == page.locator("input.action-checkbox").count() > 1
    page.locator("#xa-autolink-button").click()
    page.locator("#xa-autolink-modal").wait_for(state="visible")
    page.locator("label[for=xa-autolink-target-selected]").click()
    page.locator("label[for=xa-autolink-by-sku]").click()
    click_and_wait(page, page.locator("#xa-autolink-submit"))
    text = page.locator(".alert", has_text="Auto-link by SKU").first.inner_text()
    match = re.search(r"checked (\d+) offers: (\d+) linked, (\d+) ambiguous, (\d+) without a "
                      r"matching product, (\d+) without SKU to compare, (\d+) already linked",
                      text)
    assert match, text
    total, linked, ambiguous, no_match, no_key, already = map(int, match.groups())
    assert linked > 0 and no_match > 0, text
    assert total == checked == linked + ambiguous + no_match + no_key + already
    ui.shot("09-autolink-flash")
    journey["linked_total"] = linked_count(stack)
    assert journey["linked_total"] == 1 + linked

    ui.goto(OFFERS + "?view=linked&page_size=100")
    rows = page.locator("table.model-list tbody tr")
    assert rows.count() == journey["linked_total"]
    ui.shot("10-offers-linked")


def test_04_reimport_keeps_links(ui: Session, stack: Stack, journey: dict[str, Any]) -> None:
    needs(journey, "run_url", "manual_linked", "linked_total")
    page = ui.page
    ui.goto(journey["run_url"])
    first_id = run_id_from_url(journey["run_url"])
    page.locator("#xa-rerun").click()
    expect_url(ui, rf"/runs/details/\?id=(?!{first_id}\b)\d+")
    status, stages, _navs = wait_run_end(ui)
    assert status == "succeeded", stages
    assert int(page.locator("#xa-summary [data-count=created]").inner_text()) == 0
    ui.shot("11-reimport-succeeded")

    assert linked_count(stack) == journey["linked_total"]
    ui.goto(OFFERS + "?view=linked&page_size=100")
    assert page.locator("table.model-list tbody tr").count() == journey["linked_total"]
    offer_sku, product_sku = journey["manual"]
    row = page.locator("table.model-list tbody tr", has_text=offer_sku)
    assert product_sku in row.locator("td.col-product").inner_text()

    open_integration(ui, "Amazon DE")
    page.locator("#xa-tab-history").click()
    page.locator("#xa-history").wait_for(state="visible")
    settle(page)
    assert page.locator("#xa-history tbody tr").count() == 2
    ui.shot("12-integration-history")


def test_05_fr_without_asin_column_fails_with_instruction(ui: Session, stack: Stack) -> None:
    page = ui.page
    open_integration(ui, "Amazon FR")
    page.locator("#xa-import-button").click()
    instruction = page.locator("#xa-import-modal .xa-asin-instruction")
    instruction.wait_for(state="visible")
    settle(page)
    text = instruction.inner_text()
    assert "Seller Central" in text and "asin and asin1" in text
    assert "All Listings Report" in text
    ui.shot("13-fr-import-instruction", full_page=False)
    page.locator("#xa-import-confirm").click()
    expect_url(ui, r"/runs/details/\?id=\d+")
    status, stages, _navs = wait_run_end(ui)
    assert status == "failed", stages
    error = page.locator("#xa-error").inner_text()
    assert "asin and asin1" in error and "Seller Central" in error
    ui.shot("14-fr-run-failed")
    fr_offers = stack.sql(
        "SELECT count(*) FROM xsale_amazon_offer o JOIN xsale_amazon_integration i"
        " ON i.id = o.integration_id WHERE i.marketplace = 'FR'")[0][0]
    assert fr_offers == 0


def test_06_xss_offer_name_is_text(ui: Session, journey: dict[str, Any]) -> None:
    needs(journey, "run_url")
    page = ui.page
    ui.goto(OFFERS + f"?view=all&search={XSS_SKU}")
    row = page.locator("table.model-list tbody tr", has_text=XSS_SKU)
    assert row.count() == 1
    assert row.locator("td.col-name").inner_text().strip() == XSS_NAME
    assert page.locator("table.model-list script").count() == 0
    row.locator(".xa-link").click()
    page.locator("#xa-link-modal").wait_for(state="visible")
    assert XSS_NAME in page.locator("#xa-link-offer-label").inner_text()
    settle(page)
    ui.shot("15-xss-offer-as-text", full_page=False)
    page.keyboard.press("Escape")
    click_and_wait(page, row.locator("a[href*='/details/']").first)
    assert XSS_NAME in page.locator("table").first.inner_text()
    assert page.locator("table script").count() == 0
    ui.shot("16-xss-offer-details")
    # Demo names also carry <script>alert('x')</script>: browse the whole list as well.
    ui.goto(OFFERS + "?view=all&page_size=500")
    settle(page)
    assert ui.dialogs == [], ui.dialogs


def test_07_polish_ui(ui: Session) -> None:
    page = ui.page
    catalog = os.path.join(REPO, "xsale_amazon_plugin", "translations", "pl", "LC_MESSAGES",
                           "xsale_amazon.mo")
    ui.goto(INTEGRATIONS)
    ui.goto("/lang/pl")
    try:
        open_integration(ui, "Amazon DE")
        body = page.locator("body").inner_text()
        ui.shot("17-pl-integration-edit")
        ui.goto(OFFERS)
        offers_body = page.locator("body").inner_text()
        ui.shot("18-pl-offers")
        missing = [s for s in ("Połączenia", "Akcje serwisowe", "Importuj oferty")
                   if s not in body]
        if "Oferty bez powiązanego towaru" not in offers_body:
            missing.append("Oferty bez powiązanego towaru")
        if missing and not os.path.exists(catalog):
            pytest.xfail(f"no Polish catalog yet ({catalog}); missing {missing}")
        assert not missing, missing
    finally:
        ui.goto("/lang/en")
    assert ui.dialogs == [], ui.dialogs


def test_08_a_submitted_form_stops_the_live_reload(ui: Session, stack: Stack) -> None:
    """The run page reloads itself when the run ends. Once the operator submits a form there
    (cancel), that reload must not happen: it would replace the page the form leads to, and its
    "Import cancelled" confirmation, because the cancel itself ends the run."""
    from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
    from xsale_amazon_plugin.emulator.report_builder import demo_listings, render_report
    from xsale_amazon_plugin.emulator.server import EmulatorControl

    page = ui.page
    with contextlib.closing(EmulatorControl(stack.emulator_url)) as control:
        control.set_listings(get_marketplace("DE").marketplace_id,
                             render_report(list(demo_listings(5, seed=7, marketplace="DE")),
                                           "eu_en"), charset="Cp1252", polls_until_done=100_000)
    open_integration(ui, "Amazon DE")
    page.locator("#xa-import-button").click()
    page.locator("#xa-import-modal").wait_for(state="visible")
    page.locator("#xa-report-checking").wait_for(state="hidden")
    page.locator("#xa-report-fresh").check(force=True)  # not the report of test_04
    page.locator("#xa-import-confirm").click()
    expect_url(ui, r"/runs/details/\?id=\d+")
    run_id = run_id_from_url(page.url)
    page.locator("#xa-waiting-note").wait_for(state="visible", timeout=RUN_TIMEOUT * 1000)

    # The form is submitted (the page's own listeners see it) but its navigation is held back,
    # and the same cancel is posted in the background: the run ends while the page stays.
    page.evaluate("""async () => {
        window.xaStayed = true;
        const form = document.getElementById("xa-cancel-form");
        form.addEventListener("submit", (event) => event.preventDefault());
        form.requestSubmit();
        await fetch(form.action, {method: "POST", body: new FormData(form),
                                  credentials: "same-origin"});
    }""")
    assert stack.sql("SELECT status FROM xsale_amazon_import_run WHERE id = :i",
                     i=run_id)[0][0] == "cancelled"
    # An absence (no reload) can only be watched for a while: two polls of the run's JSON.
    page.wait_for_timeout(4_000)
    assert page.evaluate("window.xaStayed === true"), "the page reloaded over the submitted form"
