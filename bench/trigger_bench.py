"""What the mapping assistant's change-log triggers cost the host's writes to its product table.

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
Prints the fastest of ``--rounds`` runs of each. Always exits 0.
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


def _timed(engine: sa.Engine, work: Any) -> float:
    t0 = time.perf_counter()
    with engine.begin() as conn:
        work(conn)
    return time.perf_counter() - t0


def run(base: str, n: int, triggers: bool) -> dict[str, float]:
    from tests.hostapp import make_host
    from xsale_amazon_plugin.suggestions import refresh_index

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--products", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2,
                        help="runs of each variant, alternating; the fastest of each is shown")
    args = parser.parse_args()
    dialect = sa.make_url(args.database_url).get_backend_name()
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
