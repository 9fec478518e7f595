"""Import runs and integrations as the operator uses them (issue 9): report reuse vs
fix-and-rerun, Cancel import at every stage, deleting an
integration, form validation, secrets and Test connection, run pages.

Real emulator over HTTP, real Redis/RQ (in-process SimpleWorker via ``drain``), both
databases.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from xsale_amazon_plugin.amazon.client import AmazonReportsClient, DownloadStopped
from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
from xsale_amazon_plugin.emulator.report_builder import demo_listings, render_report

from .conftest import drain
from .hostapp import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, make_host

DE = get_marketplace("DE").marketplace_id
FR = get_marketplace("FR").marketplace_id
INTEGRATIONS = "/admin/xsale-amazon/integrations/"
RUNS = "/admin/xsale-amazon/runs/"


def token_of(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token"
    return match.group(1)


def accept_language(host: Any) -> None:
    """Let the request's Accept-Language pick the locale (call before the first request)."""
    from flask import request
    from flask_babel import Babel

    Babel(host.app, locale_selector=lambda: request.accept_languages.best_match(["pl", "en"])
          or "en")


def text_of(html: str) -> str:
    import html as html_lib

    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def run_of(host: Any, run_id: int) -> Any:
    with host.app.app_context():
        run = host.db.session.get(host.models.ImportRun, run_id)
        host.db.session.expunge(run)
        return run


def offers_snapshot(host: Any, integration_id: int) -> list[tuple]:
    m = host.models
    with host.app.app_context():
        rows = host.db.session.execute(
            sa.select(m.AmazonOffer.seller_sku, m.AmazonOffer.price, m.AmazonOffer.quantity,
                      m.AmazonOffer.removed_at)
            .where(m.AmazonOffer.integration_id == integration_id)
            .order_by(m.AmazonOffer.seller_sku)).all()
        return [tuple(r) for r in rows]


def create_reports(amazon: Any) -> list[dict]:
    return [e for e in amazon.requests if e["operation"] == "createReport"]


def publish(amazon: Any, marketplace_id: str, rows: list[dict], family: str = "eu_en",
            **kwargs: Any) -> None:
    amazon.set_listings(marketplace_id, render_report(rows, family), charset="Cp1252", **kwargs)


def start_from_dialog(client: Any, integ: int, report: str | None = None) -> int:
    edit = client.get(f"{INTEGRATIONS}edit/?id={integ}").get_data(as_text=True)
    data = {"csrf_token": token_of(edit)}
    if report is not None:
        data["report"] = report
    response = client.post(f"{INTEGRATIONS}import/{integ}/", data=data)
    assert response.status_code == 302 and "/runs/details/" in response.location, (
        response.status_code, response.location)
    return int(response.location.split("id=")[1])


@pytest.fixture
def reuse_host(db_url: str, redis_conn: Any, amazon: Any) -> Any:
    """A host that reuses Amazon's reports for 30 minutes (the production default)."""
    host = make_host(db_url, config={"XSALE_AMAZON_REPORT_REUSE_WINDOW": 1800,
                                     "XSALE_AMAZON_SPAPI_ENDPOINT": amazon.url,
                                     "XSALE_AMAZON_LWA_ENDPOINT": amazon.lwa_url})
    yield host
    with host.app.app_context():
        host.db.session.remove()
        for engine in host.db.engines.values():
            engine.dispose()


# ---------------------------------------------------------------- 2. fix-and-rerun vs reuse
def test_fix_and_rerun_never_reuses_the_report_the_run_failed_on(reuse_host, amazon):
    host = reuse_host
    fr_rows = list(demo_listings(12, seed=9, marketplace="FR", sku_prefix="FR-"))
    publish(amazon, FR, fr_rows, "fr")  # Amazon's French default: no ASIN column
    integ = host.add_integration("FR", "FBM")
    client = host.app.test_client()
    failed = drain(host, start_from_dialog(client, integ))
    assert failed.status == "failed" and failed.error_code == "missing_asin_column"
    assert len(create_reports(amazon)) == 1

    # The operator adds asin1 in Seller Central (the emulator now serves it) and clicks
    # Run again within the reuse window.
    publish(amazon, FR, fr_rows, "eu_en")
    page = client.get(f"{RUNS}details/?id={failed.id}").get_data(as_text=True)
    assert "Run again with a fresh report" in page
    rerun = client.post(f"{RUNS}rerun/{failed.id}/", data={"csrf_token": token_of(page)})
    new_id = int(rerun.location.split("id=")[1])
    assert new_id != failed.id
    done = drain(host, new_id)
    assert done.status == "succeeded", done.error_message
    assert done.report_mode == "fresh" and not done.report_reused
    assert done.report_id != failed.report_id
    assert len(create_reports(amazon)) == 2
    assert len(offers_snapshot(host, integ)) == len(fr_rows)

    # An automatic import in the window reuses the good report, never the failed one.
    amazon.clear_requests()
    again = drain(host, start_from_dialog(client, integ))
    assert again.report_reused and again.report_id == done.report_id
    assert create_reports(amazon) == []
    details = text_of(client.get(f"{RUNS}details/?id={again.id}").get_data(as_text=True))
    assert f"Reused Amazon's report {done.report_id}, created by Amazon on" in details


def test_import_dialog_offers_amazons_report_or_a_fresh_one(reuse_host, amazon):
    host = reuse_host
    publish(amazon, DE, list(demo_listings(10, seed=3)))
    integ = host.add_integration("DE", "FBM")
    client = host.app.test_client()
    edit = client.get(f"{INTEGRATIONS}edit/?id={integ}").get_data(as_text=True)
    assert 'id="xa-report-choice"' in edit and "Request a fresh report" in edit
    url = f"{INTEGRATIONS}reusable-report/{integ}/"
    assert client.get(url).get_json() == {"report": None}  # Amazon holds none yet

    first = drain(host, start_from_dialog(client, integ, "fresh"))
    assert first.status == "succeeded" and not first.report_reused
    offered = client.get(url).get_json()["report"]
    assert offered["id"] == first.report_id
    assert "Use Amazon's report from" in offered["label"]

    amazon.clear_requests()
    reused = drain(host, start_from_dialog(client, integ, f"reuse:{offered['id']}"))
    assert reused.status == "succeeded" and reused.report_reused
    assert reused.report_id == first.report_id and reused.report_mode == "reuse"
    assert create_reports(amazon) == []

    fresh = drain(host, start_from_dialog(client, integ, "fresh"))
    assert not fresh.report_reused and fresh.report_id != first.report_id
    page = text_of(client.get(f"{RUNS}details/?id={fresh.id}").get_data(as_text=True))
    assert f"Fresh report {fresh.report_id}, requested by this import on" in page

    # A report a failed run used is never offered again.
    with host.app.app_context():
        run = host.db.session.get(host.models.ImportRun, fresh.id)
        run.status = "failed"
        host.db.session.commit()
    offered = client.get(url).get_json()["report"]
    assert offered is None or offered["id"] != fresh.report_id


# ---------------------------------------------------------------- 5. Cancel import
def test_cancel_a_queued_import_from_the_run_page(amazon_host, amazon):
    host = amazon_host
    publish(amazon, DE, list(demo_listings(5, seed=5)))
    integ = host.add_integration("DE", "FBM")
    client = host.app.test_client()
    run_id = start_from_dialog(client, integ)
    page = client.get(f"{RUNS}details/?id={run_id}").get_data(as_text=True)
    assert 'id="xa-cancel"' in page and 'id="xa-rerun"' not in page
    response = client.post(f"{RUNS}cancel/{run_id}/", data={"csrf_token": token_of(page)},
                           follow_redirects=True)
    text = text_of(response.get_data(as_text=True))
    assert "Import cancelled" in text and "Nothing was changed" in text
    run = run_of(host, run_id)
    assert run.status == "cancelled" and run.active_lock is None and run.error_code == "cancelled"
    with host.app.app_context():
        assert host.state.queue.count == 0  # its queued job was removed
    drain(host)  # nothing left to run
    assert offers_snapshot(host, integ) == []
    # The next import can start at once and succeeds.
    assert drain(host, start_from_dialog(client, integ)).status == "succeeded"


def test_cancel_while_waiting_for_amazon_from_the_integration_page(amazon_host, amazon):
    from rq import SimpleWorker

    host = amazon_host
    publish(amazon, DE, list(demo_listings(5, seed=6)), polls_until_done=50)
    integ = host.add_integration("DE", "FBM")
    client = host.app.test_client()
    run_id = start_from_dialog(client, integ)
    with host.app.app_context():
        queue = host.state.queue
        SimpleWorker([queue], connection=queue.connection,
                     job_class=queue.job_class).work(burst=True, logging_level="WARNING")
    assert run_of(host, run_id).status == "waiting"
    edit = client.get(f"{INTEGRATIONS}edit/?id={integ}").get_data(as_text=True)
    assert 'id="xa-integration-cancel"' in edit
    assert re.search(r'id="xa-import-button"[^>]*disabled', edit)
    response = client.post(f"{INTEGRATIONS}cancel-import/{integ}/",
                           data={"csrf_token": token_of(edit)}, follow_redirects=True)
    assert "Import cancelled" in response.get_data(as_text=True)
    assert run_of(host, run_id).status == "cancelled"
    drain(host, timeout=120)  # a poll still scheduled finds the run ended and stops
    assert run_of(host, run_id).status == "cancelled"
    assert offers_snapshot(host, integ) == []
    # Amazon's report request was left alone (no cancelReport in the emulator's log).
    assert all(e["method"] != "DELETE" for e in amazon.requests)


@pytest.mark.parametrize("stage", ["downloading", "parsing"])
def test_cancel_during_download_or_parse_applies_nothing(amazon_host, amazon, stage,
                                                        monkeypatch):
    host = amazon_host
    integ = host.add_integration("DE", "FBM")
    old_rows = list(demo_listings(30, seed=7))
    publish(amazon, DE, old_rows)
    client = host.app.test_client()
    assert drain(host, start_from_dialog(client, integ)).status == "succeeded"
    before = offers_snapshot(host, integ)

    new_rows = [dict(r, price="1.00") for r in demo_listings(15000, seed=8)]
    publish(amazon, DE, new_rows, gzip=False)
    if stage == "downloading":
        amazon.configure(download_rate=20_000)  # a slow S3: the download takes seconds
    run_id = start_from_dialog(client, integ)
    reached: list[str] = []

    def operator() -> None:
        """Watches the run like the run page does and clicks Cancel at the stage."""
        canceller = host.app.test_client()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            run = run_of(host, run_id)
            if run.status not in ("queued", "requesting", "waiting", "processing"):
                return
            if run.stage == stage and (stage != "parsing" or run.rows_done):
                reached.append(run.stage)
                page = canceller.get(f"{RUNS}details/?id={run_id}").get_data(as_text=True)
                canceller.post(f"{RUNS}cancel/{run_id}/", data={"csrf_token": token_of(page)})
                return
            time.sleep(0.01)

    # Records whether the real download (over HTTP, to the emulator) was stopped midway.
    stopped: list[bool] = []
    download = AmazonReportsClient.download_document

    def recording_download(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return download(self, *args, **kwargs)
        except DownloadStopped:
            stopped.append(True)
            raise

    monkeypatch.setattr(AmazonReportsClient, "download_document", recording_download)
    watcher = threading.Thread(target=operator, daemon=True)
    watcher.start()
    drain(host, run_id)  # the worker, in this (main) thread
    watcher.join(timeout=60)
    assert reached == [stage], f"the run never reached {stage}"
    amazon.configure()
    if stage == "downloading":  # the heartbeat saw the cancel: the transfer stopped midway
        assert stopped == [True]
    run = run_of(host, run_id)
    assert run.status == "cancelled", (run.status, run.error_message)
    assert offers_snapshot(host, integ) == before, "a cancelled import must change nothing"
    with host.app.app_context():
        staged = host.db.session.execute(
            sa.select(sa.func.count()).select_from(host.models.import_row)).scalar_one()
    assert staged == 0


def test_cancel_after_the_apply_committed_is_refused(amazon_host, amazon):
    from xsale_amazon_plugin.importing.lifecycle import CancelRefused, cancel_import

    host = amazon_host
    publish(amazon, DE, list(demo_listings(5, seed=9)))
    integ = host.add_integration("DE", "FBM")
    run_id = start_from_dialog(host.app.test_client(), integ)
    assert drain(host, run_id).status == "succeeded"
    with host.app.test_request_context(), pytest.raises(CancelRefused, match="already ended"):
        cancel_import(run_id)
    assert run_of(host, run_id).status == "succeeded"


# ---------------------------------------------------------------- 6. delete an integration
def _seed_footprint(host: Any) -> tuple[int, int]:
    m = host.models
    keep = host.add_integration("DE", "FBA", name="Keep me")
    doomed = host.add_integration("DE", "FBM", name="Amazon DE doomed")
    products = host.add_products([{"sku": f"P{i}", "name": f"Product {i}"} for i in range(3)])
    with host.app.app_context():
        for integ, count in ((doomed, 4), (keep, 2)):
            offers = [m.AmazonOffer(integration_id=integ, seller_sku=f"S{integ}-{i}")
                      for i in range(count)]
            host.db.session.add_all(offers)
            host.db.session.flush()
            for offer, product in zip(offers[:2], products, strict=False):
                host.db.session.add(m.OfferProductLink(offer_id=offer.id, product_id=product))
            for status in ("succeeded", "failed", "cancelled"):
                host.db.session.add(m.ImportRun(integration_id=integ, status=status,
                                                stage="done"))
        host.db.session.commit()
    return doomed, keep


def _table_counts(host: Any) -> dict[str, int]:
    with host.app.app_context():
        return {
            name: host.db.session.execute(
                sa.select(sa.func.count()).select_from(host.db.metadata.tables[name])
            ).scalar_one()
            for name in ("xsale_amazon_integration", "xsale_amazon_offer",
                         "xsale_amazon_offer_product_link", "xsale_amazon_import_run")
        }


def _orphans(host: Any) -> int:
    with host.app.app_context():
        return host.db.session.execute(sa.text(
            "SELECT (SELECT count(*) FROM xsale_amazon_offer o WHERE NOT EXISTS (SELECT 1 FROM "
            "xsale_amazon_integration i WHERE i.id = o.integration_id)) + (SELECT count(*) FROM "
            "xsale_amazon_import_run r WHERE NOT EXISTS (SELECT 1 FROM xsale_amazon_integration "
            "i WHERE i.id = r.integration_id)) + (SELECT count(*) FROM "
            "xsale_amazon_offer_product_link k WHERE NOT EXISTS (SELECT 1 FROM "
            "xsale_amazon_offer o WHERE o.id = k.offer_id))")).scalar_one()


def test_delete_names_what_goes_and_needs_the_name_when_links_exist(host):
    doomed, keep = _seed_footprint(host)
    client = host.app.test_client()
    listing = client.get(INTEGRATIONS).get_data(as_text=True)
    assert f"delete/?id={doomed}" in listing
    assert "Are you sure you want to delete" not in listing
    page = client.get(f"{INTEGRATIONS}delete/?id={doomed}").get_data(as_text=True)
    text = text_of(page)
    assert "Offers imported from Amazon: 4" in text
    assert "Links between these offers and your products: 2" in text
    assert "Import runs (the history): 3" in text
    assert 'name="confirm_name"' in page and "Deactivate instead" in text
    before = _table_counts(host)

    wrong = client.post(f"{INTEGRATIONS}delete/?id={doomed}",
                        data={"csrf_token": token_of(page), "confirm_name": "Amazon DE"})
    assert "Type the integration" in wrong.get_data(as_text=True)
    assert _table_counts(host) == before
    # The generic Flask-Admin delete is closed (it would cascade silently).
    client.post(f"{INTEGRATIONS}delete/", data={"id": str(doomed), "csrf_token": token_of(page)})
    assert _table_counts(host) == before

    done = client.post(f"{INTEGRATIONS}delete/?id={doomed}",
                       data={"csrf_token": token_of(page), "confirm_name": "Amazon DE doomed"},
                       follow_redirects=True)
    assert "deleted (offers: 4, links: 2, import runs: 3)" in done.get_data(as_text=True)
    assert _table_counts(host) == {
        "xsale_amazon_integration": before["xsale_amazon_integration"] - 1,
        "xsale_amazon_offer": before["xsale_amazon_offer"] - 4,
        "xsale_amazon_offer_product_link": before["xsale_amazon_offer_product_link"] - 2,
        "xsale_amazon_import_run": before["xsale_amazon_import_run"] - 3,
    }
    assert _orphans(host) == 0


def test_deactivate_instead_keeps_everything(host):
    doomed, _keep = _seed_footprint(host)
    client = host.app.test_client()
    page = client.get(f"{INTEGRATIONS}delete/?id={doomed}").get_data(as_text=True)
    before = _table_counts(host)
    client.post(f"{INTEGRATIONS}delete/?id={doomed}",
                data={"csrf_token": token_of(page), "deactivate": "1"})
    assert _table_counts(host) == before
    with host.app.app_context():
        assert host.db.session.get(host.models.AmazonIntegration, doomed).active is False


def test_delete_without_links_needs_no_name_and_busy_integration_is_refused(host):
    m = host.models
    integ = host.add_integration("IT", "FBM", name="No links")
    with host.app.app_context():
        host.db.session.add(m.ImportRun(integration_id=integ, status="waiting", stage="queued",
                                        active_lock=integ))
        host.db.session.commit()
    client = host.app.test_client()
    page = client.get(f"{INTEGRATIONS}delete/?id={integ}").get_data(as_text=True)
    assert 'name="confirm_name"' not in page and 'id="xa-delete-busy"' in page
    refused = client.post(f"{INTEGRATIONS}delete/?id={integ}",
                          data={"csrf_token": token_of(page)})
    assert "cancel it first" in refused.get_data(as_text=True)
    with host.app.app_context():
        run = host.db.session.execute(sa.select(m.ImportRun)).scalar_one()
        run.active_lock, run.status = None, "failed"
        host.db.session.commit()
    client.post(f"{INTEGRATIONS}delete/?id={integ}", data={"csrf_token": token_of(page)})
    assert _table_counts(host)["xsale_amazon_integration"] == 0
    assert _orphans(host) == 0


# ---------------------------------------------------------------- 7. form validation
def _integration_form(page: str, **overrides: str) -> dict[str, str]:
    data = {"csrf_token": token_of(page), "name": "Amazon PL", "marketplace": "PL",
            "account_type": "FBM", "seller_id": "A2EUQ1WTGCTBG2",
            "lwa_client_id": "amzn1.application-oa2-client.abc123",
            "new_lwa_client_secret": "s3cret", "new_refresh_token": "Atzr|IwEBIabc", "active": "y"}
    data.update(overrides)
    return data


JUNK = {
    "name": ("   ", "Enter a name."),
    "seller_id": ("not a seller id!!! <script>", "A seller ID (merchant token) is 5 to 20"),
    "lwa_client_id": ("garbage", "An LWA client ID looks like amzn1.application-oa2-client"),
    "new_refresh_token": ("token-without-prefix", "A refresh token starts with Atzr|"),
}


@pytest.mark.parametrize("field", sorted(JUNK))
def test_integration_form_rejects_junk_with_a_clear_message(host, field):
    client = host.app.test_client()
    page = client.get(f"{INTEGRATIONS}new/").get_data(as_text=True)
    value, message = JUNK[field]
    response = client.post(f"{INTEGRATIONS}new/", data=_integration_form(page, **{field: value}))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert message in text_of(html).replace("&#39;", "'"), field
    assert _table_counts(host)["xsale_amazon_integration"] == 0


def test_integration_form_trims_and_enforces_one_per_seller_marketplace_and_type(host):
    client = host.app.test_client()
    page = client.get(f"{INTEGRATIONS}new/").get_data(as_text=True)
    ok = client.post(f"{INTEGRATIONS}new/", data=_integration_form(
        page, name="  Amazon PL  ", seller_id=" a2euq1wtgctbg2 "))
    assert ok.status_code == 302
    with host.app.app_context():
        integ = host.db.session.execute(sa.select(host.models.AmazonIntegration)).scalar_one()
        assert (integ.name, integ.seller_id) == ("Amazon PL", "A2EUQ1WTGCTBG2")
    dup = client.post(f"{INTEGRATIONS}new/", data=_integration_form(page, name="Second PL"))
    assert dup.status_code == 200
    assert "already imports FBM offers of this seller on PL" in dup.get_data(as_text=True) \
        .replace("&#34;", '"').replace("&quot;", '"')
    assert _table_counts(host)["xsale_amazon_integration"] == 1
    # Another account type or seller is fine; editing the existing one keeps working.
    fba = client.post(f"{INTEGRATIONS}new/", data=_integration_form(page, name="PL FBA",
                                                                      account_type="FBA"))
    assert fba.status_code == 302
    edit = client.get(f"{INTEGRATIONS}edit/?id={integ.id}").get_data(as_text=True)
    renamed = client.post(f"{INTEGRATIONS}edit/?id={integ.id}",
                          data=_integration_form(edit, name="PL renamed", new_refresh_token=""))
    assert renamed.status_code == 302
    # The database refuses a duplicate as well (another code path, e.g. a script).
    m = host.models
    with host.app.app_context():
        host.db.session.add(m.AmazonIntegration(name="Dup", marketplace="PL", account_type="FBM",
                                                seller_id="A2EUQ1WTGCTBG2"))
        with pytest.raises(sa.exc.IntegrityError):
            host.db.session.commit()
        host.db.session.rollback()


# ---------------------------------------------------------------- 8. secrets, Test connection
def test_secret_fields_say_stored_or_not_set_and_never_show_the_secret(host):
    m = host.models
    client = host.app.test_client()
    new = client.get(f"{INTEGRATIONS}new/").get_data(as_text=True)
    assert "stored encrypted, never shown" not in new
    assert new.count('placeholder="not set"') == 2
    with host.app.app_context():
        bare = m.AmazonIntegration(name="Bare", marketplace="DE", account_type="FBM",
                                   seller_id="A1BARE")
        host.db.session.add(bare)
        host.db.session.commit()
        bare_id = bare.id
    full_id = host.add_integration("IT", "FBM")
    bare_page = client.get(f"{INTEGRATIONS}edit/?id={bare_id}").get_data(as_text=True)
    assert bare_page.count('placeholder="not set"') == 2
    full_page = client.get(f"{INTEGRATIONS}edit/?id={full_id}").get_data(as_text=True)
    assert full_page.count("stored — leave blank to keep it") == 2
    assert CLIENT_SECRET not in full_page and REFRESH_TOKEN not in full_page
    # Replace-only: a blank field keeps the stored secret.
    client.post(f"{INTEGRATIONS}edit/?id={full_id}", data=_integration_form(
        full_page, name="Renamed", marketplace="IT", seller_id="A1SELLER",
        lwa_client_id=CLIENT_ID, new_lwa_client_secret="", new_refresh_token=""))
    with host.app.app_context():
        integ = host.db.session.get(m.AmazonIntegration, full_id)
        assert (integ.name, integ.lwa_client_secret, integ.refresh_token) == (
            "Renamed", CLIENT_SECRET, REFRESH_TOKEN)


def _test_connection(client: Any, integ: int, lang: str = "en") -> str:
    headers = {"Accept-Language": lang}
    page = client.get(f"{INTEGRATIONS}edit/?id={integ}", headers=headers).get_data(as_text=True)
    response = client.post(f"{INTEGRATIONS}test-connection/{integ}/",
                           data={"csrf_token": token_of(page)}, headers=headers,
                           follow_redirects=True)
    return text_of(response.get_data(as_text=True))


def test_test_connection_reports_each_outcome_in_the_operators_language(amazon_host, amazon):
    host = amazon_host
    accept_language(host)
    integ = host.add_integration("DE", "FBM")
    client = host.app.test_client()
    assert "Connection works" in _test_connection(client, integ)
    tokens = [e for e in amazon.requests if e["operation"] == "token"]
    calls = [e for e in amazon.requests if e["operation"] == "getReports"]
    assert tokens and calls and calls[-1]["query"].get("pageSize") == "1"
    assert "Połączenie działa" in _test_connection(client, integ, "pl")

    amazon.configure(forbidden=True)
    assert "refused the Reports API call" in _test_connection(client, integ)
    amazon.configure()
    with host.app.app_context():
        row = host.db.session.get(host.models.AmazonIntegration, integ)
        row.lwa_client_secret = "wrong-secret"
        host.db.session.commit()
    text = _test_connection(client, integ)
    assert "Login with Amazon rejected the credentials" in text
    assert "wrong-secret" not in text
    assert "Login with Amazon odrzucił" in _test_connection(client, integ, "pl")


# ---------------------------------------------------------------- 13 / 14. run pages
def test_failed_credentials_run_page_shows_remedy_first_and_amazons_message_once(amazon_host,
                                                                               amazon):
    host = amazon_host
    accept_language(host)
    integ = host.add_integration("DE", "FBM", client_id="amzn1.application-oa2-client.wrong")
    client = host.app.test_client()
    run = drain(host, start_from_dialog(client, integ))
    assert run.status == "failed" and run.error_code == "amazon_auth"
    page = client.get(f"{RUNS}details/?id={run.id}").get_data(as_text=True)
    text = text_of(page).replace("&#39;", "'")
    assert text.count("Amazon rejected the LWA credentials") == 1
    assert text.count("Login with Amazon rejected") == 0  # our words are not repeated
    assert "Amazon's message (in English): HTTP 400, invalid_client" in text
    assert re.search(r'class="btn btn-primary[^"]*" id="xa-remedy"', page)
    assert re.search(r'class="btn btn-outline-secondary[^"]*" id="xa-rerun"', page)
    assert "Nothing was changed" in text
    assert "Estimated time left" not in text
    pl = text_of(client.get(f"{RUNS}details/?id={run.id}",
                            headers={"Accept-Language": "pl"}).get_data(as_text=True))
    assert "Wiadomość Amazona (po angielsku): HTTP 400, invalid_client" in pl.replace("&#39;", "'")


def test_runs_list_and_run_page_read_like_an_operator_expects(amazon_host, amazon):
    host = amazon_host
    accept_language(host)
    publish(amazon, DE, list(demo_listings(8, seed=11)))
    integ = host.add_integration("DE", "FBM")
    client = host.app.test_client()
    ok = drain(host, start_from_dialog(client, integ))
    amazon.set_listings(get_marketplace("IT").marketplace_id, b"", final_status="CANCELLED")
    it = host.add_integration("IT", "FBM")
    no_data = drain(host, start_from_dialog(client, it))
    assert no_data.status == "no_data"

    listing = client.get(RUNS).get_data(as_text=True)
    text = text_of(listing)
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d{6}", text), "no microseconds"
    assert "UTC" in text
    assert "+8 ~0" not in text and "created 8" in text
    stages = [text_of(c).strip() for c in re.findall(r'<td class="col-stage">(.*?)</td>',
                                                     listing, re.S)]
    assert stages == ["No data at Amazon", "Done"], stages
    page = text_of(client.get(f"{RUNS}details/?id={ok.id}").get_data(as_text=True))
    assert "Estimated time left" not in page and "Finished" in page
    assert "Encoding" not in page and "Windows-1252 text, column names in English" in page
    nd = text_of(client.get(f"{RUNS}details/?id={no_data.id}").get_data(as_text=True))
    assert "No data at Amazon" in nd and "Amazon had no listings" in nd
    pl = text_of(client.get(f"{RUNS}details/?id={ok.id}",
                            headers={"Accept-Language": "pl"}).get_data(as_text=True))
    assert "Windows-1252, nazwy kolumn: angielski" in pl


def test_polish_integration_pages_translate_marketplaces_and_dates(amazon_host, amazon):
    host = amazon_host
    accept_language(host)
    publish(amazon, DE, list(demo_listings(3, seed=12)))
    integ = host.add_integration("DE", "FBM")
    client = host.app.test_client()
    drain(host, start_from_dialog(client, integ))
    pl = {"Accept-Language": "pl"}
    new = text_of(client.get(f"{INTEGRATIONS}new/", headers=pl).get_data(as_text=True))
    assert "DE — Niemcy (amazon.de)" in new and "Germany" not in new
    assert "GB — Wielka Brytania (amazon.co.uk)" in new
    edit = text_of(client.get(f"{INTEGRATIONS}edit/?id={integ}", headers=pl).get_data(
        as_text=True))
    assert "DE — Niemcy (amazon.de)" in edit
    assert re.search(r"\d{1,2} [a-zś]{3} \d{4}, \d{2}:\d{2}:\d{2} UTC", edit), "Polish date"


def test_import_button_disabled_with_the_reason_when_it_cannot_import(host):
    m = host.models
    with host.app.app_context():
        bare = m.AmazonIntegration(name="Bare", marketplace="DE", account_type="FBM",
                                   seller_id="A1BARE")
        host.db.session.add(bare)
        host.db.session.commit()
        bare_id = bare.id
    page = host.app.test_client().get(f"{INTEGRATIONS}edit/?id={bare_id}").get_data(as_text=True)
    assert re.search(r'id="xa-import-button"[^>]*disabled', page)
    assert 'id="xa-import-blocked"' in page
    assert "Fill in the LWA client ID, client secret and refresh token" in page
    good = host.add_integration("IT", "FBM")
    ok = host.app.test_client().get(f"{INTEGRATIONS}edit/?id={good}").get_data(as_text=True)
    assert not re.search(r'id="xa-import-button"[^>]*disabled', ok)
