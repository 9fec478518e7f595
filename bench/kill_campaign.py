"""Kill campaign: SIGKILL the import worker at many points of a large import and prove that
no data is ever lost.

    /work/venv/bin/python bench/kill_campaign.py --points 30 --rows 300000
    /work/venv/bin/python bench/kill_campaign.py --points 12 --restart-postgres

What it does (the CI-sized version is ``tests/test_faults.py::test_kill_campaign_never_costs_data``;
both share :mod:`tests.test_faults`):

1. A fresh PostgreSQL schema and RQ queue (Redis 127.0.0.1:6379 db 9), the local SP-API
   emulator on 127.0.0.1, and real ``flask --app sample_app xsale-amazon worker`` processes whose
   database connections carry ``application_name=xa-worker-<tag>``.
2. Setup: the *target* integration imports an OLD version of the report (it lacks 2 % of the
   new SKUs, has other prices on every 97th row, and lists 0.5 % extra SKUs that the new version
   drops); links are put on five offers (one the new report removes, one that was removed and
   comes back). The *reference* integration imports the NEW report uninterrupted.
3. For every kill point: a fresh worker starts an import of the NEW report into the target;
   the campaign polls the run row and ``pg_stat_activity`` until the point is reached (the
   emulator is slowed where needed: createReport/getReport latency, a download throttle; the
   apply is held on a row lock to kill exactly inside "update changed offers" or "removal
   marking"), then SIGKILLs the worker and its work horse. Checks: offers and links are
   byte-identical to the earlier state, or -- only when the kill landed after the apply commit
   -- equal to the reference; the link count is unchanged; ``flask xsale-amazon recover``
   fails the run as ``worker_died`` within the heartbeat timeout; no staged rows are left.
   A post-commit point restores the earlier state (same ids) before the next point.
4. Optionally (``--restart-postgres``, needs root and ``pg_ctlcluster``): the whole PostgreSQL
   cluster is restarted while the worker parses; the run must end failed with the offers as
   before, or succeeded with the reference result. Do not use this while other suites share
   the cluster.
5. A final import with a fresh worker must converge to the reference: same offers
   (sku, asin, name, listing id, price, currency, quantity, channel, status, product id, open
   date), the removed set exactly the dropped SKUs, links intact, the staging table empty.

Prints one table row per point: point #, target stage, stage/progress actually hit (and the
SQL statement the worker was in), outcome, detection delay, checks. Exit status 1 if any check
failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.test_faults import (  # noqa: E402
    FaultLab,
    _assert_all_or_nothing,
    _fraction,
    _settle,
    default_points,
    final_convergence,
    format_table,
    run_point,
    wait_until,
)
from xsale_amazon_plugin.emulator.server import SpApiEmulator  # noqa: E402


def restart_postgres() -> str:
    listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True,
                             check=True, timeout=30).stdout.split("\n")[0].split()
    version, name = listing[0], listing[1]
    subprocess.run(["pg_ctlcluster", version, name, "restart"], check=True, timeout=120)
    return f"{version}/{name}"


def restart_scenario(lab: FaultLab) -> str:
    """Restart the PostgreSQL cluster while the worker parses; check all-or-nothing."""
    lab.kill_workers()
    lab.emulator.configure()
    lab.spawn_worker()
    run_id = lab.start_import(lab.target_id)
    ready = _fraction(0.5)
    wait_until(lambda: ready(lab, lab.run(run_id), []), timeout=180, interval=0.02,
               what="parsing 50 %")
    cluster = restart_postgres()
    lab.engine.dispose()
    lab.admin.dispose()

    def db_up() -> bool:
        try:
            lab.run(run_id)
            return True
        except Exception:
            return False

    wait_until(db_up, timeout=120, interval=0.5, what="PostgreSQL back")
    run = _settle(lab, run_id, timeout=120)
    outcome = _assert_all_or_nothing(lab, run)
    if run["status"] == "succeeded":
        lab.restore_earlier()
    return f"cluster {cluster} restarted while parsing: {outcome} ({run['error_message']})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10, help="kill points (>= 10 covers "
                        "every stage; more adds random parsing/downloading points)")
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the report")
    parser.add_argument("--seed", type=int, default=7, help="seed of the random points")
    parser.add_argument("--heartbeat-timeout", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--backend", choices=("postgresql", "mariadb"), default="postgresql")
    parser.add_argument("--restart-postgres", action="store_true",
                        help="also restart the whole PostgreSQL cluster mid-import")
    args = parser.parse_args()

    started = time.monotonic()
    emulator = SpApiEmulator().start()
    lab = FaultLab(emulator, rows=args.rows, heartbeat_timeout=args.heartbeat_timeout,
                   batch_size=args.batch_size, backend=args.backend)
    failed = False
    try:
        lab.open()
        print(f"setup: {args.rows} rows, schema {lab.schema}; importing the earlier state and "
              "the reference ...", flush=True)
        lab.prepare()
        print(f"setup done in {time.monotonic() - started:.0f}s", flush=True)
        results = []
        for number, point in enumerate(default_points(args.points, args.seed), 1):
            result = run_point(lab, number, point)
            results.append(result)
            print(f"  point {number}: {point.name}: {result.outcome} "
                  f"{'ok' if result.ok else 'FAILED ' + ', '.join(result.checks)}", flush=True)
        print()
        print(format_table(results))
        failed = not all(r.ok for r in results)
        if args.restart_postgres:
            print()
            print(restart_scenario(lab))
        problems = final_convergence(lab)
        print()
        print("final run with a fresh worker: " + ("converged to the reference" if not problems
                                                   else "PROBLEMS: " + "; ".join(problems)))
        failed = failed or bool(problems)
        stages = sorted({r.hit for r in results})
        print(f"{len(results)} points, stages hit: {', '.join(stages)}; "
              f"{sum(r.ok for r in results)}/{len(results)} ok; "
              f"total {time.monotonic() - started:.0f}s")
    finally:
        lab.close()
        emulator.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
