"""Suggestions stay fresh by themselves: after an import (a real worker process runs the import
and then the suggestion job) and after the product catalogue changed with plain SQL (the
workers' periodic check)."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
import sqlalchemy as sa
from rq import Queue
from rq.registry import StartedJobRegistry

from xsale_amazon_plugin.settings import SettingsError
from xsale_amazon_plugin.suggest.auto_refresh import (
    CHECK_FUNC,
    TASK_NAME,
    after_import,
    check_catalog,
    periodic_check,
)
from xsale_amazon_plugin.worker import registered_tasks

from .conftest import server_database
from .hostapp import make_host
from .polling import wait_until
from .processes import FLASK, ROOT, cli_environment, flask, kill_tree
from .test_linking import add_offers
from .test_suggest import PRODUCTS

# -- 1. after an import: a real worker process, the emulator over HTTP, PostgreSQL ------------

@pytest.mark.parametrize("after_import_on", [True, False], ids=["default", "disabled"])
def test_worker_computes_suggestions_after_an_import_without_any_operator(
        emulator: Any, redis_conn: Any, after_import_on: bool) -> None:
    with server_database("postgresql") as url:
        for env in cli_environment(url, emulator):
            env["XSALE_AMAZON_SUGGEST_AFTER_IMPORT"] = "true" if after_import_on else "false"
            env["XSALE_AMAZON_SUGGEST_REFRESH_INTERVAL"] = "0"  # only the import may start it
            _import_then_check(env, url, redis_conn, after_import_on)


def _import_then_check(env: dict[str, str], url: str, redis_conn: Any, on: bool) -> None:
    queue_name = env["XSALE_AMAZON_QUEUE"].strip('"')
    worker = subprocess.Popen([*FLASK, "xsale-amazon", "worker"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    engine = sa.create_engine(url)
    try:
        done = flask(env, "xsale-amazon", "import", "1", "--wait", "--timeout", "120",
                     timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr

        def stored() -> tuple[int, int, int]:
            with engine.connect() as conn:
                unlinked = conn.execute(sa.text(
                    "SELECT count(*) FROM xsale_amazon_offer o WHERE o.integration_id = 1 "
                    "AND o.removed_at IS NULL AND NOT EXISTS (SELECT 1 FROM "
                    "xsale_amazon_offer_product_link l WHERE l.offer_id = o.id)")).scalar_one()
                fresh = conn.execute(sa.text(
                    "SELECT count(*), count(*) FILTER (WHERE s.best_confidence = 'high') "
                    "FROM xsale_amazon_suggestion s JOIN xsale_amazon_suggest_catalog c "
                    "ON c.id = 1 AND s.catalog_version = c.version")).one()
                return unlinked, fresh[0], fresh[1]

        if on:
            unlinked, computed, high = wait_until(
                 lambda: (s := stored())[0] and s[0] == s[1] and s,
                 timeout=300, what="stored suggestions for every new offer")
            assert unlinked >= 40  # the demo report: every DEFAULT (FBM) row is a new offer
            assert high >= 30  # the seeded products share the offers' SKUs
            return
        queue = Queue(queue_name, connection=redis_conn)
        wait_until(lambda: len(queue) == 0
                   and StartedJobRegistry(queue_name, connection=redis_conn).count == 0,
                   timeout=300, what="the worker to be idle")
        time.sleep(1.0)
        unlinked, computed, _high = stored()
        assert unlinked >= 40 and computed == 0
        assert redis_conn.get(f"xsale_amazon:suggest_job:{queue_name}:1") is None
    finally:
        engine.dispose()
        if worker.poll() is None:
            kill_tree(worker.pid)
            worker.wait(timeout=10)


def test_a_failing_enqueue_never_fails_the_import(host: Any) -> None:
    """The receiver swallows a dead Redis; only succeeded runs that changed offers count."""
    from types import SimpleNamespace

    integ = host.add_integration()
    run = SimpleNamespace(id=1, status="succeeded", integration_id=integ)
    unchanged = {"created": 0, "updated": 0, "restored": 0, "unchanged": 5}
    with host.app.app_context():
        assert after_import(host.app, run=run, integration=None, counts=unchanged) is None
        failed = SimpleNamespace(id=2, status="failed", integration_id=integ)
        assert after_import(host.app, run=failed, integration=None,
                            counts={"created": 3}) is None
        job_id = after_import(host.app, run=run, integration=None, counts={"restored": 1})
        assert job_id and host.state.queue.fetch_job(job_id) is not None
        host.state.queue.empty()
        host.configure(SUGGEST_AFTER_IMPORT=False)
        host.state.queue.connection.delete(
            f"xsale_amazon:suggest_job:{host.state.queue.name}:{integ}")
        assert after_import(host.app, run=run, integration=None, counts={"created": 3}) is None
        assert host.state.queue.count == 0
        host.configure(SUGGEST_AFTER_IMPORT=True)
        from redis import Redis

        host.state._redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        host.state._queue = None
        assert after_import(host.app, run=run, integration=None, counts={"created": 3}) is None


# -- 2. the periodic catalogue check ------------------------------------------------------

def _queued(host: Any) -> list[str]:
    return [job.func_name for job in host.state.queue.get_jobs()]


def test_periodic_check_enqueues_after_a_plain_sql_update_only(host: Any) -> None:
    from rq import SimpleWorker

    from xsale_amazon_plugin.linking.links import link_offers
    from xsale_amazon_plugin.suggest.service import queue_summary

    assert TASK_NAME in {t.name for t in registered_tasks()}  # init_app registered it
    integ = host.add_integration("DE", "FBM")
    all_linked = host.add_integration("DE", "FBA")
    inactive = host.add_integration("FR", "FBM", active=False)
    products = host.add_products(PRODUCTS)
    add_offers(host, integ, [{"seller_sku": "TN-2010-FBA", "name": "Toner"},
                             {"seller_sku": "X2", "name": "Logitech K120 Tastatur"}])
    [linked] = add_offers(host, all_linked, [{"seller_sku": "L-1", "name": "Toner"}])
    add_offers(host, inactive, [{"seller_sku": "F-1", "name": "Toner"}])
    with host.app.test_request_context():
        link_offers([linked], products[1])
    suggest = "xsale_amazon_plugin.suggest.jobs.compute_suggestions"
    queue = host.state.queue
    with host.app.app_context():
        first = check_catalog()  # the first check of a queue only records the version
        assert first["previous"] is None and first["enqueued"] == {}
        again = check_catalog()
        assert again["previous"] == again["version"] == first["version"]
        assert again["enqueued"] == {} and _queued(host) == []  # nothing changed: no job

        host.db.session.execute(sa.text("UPDATE product SET name = :n WHERE id = :i"),
                                {"n": "Brother TN-2010 toner, black, 1000 pages", "i": products[1]})
        host.db.session.commit()
        changed = check_catalog()
        assert changed["version"] > changed["previous"]
        assert list(changed["enqueued"]) == [str(integ)]  # active, with unlinked offers
        assert _queued(host) == [suggest]
        SimpleWorker([queue], connection=queue.connection,
                     job_class=queue.job_class).work(burst=True, logging_level="WARNING")
        summary = queue_summary(integ)
        assert summary.unlinked == 2 and summary.stale == 0
        assert check_catalog()["enqueued"] == {}

        # The periodic task: one check per interval for the whole queue, never two queued.
        host.configure(SUGGEST_REFRESH_INTERVAL=60)
        job_id = periodic_check()
        assert job_id and _queued(host) == [CHECK_FUNC]
        assert periodic_check() is None  # another worker in the same interval
        queue.connection.delete(f"xsale_amazon:suggest_refresh:{queue.name}:tick")
        assert periodic_check() is None  # the previous check is still queued
        SimpleWorker([queue], connection=queue.connection,
                     job_class=queue.job_class).work(burst=True, logging_level="WARNING")
        assert _queued(host) == []
        assert queue.fetch_job(job_id).return_value()["enqueued"] == {}
        queue.connection.delete(f"xsale_amazon:suggest_refresh:{queue.name}:tick")
        assert periodic_check() is not None
        queue.empty()
        host.configure(SUGGEST_REFRESH_INTERVAL=0)
        queue.connection.delete(f"xsale_amazon:suggest_refresh:{queue.name}:tick")
        assert periodic_check() is None and _queued(host) == []


@pytest.mark.parametrize(("key", "value", "fragment"), [
    ("SUGGEST_REFRESH_INTERVAL", -1, "must be a number of 0 or more"),
    ("SUGGEST_AFTER_IMPORT", "maybe", "must be True or False"),
    ("SUGGEST_TRIGGERS", "maybe", "must be True or False"),
    ("SUGGEST_FINGERPRINT_MAX_AGE", -5, "must be a number of 0 or more"),
])
def test_refresh_settings_are_validated(tmp_path: Any, key: str, value: Any,
                                        fragment: str) -> None:
    with pytest.raises(SettingsError, match=f"XSALE_AMAZON_{key} {fragment}"):
        make_host(f"sqlite:///{tmp_path}/h.sqlite", config={f"XSALE_AMAZON_{key}": value})
    host = make_host(f"sqlite:///{tmp_path}/ok.sqlite", config={
        "XSALE_AMAZON_SUGGEST_AFTER_IMPORT": "false", "XSALE_AMAZON_SUGGEST_REFRESH_INTERVAL": "0"})
    assert host.amazon.settings.suggest_after_import is False
    assert host.amazon.settings.suggest_refresh_interval == 0


# -- time slices: a long computation never holds a worker away from imports ------------------

def _five_offers_in_batches_of_two(host: Any) -> tuple[int, Any, Any]:
    """An integration with five unlinked offers scored two per batch, its queue and a worker."""
    from rq import SimpleWorker

    host.configure(SUGGEST_BATCH_SIZE=2)
    integ = host.add_integration()
    host.add_products(PRODUCTS)
    add_offers(host, integ, [{"seller_sku": f"S-{i}", "name": f"Toner {i}"} for i in range(5)])
    queue = host.state.queue
    return integ, queue, SimpleWorker([queue], connection=queue.connection,
                                      job_class=queue.job_class)

def test_suggestion_job_runs_in_slices_behind_import_steps(host: Any, monkeypatch: Any) -> None:
    """Each slice computes for SLICE_SECONDS (here: one batch of 2 offers), then continues in a
    new job at the back of the queue: a job enqueued while it ran (an import step) runs first.
    The first job id reports the progress of the whole chain."""
    from xsale_amazon_plugin.suggest import jobs as suggest_job
    from xsale_amazon_plugin.suggest.service import queue_summary

    monkeypatch.setattr(suggest_job, "SLICE_SECONDS", 0.0)
    integ, queue, worker = _five_offers_in_batches_of_two(host)
    with host.app.app_context():
        first = suggest_job.enqueue(integ)
        # An import step enqueued while the first slice waits or runs.
        other = queue.enqueue(CHECK_FUNC, job_id=f"xa-test-step-{integ}-{queue.name}")
        worker.work(burst=True, max_jobs=1, logging_level="WARNING")
        state = suggest_job.job_state(first)
        assert state["active"] and (state["done"], state["total"]) == (2, 5)
        [continuation] = [j for j in queue.job_ids if j != other.id]
        assert queue.job_ids == [other.id, continuation]
        assert suggest_job.enqueue(integ) == continuation  # reused, not a second computation
        worker.work(burst=True, max_jobs=1, logging_level="WARNING")
        assert other.get_status(refresh=True) == "finished"  # the continuation waited
        assert queue.job_ids == [continuation]
        for _round in range(10):
            if not queue.count:
                break
            worker.work(burst=True, max_jobs=1, logging_level="WARNING")
        state = suggest_job.job_state(first)
        assert not state["active"] and state["status"] == "finished"
        assert (state["done"], state["total"]) == (5, 5)
        assert queue_summary(integ).stale == 0


def test_suggestion_job_gives_way_after_a_batch_when_an_import_step_waits(
        host: Any) -> None:
    """A slice stops after the batch during which another job was enqueued (instead of
    computing on for SLICE_SECONDS): an import step waits at most one batch."""
    from xsale_amazon_plugin.suggest import jobs as suggest_job

    integ, queue, worker = _five_offers_in_batches_of_two(host)
    with host.app.app_context():
        alone = suggest_job.enqueue(integ)
        worker.work(burst=True, max_jobs=1, logging_level="WARNING")
        # nothing else waiting: one slice does all five offers
        assert (suggest_job.job_state(alone) or {}).get("done") == 5
        assert queue.count == 0

        host.db.session.execute(sa.text("DELETE FROM xsale_amazon_suggestion"))
        host.db.session.commit()
        queue.connection.delete(f"xsale_amazon:suggest_job:{queue.name}:{integ}")
        first = suggest_job.enqueue(integ)
        other = queue.enqueue(CHECK_FUNC, job_id=f"xa-test-step-{integ}-{queue.name}")
        worker.work(burst=True, max_jobs=1, logging_level="WARNING")
        state = suggest_job.job_state(first)
        assert state is not None and state["active"] and state["done"] == 2
        assert queue.job_ids[0] == other.id and len(queue.job_ids) == 2
