"""The whole operator journey in a real Chromium, in English and in Polish, on SQLite,
PostgreSQL and MariaDB.

Real processes (``browser_support.running_stack``): the SP-API emulator, the sample app served
by ``flask run``, a real RQ worker, Redis and a fresh database (a PostgreSQL schema, a MariaDB
database, an SQLite file), one stack per language and database. The operator: creates an
integration (junk first, then valid) → tests the connection → imports and cancels while
Amazon prepares the report → imports again → fixes the FR report (ASIN column) and runs it
again → filters → searches → links one offer, two in bulk and the rest automatically →
deletes the integration (typing its name, links would be lost). Screenshots of every step go
to ``artifacts/screenshots/journey-<lang>-NN-*.png`` (on SQLite and MariaDB the database's
name ends the file name).

    .venv/bin/python -m pytest -q tests/test_journey.py
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from . import test_browser as steps
from . import test_offers_browser as offer_steps
from .browser_support import CHROMIUM, Stack, click_and_wait, running_stack, settle
from .conftest import BACKENDS

pytestmark = pytest.mark.browser

playwright_sync = pytest.importorskip("playwright.sync_api")
if not os.path.exists(CHROMIUM):  # never download a browser
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

INTEGRATIONS = steps.INTEGRATIONS
OFFERS = steps.OFFERS
NAME = "Amazon DE journey"
SELLER = "A1JOURNEY"
WAIT_S = 60.0

#: What the operator reads, per language (only what the steps check by text).
TEXT = {
    "en": {
        "name_error": "Enter a name.",
        "seller_error": "A seller ID (merchant token) is 5 to 20",
        "client_error": "An LWA client ID looks like",
        "connection_ok": "Connection works",
        "cancelled": "Import cancelled",
        "nothing_changed": "Nothing was changed",
        "remedy": "Add the ASIN columns in Seller Central",
        "fresh_rerun": "Run again with a fresh report",
        "add_filter": "Add Filter",
        "marketplace": "Marketplace",
        "de_label": "DE — Germany (amazon.de)",
        "linked_one": "Linked",
        "deleted": f'Integration "{NAME}" deleted',
        "start_here": "Start here",
        "type_name": "Type the integration",
    },
    "pl": {
        "name_error": "Wpisz nazwę.",
        "seller_error": "Identyfikator sprzedawcy (merchant token) to od 5 do 20",
        "client_error": "Identyfikator klienta LWA wygląda tak",
        "connection_ok": "Połączenie działa",
        "cancelled": "Import anulowany",
        "nothing_changed": "Nic nie zostało zmienione",
        "remedy": "Dodaj kolumny ASIN w Seller Central",
        "fresh_rerun": "Uruchom ponownie z nowym raportem",
        "add_filter": "Dodaj filtr",
        "marketplace": "Rynek",
        "de_label": "DE — Niemcy (amazon.de)",
        "linked_one": "Powiązano",
        "deleted": f"Usunięto integrację „{NAME}”",
        "start_here": "Zacznij tutaj",
        "type_name": "wpisz dokładnie nazwę integracji",
    },
}


@pytest.fixture(scope="module", params=["en", "pl"])
def lang(request: Any) -> str:
    return request.param


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: Any) -> str:
    return request.param


@pytest.fixture(scope="module")
def stack(lang: str, backend: str) -> Iterator[Stack]:
    with running_stack(backend=backend) as s:
        yield s


@pytest.fixture(scope="module")
def ui(browser: Any, stack: Stack, lang: str) -> Iterator[steps.Session]:
    session = steps.Session(browser, stack)
    failed_requests: list[str] = []
    session.page.on("response", lambda r: failed_requests.append(f"{r.status} {r.url}")
                    if r.status >= 400 else None)
    try:
        yield session
    finally:
        session.context.close()
    assert not session.errors, session.errors
    assert session.dialogs == [], "every confirmation is a styled dialog"
    assert failed_requests == [], failed_requests  # no 404 (favicon) or 500 on the way


class Journey:
    def __init__(self, ui: steps.Session, stack: Stack, lang: str) -> None:
        self.ui, self.stack, self.lang, self.page = ui, stack, lang, ui.page
        self.t = TEXT[lang]
        self.shots = 0

    def shot(self, name: str, *, full_page: bool = True) -> None:
        settle(self.page)
        self.shots += 1
        self.ui.shot(f"journey-{self.lang}-{self.shots:02d}-{name}", full_page=full_page)

    def sql(self, statement: str, **params: Any) -> list[Any]:
        return self.stack.sql(statement, **params)

    def integration_id(self, name: str) -> int:
        return self.sql("SELECT id FROM xsale_amazon_integration WHERE name = :n", n=name)[0][0]

    def publish(self, marketplace: str, family: str, polls: int) -> None:
        """What Amazon's report for ``marketplace`` contains from now on."""
        from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
        from xsale_amazon_plugin.emulator.report_builder import demo_listings, render_report
        from xsale_amazon_plugin.emulator.server import EmulatorControl

        if marketplace == "DE":
            rows = list(demo_listings(60, seed=7, marketplace="DE"))
        else:
            rows = list(demo_listings(30, seed=9, marketplace="FR", sku_prefix="FR-"))
        with contextlib.closing(EmulatorControl(self.stack.emulator_url)) as control:
            control.set_listings(get_marketplace(marketplace).marketplace_id,
                                 render_report(rows, family), charset="Cp1252",
                                 polls_until_done=polls)

    def select(self, selector: str, value: str) -> None:
        field = self.page.locator(selector)
        field.select_option(value, force=True)  # select2 hides the native select
        field.dispatch_event("change")

    def wait_status(self, run_id: int, wanted: str) -> None:
        """Until the run (as the database has it) reaches ``wanted``; the page keeps polling."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.sql("SELECT status FROM xsale_amazon_import_run WHERE id = :i",
                        i=run_id)[0][0] == wanted:
                return
            self.page.wait_for_timeout(150)
        raise AssertionError(f"the run never became {wanted}")

    def start_import_from_dialog(self, report: str = "fresh") -> int:
        page = self.page
        page.locator("#xa-import-button").click()
        page.locator("#xa-import-modal").wait_for(state="visible")
        page.locator("#xa-report-checking").wait_for(state="hidden")
        page.locator(f"#xa-report-{report}").check(force=True)
        self.shot("import-dialog", full_page=False)
        page.locator("#xa-import-confirm").click()
        steps.expect_url(self.ui, r"/runs/details/\?id=\d+")
        return steps.run_id_from_url(page.url)


@pytest.fixture(scope="module")
def journey(ui: steps.Session, stack: Stack, lang: str) -> Journey:
    return Journey(ui, stack, lang)


def test_operator_journey(journey: Journey) -> None:
    j, page, t = journey, journey.page, journey.t

    # -- the demo's home page, in the operator's language
    if j.lang == "pl":
        j.ui.goto("/lang/pl")
    j.ui.goto("/admin/")
    assert t["start_here"] in page.locator("#start-here").inner_text()
    j.shot("home")

    # -- create: junk is refused with clear messages, nothing is saved
    j.ui.goto(INTEGRATIONS + "new/")
    page.fill("#name", "   ")
    j.select("#marketplace", "DE")
    j.select("#account_type", "FBM")
    page.fill("#seller_id", "not a seller id!!! <script>")
    page.fill("#lwa_client_id", "garbage")
    page.fill("#new_lwa_client_secret", "demo-client-secret")
    page.fill("#new_refresh_token", "Atzr|demo-refresh-token")
    assert page.locator("#new_refresh_token").get_attribute("placeholder") != ""
    click_and_wait(page, page.locator("form.admin-form input[type=submit]").first)
    errors = " ".join(page.locator(".invalid-feedback, .help-block").all_inner_texts())
    for key in ("name_error", "seller_error", "client_error"):
        assert t[key] in errors, (key, errors)
    assert j.sql("SELECT count(*) FROM xsale_amazon_integration")[0][0] == 3
    j.shot("create-junk-refused")
    page.fill("#name", NAME)
    page.fill("#seller_id", SELLER)
    page.fill("#lwa_client_id", "amzn1.application-oa2-client.demo")
    page.fill("#new_lwa_client_secret", "demo-client-secret")
    page.fill("#new_refresh_token", "Atzr|demo-refresh-token")
    click_and_wait(page, page.locator("form.admin-form input[type=submit]").first)
    integ = j.integration_id(NAME)

    # -- test connection
    steps.open_integration(j.ui, NAME)
    assert t["de_label"] in page.locator(".xa-marketplace-name").inner_text()
    click_and_wait(page, page.locator("#xa-test-connection"))
    assert t["connection_ok"] in j.ui.flash("success")
    j.shot("test-connection")

    # -- import, then cancel while Amazon prepares the report
    j.publish("DE", "eu_en", polls=100_000)
    run_id = j.start_import_from_dialog("fresh")
    j.wait_status(run_id, "waiting")
    page.locator("#xa-waiting-note").wait_for(state="visible")
    j.shot("import-waiting")
    page.locator("#xa-cancel").click()
    page.locator("#xa-cancel-modal").wait_for(state="visible")
    j.shot("cancel-dialog", full_page=False)
    click_and_wait(page, page.locator("#xa-cancel-confirm"))
    assert t["cancelled"] in j.ui.flash("success")
    assert t["nothing_changed"] in page.locator("#xa-summary").inner_text()
    assert j.sql("SELECT status, active_lock FROM xsale_amazon_import_run WHERE id = :i",
                 i=run_id)[0] == ("cancelled", None)
    assert j.sql("SELECT count(*) FROM xsale_amazon_offer WHERE integration_id = :i",
                 i=integ)[0][0] == 0
    j.shot("cancelled")

    # -- re-import at once: it runs to the end
    j.publish("DE", "eu_en", polls=2)
    page.locator("#xa-rerun").click()
    steps.expect_url(j.ui, r"/runs/details/\?id=\d+")
    assert steps.run_id_from_url(page.url) != run_id
    status, stages, _navigations = steps.wait_run_end(j.ui)
    assert status == "succeeded", stages
    assert "Estimated" not in page.locator("#xa-run").inner_text()
    offers = j.sql("SELECT count(*) FROM xsale_amazon_offer WHERE integration_id = :i",
                   i=integ)[0][0]
    assert offers == 60
    j.shot("reimported")

    # -- FR: fails on the missing ASIN column; the remedy first; fixed, run again
    j.publish("FR", "fr", polls=1)
    steps.open_integration(j.ui, "Amazon FR")
    j.start_import_from_dialog("fresh")
    status, _stages, _navigations = steps.wait_run_end(j.ui)
    assert status == "failed"
    remedy = page.locator("#xa-remedy")
    assert t["remedy"] in remedy.inner_text() and "btn-primary" in remedy.get_attribute("class")
    assert "btn-outline-secondary" in page.locator("#xa-rerun").get_attribute("class")
    j.shot("fr-missing-asin")
    j.publish("FR", "eu_en", polls=1)  # the seller added asin1 in Seller Central
    assert t["fresh_rerun"] in page.locator("#xa-rerun").inner_text()
    page.locator("#xa-rerun").click()
    steps.expect_url(j.ui, r"/runs/details/\?id=\d+")
    status, stages, _navigations = steps.wait_run_end(j.ui)
    assert status == "succeeded", stages
    j.shot("fr-fixed")

    # -- offers: filter by marketplace, search, link one, bulk link two, auto-link the rest
    j.ui.goto(OFFERS)
    page.locator("a.dropdown-toggle", has_text=t["add_filter"]).click()
    page.locator(".field-filters a.filter", has_text=t["marketplace"]).first.click()
    value = page.locator("#filter_form select.filter-val").last
    assert t["de_label"] in value.locator("option").all_inner_texts()
    value.select_option("DE", force=True)
    value.dispatch_event("change")
    page.locator("#filter_form button[type=submit]").click()
    page.wait_for_url(re.compile(r"flt\d+_\d+=DE"))
    assert offer_steps.rows(j.ui).count() > 0
    assert not any(s.startswith("FR-") for s in offer_steps.skus(j.ui))
    j.shot("filter-marketplace")

    search = page.locator("input[name=search]")
    search.fill("SKU-000051")
    search.press("Enter")
    page.wait_for_url(re.compile(r"search=SKU-000051"))
    assert offer_steps.skus(j.ui) == ["SKU-000051"]
    j.shot("search")
    offer_steps.rows(j.ui).first.locator(".xa-link").click()
    page.locator("#xa-link-modal").wait_for(state="visible")
    offer_steps.pick_product(j.ui, "SKU-000003")
    j.shot("link-dialog", full_page=False)
    click_and_wait(page, page.locator("#xa-link-submit"))
    assert t["linked_one"] in j.ui.flash("success")
    assert steps.linked_count(j.stack) == 1

    j.ui.goto(OFFERS + "?search=SKU-00004")
    boxes = page.locator("input.action-checkbox")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.locator("#xa-bulk-link-button").click()
    page.locator("#xa-link-modal").wait_for(state="visible")
    offer_steps.pick_product(j.ui, "SKU-000005")
    j.shot("bulk-link-dialog", full_page=False)
    click_and_wait(page, page.locator("#xa-link-submit"))
    assert steps.linked_count(j.stack) == 3
    j.shot("bulk-linked")

    j.ui.goto(OFFERS)
    page.locator("#xa-autolink-button").click()
    page.locator("#xa-autolink-modal").wait_for(state="visible")
    j.shot("autolink-dialog", full_page=False)
    click_and_wait(page, page.locator("#xa-autolink-submit"))
    deadline = time.monotonic() + WAIT_S
    while steps.linked_count(j.stack) <= 3 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    links = steps.linked_count(j.stack)
    assert links > 30, links  # the 40 demo products share their SKUs with offers
    j.shot("autolinked")

    # -- delete: the confirmation names what goes; links → type the name
    j.ui.goto(INTEGRATIONS)
    row = page.locator("table.model-list tbody tr").filter(has_text=NAME)
    row.locator("a[href*='delete/?id=']").click()
    page.wait_for_url(re.compile(r"/integrations/delete/\?id=\d+"))
    counts = page.locator("#xa-delete-counts").inner_text()
    own_links = j.sql(
        "SELECT count(*) FROM xsale_amazon_offer_product_link k JOIN xsale_amazon_offer o "
        "ON o.id = k.offer_id WHERE o.integration_id = :i", i=integ)[0][0]
    assert f": {offers}" in counts and f": {own_links}" in counts, counts
    j.shot("delete-confirmation")
    page.fill("#xa-confirm-name", "wrong name")
    click_and_wait(page, page.locator("#xa-delete-confirm"))
    assert t["type_name"] in page.locator("#xa-delete-error").inner_text()
    assert j.sql("SELECT count(*) FROM xsale_amazon_integration WHERE id = :i", i=integ)[0][0]
    page.fill("#xa-confirm-name", NAME)
    click_and_wait(page, page.locator("#xa-delete-confirm"))
    assert t["deleted"] in j.ui.flash("success")
    j.shot("deleted")
    assert j.sql("SELECT count(*) FROM xsale_amazon_integration WHERE id = :i", i=integ) == [(0,)]
    assert j.sql("SELECT count(*) FROM xsale_amazon_offer WHERE integration_id = :i",
                 i=integ) == [(0,)]
    assert j.sql("SELECT count(*) FROM xsale_amazon_import_run WHERE integration_id = :i",
                 i=integ) == [(0,)]
    assert steps.linked_count(j.stack) == links - own_links
