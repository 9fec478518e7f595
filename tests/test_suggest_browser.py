"""The Suggestions view and the link dialog's suggestions, used in real Chromium.

The test host app, on each supported database (SQLite, PostgreSQL in its own schema,
MariaDB), is served by a threaded werkzeug server on 127.0.0.1; the operator works with the
keyboard only in the Suggestions view, previews and confirms "Accept all high-confidence",
and picks a suggestion in the link dialog. Every decision is checked in the database.
Screenshots go to ``artifacts/screenshots/suggest-*`` (SQLite and MariaDB: the database's
name ends the file name).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from .browser_support import (
    click_and_wait,
    new_context,
    screenshot,
    serving,
)
from .conftest import BACKENDS, any_database
from .hostapp import Host, make_host

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser

SUGGEST = "/admin/xsale-amazon/suggestions/"
PRODUCTS = [
    {"sku": "DR2010C", "ean": "4977766654321", "name": "Brother DR-2010C drum unit"},
    {"sku": "TN2010", "ean": "4977766600001", "name": "Brother TN-2010 toner black"},
    {"sku": "MUG-BLK-300", "ean": None, "name": "Kubek ceramiczny czarny 300 ml"},
    {"sku": "MUG-WHT-300", "ean": None, "name": "Kubek ceramiczny biały 300 ml"},
    {"sku": "MUG-BLK-500", "ean": None, "name": "Kubek ceramiczny czarny 500 ml"},
    {"sku": "KB-7731", "ean": None, "name": "Logitech K120 Tastatur USB"},
    {"sku": "MS-100", "ean": None, "name": "Logitech M100 Maus USB"},
    {"sku": "CAB-HDMI-2M", "ean": None, "name": "HDMI Kabel 2 m"},
    {"sku": "CAB-HDMI-5M", "ean": None, "name": "HDMI Kabel 5 m"},
]
OFFERS = [
    {"seller_sku": "AMZ-7781", "name": "Drum Brother", "product_id": "4977766654321",
     "product_id_type": "EAN"},
    {"seller_sku": "TN-2010-FBA", "name": "Toner"},
    {"seller_sku": "X-MUG", "name": "Czarny kubek ceramiczny do kawy, 500 ml, prezent"},
    {"seller_sku": "X-KB", "name": "Logitech K120 Business Tastatur, QWERTZ, USB, schwarz"},
    {"seller_sku": "X-HDMI", "name": "HDMI Kabel Hochgeschwindigkeit mit Ethernet"},
    {"seller_sku": "X-HOSE", "name": "Garden hose reel 30 m with wall bracket"},
]


@contextlib.contextmanager
def _serve(products: list[dict[str, Any]], offers: list[dict[str, Any]], locale: str,
           backend: str) -> Iterator[tuple[Host, str]]:
    """The test host in a fresh database on ``backend``, served on 127.0.0.1."""
    with any_database(backend) as url:
        host = make_host(url, config={"BABEL_DEFAULT_LOCALE": locale})
        integration = host.add_integration("DE", "FBM")
        product_ids = host.add_products(products)
        with host.app.app_context():
            rows = [host.models.AmazonOffer(integration_id=integration, **o) for o in offers]
            host.db.session.add_all(rows)
            host.db.session.commit()
        host.ids = {"products": product_ids, "integration": integration}  # type: ignore[attr-defined]
        try:
            with serving(host.app) as base:
                yield host, base
        finally:
            host.close()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: Any) -> str:
    return request.param


@pytest.fixture(scope="module")
def served(backend: str) -> Iterator[tuple[Host, str]]:
    with _serve(PRODUCTS, OFFERS, "en", backend) as served:
        yield served


@pytest.fixture(scope="module")
def page(browser: Any, served: tuple[Host, str]) -> Iterator[Any]:
    _host, base = served
    context = new_context(browser, base)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        context.close()
    assert not errors, errors


def shot(pg: Any, backend: str, name: str) -> None:
    screenshot(pg, f"suggest-{name}", backend)


def links(host: Host) -> dict[str, tuple[str, str]]:
    m = host.models
    with host.app.app_context():
        rows = host.db.session.execute(
            sa.select(m.AmazonOffer.seller_sku, m.OfferProductLink.product_id,
                      m.OfferProductLink.method)
            .join(m.OfferProductLink, m.OfferProductLink.offer_id == m.AmazonOffer.id)).all()
    return {sku: (str(pid), method) for sku, pid, method in rows}


def current(pg: Any) -> tuple[str, str | None]:
    sku = pg.locator("#xa-suggest-offer-sku").inner_text()
    active = pg.locator("#xa-suggest-list .xa-suggestion.active")
    return sku, (active.get_attribute("data-product-id") if active.count() else None)


def shown_counts(pg: Any) -> tuple[int, int, int]:
    """Unlinked, "no match" and high-confidence counts as the page shows them now."""
    texts = [pg.locator(f"#{i}").inner_text() for i in
             ("xa-suggest-unlinked", "xa-suggest-no-match-count", "xa-accept-high-label")]
    no_match_visible = pg.locator("#xa-suggest-no-match-count").is_visible()
    numbers = [int("".join(ch for ch in text if ch.isdigit()) or 0) for text in texts]
    return numbers[0], numbers[1] if no_match_visible else 0, numbers[2]


def server_counts(host: Host) -> tuple[int, int, int]:
    from xsale_amazon_plugin.suggest.service import queue_summary

    with host.app.app_context():
        summary = queue_summary(host.ids["integration"])  # type: ignore[attr-defined]
    return summary.unlinked, summary.no_match, summary.high


def wait_offer_changes(pg: Any, sku: str) -> None:
    pg.wait_for_function(
        f"document.querySelector('#xa-suggest-offer-sku').textContent !== '{sku}'")


def test_keyboard_review(served: tuple[Host, str], page: Any, backend: str) -> None:
    host, _base = served
    page.goto(SUGGEST)
    page.locator("#xa-suggest-list .xa-suggestion").first.wait_for()
    shot(page, backend, "01-queue")
    # the first offer's product-id is an EAN and says so; the position counts the queue
    assert page.locator("#xa-suggest-offer-ean-label").inner_text() == "EAN"
    assert page.locator("#xa-suggest-position").inner_text() == f"Offer 1 of {len(OFFERS)}"
    assert "Accept all high-confidence (" in page.locator("#xa-accept-high-button").inner_text()
    start = shown_counts(page)
    assert start == server_counts(host) and start[2] >= 2, start

    # Enter on a button reached with Tab presses that button: Skip skips, nothing is linked
    first = current(page)[0]
    page.locator("#xa-suggest-skip").focus()
    page.keyboard.press("Enter")
    wait_offer_changes(page, first)
    assert links(host) == {}
    # a mouse click hands the focus back to the card: the next Enter accepts again
    page.locator("#xa-suggest-back").click()
    assert current(page)[0] == first
    assert page.evaluate("document.activeElement.id") == "xa-suggest-card"

    # Enter accepts the highlighted (best) suggestion of the first offer; the counts follow
    sku, product = current(page)
    page.keyboard.press("Enter")
    wait_offer_changes(page, sku)
    assert links(host)[sku] == (product, "suggestion")
    assert sku in page.locator("#xa-suggest-status").inner_text()
    assert shown_counts(page) == server_counts(host) == (start[0] - 1, start[1], start[2] - 1)

    # go to the mug offer with the keyboard (S skips), pick a lower suggestion with ArrowDown
    for _ in range(10):
        if current(page)[0] == "X-MUG":
            break
        page.keyboard.press("s")
    assert current(page)[0] == "X-MUG"
    rows = page.locator("#xa-suggest-list .xa-suggestion")
    assert rows.count() >= 2
    best = rows.nth(0).get_attribute("data-product-id")
    page.keyboard.press("ArrowDown")
    assert current(page)[1] == rows.nth(1).get_attribute("data-product-id")
    page.keyboard.press("ArrowUp")
    assert current(page)[1] == best
    # the best one for the 500 ml black mug is the 500 ml black mug; a differing variant is
    # shown as a red reason on the others
    assert best == str(host.ids["products"][4])  # type: ignore[attr-defined]
    assert page.locator("#xa-suggest-list .xa-suggestion .badge-danger").count() >= 1
    shot(page, backend, "02-variants")

    # X rejects the highlighted suggestion for good: it disappears and never comes back
    page.keyboard.press("x")
    page.wait_for_function(
        f"!document.querySelector('#xa-suggest-list [data-product-id=\"{best}\"]')")
    m = host.models
    with host.app.app_context():
        from xsale_amazon_plugin.suggest.service import suggestions_for_offer

        offer_id = host.db.session.execute(sa.select(m.AmazonOffer.id).where(
            m.AmazonOffer.seller_sku == "X-MUG")).scalar_one()
        with host.app.test_request_context():
            assert best not in {s["product_key"] for s in suggestions_for_offer(offer_id)}
    assert shown_counts(page) == server_counts(host)

    # N marks "no match": the offer leaves the queue and stays unlinked
    page.keyboard.press("n")
    wait_offer_changes(page, "X-MUG")
    assert "X-MUG" not in links(host)
    with host.app.app_context():
        from xsale_amazon_plugin.suggest.index import suggest_tables

        t = suggest_tables(m)
        decision = host.db.session.execute(sa.select(t.suggestion.c.decision).where(
            t.suggestion.c.offer_id == offer_id)).scalar_one()
    assert decision == "no_match"
    assert shown_counts(page) == server_counts(host)
    assert shown_counts(page)[1] == start[1] + 1
    assert page.locator("#xa-suggest-no-match-count").is_visible()

    # ArrowLeft goes back to a skipped offer
    before = current(page)[0]
    page.keyboard.press("ArrowLeft")
    assert current(page)[0] != before
    shot(page, backend, "03-after-decisions")

    # a reload keeps decisions: linked and "no match" offers are gone from the queue
    page.goto(SUGGEST)
    page.locator("#xa-suggest-offer-sku").wait_for()
    seen = set()
    for _ in range(10):
        sku_now = current(page)[0]
        if not sku_now or sku_now in seen:
            break
        seen.add(sku_now)
        page.keyboard.press("s")
    assert "X-MUG" not in seen and sku not in seen
    # past the last offer: the page says how many were skipped, offer buttons are disabled
    assert current(page)[0] == ""
    assert (f"Offers skipped without a decision: {len(seen)}."
            in page.locator("#xa-suggest-empty").inner_text())
    assert page.locator("#xa-suggest-accept").is_disabled()
    assert not page.locator("#xa-suggest-offer-keys").is_visible()
    shot(page, backend, "03b-end-of-queue")
    page.keyboard.press("ArrowLeft")
    assert current(page)[0] in seen and page.locator("#xa-suggest-accept").is_enabled()


def test_accept_all_high_with_preview(served: tuple[Host, str], page: Any, backend: str) -> None:
    host, _base = served
    before = links(host)
    page.goto(SUGGEST)
    page.locator("#xa-accept-high-button").click()
    page.locator("#xa-accept-high-table").wait_for()
    shot(page, backend, "04-accept-high-preview")
    rows = page.locator("#xa-accept-high-table tbody tr")
    previewed = {rows.nth(i).locator("code").inner_text() for i in range(rows.count())}
    assert previewed and not (previewed & set(before))
    assert links(host) == before  # the preview changes nothing
    confirm = page.locator("#xa-accept-high-confirm")
    assert confirm.inner_text() == f"Link the ticked offers ({len(previewed)})"
    # nothing ticked: the button is disabled; tick all again, then leave one out
    page.locator("#xa-accept-high-all").uncheck()
    assert confirm.is_disabled() and confirm.inner_text() == "Link the ticked offers (0)"
    page.locator("#xa-accept-high-all").check()
    left_out = rows.nth(0).locator("code").inner_text()
    rows.nth(0).locator("input[type=checkbox]").uncheck()
    assert confirm.inner_text() == f"Link the ticked offers ({len(previewed) - 1})"
    shot(page, backend, "04b-accept-high-one-unticked")
    click_and_wait(page, confirm)
    page.locator(".alert-success").first.wait_for()
    after = links(host)
    assert set(after) - set(before) == previewed - {left_out}
    assert all(after[s][1] == "suggestion" for s in previewed - {left_out})
    shot(page, backend, "05-accept-high-done")


def test_link_dialog_shows_top_suggestions(served: tuple[Host, str], page: Any,
                                           backend: str) -> None:
    host, _base = served
    page.goto("/admin/xsale-amazon/offers/?view=unlinked")
    row = page.locator("table.model-list tbody tr").filter(has_text="X-HDMI")
    row.locator(".xa-link").click()
    item = page.locator("#xa-link-suggestions .xa-link-suggestion").first
    item.wait_for()
    shot(page, backend, "06-link-dialog")
    product = item.get_attribute("data-product-id")
    assert product in {str(host.ids["products"][7]), str(host.ids["products"][8])}  # type: ignore[attr-defined]
    item.click()
    click_and_wait(page, page.locator("#xa-link-submit"))
    page.locator(".alert-success").first.wait_for()
    assert links(host)["X-HDMI"][0] == product
    # the offers workspace leads to the Suggestions view
    page.locator("#xa-view-suggestions").click()
    page.locator("#xa-suggest").wait_for()


def test_mapping_csv_preview_then_apply(served: tuple[Host, str], page: Any, backend: str,
                                        tmp_path: Any) -> None:
    host, _base = served
    # X-HDMI has a link of its own (the link-dialog test may run in another process)
    if "X-HDMI" not in links(host):
        from xsale_amazon_plugin import link_offers

        with host.app.app_context():
            m = host.models
            offer_id = host.db.session.execute(sa.select(m.AmazonOffer.id).where(
                m.AmazonOffer.seller_sku == "X-HDMI")).scalar_one()
            link_offers([offer_id], host.ids["products"][7])  # type: ignore[attr-defined]
    before = links(host)
    assert "X-HDMI" in before
    mapping = tmp_path / "mapping.csv"
    mapping.write_text("seller_sku;product\nX-HOSE;CAB-HDMI-5M\nX-NONE;MS-100\n"
                       "X-HDMI;CAB-HDMI-5M\nX-HOSE;DOES-NOT-EXIST\n", encoding="utf-8")
    page.goto("/admin/xsale-amazon/mapping-csv/")
    page.set_input_files("#xa-import-file", str(mapping))
    page.select_option("#xa-import-by", "sku")
    page.locator("#xa-import-preview").click()
    page.locator("#xa-import-summary").wait_for()
    shot(page, backend, "07-csv-preview")
    assert page.locator("#xa-import-will-link").inner_text() == "1"
    assert page.locator("#xa-import-unknown").inner_text() == "2"  # X-NONE, DOES-NOT-EXIST
    problems = page.locator("#xa-import-problems tbody tr")
    texts = [problems.nth(i).inner_text() for i in range(problems.count())]
    assert any("X-NONE" in t for t in texts)
    assert links(host) == before  # the preview changed nothing
    page.locator("#xa-import-apply").click()
    page.locator(".alert-success").first.wait_for()
    after = links(host)
    assert after["X-HOSE"] == (str(host.ids["products"][8]), "manual")  # type: ignore[attr-defined]
    assert after["X-HDMI"] == before["X-HDMI"]  # existing link kept (no overwrite asked)
    shot(page, backend, "08-csv-applied")


def test_link_dialog_names_contradictions_in_polish(page: Any, backend: str) -> None:
    """A compatible cartridge against the original, another version of a program: the link
    dialog of a Polish back office (a second host app) shows the best product with the
    contradiction in red."""
    products = [
        {"sku": "HP301", "ean": None, "name": "HP 301 Druckerpatrone schwarz CH561EE"},
        {"sku": "XL2007", "ean": None, "name": "Microsoft Excel 2007"},
    ]
    offers = [
        {"seller_sku": "X-INK", "name": "Kompatibel Druckerpatrone HP 301 CH561EE schwarz"},
        {"seller_sku": "X-EXCEL", "name": "Microsoft Excel 2004 (Mac)"},
    ]
    expected = {"X-INK": "nieoryginalny towar w jednym z tytułów: kompatibel",
                "X-EXCEL": "inny numer: 2007 zamiast 2004"}
    pg = page
    with _serve(products, offers, "pl", backend) as (_host, base):
        for sku, reason in expected.items():
            pg.goto(f"{base}/admin/xsale-amazon/offers/?view=unlinked")
            pg.locator("table.model-list tbody tr").filter(has_text=sku).locator(".xa-link").click()
            best = pg.locator("#xa-link-suggestions .xa-link-suggestion").first
            best.wait_for()
            negative = best.locator(".xa-reason.badge-danger")
            assert negative.all_inner_texts() == [reason]
            assert best.locator(".xa-reason.badge-success").count() >= 1  # what they share
            pg.wait_for_function("() => { const m = document.querySelector('.modal.show');"
                                 " return m && getComputedStyle(m).opacity === '1'; }")
            shot(pg, backend, f"08-link-dialog-contradiction-{sku.lower()}")
