"""The mass-removal guard in a real Chromium: a held import is discarded, then confirmed, from
the run page (issue 13). Real processes: emulator, sample app, RQ worker, Redis and each
supported database (SQLite, PostgreSQL, MariaDB).

    .venv/bin/pytest -q -m browser tests/test_browser_guard.py
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from .browser_support import Stack, running_stack
from .conftest import BACKENDS
from .test_browser import (
    Session,
    expect_url,
    open_integration,
    wait_run_end,
)

pytestmark = pytest.mark.browser

KEPT_ROWS = 10


@pytest.fixture(scope="module", params=BACKENDS)
def guard_stack(request: Any) -> Iterator[Stack]:
    # Every import asks for a fresh report (no reuse of the first one).
    with running_stack(extra_env={"XSALE_AMAZON_REPORT_REUSE_WINDOW": "0"},
                       backend=request.param) as s:
        yield s


@pytest.fixture(scope="module")
def guard_ui(browser: Any, guard_stack: Stack) -> Iterator[Session]:
    session = Session(browser, guard_stack)
    try:
        yield session
    finally:
        session.context.close()
    assert not session.errors, session.errors


def _serve_short_report(stack: Stack) -> None:
    """The first DE offers only, cp1252 bytes declared UTF-8 (the issue's fourth file)."""
    from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
    from xsale_amazon_plugin.emulator.report_builder import demo_listings, render_report
    from xsale_amazon_plugin.emulator.server import EmulatorControl

    rows = list(demo_listings(60, seed=7, marketplace="DE"))[:KEPT_ROWS]
    with contextlib.closing(EmulatorControl(stack.emulator_url)) as control:
        control.set_listings(get_marketplace("DE").marketplace_id,
                             render_report(rows, "eu_en", encoding="cp1252"), charset="utf8")


def _live_offers(stack: Stack) -> int:
    return stack.sql("SELECT count(*) FROM xsale_amazon_offer o JOIN xsale_amazon_integration i"
                     " ON i.id = o.integration_id WHERE i.marketplace = 'DE'"
                     " AND o.removed_at IS NULL")[0][0]


def _rerun_until_held(ui: Session) -> None:
    page = ui.page
    page.locator("#xa-rerun").click()
    expect_url(ui, r"/runs/details/\?id=\d+")
    status, stages, _navs = wait_run_end(ui)
    assert status == "held", stages
    held = page.locator("#xa-held")
    assert held.is_visible()
    assert page.locator("#xa-run .xa-status").inner_text().strip() == "Awaiting confirmation"


def test_held_import_is_discarded_then_confirmed_from_the_run_page(
        guard_ui: Session, guard_stack: Stack) -> None:
    ui, page = guard_ui, guard_ui.page
    open_integration(ui, "Amazon DE")
    page.locator("#xa-import-button").click()
    page.locator("#xa-import-modal").wait_for(state="visible")
    page.locator("#xa-import-confirm").click()
    expect_url(ui, r"/xsale-amazon/runs/details/\?id=\d+")
    status, stages, _navs = wait_run_end(ui)
    assert status == "succeeded", stages
    live = _live_offers(guard_stack)
    assert live > 50

    _serve_short_report(guard_stack)
    _rerun_until_held(ui)
    text = page.locator("#xa-held").inner_text()
    assert f"would remove {live - KEPT_ROWS} of the integration's {live} offers" in text
    assert "Nothing has been changed yet" in text
    summary = page.locator("#xa-summary")
    assert "If confirmed" in summary.inner_text()
    assert int(summary.locator("[data-count=removed]").inner_text()) == live - KEPT_ROWS
    assert int(summary.locator("[data-count=unchanged]").inner_text()) == KEPT_ROWS
    assert page.locator(".xa-charset-note").inner_text() == "declared utf8, decoded as cp1252"
    ui.shot("guard-01-run-held")

    page.locator("#xa-discard").click()
    expect_url(ui, r"/runs/details/\?id=\d+")
    assert "Discarded" in ui.flash("success")
    assert page.locator("#xa-run .xa-status").get_attribute("data-status") == "discarded"
    assert "would have removed" in page.locator("#xa-error").inner_text()
    assert page.locator("#xa-confirm").count() == 0
    assert _live_offers(guard_stack) == live  # nothing changed
    ui.shot("guard-02-run-discarded")

    _rerun_until_held(ui)
    held_url = page.url
    ui.goto("/lang/pl")  # the operator's language: the same page in Polish
    ui.goto(held_url)
    assert page.locator("#xa-run .xa-status").inner_text().strip() == "Czeka na potwierdzenie"
    text = page.locator("#xa-held").inner_text()
    assert f"usunąłby {live - KEPT_ROWS} z {live} ofert" in text, text
    share = f"{100 * (live - KEPT_ROWS) / live:.1f}".replace(".", ",")  # Polish decimal comma
    assert f"({share} %; limit to 20 %)" in text, text
    assert page.locator("#xa-confirm").inner_text().strip() == "Potwierdź i zapisz"
    ui.shot("guard-04-run-held-pl")
    ui.goto("/lang/en")
    ui.goto(held_url)
    page.locator("#xa-confirm").click()
    expect_url(ui, r"/runs/details/\?id=\d+")
    status, stages, _navs = wait_run_end(ui)
    assert status == "succeeded", stages
    summary = page.locator("#xa-summary")
    assert int(summary.locator("[data-count=removed]").inner_text()) == live - KEPT_ROWS
    assert _live_offers(guard_stack) == KEPT_ROWS
    ui.shot("guard-03-run-confirmed")

