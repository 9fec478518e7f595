"""Benchmark: the offers admin list, SKU search and auto-link by SKU with 1M offers.

PostgreSQL by default; ``--database-url mysql+pymysql://root@127.0.0.1:3306/test`` (or
``XSALE_BENCH_DB``) runs it on MariaDB, in a scratch database instead of a schema.

Run from the repository root::

    /work/venv/bin/python bench/admin_bench.py                 # 1,000,000 offers / products
    /work/venv/bin/python bench/admin_bench.py --offers 200000 --keep

Everything happens in a fresh schema ``xa_bench_<random>`` (dropped at the end unless
``--keep``), with the host app of ``tests/hostapp.py`` (its ``product`` table: id, sku, ean,
name, asin). Data, filled set-based with ``INSERT ... SELECT generate_series``:

* N offers over 2 integrations (N/2 each, same SKU space ``SKU-0000001``.., as a seller with an
  FBM and an FBA account has), realistic names, ASINs, EANs, prices;
* N products: ~70 % of the offer SKUs exist as a product SKU, 100 of them twice (ambiguous);
  the rest are host-only SKUs.

Measured with the Flask test client (server time = wall time around ``client.get``; one warm-up,
then the median of ``--repeat`` requests): the default offers list (unlinked view, first page),
a SKU search in the unlinked and in the ``view=all`` list, an ASIN search; then
``autolink("sku", integration_id=...)`` for both integrations in an app context; then the list
pages again after linking. Prints a table and PASS/MISS per target; always exits 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
OFFERS = "/admin/xsale-amazon/offers/"
PAGE_TARGET_MS = 300.0
AUTOLINK_TARGET_S = 30.0
AMBIGUOUS = 100


def schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def is_mysql(url: str) -> bool:
    return sa.make_url(url).get_backend_name() in ("mysql", "mariadb")


def create_scratch(admin: sa.Engine, name: str) -> str:
    """A fresh schema (PostgreSQL) or database (MariaDB) named ``name``; its URL."""
    with admin.begin() as conn:
        if is_mysql(str(admin.url)):
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            url = admin.url.set(database=name, query={"charset": "utf8mb4"})
            return url.render_as_string(hide_password=False)
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    return schema_url(admin.url.render_as_string(hide_password=False), name)


def drop_scratch(admin: sa.Engine, name: str) -> None:
    with admin.begin() as conn:
        if is_mysql(str(admin.url)):
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        else:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))


def fill_mariadb(conn: sa.Connection, n: int, integrations: list[int]) -> dict[str, float]:
    """:func:`fill` for MariaDB (its SEQUENCE engine's seq_1_to_N stands for generate_series)."""
    per = n // len(integrations)
    matched = int(per * 0.7)
    times: dict[str, float] = {}
    started = time.perf_counter()
    for iid in integrations:
        conn.execute(sa.text(f"""
            INSERT INTO xsale_amazon_offer (
                integration_id, seller_sku, asin, name, listing_id, price, currency, quantity,
                fulfillment_channel, status, product_id, product_id_type, open_date,
                open_date_raw, first_seen_at, last_seen_at)
            SELECT :iid, CONCAT('SKU-', LPAD(seq, 7, '0')),
                   CONCAT('B0', UPPER(SUBSTR(MD5(seq), 1, 8))),
                   CONCAT(ELT(1 + seq % 5, 'Acme', 'Nordwind', 'KitchenPro', 'Sakura', 'Helio'),
                          ' ', ELT(1 + seq % 6, 'Stainless Steel Water Bottle', 'LED Desk Lamp',
                                   'USB-C Cable 2 m', 'Organic Cotton T-Shirt XL',
                                   'Wireless Mouse', 'Garden Hose 20 m'), ' ', seq),
                   LPAD(seq * 7, 12, '0'), (seq % 9000) / 100.0 + 0.99, 'EUR',
                   CASE WHEN :iid % 2 = 0 THEN NULL ELSE seq % 50 END,
                   CASE WHEN :iid % 2 = 0 THEN 'AMAZON_EU' ELSE 'DEFAULT' END,
                   ELT(1 + seq % 4, 'Active', 'Active', 'Active', 'Inactive'),
                   CONCAT('40', LPAD(seq, 11, '0')), 'EAN',
                   UTC_TIMESTAMP() - INTERVAL (seq % 3000) DAY, '2020-01-01 10:00:00 MET',
                   UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)
            FROM seq_1_to_{int(per)}
        """), {"iid": iid})
    times["fill offers"] = time.perf_counter() - started
    started = time.perf_counter()
    conn.execute(sa.text(f"""
        INSERT INTO product (sku, ean, name, asin)
        SELECT CASE WHEN seq <= :matched THEN CONCAT('SKU-', LPAD(seq, 7, '0'))
                    ELSE CONCAT('HOST-', LPAD(seq, 7, '0')) END,
               CONCAT('40', LPAD(seq, 11, '0')), CONCAT('Host product ', seq), NULL
        FROM seq_1_to_{int(n - AMBIGUOUS)}
    """), {"matched": matched})
    conn.execute(sa.text(f"""
        INSERT INTO product (sku, ean, name)
        SELECT CONCAT('SKU-', LPAD(seq, 7, '0')), NULL, CONCAT('Duplicate product ', seq)
        FROM seq_1_to_{AMBIGUOUS}
    """))
    times["fill products"] = time.perf_counter() - started
    return times


def analyze(conn: sa.Connection) -> None:
    if is_mysql(str(conn.engine.url)):
        conn.execute(sa.text("ANALYZE TABLE xsale_amazon_offer, xsale_amazon_offer_product_link, "
                             "product, xsale_amazon_integration"))
    else:
        conn.execute(sa.text("VACUUM ANALYZE"))


def fill(conn: sa.Connection, n: int, integrations: list[int]) -> dict[str, float]:
    """Offers and products, set-based. Returns the seconds per step."""
    if is_mysql(str(conn.engine.url)):
        return fill_mariadb(conn, n, integrations)
    per = n // len(integrations)
    matched = int(per * 0.7)
    times: dict[str, float] = {}

    started = time.perf_counter()
    for iid in integrations:
        conn.execute(sa.text("""
            INSERT INTO xsale_amazon_offer (
                integration_id, seller_sku, asin, name, listing_id, price, currency, quantity,
                fulfillment_channel, status, product_id, product_id_type, open_date,
                open_date_raw, first_seen_at, last_seen_at)
            SELECT :iid, 'SKU-' || lpad(g::text, 7, '0'),
                   'B0' || upper(substr(md5(g::text), 1, 8)),
                   (ARRAY['Acme', 'Nordwind', 'KitchenPro', 'Sakura', 'Helio'])[1 + g % 5]
                     || ' ' || (ARRAY['Stainless Steel Water Bottle', 'LED Desk Lamp',
                                      'USB-C Cable 2 m', 'Organic Cotton T-Shirt XL',
                                      'Wireless Mouse', 'Garden Hose 20 m'])[1 + g % 6]
                     || ' ' || g,
                   lpad((g * 7)::text, 12, '0'), (g % 9000) / 100.0 + 0.99, 'EUR',
                   CASE WHEN :iid % 2 = 0 THEN NULL ELSE g % 50 END,
                   CASE WHEN :iid % 2 = 0 THEN 'AMAZON_EU' ELSE 'DEFAULT' END,
                   (ARRAY['Active', 'Active', 'Active', 'Inactive'])[1 + g % 4],
                   '40' || lpad(g::text, 11, '0'), 'EAN',
                   now() - (g % 3000) * interval '1 day', '2020-01-01 10:00:00 MET',
                   now(), now()
            FROM generate_series(1, :per) AS g
        """), {"iid": iid, "per": per})
    times["fill offers"] = time.perf_counter() - started

    started = time.perf_counter()
    conn.execute(sa.text("""
        INSERT INTO product (sku, ean, name, asin)
        SELECT CASE WHEN g <= :matched THEN 'SKU-' || lpad(g::text, 7, '0')
                    ELSE 'HOST-' || lpad(g::text, 7, '0') END,
               '40' || lpad(g::text, 11, '0'), 'Host product ' || g, NULL
        FROM generate_series(1, :total) AS g
    """), {"matched": matched, "total": n - AMBIGUOUS})
    conn.execute(sa.text("""
        INSERT INTO product (sku, ean, name)
        SELECT 'SKU-' || lpad(g::text, 7, '0'), NULL, 'Duplicate product ' || g
        FROM generate_series(1, :amb) AS g
    """), {"amb": AMBIGUOUS})
    times["fill products"] = time.perf_counter() - started
    return times


def timed_get(client: Any, url: str, repeat: int) -> tuple[float, int, int]:
    """(median ms, HTTP status, body bytes) after one warm-up request."""
    resp = client.get(url)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        resp = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), resp.status_code, len(resp.data)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--offers", type=int, default=1_000_000, help="offers (= products)")
    ap.add_argument("--database-url",
                    default=os.environ.get("XSALE_BENCH_DB",
                                           os.environ.get("XSALE_BENCH_PG", DEFAULT_URL)))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the schema")
    args = ap.parse_args()

    from tests.hostapp import make_host
    from xsale_amazon_plugin.linking.links import autolink

    n = args.offers
    schema = "xa_bench_" + uuid.uuid4().hex[:8]
    admin_engine = sa.create_engine(args.database_url)
    url = create_scratch(admin_engine, schema)
    backend = "MariaDB" if is_mysql(url) else "PostgreSQL"
    print(f"schema {schema}", flush=True)
    rows: list[tuple[str, str, str]] = []
    try:
        host = make_host(url)
        integrations = [host.add_integration("DE", "FBM", name="bench FBM"),
                        host.add_integration("DE", "FBA", name="bench FBA")]
        app, db = host.app, host.db
        with app.app_context():
            with db.engine.begin() as conn:
                fill_times = fill(conn, n, integrations)
            started = time.perf_counter()
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                analyze(conn)
            fill_times["vacuum analyze"] = time.perf_counter() - started
        for name, secs in fill_times.items():
            print(f"{name}: {secs:.1f}s", flush=True)

        client = app.test_client()
        sku = f"SKU-{n // 4 - 3:07d}"  # an offer SKU that has a product
        asin = None
        with app.app_context():
            offer = host.models.AmazonOffer
            asin = db.session.execute(
                sa.select(offer.asin).where(offer.seller_sku == sku).limit(1)
            ).scalar_one()
            db.session.remove()

        pages = {
            "list, unlinked (default)": OFFERS,
            "search SKU, unlinked": f"{OFFERS}?search={sku}",
            "search SKU, view=all": f"{OFFERS}?view=all&search={sku}",
            "search ASIN, view=all": f"{OFFERS}?view=all&search={asin}",
            "list, view=all": f"{OFFERS}?view=all",
            # The workspace filters (flt0_<index>: integration 0, marketplace 1, account
            # type 2, status 3, removed 4, auto-link ambiguous 5).
            "filter marketplace DE, unlinked": f"{OFFERS}?flt0_1=DE",
            "filter account type FBA, view=all": f"{OFFERS}?view=all&flt0_2=FBA",
            "filter ambiguous by SKU, unlinked": f"{OFFERS}?flt0_5=sku",
            "filter ambiguous by SKU, view=all": f"{OFFERS}?view=all&flt0_5=sku",
            "filter ambiguous by SKU, unlinked, search": f"{OFFERS}?flt0_5=sku&search=SKU-00000",
            "filter ambiguous by SKU, view=all, search":
                f"{OFFERS}?view=all&flt0_5=sku&search=SKU-00000",
            "filter ambiguous by EAN, view=all": f"{OFFERS}?view=all&flt0_5=ean",
            "product picker, page 1": "/xsale-amazon/products/search?q=SKU-00&page=1",
        }
        page_ms: dict[str, float] = {}

        def measure(suffix: str) -> None:
            for name, url in pages.items():
                ms, status, size = timed_get(client, url, args.repeat)
                key = f"{name}{suffix}"
                page_ms[key] = ms
                rows.append((key, f"{ms:.0f} ms", f"HTTP {status}, {size // 1024} KiB"))
                print(f"{key}: {ms:.0f} ms", flush=True)
            # The workspace's own capped count of the review filter's scope (the auto-link
            # dialog's "all N offers the current view shows").
            from xsale_amazon_plugin.linking.offer_scope import OfferScope, count_offers

            for view in ("unlinked", "all"):
                scope = OfferScope(view=view, filters=(("ambiguous", "sku"),))
                with app.test_request_context():
                    samples = []
                    for _ in range(args.repeat + 1):
                        started = time.perf_counter()
                        found = count_offers(scope.criteria(), cap=10_000)
                        samples.append((time.perf_counter() - started) * 1000)
                    db.session.remove()
                key = f"count ambiguous by SKU, {view}{suffix}"
                ms = statistics.median(samples[1:])
                page_ms[key] = ms
                rows.append((key, f"{ms:.0f} ms", f"{found} offers"))
                print(f"{key}: {ms:.0f} ms", flush=True)

        measure("")

        link_total = 0.0
        with app.app_context():
            for iid in integrations:
                started = time.perf_counter()
                result = autolink("sku", integration_id=iid, user="bench")
                secs = time.perf_counter() - started
                link_total += secs
                rows.append((f"autolink sku, integration {iid}", f"{secs:.2f} s",
                             f"linked {result.linked}, ambiguous {result.ambiguous}, "
                             f"no match {result.no_match}, already {result.already_linked}"))
                print(rows[-1], flush=True)
            db.session.remove()
        rows.append(("autolink sku, all offers", f"{link_total:.2f} s", f"{n:,} offers"))
        # The same auto-link of the first integration as a background run (id windows of
        # AUTOLINK_BATCH offers, one transaction and progress update each), from scratch.
        with app.app_context():
            from xsale_amazon_plugin.linking.autolink_job import (
                AutoLinkRequest,
                run_autolink_job,
                start_autolink,
            )
            from xsale_amazon_plugin.linking.offer_scope import OfferScope

            unlink = ("DELETE l FROM xsale_amazon_offer_product_link l JOIN xsale_amazon_offer o "
                      "ON o.id = l.offer_id WHERE o.integration_id = :iid" if is_mysql(url) else
                      "DELETE FROM xsale_amazon_offer_product_link l USING xsale_amazon_offer o "
                      "WHERE o.id = l.offer_id AND o.integration_id = :iid")
            with db.engine.begin() as conn:
                conn.execute(sa.text(unlink), {"iid": integrations[0]})
            host.configure(AUTOLINK_INLINE_LIMIT=0)
            request = AutoLinkRequest.for_scope(
                OfferScope(filters=(("integration", str(integrations[0])),)))
            started = time.perf_counter()
            outcome = start_autolink("sku", request, user="bench")  # queues; run it here
            run_autolink_job(outcome.run_id)
            windowed = time.perf_counter() - started
            run = db.session.get(host.models.AutoLinkRun, outcome.run_id)
            single = float(rows[-3][1].split()[0])
            rows.append(("autolink sku, integration 1, background run", f"{windowed:.2f} s",
                         f"{run.status}, linked {run.count_linked} in windows of "
                         f"{host.amazon.settings.autolink_batch:,}; "
                         f"{windowed / single:.2f}x the single statement"))
            print(rows[-1], flush=True)
            db.session.remove()
        with app.app_context(), db.engine.connect() as conn:
            if is_mysql(url):
                analyze(conn)
            else:
                conn.execute(sa.text("ANALYZE"))
            conn.commit()

        measure(" (after linking)")
    finally:
        if not args.keep:
            drop_scratch(admin_engine, schema)
        admin_engine.dispose()

    print()
    print(f"Offers admin benchmark: {n:,} offers (2 integrations), {n:,} products, {backend}; "
          f"median of {args.repeat} after a warm-up")
    width = max(len(r[0]) for r in rows) + 2
    for name, value, note in rows:
        print(f"{name:<{width}}{value:>12}  {note}")
    print()
    print("targets")
    for key in ("list, unlinked (default)", "search SKU, unlinked", "search SKU, view=all",
                "list, unlinked (default) (after linking)",
                "search SKU, unlinked (after linking)", "search SKU, view=all (after linking)"):
        ms = page_ms[key]
        print(f"  {key + ' <= 300 ms':<56}{ms:8.0f} ms  {verdict(ms <= PAGE_TARGET_MS)}")
    print(f"  {'autolink by SKU, 1M offers x 1M products <= 30 s':<56}{link_total:8.2f} s   "
          f"{verdict(link_total <= AUTOLINK_TARGET_S)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
