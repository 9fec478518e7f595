"""What the mapping assistant's change-log triggers cost the host's writes to its product table,
and what a stock-only update costs the next staleness check.

Run from the repository root::

    .venv/bin/python bench/trigger_bench.py --database-url sqlite:///x --products 200000
    .venv/bin/python bench/trigger_bench.py --products 200000 \\
        --database-url mysql+pymysql://xsale_test:xsale_test@127.0.0.1:3306/test
    .venv/bin/python bench/trigger_bench.py --products 200000      # PostgreSQL (XSALE_BENCH_PG)

For each of "without triggers" and "with triggers" (a fresh database each, the test host app's
tables; the triggers created by the first staleness check, as in production) it times, on a
separate connection like a host's own loader: INSERT of N products (batched INSERTs of 10,000
rows, one transaction), UPDATE of every product's name (one statement), DELETE of every product
(one statement), then the staleness check after them (the index was built on the empty table;
with triggers it consumes the log: 3N rows on SQLite and MariaDB). Row-level triggers (SQLite,
MariaDB) write one log row per product; PostgreSQL's statement trigger one per statement.
Prints the fastest of ``--rounds`` runs of each.

Then the back office's everyday write: an UPDATE of the (non-indexed) ``stock`` column of
``--stock-rows`` products, and the staleness check right after it, on one database of N
products with a built index, alternating between the triggers of the versions before the
column-aware ones ("every change": a log row per updated product row, so the check compares
the fingerprint and consumes the log) and the current ones ("indexed columns": no log row, one
lookup). Prints the median of ``--rounds`` x 3 checks of each.

Last, what each kind of trigger costs an UPDATE of every product (N rows, one statement): of
the name (indexed: both log a row per product, the column-aware UPDATE trigger compares the
values first) and of the stock (only the earlier triggers log), alternating on one database
without an index, median of ``--rounds`` + 3.

``--only writes|stock|updates`` runs one part. Always exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import sqlalchemy as sa  # noqa: E402
from suggest_bench import DEFAULT_URL, Schema  # noqa: E402

BATCH = 10_000



def _load_products(loader: sa.Engine, product: sa.Table, n: int) -> None:
    with loader.begin() as conn:
        for start in range(0, n, BATCH):
            conn.execute(product.insert(), [
                {"sku": f"SKU-{i}", "ean": None, "name": f"Product {i} black 500 ml",
                 "stock": 0} for i in range(start, min(n, start + BATCH))])

def _timed(engine: sa.Engine, work: Any) -> float:
    t0 = time.perf_counter()
    with engine.begin() as conn:
        work(conn)
    return time.perf_counter() - t0


def run(base: str, n: int, triggers: bool) -> dict[str, float]:
    from tests.hostapp import make_host
    from xsale_amazon_plugin.suggest.service import refresh_index

    figures: dict[str, float] = {}
    with Schema(base, keep=False) as url:
        host = make_host(url, config={"XSALE_AMAZON_SUGGEST_TRIGGERS": triggers})
        with host.app.app_context():
            refresh_index()  # creates the triggers (when enabled) on the empty table
        loader = sa.create_engine(url)
        product = host.Product.__table__

        def insert(conn: sa.Connection) -> None:
            for start in range(0, n, BATCH):
                conn.execute(product.insert(), [
                    {"sku": f"SKU-{i}", "ean": None, "name": f"Product {i} black 500 ml"}
                    for i in range(start, min(n, start + BATCH))])

        figures["insert_s"] = _timed(loader, insert)
        figures["update_s"] = _timed(loader, lambda c: c.execute(
            product.update().values(name=product.c.name + " v2")))
        figures["delete_s"] = _timed(loader, lambda c: c.execute(product.delete()))
        with host.app.app_context():
            t = host.state.models.AmazonOffer.__table__.metadata.tables[
                "xsale_amazon_suggest_change"]
            figures["log_rows"] = host.db.session.execute(
                sa.select(sa.func.count()).select_from(t)).scalar_one()
            host.db.session.commit()
            t0 = time.perf_counter()
            refresh_index()
            figures["check_after_delete_s"] = time.perf_counter() - t0
            host.db.session.remove()
            for engine in host.db.engines.values():
                engine.dispose()
        loader.dispose()
    return figures


def _every_change(product: sa.Table, indexed: Any) -> Any:
    """The triggers of the versions before the column-aware ones: every change logged."""
    from xsale_amazon_plugin.suggest.triggers import WatchSpec

    return WatchSpec(None, "0bef0re0")


def stock_check(base: str, n: int, rows: int, rounds: int) -> dict[str, list[float]]:
    """Staleness check after a stock-only UPDATE of ``rows`` products, s, per trigger kind."""
    from tests.hostapp import make_host
    from xsale_amazon_plugin.suggest import triggers as suggest_watch
    from xsale_amazon_plugin.suggest.service import refresh_index

    column_aware = suggest_watch.watch_spec
    checks: dict[str, list[float]] = {"every change": [], "indexed columns": []}
    log_rows: dict[str, int] = {}
    with Schema(base, keep=False) as url:
        host = make_host(url)
        loader = sa.create_engine(url)
        product = host.Product.__table__
        _load_products(loader, product, n)
        t0 = time.perf_counter()
        with host.app.app_context():
            refresh_index()
        print(f"  index of {n:,} products built in {time.perf_counter() - t0:.0f} s",
              flush=True)
        change = host.state.models.AmazonOffer.__table__.metadata.tables[
            "xsale_amazon_suggest_change"]
        ids = list(range(1, n + 1, max(1, n // rows)))[:rows]
        try:
            for _ in range(rounds):
                for kind in checks:
                    suggest_watch.watch_spec = (  # type: ignore[assignment]
                        _every_change if kind == "every change" else column_aware)
                    with host.app.app_context():
                        refresh_index()  # replaces the triggers (a fingerprint, once)
                        refresh_index()
                    for _ in range(3):
                        with loader.begin() as conn:
                            conn.execute(product.update().where(product.c.id.in_(ids))
                                         .values(stock=product.c.stock + 1))
                        with host.app.app_context():
                            log_rows[kind] = host.db.session.execute(
                                sa.select(sa.func.count()).select_from(change)).scalar_one()
                            host.db.session.commit()
                            t0 = time.perf_counter()
                            refresh_index()
                            checks[kind].append(time.perf_counter() - t0)
        finally:
            suggest_watch.watch_spec = column_aware  # type: ignore[assignment]
            with host.app.app_context():
                host.db.session.remove()
                for engine in host.db.engines.values():
                    engine.dispose()
            loader.dispose()
    checks["log rows"] = [float(log_rows.get("every change", 0)),
                          float(log_rows.get("indexed columns", 0))]
    return checks


def update_costs(base: str, n: int, rounds: int) -> dict[str, list[float]]:
    """UPDATE of every product's name / stock, s, per trigger kind."""
    from tests.hostapp import make_host
    from xsale_amazon_plugin.suggest import triggers as suggest_watch
    from xsale_amazon_plugin.suggest.service import _context

    times: dict[str, list[float]] = {}
    with Schema(base, keep=False) as url:
        host = make_host(url, config={"XSALE_AMAZON_SUGGEST_TRIGGERS": False})
        loader = sa.create_engine(url)
        product = host.Product.__table__
        _load_products(loader, product, n)
        with host.app.app_context():
            ctx = _context()
            indexed, change = ctx.cols.values, ctx.tables.change
        try:
            for _ in range(rounds + 3):
                for kind in ("every change", "indexed columns"):
                    spec = (_every_change(product, indexed) if kind == "every change"
                            else suggest_watch.watch_spec(product, indexed))
                    with host.app.app_context():
                        conn = host.db.session.connection()
                        # the other kind's triggers go (the plugin's own replacement)
                        suggest_watch._retry_at.clear()
                        original = suggest_watch.watch_spec
                        suggest_watch.watch_spec = lambda *_, s=spec: s  # type: ignore[assignment]
                        try:
                            suggest_watch.watch_product_table(conn, change, product, indexed)
                        finally:
                            suggest_watch.watch_spec = original  # type: ignore[assignment]
                        host.db.session.commit()
                    for column, value in (("name", product.c.name + " v2"),
                                          ("stock", product.c.stock + 1)):
                        times.setdefault(f"{kind}:{column}", []).append(_timed(
                            loader, lambda c, col=column, v=value: c.execute(
                                product.update().values({col: v}))))
                        with loader.begin() as conn:
                            conn.execute(change.delete())
        finally:
            with host.app.app_context():
                host.db.session.remove()
                for engine in host.db.engines.values():
                    engine.dispose()
            loader.dispose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--products", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2,
                        help="runs of each variant, alternating; the fastest of each is shown")
    parser.add_argument("--stock-rows", type=int, default=1000,
                        help="products whose stock one UPDATE changes")
    parser.add_argument("--only", choices=("writes", "stock", "updates"),
                        help="only the write costs, the check after a stock update, or the "
                             "UPDATE costs per trigger kind")
    args = parser.parse_args()
    dialect = sa.make_url(args.database_url).get_backend_name()
    if args.only in (None, "writes"):
        write_costs(args, dialect)
    if args.only in (None, "stock"):
        stock_report(args, dialect)
    if args.only in (None, "updates"):
        update_report(args, dialect)


def update_report(args: argparse.Namespace, dialect: str) -> None:
    import statistics

    print(f"{dialect}, {args.products:,} products: UPDATE of every product, median of "
          f"{args.rounds + 3}")
    try:
        times = update_costs(args.database_url, args.products, args.rounds)
    except Exception as exc:  # a bench reports, it does not stop
        print(f"  failed: {exc!r}")
        return
    for column in ("name", "stock"):
        before = statistics.median(times[f"every change:{column}"])
        after = statistics.median(times[f"indexed columns:{column}"])
        print(f"  {column:<6} triggers logging every change {before:6.2f} s, "
              f"indexed columns {after:6.2f} s")


def stock_report(args: argparse.Namespace, dialect: str) -> None:
    import statistics

    print(f"{dialect}, {args.products:,} products: staleness check after a stock-only "
          f"UPDATE of {args.stock_rows:,} rows, median of {3 * args.rounds}")
    try:
        checks = stock_check(args.database_url, args.products, args.stock_rows,
                             args.rounds)
    except Exception as exc:  # a bench reports, it does not stop
        print(f"  failed: {exc!r}")
        return
    before, after = checks["log rows"]
    for kind, logged in (("every change", before), ("indexed columns", after)):
        print(f"  triggers logging {kind:<15}: {int(logged):>6,} log rows, check "
              f"{1000 * statistics.median(checks[kind]):8.1f} ms")


def write_costs(args: argparse.Namespace, dialect: str) -> None:
    print(f"{dialect}, {args.products:,} products, best of {args.rounds}")
    results: dict[bool, dict[str, float]] = {}
    for _ in range(args.rounds):
        for triggers in (False, True):
            try:
                figures = run(args.database_url, args.products, triggers)
            except Exception as exc:  # a bench reports, it does not stop
                print(f"  triggers={triggers}: failed: {exc!r}")
                continue
            best = results.setdefault(triggers, figures)
            for key, value in figures.items():
                best[key] = min(best[key], value)
    for step in ("insert_s", "update_s", "delete_s"):
        if False in results and True in results:
            off, on = results[False][step], results[True][step]
            print(f"  {step[:-2]:<7} without {off:7.2f} s   with triggers {on:7.2f} s   "
                  f"(+{100 * (on / off - 1):.0f} %)")
    if True in results:
        r = results[True]
        print(f"  log rows after insert+update+delete: {int(r['log_rows']):,}; staleness check "
              f"after them (consumes the log): {r['check_after_delete_s']:.2f} s")
    if False in results:
        print(f"  without triggers that check is the fingerprint of the now empty table: "
              f"{results[False]['check_after_delete_s']:.2f} s")


if __name__ == "__main__":
    main()
