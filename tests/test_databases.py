"""What differs between the databases must not show: identifiers compare byte for byte, text
round-trips exactly (emoji, quotes, backslashes), on SQLite, PostgreSQL and MariaDB alike."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from xsale_amazon_plugin.emulator.report_builder import demo_listings

from .conftest import mysql_database
from .hostapp import make_host
from .test_import import offers, publish, run_import

#: SKUs that a case- or accent-insensitive collation would take for three pairs of duplicates.
SKUS = ["ABC-1", "abc-1", "café-7", "cafe-7", "Straße-9", "STRASSE-9"]
#: Names a hand-built SQL literal could get wrong.
NAMES = [
    "Kaffeebecher ☕ 🙂 (4-byte UTF-8)",
    "O'Brien \"Deluxe\" 12'' pan",
    "C:\\temp\\new \\N \\0 \\' backslashes",
    "100% cotton %s %(name)s",
    "Zażółć gęślą jaźń \x1a control",
    "日本語の商品名",
]


def _rows() -> list[dict[str, Any]]:
    rows = list(demo_listings(len(SKUS), seed=12, marketplace="US"))
    return [dict(row, seller_sku=sku, name=name, fulfillment_channel="DEFAULT")
            for row, sku, name in zip(rows, SKUS, NAMES, strict=True)]


def test_identifiers_are_case_and_accent_sensitive_and_text_round_trips(amazon_host, amazon):
    rows = _rows()
    publish(amazon, "US", rows, "us")
    integ = amazon_host.add_integration("US", "FBM")
    run = run_import(amazon_host, integ)
    assert run.status == "succeeded", run.error_message
    assert (run.count_created, run.count_duplicate) == (len(SKUS), 0)
    stored = offers(amazon_host, integ)
    assert sorted(stored) == sorted(SKUS)
    for row in rows:
        assert stored[row["seller_sku"]].name == row["name"]

    # The re-import compares every column: nothing changed, then exactly one offer did.
    again = run_import(amazon_host, integ)
    assert (again.count_created, again.count_updated, again.count_unchanged) == (0, 0, len(SKUS))
    rows[1] = dict(rows[1], price=Decimal("77.70"))
    publish(amazon, "US", rows, "us")
    changed = run_import(amazon_host, integ)
    assert (changed.count_updated, changed.count_unchanged) == (1, len(SKUS) - 1)
    after = offers(amazon_host, integ)
    assert after["abc-1"].price == Decimal("77.70")
    assert after["ABC-1"].price == stored["ABC-1"].price

    # Search and auto-link match the SKU exactly too.
    client = amazon_host.app.test_client()

    def found(term: str) -> set[str]:
        page = client.get(f"/admin/xsale-amazon/offers/?view=all&search={term}")
        text = page.get_data(as_text=True)
        return {sku for sku in SKUS if f'data-offer-label="{sku} ' in text}

    assert found("cafe") == {"cafe-7"}
    if not amazon_host.app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # (SQLite's LIKE ignores ASCII case)
        assert found("Stra") == {"Straße-9"}
        assert found("abc") == {"abc-1"}
        assert found("ABC") == {"ABC-1"}
    amazon_host.add_products([{"sku": "abc-1", "name": "lower"}, {"sku": "cafe-7", "name": "c"},
                              {"sku": "STRASSE-9", "name": "upper"}])
    from xsale_amazon_plugin.linking.links import autolink

    with amazon_host.app.app_context():
        result = autolink("sku", integration_id=integ, user="test")
    assert (result.linked, result.ambiguous) == (3, 0)
    m = amazon_host.models
    with amazon_host.app.app_context():
        linked = set(amazon_host.db.session.execute(
            sa.select(m.AmazonOffer.seller_sku).join(m.OfferProductLink)).scalars())
    assert linked == {"abc-1", "cafe-7", "STRASSE-9"}


@pytest.mark.parametrize("sql_mode", ["default", "NO_BACKSLASH_ESCAPES"])
def test_mariadb_staging_literals_follow_the_sql_mode(amazon, redis_conn, sql_mode):
    """The MySQL staging path writes SQL literals itself; a server (or host) running with
    NO_BACKSLASH_ESCAPES reads them differently, and both must store the text unchanged."""
    with mysql_database() as url:
        host = make_host(url)
        host.configure(SPAPI_ENDPOINT=amazon.url, LWA_ENDPOINT=amazon.lwa_url)
        with host.app.app_context():
            engine = host.db.engine
            if sql_mode != "default":
                @sa.event.listens_for(engine, "connect")
                def _mode(dbapi_conn: Any, record: Any) -> None:
                    with dbapi_conn.cursor() as cursor:
                        cursor.execute("SET SESSION sql_mode = "
                                       "CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES')")
            engine.dispose()
            with engine.connect() as conn:
                mode = conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar()
            assert ("NO_BACKSLASH_ESCAPES" in mode) == (sql_mode != "default")
        try:
            rows = _rows()
            publish(amazon, "US", rows, "us")
            integ = host.add_integration("US", "FBM")
            run = run_import(host, integ)
            assert run.status == "succeeded", run.error_message
            stored = offers(host, integ)
            assert {sku: o.name for sku, o in stored.items()} == {
                r["seller_sku"]: r["name"] for r in rows}
        finally:
            with host.app.app_context():
                host.db.session.remove()
                host.db.engine.dispose()
