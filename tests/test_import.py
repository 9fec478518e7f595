"""The import pipeline end to end: real python-amazon-sp-api client → local emulator over HTTP
→ RQ (real Redis) → parser → database. Both backends."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
from xsale_amazon_plugin.emulator.report_builder import (
    DEFAULT_ENCODING,
    demo_listings,
    encodable_text,
    render_report,
)

from .conftest import drain

CHARSET_NAMES = {"utf-8": "utf8", "cp1252": "Cp1252", "cp932": "Windows-31J"}


def publish(amazon: Any, marketplace: str, rows: list[dict], family: str = "eu_en", *,
            encoding: str | None = None, **kwargs: Any) -> None:
    encoding = encoding or DEFAULT_ENCODING[family]
    amazon.set_listings(get_marketplace(marketplace).marketplace_id,
                        render_report(rows, family, encoding=encoding),
                        charset=CHARSET_NAMES.get(encoding, encoding), **kwargs)


def run_import(host: Any, integration_id: int) -> Any:
    from xsale_amazon_plugin.importing.lifecycle import start_import

    with host.app.app_context():
        run_id = start_import(integration_id, trigger="test").id
    return drain(host, run_id)


def offers(host: Any, integration_id: int) -> dict[str, Any]:
    m = host.models
    with host.app.app_context():
        rows = host.db.session.execute(
            sa.select(m.AmazonOffer).where(m.AmazonOffer.integration_id == integration_id)
        ).scalars().all()
        for r in rows:
            host.db.session.expunge(r)
    return {r.seller_sku: r for r in rows}


def snapshot(host: Any) -> tuple[list, list]:
    m = host.models
    with host.app.app_context():
        conn = host.db.session.connection()
        o = conn.execute(sa.select(m.AmazonOffer.__table__).order_by("id")).all()
        links = conn.execute(sa.select(m.OfferProductLink.__table__).order_by("id")).all()
    return [tuple(r) for r in o], [tuple(r) for r in links]


def test_fbm_import_of_a_mixed_report(amazon_host, amazon):
    rows = list(demo_listings(120, seed=1, channel="mixed", marketplace="DE"))
    publish(amazon, "DE", rows, "eu_en", polls_until_done=3)
    integ = amazon_host.add_integration("DE", "FBM")
    run = run_import(amazon_host, integ)
    assert run.status == "succeeded", run.error_message
    fbm = [r for r in rows if r["fulfillment_channel"] == "DEFAULT"]
    stored = offers(amazon_host, integ)
    assert len(stored) == len(fbm) == run.count_created
    assert run.count_skipped_channel == len(rows) - len(fbm)
    assert run.count_read == len(rows)
    assert run.poll_count >= 3
    for row in fbm:
        offer = stored[row["seller_sku"]]
        assert offer.name == encodable_text(row["name"], "cp1252")
        assert offer.asin == row["asin"]
        assert offer.price == (row["price"] if row["price"] is None else Decimal(row["price"]))
        assert offer.currency == "EUR"
        assert offer.quantity == row["quantity"]
        assert offer.removed_at is None
    creates = [r for r in amazon.requests
               if r["operation"] == "createReport" and r["status"] == 202]
    assert len(creates) == 1
    body = creates[0]["json"]
    assert body["marketplaceIds"] == [get_marketplace("DE").marketplace_id]
    assert body["reportType"] == "GET_MERCHANT_LISTINGS_ALL_DATA"
    assert body["reportOptions"]["custom"] == "true"
    assert body["reportOptions"]["preferredReportDocumentLocale"] == "en_US"
    downloads = [r for r in amazon.requests if r["operation"] == "download"]
    assert downloads and all("x-amz-access-token" not in r["headers"] for r in downloads)


def test_fba_integration_keeps_only_amazon_fulfilled_rows(amazon_host, amazon):
    rows = list(demo_listings(80, seed=2, channel="mixed", marketplace="DE"))
    publish(amazon, "DE", rows)
    integ = amazon_host.add_integration("DE", "FBA")
    run = run_import(amazon_host, integ)
    assert run.status == "succeeded"
    fba = {r["seller_sku"] for r in rows if r["fulfillment_channel"].startswith("AMAZON")}
    stored = offers(amazon_host, integ)
    assert set(stored) == fba
    assert all(o.quantity is None for o in stored.values())


def test_reimport_updates_in_place_and_keeps_links(amazon_host, amazon):
    rows = list(demo_listings(40, seed=3, marketplace="DE"))
    publish(amazon, "DE", rows)
    integ = amazon_host.add_integration("DE", "FBM")
    assert run_import(amazon_host, integ).status == "succeeded"
    before = offers(amazon_host, integ)
    (pid,) = amazon_host.add_products([{"sku": "X", "name": "Linked product"}])
    sku = rows[0]["seller_sku"]
    from xsale_amazon_plugin.linking.links import link_offers

    with amazon_host.app.app_context():
        link_offers([before[sku].id], pid)
    rows[0] = dict(rows[0], price=Decimal("123.45"), name="Renamed offer")
    publish(amazon, "DE", rows)
    run = run_import(amazon_host, integ)
    assert run.status == "succeeded"
    assert (run.count_created, run.count_updated, run.count_unchanged) == (0, 1, len(rows) - 1)
    after = offers(amazon_host, integ)
    assert after[sku].id == before[sku].id
    assert after[sku].price == Decimal("123.45") and after[sku].name == "Renamed offer"
    unchanged = rows[1]["seller_sku"]
    assert after[unchanged].last_seen_at == before[unchanged].last_seen_at
    m = amazon_host.models
    with amazon_host.app.app_context():
        link = amazon_host.db.session.execute(sa.select(m.OfferProductLink)).scalar_one()
        assert link.offer_id == before[sku].id and link.product_id == pid


def test_removed_offers_are_soft_removed_and_come_back(amazon_host, amazon):
    rows = list(demo_listings(30, seed=4, marketplace="DE"))
    publish(amazon, "DE", rows)
    integ = amazon_host.add_integration("DE", "FBM")
    run_import(amazon_host, integ)
    gone = rows.pop(5)
    (pid,) = amazon_host.add_products([{"sku": gone["seller_sku"], "name": "P"}])
    from xsale_amazon_plugin.linking.links import link_offers

    with amazon_host.app.app_context():
        link_offers([offers(amazon_host, integ)[gone["seller_sku"]].id], pid)
    publish(amazon, "DE", rows)
    run = run_import(amazon_host, integ)
    assert run.count_removed == 1
    stored = offers(amazon_host, integ)
    assert stored[gone["seller_sku"]].removed_at is not None
    assert sum(o.removed_at is not None for o in stored.values()) == 1
    rows.append(gone)
    publish(amazon, "DE", rows)
    run = run_import(amazon_host, integ)
    assert run.count_restored == 1 and run.count_removed == 0
    stored = offers(amazon_host, integ)
    assert stored[gone["seller_sku"]].removed_at is None
    m = amazon_host.models
    with amazon_host.app.app_context():
        assert amazon_host.db.session.execute(
            sa.select(sa.func.count()).select_from(m.OfferProductLink)).scalar_one() == 1


def test_missing_asin_column_fails_and_touches_nothing(amazon_host, amazon):
    rows = list(demo_listings(25, seed=5, marketplace="FR"))
    publish(amazon, "FR", rows, "fr_asin")
    integ = amazon_host.add_integration("FR", "FBM")
    assert run_import(amazon_host, integ).status == "succeeded"
    (pid,) = amazon_host.add_products([{"sku": "P", "name": "P"}])
    from xsale_amazon_plugin.linking.links import link_offers

    with amazon_host.app.app_context():
        link_offers([o.id for o in offers(amazon_host, integ).values()][:3], pid)
    before = snapshot(amazon_host)
    publish(amazon, "FR", rows[:10], "fr")  # the default FR report: no ASIN column
    run = run_import(amazon_host, integ)
    assert run.status == "failed"
    assert run.error_code == "missing_asin_column"
    assert "Reports → Inventory Reports" in run.error_message
    assert "asin1" in run.error_message
    assert snapshot(amazon_host) == before


def test_cancelled_report_means_no_data_and_no_change(amazon_host, amazon):
    rows = list(demo_listings(10, seed=6, marketplace="DE"))
    publish(amazon, "DE", rows)
    integ = amazon_host.add_integration("DE", "FBM")
    run_import(amazon_host, integ)
    before = snapshot(amazon_host)
    publish(amazon, "DE", rows, final_status="CANCELLED")
    run = run_import(amazon_host, integ)
    assert run.status == "no_data" and run.error_code == "report_cancelled"
    assert snapshot(amazon_host) == before


def test_fatal_report_fails_with_amazons_explanation(amazon_host, amazon):
    publish(amazon, "DE", [], final_status="FATAL",
            fatal_document=b"The report could not be generated: internal data error 17.")
    integ = amazon_host.add_integration("DE", "FBM")
    run = run_import(amazon_host, integ)
    assert run.status == "failed" and run.error_code == "report_fatal"
    assert "internal data error 17" in run.error_message


def test_throttling_and_server_errors_are_retried(amazon_host, amazon):
    rows = list(demo_listings(15, seed=7, marketplace="DE"))
    publish(amazon, "DE", rows)
    amazon.inject("createReport", 429, 429)
    amazon.inject("getReport", 503, 500, 429)  # more than MAX_RETRIES=2: a step-level retry
    amazon.inject("getReportDocument", 429)
    integ = amazon_host.add_integration("DE", "FBM")
    run = run_import(amazon_host, integ)
    assert run.status == "succeeded", run.error_message
    assert run.count_created == len(rows)
    assert run.retries >= 1


def test_long_retry_after_reschedules_the_step_instead_of_sleeping(amazon_host, amazon):
    """Amazon asks for 90 s: the step is re-scheduled on RQ's scheduler, the worker is free."""
    from rq import SimpleWorker
    from rq.registry import ScheduledJobRegistry

    from xsale_amazon_plugin.importing.lifecycle import start_import
    from xsale_amazon_plugin.timeutil import as_utc, utcnow

    publish(amazon, "DE", list(demo_listings(5, seed=10, marketplace="DE")))
    amazon_host.configure(POLL_MAX_INTERVAL=120.0)
    amazon.inject("getReport", 429, retry_after=90)
    integ = amazon_host.add_integration("DE", "FBM")
    with amazon_host.app.app_context():
        run_id = start_import(integ, trigger="test").id
    queue = amazon_host.state.queue
    before = utcnow()
    SimpleWorker([queue], connection=queue.connection, job_class=queue.job_class).work(
        burst=True, logging_level="WARNING")
    after = utcnow()
    with amazon_host.app.app_context():
        run = amazon_host.db.session.get(amazon_host.models.ImportRun, run_id)
        assert (run.status, run.retries, run.poll_count) == ("waiting", 1, 0)
        # Ordered timestamps, not a stopwatch: the retry is due 90 s after the 429 came back,
        # and the worker was free again before then (it did not sleep through Retry-After).
        due = as_utc(run.next_poll_at)
        assert before + timedelta(seconds=89) <= due <= after + timedelta(seconds=91)
        assert after < due, "the worker slept through Amazon's Retry-After"
        scheduled = ScheduledJobRegistry(queue=queue)
        assert scheduled.get_job_ids() == [run.rq_job_id]
    assert [r["status"] for r in amazon.requests if r["operation"] == "getReport"] == [429]


def test_bad_credentials_and_missing_role_have_distinct_messages(amazon_host, amazon):
    publish(amazon, "DE", list(demo_listings(5, seed=8)))
    integ = amazon_host.add_integration("DE", "FBM", client_id="wrong-client")
    run = run_import(amazon_host, integ)
    assert run.status == "failed" and run.error_code == "amazon_auth"
    assert "LWA credentials" in run.error_message
    amazon.configure(forbidden=True)
    good = amazon_host.add_integration("DE", "FBA")
    run = run_import(amazon_host, good)
    assert run.status == "failed" and run.error_code == "amazon_forbidden"
    assert "role" in run.error_message


def test_expired_download_url_is_renewed(amazon_host, amazon):
    rows = list(demo_listings(12, seed=9))
    publish(amazon, "DE", rows)
    amazon.inject("download", 403)
    integ = amazon_host.add_integration("DE", "FBM")
    run = run_import(amazon_host, integ)
    assert run.status == "succeeded" and run.count_created == len(rows)
    docs = [r for r in amazon.requests if r["operation"] == "getReportDocument"]
    assert len(docs) >= 2


def test_fresh_report_is_reused(amazon_host, amazon):
    amazon_host.configure(REPORT_REUSE_WINDOW=1800)
    rows = list(demo_listings(9, seed=10))
    publish(amazon, "DE", rows)
    mp = get_marketplace("DE").marketplace_id
    report_id = amazon.add_existing_report(mp, created_at=datetime.now(timezone.utc)
                                           - timedelta(minutes=5))
    amazon.add_existing_report(mp, created_at=datetime.now(timezone.utc) - timedelta(days=2))
    integ = amazon_host.add_integration("DE", "FBM")
    run = run_import(amazon_host, integ)
    assert run.status == "succeeded" and run.report_reused and run.report_id == report_id
    assert not [r for r in amazon.requests if r["operation"] == "createReport"]


def test_second_import_while_one_is_active_is_refused(amazon_host, amazon):
    from xsale_amazon_plugin.importing.lifecycle import ImportAlreadyRunning, start_import

    publish(amazon, "DE", list(demo_listings(5, seed=11)))
    integ = amazon_host.add_integration("DE", "FBM")
    with amazon_host.app.app_context():
        first = start_import(integ)
        with pytest.raises(ImportAlreadyRunning) as info:
            start_import(integ)
        assert info.value.run.id == first.id
        first_id = first.id
    assert drain(amazon_host, first_id).status == "succeeded"
    with amazon_host.app.app_context():
        again = start_import(integ)
        assert again.id != first_id


def test_job_arguments_are_ids_only(amazon_host, amazon, redis_conn):
    from rq.job import Job

    from xsale_amazon_plugin.importing.lifecycle import start_import

    publish(amazon, "DE", list(demo_listings(5, seed=12)))
    integ = amazon_host.add_integration("DE", "FBM")
    with amazon_host.app.app_context():
        run = start_import(integ)
        job = Job.fetch(run.rq_job_id, connection=amazon_host.state.redis)
        assert job.args == (run.id,) and not job.kwargs
    dump = b"".join(redis_conn.dump(k) or b"" for k in redis_conn.keys("*"))
    for secret in (b"test-client-secret-Zq8", b"Atzr|test-refresh-token-Xy7"):
        assert secret not in dump


def test_invalid_and_duplicate_lines_are_counted_with_line_numbers(amazon_host, amazon):
    rows = list(demo_listings(20, seed=13))
    rows[4] = dict(rows[4], seller_sku=rows[2]["seller_sku"])
    content = render_report(rows, "eu_en", encoding="cp1252").replace(
        b"\n", b"\nbroken-line-without-tabs\n", 1
    )
    amazon.set_listings(get_marketplace("DE").marketplace_id, content, charset="Cp1252")
    integ = amazon_host.add_integration("DE", "FBM")
    run = run_import(amazon_host, integ)
    assert run.status == "succeeded"
    assert run.count_invalid == 1 and run.count_duplicate == 1
    lines = {item["line"]: item for item in run.invalid_lines}
    assert 2 in lines
    dup = [i for i in run.invalid_lines if "duplicate" in i["reason"]]
    assert dup and rows[2]["seller_sku"] in dup[0]["reason"]
    assert run.count_created == len(rows) - 1


FAMILIES_WITH_ASIN = [
    ("us", "US"), ("eu_en", "GB"), ("custom_b2b", "US"), ("fr_asin", "FR"), ("de", "DE"),
    ("it", "IT"), ("es", "ES"), ("jp_custom", "JP"), ("cn", "CN"), ("pl", "PL"), ("tr", "TR"),
]


@pytest.mark.parametrize(("family", "marketplace"), FAMILIES_WITH_ASIN)
def test_every_header_family_imports(amazon_host, amazon, family, marketplace):
    rows = list(demo_listings(30, seed=14, marketplace=marketplace))
    publish(amazon, marketplace, rows, family)
    integ = amazon_host.add_integration(marketplace, "FBM")
    run = run_import(amazon_host, integ)
    assert run.status == "succeeded", run.error_message
    stored = offers(amazon_host, integ)
    assert len(stored) == len(rows) - run.count_invalid
    encoding = DEFAULT_ENCODING[family]
    for row in rows:
        offer = stored[row["seller_sku"]]
        assert offer.name == encodable_text(row["name"], encoding)
        assert offer.asin == row["asin"]
        assert offer.currency == get_marketplace(marketplace).currency


@pytest.mark.parametrize(("family", "marketplace"), [("fr", "FR"), ("jp", "JP")])
def test_default_reports_without_asin_fail_with_instruction(amazon_host, amazon, family,
                                                            marketplace):
    publish(amazon, marketplace, list(demo_listings(5, seed=15, marketplace=marketplace)), family)
    integ = amazon_host.add_integration(marketplace, "FBM")
    run = run_import(amazon_host, integ)
    assert run.status == "failed" and run.error_code == "missing_asin_column"
    assert offers(amazon_host, integ) == {}
