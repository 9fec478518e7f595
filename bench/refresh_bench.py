"""How fast the mapping assistant's index refresh goes, to size
``XSALE_AMAZON_SUGGEST_INLINE_REFRESH_LIMIT`` (the largest refresh a web request runs itself).

Run from the repository root::

    .venv/bin/python bench/refresh_bench.py                      # 50,000 products, PostgreSQL
    .venv/bin/python bench/refresh_bench.py --products 200000
    .venv/bin/python bench/refresh_bench.py --database-url sqlite:///   # or mysql+pymysql://...

N products from ``bench/suggest_data.py`` go into the test host's ``product`` table (COPY on
PostgreSQL), then it times, through ``suggestions.refresh_index`` (outside a request, so
always inline):

* the first build (every product indexed): products/s;
* the refresh after one product changed (every product walked and hashed, one indexed);
* the refresh after every product's name changed (every product re-indexed, as after an
  upgrade changing ``FEATURES_VERSION``);
* what a web request pays to decide: the no-change check, ``refresh_bound`` at the default
  limit, and ``product_count`` (the figure the "being rebuilt" message shows).

Prints one line per figure. Always exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import sqlalchemy as sa  # noqa: E402
from suggest_bench import Schema, load  # noqa: E402
from suggest_data import generate  # noqa: E402

DEFAULT_URL = os.environ.get("XSALE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def run(base: str, n_products: int) -> None:
    from tests.hostapp import make_host
    from xsale_amazon_plugin.settings import Settings
    from xsale_amazon_plugin.suggest import service as suggestions
    from xsale_amazon_plugin.suggest.index import product_count, quick_check, refresh_bound

    products, _ = generate(int(n_products / 2.2) + 1, seed=11, offers_per_family=0.0)
    products = products[:n_products]
    limit = Settings().suggest_inline_refresh_limit
    with Schema(base, keep=False) as url:
        host = make_host(url)
        load(host, products, [])
        with host.app.app_context():
            session = host.db.session
            n = session.execute(sa.text("SELECT count(*) FROM product")).scalar_one()
            print(f"backend {session.connection().dialect.name}, {n} products")
            session.commit()  # MariaDB: an open read of the table would block trigger creation

            seconds, result = _timed(suggestions.refresh_index)
            print(f"first build: {seconds:.1f} s, {result.indexed / seconds:,.0f} products/s")

            product = host.Product.__table__
            first = session.execute(sa.select(sa.func.min(product.c.id))).scalar_one()
            session.execute(product.update().where(product.c.id == first)
                            .values(name=product.c.name + " x"))
            session.commit()
            seconds, result = _timed(suggestions.refresh_index)
            print(f"one product changed: {seconds:.1f} s, {n / seconds:,.0f} products walked/s "
                  f"({result.indexed} indexed)")

            session.execute(product.update().values(name=product.c.name + " y"))
            session.commit()
            seconds, result = _timed(suggestions.refresh_index)
            print(f"every product changed: {seconds:.1f} s, "
                  f"{result.indexed / seconds:,.0f} products re-indexed/s")

            ctx = suggestions._context()
            conn = session.connection()
            checks = [_timed(lambda: quick_check(conn, ctx.tables, ctx.cols))[0]
                      for _ in range(5)]
            print(f"no-change check: {1000 * sorted(checks)[2]:.1f} ms (median of 5)")
            bounds = [_timed(lambda: refresh_bound(conn, ctx.tables, ctx.cols, limit))[0]
                      for _ in range(5)]
            print(f"refresh_bound at limit {limit}: {1000 * sorted(bounds)[2]:.1f} ms")
            counts = [_timed(lambda: product_count(conn, ctx.cols))[0] for _ in range(5)]
            print(f"product_count: {1000 * sorted(counts)[2]:.1f} ms")
            session.remove()
            for engine in host.db.engines.values():
                engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()
    run(args.database_url, args.products)


if __name__ == "__main__":
    main()
