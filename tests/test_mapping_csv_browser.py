"""The mapping CSV round trip in real Chromium, in English and Polish, on every database: the
operator downloads the export and uploads it back untouched. The unlinked offers (an empty
product) are skipped and counted, not reported as errors; nothing would change.
Screenshots go to ``artifacts/screenshots/mapping-csv-*``."""

from __future__ import annotations

from typing import Any

import pytest

from .browser_support import (
    click_and_wait,
    new_context,
    screenshot,
    serving,
)
from .conftest import BACKENDS, any_database
from .hostapp import make_host
from .test_linking import add_offers, links

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser

SKIPPED = {"en": "3 lines without a product, skipped.",
           "pl": "3 wiersze bez towaru, pominięte."}


@pytest.mark.parametrize("lang", ["en", "pl"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_untouched_export_imports_back_without_errors(browser: Any, backend: str, lang: str,
                                                      tmp_path: Any, redis_conn: Any) -> None:
    with any_database(backend) as url:
        host = make_host(url, config={"BABEL_DEFAULT_LOCALE": lang})
        try:
            integ = host.add_integration("DE", "FBM")
            products = host.add_products([{"sku": "P-1", "name": "Mug"},
                                          {"sku": "P-2", "name": "Plate"}])
            offers = add_offers(host, integ, [
                {"seller_sku": f"S-{i}", "name": f"Offer {i}", "product_id": "B0FXCTNCSB",
                 "product_id_type": "ASIN"} for i in range(5)])
            from xsale_amazon_plugin.linking.links import link_offers

            with host.app.test_request_context():
                link_offers([offers[0]], products[0])
                link_offers([offers[1]], products[1])
            before = links(host)
            with serving(host.app) as base:
                context = new_context(browser, base, accept_downloads=True)
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                try:
                    page.goto("/admin/xsale-amazon/mapping-csv/")
                    with page.expect_download() as download:
                        page.locator("#xa-export-button").click()
                    export = tmp_path / "export.csv"
                    download.value.save_as(str(export))
                    page.set_input_files("#xa-import-file", str(export))
                    # the product key is left as the page proposes it (SKU)
                    assert page.locator("#xa-import-by").input_value() == "sku"
                    click_and_wait(page, page.locator("#xa-import-preview"))
                    page.locator("#xa-import-summary").wait_for()
                    screenshot(page, f"mapping-csv-untouched-export-{lang}", backend)
                    assert page.locator("#xa-import-errors").inner_text() == "0"
                    assert page.locator("#xa-import-unknown").inner_text() == "0"
                    assert page.locator("#xa-import-same").inner_text() == "2"
                    assert page.locator("#xa-import-skipped").inner_text() == SKIPPED[lang]
                    assert page.locator("#xa-import-problems").count() == 0
                    assert page.locator("#xa-import-apply").is_disabled()
                finally:
                    context.close()
                assert not errors, errors
            assert links(host) == before
        finally:
            host.close()
