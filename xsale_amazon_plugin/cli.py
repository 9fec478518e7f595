"""``flask xsale-amazon ...`` commands."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup
from rq import SimpleWorker, Worker
from rq.scheduler import RQScheduler

from .importing.lifecycle import (
    CancelRefused,
    HoldNotPending,
    ImportAlreadyRunning,
    ImportRefused,
    active_run,
    cancel_import,
    confirm_run,
    discard_run,
    recover_stale_runs,
    start_import,
)
from .importing.progress import run_progress
from .linking.links import autolink
from .models import ReportMode
from .proxies import current_amazon
from .scheduling.freshness import last_successes
from .scheduling.service import plugin_timezone, schedule_status, set_schedule
from .scheduling.slots import InvalidSchedule
from .suggest import service as suggestions
from .worker import make_worker

cli = AppGroup("xsale-amazon", help="Amazon offers import (xsale_amazon_plugin).")


#: Exit status of ``import --wait`` when the run is held for confirmation.
EXIT_HELD = 3


@cli.command("import")
@click.argument("integration_id", type=int)
@click.option("--wait", is_flag=True,
              help="Show progress until the run ends; exit 1 if it failed, 3 if it is held "
                   "for confirmation.")
@click.option("--timeout", type=float, default=24 * 3600, show_default=True,
              help="With --wait or --inline: give up waiting after this many seconds.")
@click.option("--allow-removal", is_flag=True,
              help="Apply the report even if it removes more offers than "
                   "XSALE_AMAZON_REMOVAL_GUARD allows (confirm up front).")
@click.option("--inline", is_flag=True,
              help="Run the import in this process instead of a worker (implies --wait; a run "
                   "still active at --timeout is cancelled).")
@click.option("--fresh", is_flag=True, help="Always request a fresh report from Amazon.")
@click.option("--queue-only", is_flag=True,
              help="Enqueue even if no worker listens right now (one started later runs it).")
def import_command(integration_id: int, wait: bool, timeout: float, allow_removal: bool,
                   inline: bool, fresh: bool, queue_only: bool) -> None:
    """Start importing the offers of INTEGRATION_ID.

    The import runs on a worker ('flask xsale-amazon worker'); without one listening on the
    queue the command refuses (it never leaves a run nobody runs) unless --inline runs it
    here.
    """
    running = active_run(integration_id)
    if running is not None:
        raise click.ClickException(
            f"An import of this integration is already running (run #{running.id}). Not "
            "starting another one."
        )
    queue = current_amazon.queue
    if not inline:
        in_memory = _in_memory_queue(queue)
        if in_memory or not queue_only:
            _require_worker(queue, in_memory)
    try:
        run = start_import(integration_id, trigger="cli", requested_by="cli",
                           allow_removal=allow_removal,
                           report_mode=ReportMode.FRESH if fresh else ReportMode.AUTO)
    except ImportAlreadyRunning as exc:
        raise click.ClickException(f"{exc} Not starting another one.") from None
    except (ImportRefused, LookupError) as exc:
        raise click.ClickException(str(exc)) from None
    if inline:
        click.echo(f"Import run #{run.id} of integration {integration_id} runs in this process.")
        sys.exit(_run_inline(run.id, timeout))
    click.echo(f"Import run #{run.id} queued for integration {integration_id}.")
    if wait:
        sys.exit(_wait(run.id, timeout))


WORKER_GRACE_SECONDS = 10.0


def _in_memory_queue(queue: Any) -> bool:
    """A fakeredis queue (the sample app without Redis) lives only in this process."""
    return type(queue.connection).__module__.startswith("fakeredis")


def _require_worker(queue: Any, in_memory: bool) -> None:
    """Refuse (ClickException) unless an RQ worker serves ``queue``; waits a few seconds for
    one that is starting at the same time."""
    deadline = time.monotonic() + (0 if in_memory else WORKER_GRACE_SECONDS)
    while True:
        listening = _workers_listening(queue)
        if listening is None or listening > 0:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if in_memory:
        raise click.ClickException(
            "This app's job queue is in memory (no XSALE_AMAZON_REDIS_URL), so no worker "
            "outside this process can run the import. Run it in this process with --inline, "
            "or set XSALE_AMAZON_REDIS_URL and start 'flask xsale-amazon worker'."
        )
    raise click.ClickException(
        f"No RQ worker is listening on queue {queue.name!r}, so nothing would run this import. "
        "Start one with 'flask xsale-amazon worker' (same Redis and queue), run the import in "
        "this process with --inline, or enqueue it for a worker started later with "
        "--queue-only."
    )


def _workers_listening(queue: Any) -> int | None:
    """How many RQ workers serve ``queue`` (None: Redis could not tell)."""
    try:
        return len(Worker.all(queue=queue))
    except Exception:  # Redis down: start_import reports it properly
        return None


def _run_inline(run_id: int, timeout: float) -> int:
    """Work the run's steps (and its scheduled polls) in this process until it ends."""
    queue = current_amazon.queue
    worker = SimpleWorker([queue], connection=queue.connection, job_class=queue.job_class)
    scheduler = RQScheduler([queue], connection=queue.connection, logging_level="WARNING")
    deadline = time.monotonic() + timeout
    session = current_amazon.db.session
    last = None
    while True:
        scheduler.acquire_locks()
        scheduler.enqueue_scheduled_jobs()
        scheduler.release_locks()
        worker.work(burst=True, logging_level="WARNING")
        # A new transaction per poll (see _wait): InnoDB's REPEATABLE READ snapshot would
        # otherwise show the run as it was before the worker ran its steps.
        session.rollback()
        run = session.get(current_amazon.models.ImportRun, run_id)
        last = _echo_progress(run, last)
        if not run.is_active:
            return _summary(run)
        if time.monotonic() > deadline:
            try:
                cancel_import(run_id, cancelled_by="cli")
            except CancelRefused:
                session.rollback()
                return _summary(session.get(current_amazon.models.ImportRun, run_id))
            click.echo("Timed out; the import was cancelled and nothing from it was applied.",
                       err=True)
            return 2
        time.sleep(0.5)


def _echo_progress(run: Any, last: str | None) -> str:
    info = run_progress(run)
    line = f"[{info['status_label']}] {info['stage_label']}"
    if info["rows_total"]:
        line += f" {info['rows_done']}/{info['rows_total']} ({info['percent']}%)"
    elif info["rows_done"]:
        line += f" {info['rows_done']} rows"
    if line != last:
        click.echo(line)
    return line


def _summary(run: Any) -> int:
    info = run_progress(run)
    counts = info["counts"]
    click.echo(
        "created {created}, updated {updated}, unchanged {unchanged}, removed {removed}, "
        "skipped {skipped}, invalid {invalid} (kept {kept}), duplicate {duplicate}"
        .format(**counts)
    )
    if info["status"] == "failed":
        click.echo(f"Import failed: {info['error']}", err=True)
        return 1
    if info["status"] == "held":
        click.echo(
            f"Import held for confirmation: {info['error']} Confirm it on the run page or with "
            f"'flask xsale-amazon confirm {run.id}', discard it with 'flask xsale-amazon "
            f"discard {run.id}', or import again with --allow-removal.", err=True)
        return EXIT_HELD
    if info["error"]:
        click.echo(info["error"])
    return 0


@cli.command("cancel")
@click.argument("run_id", type=int)
def cancel_command(run_id: int) -> None:
    """Cancel import run RUN_ID (nothing from it is applied)."""
    try:
        cancel_import(run_id, cancelled_by="cli")
    except (CancelRefused, LookupError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Import run #{run_id} cancelled; nothing from it was applied.")


def _wait(run_id: int, timeout: float) -> int:
    session = current_amazon.db.session
    deadline = time.monotonic() + timeout
    no_worker_check_at = time.monotonic() + 5  # a worker started with the command may lag
    warned_no_worker = False
    last = None
    while True:
        # A new transaction per poll: on InnoDB (REPEATABLE READ) one transaction would keep
        # reading the snapshot of its first poll and never see the worker's progress.
        session.rollback()
        run = session.get(current_amazon.models.ImportRun, run_id)
        last = _echo_progress(run, last)
        if not run.is_active:
            break
        if time.monotonic() > deadline:
            click.echo("Timed out waiting; the import goes on in the background.", err=True)
            return 2
        # Runs whose worker died are ended by the workers' maintenance; without any worker
        # nothing would ever end (or advance) this one, so say so once.
        if not warned_no_worker and time.monotonic() > no_worker_check_at:
            no_worker_check_at = time.monotonic() + 30
            queue = current_amazon.queue
            if _workers_listening(queue) == 0:
                click.echo(f"No worker is listening on queue {queue.name!r}: start "
                           "`flask xsale-amazon worker`.", err=True)
                warned_no_worker = True
        time.sleep(1.0)
    return _summary(run)


@cli.command("confirm")
@click.argument("run_id", type=int)
@click.option("--wait", is_flag=True, help="Show progress until the apply ends.")
@click.option("--timeout", type=float, default=24 * 3600, show_default=True,
              help="With --wait: give up waiting after this many seconds.")
def confirm_command(run_id: int, wait: bool, timeout: float) -> None:
    """Apply the report of RUN_ID, held because it removes many offers, exactly as staged."""
    try:
        confirm_run(run_id, "cli")
    except HoldNotPending:
        raise click.ClickException(
            f"Import run #{run_id} is not waiting for confirmation.") from None
    except ImportRefused as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Import run #{run_id} confirmed; its report is being applied.")
    if wait:
        sys.exit(_wait(run_id, timeout))


@cli.command("discard")
@click.argument("run_id", type=int)
def discard_command(run_id: int) -> None:
    """Discard the report of RUN_ID, held for confirmation, without changing any offer."""
    if not discard_run(run_id, "cli"):
        raise click.ClickException(f"Import run #{run_id} is not waiting for confirmation.")
    click.echo(f"Import run #{run_id} discarded; no offer was changed.")


@cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--simple", is_flag=True, help="Run jobs in this process (no fork).")
def worker_command(burst: bool, simple: bool) -> None:
    """Run an RQ worker (with the scheduler) for the import queue, bound to this app.

    Besides running import steps it takes over RQ's scheduler from a dead worker and ends
    imports whose worker died (see xsale_amazon_plugin.worker)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    worker = make_worker(app, simple=simple)
    worker.work(burst=burst, with_scheduler=True, logging_level="INFO")


@cli.command("autolink")
@click.argument("integration_id", type=int)
@click.option("--by", "key", type=click.Choice(["sku", "ean", "asin"]), required=True)
def autolink_command(integration_id: int, key: str) -> None:
    """Link the unlinked offers of INTEGRATION_ID to products with the same SKU, EAN or ASIN."""
    try:
        result = autolink(key, integration_id=integration_id, user="cli")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"checked {result.total}: linked {result.linked}, ambiguous {result.ambiguous}, "
        f"no match {result.no_match}, no {key.upper()} to compare {result.no_key}, "
        f"already linked {result.already_linked}"
    )
    if result.ambiguous_examples:
        click.echo("ambiguous SKUs: " + ", ".join(result.ambiguous_examples))


@cli.command("rotate-key")
def rotate_key_command() -> None:
    """Re-encrypt stored credentials with the first XSALE_AMAZON_ENCRYPTION_KEY."""
    m = current_amazon.models
    session = current_amazon.db.session
    count = 0
    for integ in session.query(m.AmazonIntegration).all():
        for attr in ("lwa_client_secret_ciphertext", "refresh_token_ciphertext"):
            token = getattr(integ, attr)
            if token:
                setattr(integ, attr, current_amazon.secret_box.rotate(token))
                count += 1
    session.commit()
    click.echo(f"Re-encrypted {count} secrets.")


@cli.command("recover")
def recover_command() -> None:
    """Mark imports whose worker died as failed, so they can be started again."""
    click.echo(f"Marked {recover_stale_runs()} stale runs as failed.")


@cli.command("suggest")
@click.argument("integration_id", type=int)
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per unlinked live offer with its suggestions.")
@click.option("--limit", type=click.IntRange(1, 100), default=5, show_default=True,
              help="With --json: suggestions per offer.")
@click.option("--accept", type=click.Choice(["high"]),
              help="Link every offer whose best suggestion has this confidence.")
@click.option("--force", is_flag=True, help="Recompute suggestions even when they are fresh.")
def suggest_command(integration_id: int, as_json: bool, limit: int, accept: str | None,
                    force: bool) -> None:
    """Mapping assistant: compute (what is missing or stale) and print or accept suggestions
    for the unlinked live offers of INTEGRATION_ID. Needs no worker."""
    state = current_amazon
    if state.db.session.get(state.models.AmazonIntegration, integration_id) is None:
        raise click.ClickException(f"Amazon integration {integration_id} does not exist.")
    result = suggestions.compute_for_integration(integration_id, force=force)
    if accept == "high":
        linked = suggestions.accept_high(integration_id, user="cli")
        click.echo(f"linked {linked}")
        return
    if not as_json:
        counts: dict[str, int] = {}
        for row, found in suggestions.stored_for_integration(integration_id, limit=1):
            # "no match" offers are out of the queue and of --accept high: counted apart
            band = ("no match" if row.decision == "no_match"
                    else found[0]["confidence"] if found else "none")
            counts[band] = counts.get(band, 0) + 1
        click.echo(
            f"unlinked offers {result.offers} (computed now {result.computed}): "
            + ", ".join(f"{band} {counts.get(band, 0)}"
                        for band in ("high", "medium", "low", "none", "no match"))
        )
        return
    for row, found in suggestions.stored_for_integration(
            integration_id, limit=min(limit, suggestions.STORED_SUGGESTIONS)):
        if limit > suggestions.STORED_SUGGESTIONS:
            found = suggestions.suggestions_for_offer(row.id, limit=limit)
        click.echo(json.dumps({
            "offer_id": row.id,
            "seller_sku": row.seller_sku,
            "suggestions": [
                {"product_id": s["product_key"], "score": round(float(s["score"]), 4),
                 "confidence": s["confidence"],
                 "reasons": [suggestions.reason_text(r) for r in s["reasons"]]}
                for s in found
            ],
        }, ensure_ascii=False))


@cli.command("drop-triggers")
def drop_triggers_command() -> None:
    """Mapping assistant: drop the triggers it added to the host's product table. Run it
    before dropping the plugin's tables (the triggers write to one of them) or after setting
    XSALE_AMAZON_SUGGEST_TRIGGERS = False."""
    names = suggestions.drop_triggers()
    table = current_amazon.models.product_pk.table.name
    if names:
        click.echo(f"Dropped {len(names)} trigger(s) from {table}: {', '.join(names)}")
    else:
        click.echo(f"No trigger of the plugin on {table}.")
    if current_amazon.settings.suggest_triggers:
        click.echo("XSALE_AMAZON_SUGGEST_TRIGGERS is on: the mapping assistant creates them "
                   "again on its next use. Set it to False to keep them off.")


@cli.command("schedule")
@click.argument("integration_id", type=int, required=False)
@click.option("--every", "every", type=int, metavar="MINUTES",
              help="Import every MINUTES minutes.")
@click.option("--daily", "daily", metavar="HH:MM",
              help="Import every day at HH:MM (XSALE_AMAZON_TIMEZONE).")
@click.option("--off", "off", is_flag=True, help="No scheduled imports.")
@click.option("--list", "list_", is_flag=True,
              help="One line per integration: id, schedule, next run, last success.")
def schedule_command(integration_id: int | None, every: int | None, daily: str | None,
                     off: bool, list_: bool) -> None:
    """Set the import schedule of INTEGRATION_ID, or list every integration's schedule."""
    if list_:
        if integration_id is not None or every is not None or daily or off:
            raise click.UsageError("--list takes no integration and no other option.")
        for _id, line in _schedule_lines():
            click.echo(line)
        return
    chosen = [name for name, given in (("--every", every is not None), ("--daily", daily),
                                       ("--off", off)) if given]
    if integration_id is None or len(chosen) != 1:
        raise click.UsageError(
            "Give INTEGRATION_ID and exactly one of --every MINUTES, --daily HH:MM, --off "
            "(or --list)."
        )
    kind = "every" if every is not None else "daily" if daily else "off"
    try:
        set_schedule(integration_id, kind, every_minutes=every, daily_at=daily, user="cli")
    except (InvalidSchedule, LookupError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(next(line for i, line in _schedule_lines() if i == integration_id))


def _schedule_lines() -> list[tuple[int, str]]:
    """``id<TAB>schedule<TAB>next run<TAB>last success`` per integration; times ISO 8601 in
    the plugin's time zone, "-" for no next run, "never" for no successful import."""
    m, session = current_amazon.models, current_amazon.db.session
    tz = plugin_timezone()
    integrations = session.execute(
        sa.select(m.AmazonIntegration).order_by(m.AmazonIntegration.id)).scalars().all()
    schedules = {s.integration_id: s for s in session.execute(sa.select(m.SyncSchedule)).scalars()}
    successes = last_successes()
    lines = []
    for integ in integrations:
        status = schedule_status(schedules.get(integ.id), active=integ.active, tz=tz)
        if status.paused_at:
            next_run = "paused"
        elif status.is_on and not integ.active:
            next_run = "inactive"
        elif status.next_run_at:
            next_run = status.next_run_at.astimezone(tz).isoformat(timespec="seconds")
        else:
            next_run = "-"
        last = successes.get(integ.id)
        last_text = last.astimezone(tz).isoformat(timespec="seconds") if last else "never"
        lines.append((integ.id, "\t".join((str(integ.id), status.describe, next_run, last_text))))
    return lines
