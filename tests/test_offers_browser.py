"""The offers workspace in a real Chromium, English then Polish, on SQLite, PostgreSQL and
MariaDB.

Real processes as in ``test_browser.py`` (emulator, sample app, RQ worker, Redis, a fresh
database on each); auto-link over more than 25 offers runs as a background job here
(``XSALE_AMAZON_AUTOLINK_INLINE_LIMIT=25``). The steps build on each other: import, filters,
link dialog, bulk link with an error, unlink, search hints, background auto-link, Polish.

    .venv/bin/python -m pytest -q tests/test_offers_browser.py
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from . import test_browser as steps
from .browser_support import (
    CHROMIUM,
    Stack,
    click_and_wait,
    running_stack,
    settle,
)
from .conftest import BACKENDS

pytestmark = [pytest.mark.browser, pytest.mark.steps]

playwright_sync = pytest.importorskip("playwright.sync_api")
if not os.path.exists(CHROMIUM):  # never download a browser
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

OFFERS = steps.OFFERS
ENV = {"XSALE_AMAZON_AUTOLINK_INLINE_LIMIT": "25", "XSALE_AMAZON_AUTOLINK_BATCH": "10"}


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: Any) -> Iterator[Stack]:
    with running_stack(extra_env=ENV, backend=request.param) as s:
        yield s


@pytest.fixture(scope="module")
def ui(browser: Any, stack: Stack) -> Iterator[steps.Session]:
    session = steps.Session(browser, stack)
    try:
        yield session
    finally:
        session.context.close()
    assert not session.errors, session.errors
    # Every confirmation and message is a styled dialog: the browser's never opened.
    assert session.dialogs == [], session.dialogs


@pytest.fixture(scope="module")
def state(stack: Stack) -> dict[str, Any]:
    """State handed from one step to the next (one per stack: per database)."""
    return {}


def write_sql(stack: Stack, statement: str, **params: Any) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(stack.env["DATABASE_URL"])
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement), params)
    finally:
        engine.dispose()


def shot(ui: steps.Session, name: str, *, full_page: bool = False) -> None:
    settle(ui.page)
    ui.shot(f"offers-{name}", full_page=full_page)


def rows(ui: steps.Session) -> Any:
    return ui.page.locator("table.model-list tbody tr:has(td.col-seller_sku)")


def skus(ui: steps.Session) -> list[str]:
    return [s.strip() for s in ui.page.locator("td.col-seller_sku").all_inner_texts()]


def open_picker(ui: steps.Session, term: str | None = None) -> Any:
    page = ui.page
    page.locator("#s2id_xa-link-product a.select2-choice").click()
    search = page.locator(".select2-drop-active input.select2-input")
    search.wait_for(state="visible")
    if term is not None:
        search.fill(term)
    return page.locator(".select2-drop-active")


def pick_product(ui: steps.Session, code: str) -> None:
    drop = open_picker(ui, code)
    result = drop.locator(".select2-result-selectable", has_text=code).first
    result.wait_for(state="visible")
    result.click()
    assert ui.page.locator("#xa-link-product").input_value() != ""


# -- the steps ------------------------------------------------------------------------------------
def test_01_import(ui: steps.Session, stack: Stack, state: dict[str, Any]) -> None:
    steps.open_integration(ui, "Amazon DE")
    ui.page.locator("#xa-import-button").click()
    ui.page.locator("#xa-import-modal").wait_for(state="visible")
    ui.page.locator("#xa-import-confirm").click()
    steps.expect_url(ui, r"/runs/details/\?id=\d+")
    status, stages, _navs = steps.wait_run_end(ui)
    assert status == "succeeded", stages
    offers = stack.sql("SELECT count(*) FROM xsale_amazon_offer")[0][0]
    assert offers > 40
    state["offers"] = offers


def test_02_marketplace_and_account_type_filters_in_every_view(ui: steps.Session,
                                                                state: dict[str, Any]) -> None:
    steps.needs(state, "offers")
    page = ui.page
    ui.goto(OFFERS)
    # The operator's way: Add Filter -> Marketplace -> DE -> Apply.
    page.locator("a.dropdown-toggle", has_text="Add Filter").click()
    page.locator(".field-filters a.filter", has_text="Marketplace").click()
    value = page.locator("#filter_form select.filter-val").last
    labels = value.locator("option").all_inner_texts()
    assert "DE — Germany (amazon.de)" in labels, labels
    value.select_option("DE", force=True)
    value.dispatch_event("change")
    page.locator("#filter_form button[type=submit]").click()
    page.wait_for_url(re.compile(r"flt\d+_\d+=DE"))
    assert rows(ui).count() > 0
    shot(ui, "01-filter-marketplace", full_page=True)
    filtered = page.url
    for view in ("unlinked", "linked", "all"):
        for extra in ("", "&search=SKU-0000"):
            response = page.goto(re.sub(r"([?&])view=\w+", r"\1", filtered) + f"&view={view}"
                                 + extra)
            assert response is not None and response.status == 200, (view, extra)
            assert all("(DE " in t for t in page.locator("td.col-integration").all_inner_texts())
    # Account type on top of it, in the list view the operator is in.
    page.locator("a.dropdown-toggle", has_text="Add Filter").click()
    page.locator(".field-filters a.filter", has_text="Account type").click()
    value = page.locator("#filter_form select.filter-val").last
    value.select_option("FBM", force=True)
    value.dispatch_event("change")
    page.locator("#filter_form button[type=submit]").click()
    page.wait_for_url(re.compile(r"=FBM"))
    assert page.locator("td.col-integration").count() > 0
    assert all("DE FBM" in t for t in page.locator("td.col-integration").all_inner_texts())


def test_03_link_dialog_says_what_is_missing_and_pages_the_picker(ui: steps.Session,
                                                                   state: dict[str, Any]) -> None:
    steps.needs(state, "offers")
    page = ui.page
    ui.goto(OFFERS + "?search=SKU-000010")
    row = rows(ui).filter(has_text="SKU-000010")
    row.locator(".xa-link").click()
    page.locator("#xa-link-modal").wait_for(state="visible")
    page.locator("#xa-link-submit").click()  # no product chosen
    error = page.locator("#xa-link-error")
    error.wait_for(state="visible")
    assert "Choose a product first" in error.inner_text()
    assert page.url.endswith("search=SKU-000010")  # nothing was sent
    page.keyboard.press("Escape")  # closes the open picker
    shot(ui, "02-link-no-product")
    # Empty search: the product with the offer's own SKU first, marked; paging by scroll.
    drop = open_picker(ui)
    first = drop.locator(".select2-result-selectable").first
    first.wait_for(state="visible")
    assert "SKU-000010" in first.inner_text() and "same SKU" in first.inner_text()
    hint = page.locator("#xa-picker-hint")
    assert re.search(r"20 of 40 matches shown", hint.inner_text()), hint.inner_text()
    shot(ui, "03-picker-same-sku-first")
    drop.locator(".select2-results").evaluate("el => el.scrollTop = el.scrollHeight")
    page.wait_for_function(
        "document.querySelectorAll('.select2-drop-active .select2-result-selectable')"
        ".length > 20")
    assert drop.locator(".select2-result-selectable").count() == 40
    drop.locator("input.select2-input").fill("no-such-product-zz")
    drop.locator(".select2-no-results", has_text="No matches found").wait_for()
    page.keyboard.press("Escape")
    page.keyboard.press("Escape")


def test_04_bulk_link_keeps_the_selection_after_an_error(ui: steps.Session, stack: Stack,
                                                         state: dict[str, Any]) -> None:
    steps.needs(state, "offers")
    page = ui.page
    ui.goto(OFFERS + "?search=SKU-00005")
    button = page.locator("#xa-bulk-link-button")
    assert button.is_disabled()
    boxes = page.locator("input.action-checkbox")
    assert boxes.count() >= 3
    chosen = skus(ui)[:3]
    for i in range(3):
        boxes.nth(i).check()
    playwright_sync.expect(button).to_contain_text("Link selected (3) to product")
    assert button.is_enabled()
    button.click()
    page.locator("#xa-link-modal").wait_for(state="visible")
    assert page.locator("#xa-link-title").inner_text() == "Link 3 offers to a product"
    assert page.locator("#xa-link-offer-label").inner_text() == ", ".join(chosen)
    pick_product(ui, "SKU-000007")
    # The product is deleted by someone else before the operator confirms.
    chosen_product = int(page.locator("#xa-link-product").input_value())
    write_sql(stack, "DELETE FROM towar WHERE id = :id", id=chosen_product)
    page.locator("#xa-link-submit").click()
    error = page.locator("#xa-link-error")
    error.wait_for(state="visible")
    assert "does not exist" in error.inner_text()
    shot(ui, "04-bulk-link-error")
    page.locator("#xa-link-modal button[data-dismiss=modal]").first.click()
    page.locator("#xa-link-modal").wait_for(state="hidden")
    assert page.locator("input.action-checkbox:checked").count() == 3  # selection kept
    assert steps.linked_count(stack) == 0
    button.click()
    page.locator("#xa-link-modal").wait_for(state="visible")
    assert page.locator("#xa-link-error").is_hidden()
    pick_product(ui, "SKU-000008")
    click_and_wait(page, page.locator("#xa-link-submit"))
    assert "Linked 3 offers." in ui.flash("success")
    assert steps.linked_count(stack) == 3
    state["linked_sku"] = chosen[0]
    shot(ui, "05-bulk-linked", full_page=True)


def test_05_unlink_asks_in_a_styled_dialog(ui: steps.Session, stack: Stack,
                                           state: dict[str, Any]) -> None:
    steps.needs(state, "linked_sku")
    page = ui.page
    ui.goto(OFFERS + "?view=linked")
    # "With selected" with nothing ticked: a styled message, not alert().
    page.locator("a.dropdown-toggle", has_text="With selected").click()
    page.locator(".dropdown-menu a", has_text="Unlink").click()
    message = page.locator("#xa-message-modal")
    message.wait_for(state="visible")
    assert "Tick at least one offer" in message.inner_text()
    message.locator("button", has_text="OK").click()
    message.wait_for(state="hidden")
    last = skus(ui)[-1]
    rows(ui).filter(has_text=last).locator(".xa-unlink").click()
    modal = page.locator("#xa-unlink-modal")
    modal.wait_for(state="visible")
    assert f"Unlink offer {last} from its product?" in modal.inner_text()
    shot(ui, "06-unlink-dialog")
    click_and_wait(page, page.locator("#xa-unlink-confirm"))
    assert "Unlinked 1 offer." in ui.flash("success")
    assert steps.linked_count(stack) == 2
    assert ui.dialogs == []


def test_06_search_in_unlinked_points_to_linked_matches(ui: steps.Session,
                                                        state: dict[str, Any]) -> None:
    steps.needs(state, "linked_sku")
    page = ui.page
    sku = state["linked_sku"]
    ui.goto(OFFERS + f"?search={sku}")
    hint = page.locator("#xa-elsewhere")
    hint.wait_for()
    assert "1 match among linked offers" in hint.inner_text()
    assert "1 match among all offers" in hint.inner_text()
    shot(ui, "07-search-elsewhere", full_page=True)
    page.locator("#xa-elsewhere-linked").click()
    page.wait_for_url(re.compile(r"view=linked"))
    assert skus(ui) == [sku]


def test_07_autolink_everything_the_filter_shows_in_the_background(
        ui: steps.Session, stack: Stack, state: dict[str, Any]) -> None:
    steps.needs(state, "offers")
    page = ui.page
    # A second product with the code of an offer: auto-link by SKU cannot choose for it.
    write_sql(stack, "INSERT INTO towar (code, name) VALUES ('SKU-000012', 'Twin of 12')")
    ui.goto(OFFERS + "?page_size=20")
    count = int(page.locator(".xa-view-count").inner_text().replace(",", ""))
    assert count > 25 and rows(ui).count() == 20  # more than one page
    page.locator("#xa-autolink-button").click()
    modal = page.locator("#xa-autolink-modal")
    modal.wait_for(state="visible")
    assert f"All {count} offers the current view shows" in modal.inner_text()
    shot(ui, "08-autolink-dialog")
    page.locator("#xa-autolink-submit").click()
    steps.expect_url(ui, r"/offers/autolink/\d+/")
    summary = page.locator("#xa-autolink-summary")
    deadline = time.monotonic() + 60
    while not summary.count() and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    text = summary.inner_text()
    match = re.search(r"checked (\d+) offers: (\d+) linked, (\d+) ambiguous, (\d+) without a "
                      r"matching product, (\d+) without SKU to compare, (\d+) already linked",
                      text)
    assert match, text
    total, linked, ambiguous, no_match, no_key, already = map(int, match.groups())
    assert total == count == linked + ambiguous + no_match + no_key + already
    assert ambiguous == 1 and linked > 0
    assert page.locator("#xa-autolink-progress").get_attribute("aria-valuenow") == "100"
    shot(ui, "09-autolink-summary", full_page=True)
    page.locator("a.xa-review-ambiguous").click()
    page.wait_for_url(re.compile(r"view=unlinked"))
    assert skus(ui) == ["SKU-000012"]
    shot(ui, "10-autolink-review-ambiguous", full_page=True)


def test_08_polish(ui: steps.Session, stack: Stack, state: dict[str, Any]) -> None:
    steps.needs(state, "offers")
    page = ui.page
    ui.goto(OFFERS)
    ui.goto("/lang/pl")
    try:
        ui.goto(OFFERS + "?view=all")
        body = page.locator("body").inner_text()
        assert "20 na stronę" in body and "rzeczy" not in body
        statuses = {s.strip() for s in page.locator("td.col-status").all_inner_texts()}
        assert statuses <= {"Aktywna", "Nieaktywna", "Niekompletna"} and statuses, statuses
        prices = [p for p in page.locator("td.col-price").all_inner_texts() if p.strip() != "—"]
        assert prices and all(re.fullmatch(r"[\d\xa0 ]+,\d\d\xa0€", p.strip()) for p in prices), \
            prices
        assert page.locator("link[href*='select2.css']").count() == 1
        # The search placeholder fits its box.
        fits = page.locator("input[name=search]").evaluate(
            "el => { const c = document.createElement('canvas').getContext('2d');"
            " const s = getComputedStyle(el); c.font = s.font;"
            " const pad = parseFloat(s.paddingLeft) + parseFloat(s.paddingRight);"
            " return c.measureText(el.placeholder).width <= el.clientWidth - pad; }")
        assert fits
        shot(ui, "11-pl-offers", full_page=True)
        page.locator("a.dropdown-toggle", has_text="Dodaj filtr").click()
        page.locator(".field-filters a.filter", has_text="Rynek").click()
        labels = page.locator("#filter_form select.filter-val").last.locator(
            "option").all_inner_texts()
        assert "DE — Niemcy (amazon.de)" in labels, labels
        ui.goto(OFFERS)  # unlinked
        rows(ui).first.locator(".xa-link").click()
        page.locator("#xa-link-modal").wait_for(state="visible")
        page.locator("#xa-link-submit").click()
        assert "Najpierw wybierz towar" in page.locator("#xa-link-error").inner_text()
        # The picker opened by itself to help: search right there.
        drop = page.locator(".select2-drop-active")
        drop.locator("input.select2-input").fill("nic-takiego-zz")
        drop.locator(".select2-no-results", has_text="Nie znaleziono pasujących wyników").wait_for()
        shot(ui, "12-pl-link-dialog")
        page.keyboard.press("Escape")
        page.keyboard.press("Escape")
        ui.goto(OFFERS + "?view=linked")
        rows(ui).first.locator(".xa-unlink").click()
        page.locator("#xa-unlink-modal").wait_for(state="visible")
        assert "Usunąć powiązanie oferty" in page.locator("#xa-unlink-text").inner_text()
        shot(ui, "13-pl-unlink-dialog")
        page.keyboard.press("Escape")
        page.locator("#xa-autolink-button").click()
        page.locator("#xa-autolink-modal").wait_for(state="visible")
        assert "Powiąż oferty z towarami automatycznie" in page.locator(
            "#xa-autolink-modal").inner_text()
        shot(ui, "14-pl-autolink-dialog")
        details = page.goto(stack.base_url + OFFERS + "details/?id=1")
        assert details is not None and details.status == 200
        assert re.search(r"\d,\d\d\xa0€", page.locator("body").inner_text())
        assert "Aktywna" in page.locator("body").inner_text()
        shot(ui, "15-pl-offer-details", full_page=True)
    finally:
        ui.goto("/lang/en")
