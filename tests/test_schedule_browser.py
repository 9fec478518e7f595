"""Schedules, freshness and alerts in a real Chromium against the sample app, a real RQ worker,
Redis, the SP-API emulator and each supported database: SQLite, PostgreSQL, MariaDB (see
browser_support.running_stack)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .browser_support import (
    CHROMIUM,
    FLASK,
    REPO,
    backend_of,
    new_context,
    running_stack,
    screenshot,
)
from .conftest import BACKENDS

pytestmark = pytest.mark.browser

playwright_sync = pytest.importorskip("playwright.sync_api")
if not os.path.exists(CHROMIUM):  # never download a browser
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

INTEGRATIONS = "/admin/xsale-amazon/integrations/"
OFFERS = "/admin/xsale-amazon/offers/"


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: Any) -> Iterator[Any]:
    with running_stack(extra_env={"XSALE_AMAZON_SCHEDULE_TICK": "1"},
                       backend=request.param) as s:
        yield s


@pytest.fixture(scope="module")
def page(browser: Any, stack: Any) -> Iterator[Any]:
    context = new_context(browser, stack.base_url)
    try:
        yield context.new_page()
    finally:
        context.close()


def shot(page: Any, stack: Any, name: str) -> None:
    screenshot(page, name, backend_of(stack.env["DATABASE_URL"]))


def integration_id(stack: Any, name: str) -> int:
    return stack.sql("SELECT id FROM xsale_amazon_integration WHERE name = :n", n=name)[0][0]


def test_edit_schedule_then_failed_import_raises_badge_and_banner(stack, page):
    fr = integration_id(stack, "Amazon FR")
    page.goto(INTEGRATIONS)
    assert page.locator(".xa-menu-badge").count() == 0
    page.goto(f"{INTEGRATIONS}edit/?id={fr}")
    card = page.locator("#xa-schedule")
    card.locator("#xa-schedule-every").check()
    card.locator("#xa-schedule-hours").fill("1")
    card.locator("#xa-schedule-save").click()
    page.wait_for_load_state()
    assert "Schedule saved." in page.content()
    next_run = page.locator("#xa-next-run-at").inner_text()
    assert next_run.count(":") == 1 and next_run.startswith("20")
    assert stack.sql("SELECT kind, every_minutes FROM xsale_amazon_schedule "
                     "WHERE integration_id = :i", i=fr) == [("every", 60)]
    shot(page, stack, "schedule-01-integration-card")

    # An import that fails (FR's report has no ASIN column): the operator is alerted.
    page.locator("#xa-import-button").click()
    page.locator("#xa-import-confirm").click()
    page.wait_for_url("**/runs/details/**")
    deadline = time.monotonic() + 60
    while not stack.sql("SELECT 1 FROM xsale_amazon_import_run WHERE integration_id = :i "
                        "AND status = 'failed'", i=fr):
        assert time.monotonic() < deadline, "the FR import did not fail in time"
        time.sleep(0.5)
    page.goto(OFFERS)
    badge = page.locator(".xa-menu-badge")
    assert badge.inner_text().strip() == "1"
    banner = page.locator("#xa-alert-banner")
    assert "Amazon FR" in banner.inner_text() and "the last import failed" in banner.inner_text()
    shot(page, stack, "schedule-02-badge-banner")

    page.goto("/lang/pl")
    page.goto(OFFERS)
    banner_pl = page.locator("#xa-alert-banner").inner_text()
    assert "wymagające uwagi" in banner_pl and "Amazon FR" in banner_pl
    shot(page, stack, "schedule-03-banner-pl")
    page.goto("/lang/en")

    # Looking at the integration clears the alert.
    page.goto(OFFERS)
    page.locator("#xa-alert-banner a", has_text="Amazon FR").click()
    page.wait_for_url(f"**/integrations/edit/?id={fr}*")
    page.goto(OFFERS)
    assert page.locator("#xa-alert-banner").count() == 0
    assert page.locator(".xa-menu-badge").count() == 0


def test_a_one_minute_schedule_runs_and_shows_on_the_page(stack, page):
    de = integration_id(stack, "Amazon DE")
    out = subprocess.run([FLASK, "--app", "sample_app", "xsale-amazon", "schedule", str(de),
                          "--every", "1"], cwd=REPO, env=stack.env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 100
    while True:
        page.goto(f"{INTEGRATIONS}edit/?id={de}")
        started = page.locator('.xa-slot[data-outcome="started"]')
        if started.count() and "Succeeded" in started.first.inner_text():
            break
        assert time.monotonic() < deadline, "no scheduled run within 100 s"
        time.sleep(3)
    # "r.trigger": a qualified name, since TRIGGER is a reserved word on MariaDB
    assert stack.sql("SELECT r.trigger FROM xsale_amazon_import_run r WHERE r.integration_id = :i",
                     i=de) == [("schedule",)]
    page.locator("#xa-schedule").scroll_into_view_if_needed()
    shot(page, stack, "schedule-04-scheduled-run")
    page.goto(INTEGRATIONS)
    row = page.locator("tr", has_text="Amazon DE").first
    assert "every 1 min" in row.inner_text()
    shot(page, stack, "schedule-05-integrations-list")
