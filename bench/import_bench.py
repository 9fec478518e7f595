"""Benchmark: import an N-row All Listings Report into PostgreSQL the way the RQ job does.

``--database-url mysql+pymysql://root@127.0.0.1:3306/test`` (or ``XSALE_BENCH_DB``) runs it on
MariaDB/MySQL: a scratch database instead of a schema, and the baseline is ``LOAD DATA LOCAL
INFILE`` of the same fields into a plain InnoDB table of the staging table's columns (no
indexes; the server needs ``local_infile`` on).

Run from the repository root::

    /work/venv/bin/python bench/import_bench.py                # 1,000,000 rows (+ a 100k run)
    /work/venv/bin/python bench/import_bench.py --rows 200000 --keep

What it does (all in a fresh schema ``xa_bench_<random>``, dropped at the end unless
``--keep``):

1. Generates US-family reports (29 columns, UTF-8, realistic values from
   ``emulator.report_builder.demo_listings``): 100k rows and N rows, plus an N-row copy in which
   every 10th offer changed price, quantity and status.
2. Imports each report in a separate subprocess (so ``ru_maxrss`` is the peak of that import
   alone) through the job's code path: ``ReportReader`` -> ``OfferWriter.clear_staging`` ->
   ``OfferWriter.stage`` (with the job's BATCH_SIZE and a per-batch progress commit like
   ``_Step._progress``) -> ``OfferWriter.apply`` inside ``engine.begin()`` with the run row
   locked ``FOR UPDATE`` and updated in the same transaction (like ``_Step._apply``).
   Sequence: first import (100k, own integration), first import (N), unchanged re-import (N),
   10%-changed re-import (N).
3. Baseline, in the same run: ``COPY`` of the same N rows into an UNLOGGED table with the staging
   table's column set (``CREATE UNLOGGED TABLE ... (LIKE xsale_amazon_import_row)``, no
   indexes). The input is the raw TSV text of the mapped report fields (extracted from the report
   before the clock starts; blanks sent as NULL), so PostgreSQL does the type conversion. A second
   reference figure COPYs the whole raw report file (all 29 columns as text).

It prints a table and PASS/MISS per target and always exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FAMILY = "us"
MARKETPLACE = "US"
SMALL = 100_000
#: Report fields in the order of the staging columns after run_id, line.
RAW_FIELDS = ("seller-sku", "asin1", "item-name", "listing-id", "price", "quantity",
              "fulfillment-channel", "status", "product-id", "product-id-type", "open-date",
              "open-date")  # fmt: skip


# --------------------------------------------------------------------------- helpers


def schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def is_mysql(url: str) -> bool:
    return sa.make_url(url).get_backend_name() in ("mysql", "mariadb")


def rss_mb(kilobytes: int) -> float:
    return kilobytes / 1024  # Linux: ru_maxrss is in KiB


def changed_rows(n: int) -> Iterator[dict]:
    """The N demo rows with every 10th offer changed (price, quantity and status)."""
    from xsale_amazon_plugin.emulator.report_builder import demo_listings

    for i, row in enumerate(demo_listings(n, seed=1, marketplace=MARKETPLACE)):
        if i % 10 == 0:
            row = dict(row)
            row["price"] = (row["price"] or Decimal("10.00")) + Decimal("1.00")
            row["quantity"] = (row["quantity"] or 0) + 3
            row["status"] = "Inactive" if row["status"] == "Active" else "Active"
        yield row


def generate(path: Path, n: int, changed: bool = False) -> float:
    from xsale_amazon_plugin.emulator.report_builder import demo_listings, write_report

    started = time.perf_counter()
    rows = changed_rows(n) if changed else demo_listings(n, seed=1, marketplace=MARKETPLACE)
    write_report(path, rows, FAMILY)
    return time.perf_counter() - started


def make_bench_host(url: str) -> Any:
    from tests.hostapp import make_host
    from xsale_amazon_plugin.settings import DEFAULTS

    # tests/hostapp.py sets a tiny test BATCH_SIZE; measure with the shipped default.
    return make_host(url, config={"XSALE_AMAZON_BATCH_SIZE": DEFAULTS["BATCH_SIZE"]})


# --------------------------------------------------------------------------- worker


def worker(url: str, report: str, integration_id: int) -> dict[str, Any]:
    """One import, driven exactly like ``jobs._Step._process`` + ``_apply``. Runs in a child."""
    from xsale_amazon_plugin.amazon.report_parser import ReportReader
    from xsale_amazon_plugin.importing.writer import OfferWriter, StageCounts
    from xsale_amazon_plugin.models import Stage, Status
    from xsale_amazon_plugin.timeutil import utcnow

    host = make_bench_host(url)
    app, db, m = host.app, host.db, host.models
    out: dict[str, Any] = {}
    with app.app_context():
        state = host.state
        integ = db.session.get(m.AmazonIntegration, integration_id)
        run = m.ImportRun(integration_id=integ.id, status=Status.PROCESSING,
                          stage=Stage.PARSING, rq_job_id="bench", trigger="bench",
                          started_at=utcnow())
        db.session.add(run)
        db.session.commit()
        marketplace = integ.marketplace_info
        importer = OfferWriter(
            m, db.engine, run_id=run.id, integration_id=integ.id,
            account_type=integ.account_type, currency=marketplace.currency,
            invalid_lines_kept=state.settings.invalid_lines_kept,
        )

        def progress(counts: StageCounts, line: int) -> None:  # like _Step._progress
            run.count_read = counts.read
            run.invalid_lines = list(counts.invalid_lines)
            run.rows_done = counts.read
            run.heartbeat_at = utcnow()
            db.session.commit()

        started = time.perf_counter()
        reader = ReportReader(report, declared_charset="UTF-8",
                              default_encoding=marketplace.default_encoding)
        run.encoding, run.header_family, run.rows_total = (
            reader.encoding, reader.header_family, reader.total_lines)
        db.session.commit()
        importer.clear_staging()
        counts = importer.stage(
            reader.rows(),
            has_channel_column="fulfillment-channel" in reader.columns,
            batch_size=state.settings.batch_size,
            on_batch=progress,
        )
        staged = time.perf_counter()
        table = m.ImportRun.__table__
        with importer.engine.begin() as conn:
            current = conn.execute(
                sa.select(table.c.status, table.c.rq_job_id).where(table.c.id == run.id)
                .with_for_update()
            ).one()
            assert current.status == Status.PROCESSING
            applied = importer.apply(conn)
            conn.execute(table.update().where(table.c.id == run.id).values(
                count_created=applied.created, count_updated=applied.updated,
                count_unchanged=applied.unchanged, count_removed=applied.removed,
                status=Status.SUCCEEDED, stage=Stage.DONE, finished_at=utcnow(),
            ))
        done = time.perf_counter()
        out.update(
            stage_s=staged - started, apply_s=done - staged, total_s=done - started,
            read=counts.read, staged=counts.staged, invalid=counts.invalid,
            created=applied.created, updated=applied.updated, unchanged=applied.unchanged,
            removed=applied.removed, duplicate=applied.duplicate,
        )
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()
    out["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out


def run_worker(url: str, report: Path, integration_id: int, profile: str | None) -> dict:
    cmd = [sys.executable]
    if profile:
        cmd += ["-m", "cProfile", "-o", profile]
    cmd += [__file__, "--worker", "--database-url", url, "--report", str(report),
            "--integration", str(integration_id)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"worker failed ({proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- raw COPY baseline


def extract_fields(report: Path, dest: Path) -> None:
    """Write the mapped report fields as COPY text (blank -> NULL); untimed preparation."""
    with open(report, encoding="utf-8") as src, open(dest, "w", encoding="utf-8") as out:
        header = src.readline().rstrip("\n").split("\t")
        idx = [header.index(name) for name in RAW_FIELDS]
        buf: list[str] = []
        for line_no, line in enumerate(src, start=2):
            fields = line.rstrip("\n").split("\t")
            values = [fields[i] or "\\N" for i in idx]
            buf.append(f"0\t{line_no}\t" + "\t".join(values) + "\n")
            if len(buf) >= 10000:
                out.writelines(buf)
                buf.clear()
        out.writelines(buf)


def copy_file(conn: Any, sql: str, path: Path, skip_header: bool) -> float:
    raw = conn.connection.driver_connection
    started = time.perf_counter()
    with open(path, "rb") as fh, raw.cursor() as cur, cur.copy(sql) as cp:
        if skip_header:
            fh.readline()
        while chunk := fh.read(1 << 20):
            cp.write(chunk)
    return time.perf_counter() - started


def raw_load_data(url: str, report: Path, fields: Path) -> dict[str, float]:
    """The MariaDB/MySQL baseline: LOAD DATA LOCAL INFILE into plain InnoDB tables."""
    engine = sa.create_engine(url, connect_args={"local_infile": True})
    out: dict[str, float] = {}
    columns = ("run_id, line, seller_sku, asin, name, listing_id, price, quantity, "
               "fulfillment_channel, status, product_id, product_id_type, @open_date, "
               "open_date_raw")
    with engine.connect() as conn:
        header = report.open(encoding="utf-8").readline().rstrip("\n").split("\t")
        # Same column types as the staging table, without its keys and indexes.
        conn.execute(sa.text("CREATE TABLE bench_raw_copy ENGINE=InnoDB "
                             "AS SELECT * FROM xsale_amazon_import_row WHERE 1 = 0"))
        cols = ", ".join(f"c{i} text" for i in range(len(header)))
        conn.execute(sa.text(f"CREATE TABLE bench_raw_file ({cols}) ENGINE=InnoDB"))
        conn.commit()
        for key, sql in (
            ("copy_fields_s",
             f"LOAD DATA LOCAL INFILE '{fields}' INTO TABLE bench_raw_copy ({columns}) "
             # the report's open-date ("2016-11-05 23:52:27 MET") as DATETIME, zone ignored
             "SET open_date = STR_TO_DATE(LEFT(@open_date, 19), '%Y-%m-%d %H:%i:%s')"),
            ("copy_file_s",
             f"LOAD DATA LOCAL INFILE '{report}' INTO TABLE bench_raw_file IGNORE 1 LINES"),
        ):
            started = time.perf_counter()
            conn.exec_driver_sql(sql.replace("%", "%%"))
            conn.commit()
            out[key] = time.perf_counter() - started
        out["copied"] = conn.execute(sa.text("SELECT count(*) FROM bench_raw_copy")).scalar_one()
        conn.execute(sa.text("DROP TABLE bench_raw_copy, bench_raw_file"))
        conn.commit()
    engine.dispose()
    return out


def raw_copy(url: str, report: Path, work: Path) -> dict[str, float]:
    fields = work / "fields.tsv"
    extract_fields(report, fields)
    if is_mysql(url):
        out = raw_load_data(url, report, fields)
        fields.unlink()
        return out
    engine = sa.create_engine(url)
    out: dict[str, float] = {}
    with engine.connect() as conn:
        header = report.open(encoding="utf-8").readline().rstrip("\n").split("\t")
        conn.execute(sa.text(
            "CREATE UNLOGGED TABLE bench_raw_copy (LIKE xsale_amazon_import_row)"))
        # The apply's own bookkeeping column: not a field of the report.
        conn.execute(sa.text("ALTER TABLE bench_raw_copy DROP COLUMN IF EXISTS kept_invalid"))
        cols = ", ".join(f"c{i} text" for i in range(len(header)))
        conn.execute(sa.text(f"CREATE UNLOGGED TABLE bench_raw_file ({cols})"))
        conn.commit()
        out["copy_fields_s"] = copy_file(conn, "COPY bench_raw_copy FROM STDIN", fields, False)
        conn.commit()
        out["copy_file_s"] = copy_file(conn, "COPY bench_raw_file FROM STDIN", report, True)
        conn.commit()
        out["copied"] = conn.execute(sa.text("SELECT count(*) FROM bench_raw_copy")).scalar_one()
        conn.execute(sa.text("DROP TABLE bench_raw_copy, bench_raw_file"))
        conn.commit()
    engine.dispose()
    fields.unlink()
    return out


# --------------------------------------------------------------------------- main


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--database-url",
                    default=os.environ.get("XSALE_BENCH_DB",
                                           os.environ.get("XSALE_BENCH_PG", DEFAULT_URL)))
    ap.add_argument("--keep", action="store_true", help="keep the schema and the report files")
    ap.add_argument("--profile", help="write a cProfile of the N-row first import to this file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--report", help=argparse.SUPPRESS)
    ap.add_argument("--integration", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        print(json.dumps(worker(args.database_url, args.report, args.integration)))
        return 0

    n = args.rows
    base = args.database_url
    schema = "xa_bench_" + uuid.uuid4().hex[:8]
    admin_engine = sa.create_engine(base)
    mysql = is_mysql(base)
    with admin_engine.begin() as conn:
        if mysql:
            conn.execute(sa.text(f"CREATE DATABASE `{schema}` CHARACTER SET utf8mb4"))
        else:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    if mysql:
        url = sa.make_url(base).set(database=schema, query={"charset": "utf8mb4"}
                                    ).render_as_string(hide_password=False)
    else:
        url = schema_url(base, schema)
    work = Path(tempfile.mkdtemp(prefix="xsale-import-bench-"))
    print(f"schema {schema}; reports in {work}", flush=True)
    try:
        sizes = [SMALL, n] if n > SMALL else [n]
        reports = {size: work / f"report-{size}.tsv" for size in sizes}
        for size, path in reports.items():
            secs = generate(path, size)
            print(f"generated {size:,} rows ({path.stat().st_size / 1e6:.0f} MB) in {secs:.1f}s",
                  flush=True)
        changed = work / f"report-{n}-changed.tsv"
        generate(changed, n, changed=True)

        host = make_bench_host(url)  # creates the tables in the schema
        # One seller per integration: (seller, marketplace, account type) is unique.
        integrations = {size: host.add_integration("US", "FBM", name=f"bench {size}",
                                                   seller_id=f"ABENCH{size}")
                        for size in sizes}
        with host.app.app_context():
            if mysql:
                persistence = "InnoDB"
            else:
                with host.db.engine.connect() as conn:
                    persistence = conn.execute(sa.text(
                        "SELECT relpersistence FROM pg_class "
                        "WHERE oid = 'xsale_amazon_import_row'::regclass")).scalar_one()
            staging = {"u": "UNLOGGED", "p": "logged"}.get(persistence, persistence)
            host.db.session.remove()
            for engine in host.db.engines.values():
                engine.dispose()

        results: dict[str, dict] = {}
        if n > SMALL:
            small = run_worker(url, reports[SMALL], integrations[SMALL], None)
            results[f"import {SMALL:,}"] = small
            print("done: small import", flush=True)
        iid = integrations[n]
        results["import"] = run_worker(url, reports[n], iid, args.profile)
        print("done: import", flush=True)
        results["re-import unchanged"] = run_worker(url, reports[n], iid, None)
        print("done: unchanged re-import", flush=True)
        results["re-import 10% changed"] = run_worker(url, changed, iid, None)
        print("done: changed re-import", flush=True)
        copy = raw_copy(url, reports[n], work)
        print("done: raw COPY", flush=True)
    finally:
        if not args.keep:
            with admin_engine.begin() as conn:
                if mysql:
                    conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{schema}`"))
                else:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            for f in work.iterdir():
                f.unlink()
            work.rmdir()
        admin_engine.dispose()

    print()
    print(f"All Listings Report import benchmark: N = {n:,} rows, family {FAMILY}, "
          f"{'MariaDB/MySQL' if mysql else 'PostgreSQL'}, "
          f"{staging} staging table")
    print(f"{'run':<24}{'parse+stage s':>14}{'apply s':>9}{'total s':>9}{'rows/s':>10}"
          f"{'peak RSS MB':>13}  created/updated/unchanged/removed")
    for name, r in results.items():
        print(f"{name:<24}{r['stage_s']:>14.2f}{r['apply_s']:>9.2f}{r['total_s']:>9.2f}"
              f"{r['read'] / r['total_s']:>10,.0f}{rss_mb(r['maxrss_kb']):>13.0f}  "
              f"{r['created']}/{r['updated']}/{r['unchanged']}/{r['removed']}")
    baseline = "raw LOAD DATA" if mysql else "raw COPY"
    table_kind = "InnoDB" if mysql else "UNLOGGED"
    print(f"{baseline + ', same columns':<24}{'':>14}{'':>9}{copy['copy_fields_s']:>9.2f}"
          f"{copy['copied'] / copy['copy_fields_s']:>10,.0f}   "
          f"({table_kind}, mapped raw TSV fields)")
    print(f"{baseline + ', whole file':<24}{'':>14}{'':>9}{copy['copy_file_s']:>9.2f}"
          f"{copy['copied'] / copy['copy_file_s']:>10,.0f}   ({table_kind}, 29 text columns)")

    imp = results["import"]
    ratio = imp["total_s"] / copy["copy_fields_s"]
    unchanged = results["re-import unchanged"]
    rss_big = rss_mb(imp["maxrss_kb"])
    small = results.get(f"import {SMALL:,}")
    rss_small = rss_mb(small["maxrss_kb"]) if small else rss_big
    flat = rss_big - rss_small <= max(0.15 * rss_small, 30)
    print()
    print("targets")
    print(f"  import <= 3x {baseline:<17} {ratio:6.2f}x  "
          f"({imp['total_s']:.2f}s / {copy['copy_fields_s']:.2f}s)  {verdict(ratio <= 3)}")
    print(f"  re-import unchanged <= import  {unchanged['total_s']:6.2f}s vs {imp['total_s']:.2f}s"
          f"  {verdict(unchanged['total_s'] <= imp['total_s'])}")
    print(f"  peak RSS <= 300 MB             {rss_big:6.0f} MB  {verdict(rss_big <= 300)}")
    print(f"  RSS flat 100k -> N             {rss_small:6.0f} -> {rss_big:.0f} MB  "
          f"(flat = growth <= max(15%, 30 MB))  {verdict(flat)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
