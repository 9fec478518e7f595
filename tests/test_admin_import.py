"""The "Import offers" service action, run page and history through the admin (test client)."""

from __future__ import annotations

import re

import sqlalchemy as sa
from markupsafe import escape

from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
from xsale_amazon_plugin.emulator.report_builder import demo_listings, render_report

from .conftest import drain
from .hostapp import make_host


def token_of(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def run_count(host) -> int:
    with host.app.app_context():
        return host.db.session.execute(
            sa.select(sa.func.count()).select_from(host.models.ImportRun)).scalar_one()


def test_import_button_runs_and_run_page_shows_summary(amazon_host, amazon):
    rows = list(demo_listings(25, seed=31))
    rows[0] = dict(rows[0], name='<script>alert("x")</script> "quoted" title')
    amazon.set_listings(get_marketplace("DE").marketplace_id,
                        render_report(rows, "eu_en", encoding="cp1252"), charset="Cp1252")
    integ = amazon_host.add_integration("DE", "FBM")
    client = amazon_host.app.test_client()
    edit = client.get(f"/admin/xsale-amazon/integrations/edit/?id={integ}").get_data(as_text=True)
    assert "dozen minutes to a dozen hours" in edit
    assert "asin1" not in edit  # DE needs no Seller Central column step
    response = client.post(f"/admin/xsale-amazon/integrations/import/{integ}/",
                           data={"csrf_token": token_of(edit)})
    assert response.status_code == 302 and "/runs/details/" in response.location
    run_id = int(response.location.split("id=")[1])
    page = client.get(response.location).get_data(as_text=True)
    assert "Import queued" in page
    status = client.get(f"/xsale-amazon/runs/{run_id}.json").get_json()
    assert status["active"] and status["status"] == "queued"
    # A second click while it is queued: refused, pointed at the running one.
    again = client.post(f"/admin/xsale-amazon/integrations/import/{integ}/",
                        data={"csrf_token": token_of(edit)}, follow_redirects=True)
    assert "already running" in again.get_data(as_text=True)
    assert run_count(amazon_host) == 1
    assert drain(amazon_host, run_id).status == "succeeded"
    final = client.get(f"/xsale-amazon/runs/{run_id}.json").get_json()
    assert final["active"] is False and final["percent"] == 100
    assert final["counts"]["created"] == len(rows)
    summary = client.get(f"/admin/xsale-amazon/runs/details/?id={run_id}").get_data(as_text=True)
    assert "Summary" in summary and "Run again" in summary
    offers = client.get("/admin/xsale-amazon/offers/?page_size=100").get_data(as_text=True)
    assert "<script>alert(" not in offers
    assert str(escape('<script>alert("x")</script>')) in offers
    history = client.get(f"/admin/xsale-amazon/runs/?flt0_0={integ}").get_data(as_text=True)
    assert f"details/?id={run_id}" in history
    listing = client.get("/admin/xsale-amazon/integrations/").get_data(as_text=True)
    assert "Succeeded" in listing
    rerun = client.post(f"/admin/xsale-amazon/runs/rerun/{run_id}/",
                        data={"csrf_token": token_of(summary)})
    assert rerun.status_code == 302 and f"id={run_id}" not in rerun.location


def test_import_without_token_is_refused(amazon_host, amazon):
    integ = amazon_host.add_integration("DE", "FBM")
    client = amazon_host.app.test_client()
    client.get(f"/admin/xsale-amazon/integrations/edit/?id={integ}")
    client.post(f"/admin/xsale-amazon/integrations/import/{integ}/", data={})
    client.post(f"/admin/xsale-amazon/integrations/import/{integ}/",
                data={"csrf_token": "forged"})
    assert run_count(amazon_host) == 0


def test_fr_dialog_carries_the_seller_central_instruction(amazon_host, amazon):
    integ = amazon_host.add_integration("FR", "FBM")
    page = amazon_host.app.test_client().get(
        f"/admin/xsale-amazon/integrations/edit/?id={integ}").get_data(as_text=True)
    assert "Reports → Inventory Reports" in page and "asin1" in page


def test_bulk_import_action(amazon_host, amazon):
    a = amazon_host.add_integration("DE", "FBM")
    b = amazon_host.add_integration("DE", "FBA")
    client = amazon_host.app.test_client()
    page = client.get("/admin/xsale-amazon/integrations/").get_data(as_text=True)
    client.post("/admin/xsale-amazon/integrations/action/", data={
        "csrf_token": token_of(page), "action": "import_offers", "rowid": [str(a), str(b)],
        "url": "/admin/xsale-amazon/integrations/"})
    assert run_count(amazon_host) == 2


def test_redis_down_gives_clear_error_and_leaves_no_run(db_url, amazon):
    host = make_host(db_url, config={"XSALE_AMAZON_REDIS_URL": "redis://127.0.0.1:1/0"})
    integ = host.add_integration("DE", "FBM")
    client = host.app.test_client()
    edit = client.get(f"/admin/xsale-amazon/integrations/edit/?id={integ}").get_data(as_text=True)
    page = client.post(f"/admin/xsale-amazon/integrations/import/{integ}/",
                       data={"csrf_token": token_of(edit)}, follow_redirects=True)
    text = page.get_data(as_text=True)
    assert "job queue (Redis) is not reachable" in text
    assert run_count(host) == 0
    with host.app.app_context():
        assert host.db.session.execute(sa.select(host.models.AmazonIntegration)).scalar_one()


def test_missing_credentials_are_reported(amazon_host, amazon):
    m = amazon_host.models
    with amazon_host.app.app_context():
        integ = m.AmazonIntegration(name="Bare", marketplace="DE", account_type="FBM")
        amazon_host.db.session.add(integ)
        amazon_host.db.session.commit()
        integ_id = integ.id
    client = amazon_host.app.test_client()
    edit = client.get(f"/admin/xsale-amazon/integrations/edit/?id={integ_id}").get_data(
        as_text=True)
    page = client.post(f"/admin/xsale-amazon/integrations/import/{integ_id}/",
                       data={"csrf_token": token_of(edit)}, follow_redirects=True)
    assert "no complete LWA credentials" in page.get_data(as_text=True)
    assert run_count(amazon_host) == 0
