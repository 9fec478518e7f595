"""The product index rebuilt by a job, as the operator sees it in real Chromium.

The test host (on SQLite, PostgreSQL in its own schema and MariaDB; an inline refresh limit
below its product count) is served by a threaded werkzeug server. After a bulk change of the
products, the Suggestions view (in English and in Polish) and the link dialog say the index is
being rebuilt and show no suggestion; a real RQ worker runs the rebuild, the view reloads
itself and the dialog shows the suggestions without a click. Screenshots:
``artifacts/screenshots/rebuild-*`` (SQLite and MariaDB: the database's name ends the file
name).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .browser_support import new_context, screenshot, serving
from .conftest import BACKENDS, any_database
from .hostapp import Host, make_host
from .test_suggest_browser import OFFERS, PRODUCTS

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser

SUGGEST = "/admin/xsale-amazon/suggestions/"
OFFERS_UNLINKED = "/admin/xsale-amazon/offers/?view=unlinked"


@pytest.fixture(params=BACKENDS)
def backend(request: Any) -> str:
    return request.param


@pytest.fixture
def served(backend: str) -> Iterator[tuple[Host, str, dict[str, str]]]:
    from flask_babel import Babel

    from xsale_amazon_plugin.suggest.service import compute_for_integration

    language = {"locale": "en"}
    with any_database(backend) as url:
        host = make_host(url, babel=False,
                         config={"XSALE_AMAZON_SUGGEST_INLINE_REFRESH_LIMIT": 5})
        Babel(host.app, locale_selector=lambda: language["locale"])
        integration = host.add_integration("DE", "FBM")
        host.add_products(PRODUCTS)
        with host.app.app_context():
            host.db.session.add_all(
                [host.models.AmazonOffer(integration_id=integration, **o) for o in OFFERS])
            host.db.session.commit()
            compute_for_integration(integration)  # as the CLI or a worker would
        try:
            with serving(host.app) as base:
                yield host, base, language
        finally:
            host.close()


def shot(pg: Any, backend: str, name: str) -> None:
    screenshot(pg, f"rebuild-{name}", backend)


def test_rebuild_message_then_suggestions_without_a_click(
        browser: Any, served: tuple[Host, str, dict[str, str]], backend: str) -> None:
    from rq import SimpleWorker

    host, base, language = served
    with host.app.app_context():  # the host reloads its catalogue
        product = host.Product.__table__
        host.db.session.execute(product.update().values(name=product.c.name + " 2026"))
        host.db.session.commit()
    errors: list[str] = []
    context = new_context(browser, base)
    view, offers = context.new_page(), context.new_page()
    for pg in (view, offers):
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        language["locale"] = "pl"
        view.goto(SUGGEST)
        notice = view.locator("#xa-suggest-rebuild")
        assert "Indeks towarów jest przebudowywany (około 9 towarów)" in notice.inner_text()
        assert "Czeka na wolnego workera…" in notice.inner_text()
        assert view.locator("#xa-suggest-card").count() == 0
        shot(view, backend, "01-suggestions-pl")

        language["locale"] = "en"
        view.goto(SUGGEST)
        assert ("The product index is being rebuilt (about 9 products); suggestions will "
                "appear when it is done — usually a few minutes.") in notice.inner_text()
        assert view.locator("#xa-suggest-card").count() == 0
        shot(view, backend, "02-suggestions-en")

        offers.goto(OFFERS_UNLINKED)
        row = offers.locator("table.model-list tbody tr").filter(has_text="X-HDMI")
        row.locator(".xa-link").click()
        dialog_notice = offers.locator("#xa-link-suggestions .xa-link-rebuild")
        dialog_notice.wait_for()
        assert "being rebuilt (about 9 products)" in dialog_notice.inner_text()
        assert "Waiting for a free worker…" in dialog_notice.inner_text()
        assert offers.locator(".xa-link-suggestion").count() == 0
        offers.wait_for_function(  # the dialog's fade-in is over (for the screenshot)
            "() => getComputedStyle(document.querySelector('#xa-link-modal')).opacity === '1'"
            " && getComputedStyle(document.querySelector('#xa-link-modal .modal-dialog'))"
            ".transform === 'none'")
        shot(offers, backend, "03-link-dialog-en")

        queue = host.state.queue
        assert queue.count == 1  # one rebuild for the view, the reload and the dialog
        SimpleWorker([queue], connection=queue.connection,
                     job_class=queue.job_class).work(burst=True, logging_level="WARNING")

        # Both pages follow the job: the dialog asks again, the view reloads itself.
        first = offers.locator("#xa-link-suggestions .xa-link-suggestion").first
        first.wait_for()
        assert "HDMI Kabel" in first.inner_text() and "2026" in first.inner_text()
        assert offers.locator(".xa-link-rebuild").count() == 0
        shot(offers, backend, "04-link-dialog-after")
        view.locator("#xa-suggest-card .xa-suggestion").first.wait_for()
        assert view.locator("#xa-suggest-rebuild").count() == 0
        shot(view, backend, "05-suggestions-after")
    finally:
        context.close()
    assert not errors, errors
