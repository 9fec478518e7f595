"""A large refresh of the product index never runs inside a web request.

A request (link dialog, Suggestions view) that finds the index stale refreshes it itself only
up to ``SUGGEST_INLINE_REFRESH_LIMIT`` products; beyond that it enqueues the catalogue check
job once, answers at once with "being rebuilt" and no suggestion from the stale index, and a
real RQ worker (forking, real Redis) rebuilds it; then the suggestions appear. The CLI keeps
refreshing inline, also without any job queue. Every database backend (the index's staleness
check differs: change trigger on PostgreSQL, fingerprint elsewhere).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from rq import Worker

from xsale_amazon_plugin.settings import SettingsError

from .hostapp import make_host
from .test_linking import add_offers
from .test_suggest import PRODUCTS

#: The test's inline limit: the shop below has more products than this.
LIMIT = 10
FILLERS = [{"sku": f"F-{i:03d}", "ean": None, "name": f"Gartenschlauch Halter {i} m"}
           for i in range(20)]
SUGGEST = "/admin/xsale-amazon/suggestions/"


@pytest.fixture
def big_shop(host: Any) -> dict[str, Any]:
    """An integration with two unlinked offers, 27 products, the index built (as the CLI or a
    worker would) and the stored suggestions computed."""
    from xsale_amazon_plugin.suggest.service import compute_for_integration

    host.configure(SUGGEST_INLINE_REFRESH_LIMIT=LIMIT)
    integ = host.add_integration("DE", "FBM")
    products = host.add_products(PRODUCTS + FILLERS)
    offers = add_offers(host, integ, [{"seller_sku": "TN-2010-FBA", "name": "Toner"},
                                      {"seller_sku": "X1", "name": "Czarny kubek 500 ml"}])
    with host.app.app_context():
        compute_for_integration(integ)
    return {"integration": integ, "products": products, "offers": offers,
            "count": len(PRODUCTS) + len(FILLERS)}


def _index(host: Any) -> tuple[int, str, int]:
    """(catalogue version, fingerprint, pending change-log rows) of the index."""
    from xsale_amazon_plugin.suggest.index import catalog_state, suggest_tables

    with host.app.app_context():
        conn = host.db.session.connection()
        tables = suggest_tables(host.models)
        state = catalog_state(conn, tables)
        assert state is not None
        changes = conn.execute(sa.select(sa.func.count()).select_from(tables.change)).scalar_one()
        return state.version, state.fingerprint, changes


def _bulk_change(host: Any) -> None:
    """What a host's bulk load looks like to the index: every product changed, plain SQL."""
    with host.app.app_context():
        product = host.Product.__table__
        host.db.session.execute(product.update().values(name=product.c.name + " (2026)"))
        host.db.session.commit()


def _embedded_queue(html: str) -> list[Any]:
    return json.loads(html.split('id="xa-suggest-data">')[1].split("</script>")[0])


def test_large_refresh_goes_to_one_job_and_suggestions_appear_after_it(
        host: Any, big_shop: dict[str, Any]) -> None:
    from xsale_amazon_plugin.suggest.auto_refresh import CHECK_FUNC, periodic_check

    tn_offer = big_shop["offers"][0]
    before = _index(host)
    _bulk_change(host)
    client = host.app.test_client()

    dialog = client.get(f"/xsale-amazon/offers/{tn_offer}/suggestions.json")
    assert dialog.status_code == 202
    body = dialog.get_json()
    assert body["suggestions"] == []
    notice = body["rebuilding"]
    assert notice["message"] == (
        f"The product index is being rebuilt (about {big_shop['count']} products); suggestions "
        "will appear when it is done — usually a few minutes.")
    assert notice["products"] == big_shop["count"]
    assert notice["job"]["status"] == "queued"
    assert notice["job"]["label"] == "Waiting for a free worker…"
    # The request refreshed nothing (and consumed no change-log row).
    after = _index(host)
    assert after[:2] == before[:2]
    if host.app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        assert after[2] > 0  # the trigger's log, left for the job

    queue = host.state.queue
    [job_id] = queue.job_ids
    assert queue.fetch_job(job_id).func_name == CHECK_FUNC
    assert notice["status_url"].endswith(f"/xsale-amazon/suggest-index/rebuild/{job_id}.json")

    # Every other web path says the same, shows nothing from the stale index, starts nothing.
    page = client.get(SUGGEST)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f"The product index is being rebuilt (about {big_shop['count']} products)" in html
    assert _embedded_queue(html) == [] and 'id="xa-suggest-card"' not in html
    assert f"/xsale-amazon/suggest-index/rebuild/{job_id}.json" in html
    more = client.get(SUGGEST + "queue.json").get_json()
    assert more["items"] == [] and more["rebuilding"]["job"]["status"] == "queued"
    high = client.get(SUGGEST + "accept-high/", follow_redirects=True)
    assert 'id="xa-suggest-rebuild"' in high.get_data(as_text=True)  # back on the view
    again = client.get(f"/xsale-amazon/offers/{tn_offer}/suggestions.json").get_json()
    assert again["rebuilding"]["status_url"] == notice["status_url"]
    with host.app.app_context():
        host.configure(SUGGEST_REFRESH_INTERVAL=60)
        assert periodic_check() is None  # the workers' check sees the same job active
    assert queue.job_ids == [job_id]

    status = client.get(notice["status_url"]).get_json()
    assert (status["active"], status["done"]) == (True, 0)

    # A real (forking) worker runs the job.
    Worker([queue], connection=queue.connection, job_class=queue.job_class).work(
        burst=True, logging_level="WARNING")
    status = client.get(notice["status_url"]).get_json()
    assert status["status"] == "finished" and not status["active"]
    assert status["done"] == status["total"] == big_shop["count"]
    assert status["label"] == f"Products checked: {big_shop['count']} of {big_shop['count']}"
    assert _index(host)[0] > before[0]

    fresh = client.get(f"/xsale-amazon/offers/{tn_offer}/suggestions.json")
    assert fresh.status_code == 200
    top = fresh.get_json()["suggestions"][0]
    assert top["product_id"] == str(big_shop["products"][1])
    assert top["title"].endswith("(2026)")  # computed on the rebuilt index
    page = client.get(SUGGEST).get_data(as_text=True)
    assert "being rebuilt" not in page and 'id="xa-suggest-card"' in page
    assert any(item["offer_id"] == tn_offer for item in _embedded_queue(page))
    assert client.get("/xsale-amazon/suggest-index/rebuild/not-a-job.json").status_code == 404


def test_a_rebuild_an_operator_waits_for_goes_ahead_of_waiting_jobs(
        host: Any, big_shop: dict[str, Any]) -> None:
    """Import steps may wait in the queue for hours of work; the rebuild the link dialog
    started is queued before them, the workers' periodic check (nobody waits) behind."""
    from xsale_amazon_plugin.suggest.catalogue_check import enqueue_check

    queue = host.state.queue
    waiting = queue.enqueue("xsale_amazon_plugin.importing.step_job.import_step", 0,
                            job_id=f"xa-test-waiting-{queue.name}")
    _bulk_change(host)
    dialog = host.app.test_client().get(
        f"/xsale-amazon/offers/{big_shop['offers'][0]}/suggestions.json")
    assert dialog.status_code == 202
    rebuild = dialog.get_json()["rebuilding"]["status_url"].rsplit("/", 1)[1][:-len(".json")]
    assert queue.job_ids == [rebuild, waiting.id]
    with host.app.app_context():
        periodic = enqueue_check()
    assert queue.job_ids == [rebuild, waiting.id, periodic]
    queue.empty()


def test_small_refresh_still_runs_inside_the_request(host: Any, big_shop: dict[str, Any]) -> None:
    host.configure(SUGGEST_INLINE_REFRESH_LIMIT=100)
    before = _index(host)
    p = big_shop["products"]
    with host.app.app_context():
        host.db.session.execute(sa.text("UPDATE product SET sku = 'OLD-TN' WHERE id = :id"),
                                {"id": p[1]})
        host.db.session.execute(sa.text(
            "INSERT INTO product (sku, ean, name) VALUES ('TN2010', NULL, 'Toner TN2010 new')"))
        host.db.session.commit()
        new_id = host.db.session.execute(
            sa.text("SELECT id FROM product WHERE sku = 'TN2010'")).scalar_one()
    answer = host.app.test_client().get(
        f"/xsale-amazon/offers/{big_shop['offers'][0]}/suggestions.json")
    assert answer.status_code == 200 and "rebuilding" not in answer.get_json()
    assert answer.get_json()["suggestions"][0]["product_id"] == str(new_id)
    assert _index(host)[0] == before[0] + 1
    assert host.state.queue.count == 0


def test_without_a_job_queue_the_request_says_how_and_the_cli_rebuilds(
        host: Any, big_shop: dict[str, Any]) -> None:
    from redis import Redis

    host.state._redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    host.state._queue = None
    _bulk_change(host)
    client = host.app.test_client()
    url = f"/xsale-amazon/offers/{big_shop['offers'][0]}/suggestions.json"
    answer = client.get(url)
    assert answer.status_code == 202
    notice = answer.get_json()["rebuilding"]
    assert notice["job"] is None and notice["status_url"] is None
    assert "job queue is not reachable" in notice["message"]
    assert "flask xsale-amazon suggest INTEGRATION_ID" in notice["message"]
    page = client.get(SUGGEST).get_data(as_text=True)
    assert "job queue is not reachable" in page and _embedded_queue(page) == []

    result = host.app.test_cli_runner().invoke(
        args=["xsale-amazon", "suggest", str(big_shop["integration"])])
    assert result.exit_code == 0, result.output
    answer = client.get(url)
    assert answer.status_code == 200
    assert answer.get_json()["suggestions"][0]["title"].endswith("(2026)")


def test_refresh_bound_reads_at_most_limit_rows_and_counts_the_index(
        host: Any, big_shop: dict[str, Any]) -> None:
    from xsale_amazon_plugin.suggest.index import refresh_bound, suggest_tables
    from xsale_amazon_plugin.suggest.service import _context

    n = big_shop["count"]
    with host.app.app_context():
        ctx = _context()
        conn = host.db.session.connection()
        assert refresh_bound(conn, ctx.tables, ctx.cols, 5) == n  # the index holds n
        assert refresh_bound(conn, ctx.tables, ctx.cols, 1000) == n
        conn.execute(sa.text("DELETE FROM xsale_amazon_suggest_catalog"))
        assert refresh_bound(conn, ctx.tables, ctx.cols, 5) == 6  # "more than 5"
        host.db.session.rollback()
        # Most products deleted: the refresh still walks the index's n products.
        conn = host.db.session.connection()
        conn.execute(sa.text("DELETE FROM product WHERE sku LIKE 'F-%'"))
        assert refresh_bound(conn, suggest_tables(host.models), ctx.cols, 1000) == n
        host.db.session.rollback()


def test_inline_refresh_limit_is_validated(tmp_path: Any) -> None:
    with pytest.raises(SettingsError,
                       match="XSALE_AMAZON_SUGGEST_INLINE_REFRESH_LIMIT must be a number of 0"):
        make_host(f"sqlite:///{tmp_path}/h.sqlite",
                  config={"XSALE_AMAZON_SUGGEST_INLINE_REFRESH_LIMIT": -1})
    host = make_host(f"sqlite:///{tmp_path}/ok.sqlite",
                     config={"XSALE_AMAZON_SUGGEST_INLINE_REFRESH_LIMIT": "0"})
    assert host.amazon.settings.suggest_inline_refresh_limit == 0


def test_a_change_made_before_the_triggers_existed_is_still_indexed(
        host: Any, big_shop: dict[str, Any]) -> None:
    """The check that creates the change triggers cannot trust their (empty) log: the refresh
    right after it compares the fingerprint (it must not check again and find them "watched")."""
    from xsale_amazon_plugin.suggest.service import _context, refresh_index
    from xsale_amazon_plugin.suggest.triggers import watch_spec

    with host.app.app_context():  # the index was built with triggers: drop them
        conn = host.db.session.connection()
        names = watch_spec(host.Product.__table__, _context().cols.values).names(conn)
        on = " ON product" if conn.dialect.name == "postgresql" else ""
        for name in names:
            conn.execute(sa.text(f"DROP TRIGGER {name}{on}"))
        host.db.session.commit()
    before = _index(host)[0]
    p = big_shop["products"]
    with host.app.app_context():
        host.db.session.execute(sa.text("UPDATE product SET name = 'Brother TN-2010 toner, "
                                        "black, 1000 pages' WHERE id = :id"), {"id": p[1]})
        host.db.session.commit()
        result = refresh_index()  # creates the triggers again, then refreshes
        assert result.indexed == 1 and result.version == before + 1
        assert refresh_index().checked_only
