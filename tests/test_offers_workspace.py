"""The offers workspace without a browser: bulk link, link errors, product picker paging and
same-key matches, auto-link over a filter / an integration (inline and as a background job),
search hints across mapping views, and locale-aware rendering (English and Polish)."""

from __future__ import annotations

import html
import json
import re
import time
from typing import Any

import pytest
import sqlalchemy as sa

from .test_linking import add_offers, links

OFFERS = "/admin/xsale-amazon/offers/"


def _token(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match
    return match.group(1)


def _filter_arg(host: Any, field: str) -> str:
    admin = host.app.extensions["admin"][0]
    view = next(v for v in admin._views if v.endpoint == "xsale_amazon_offer")
    with host.app.test_request_context():
        view._refresh_filters_cache()
        for idx, flt in enumerate(view._filters):
            if getattr(flt, "field", None) == field:
                return view.get_filter_arg(idx, flt)
    raise AssertionError(field)


@pytest.fixture
def shop(host: Any) -> dict[str, Any]:
    """Two integrations; DE has 30 offers: 10 match a product by SKU, 4 share a SKU held by
    two products (ambiguous), 6 have an EAN-less product id, the rest match nothing."""
    de = host.add_integration("DE", "FBM", name="Shop DE")
    fr = host.add_integration("FR", "FBM", name="Shop FR")
    products = [{"sku": f"P-{i:03d}", "ean": f"40000000{i:05d}", "name": f"Product {i}"}
                for i in range(10)]
    products += [{"sku": f"AMB-{i}", "ean": None, "name": f"Twin {i}{c}"}
                 for i in range(4) for c in "ab"]
    products += [{"sku": f"FILL-{i:03d}", "ean": None, "name": f"Filler {i}"} for i in range(45)]
    product_ids = host.add_products(products)
    rows = [{"seller_sku": f"P-{i:03d}", "status": "Active", "price": 370.72,
             "currency": "EUR", "quantity": 1200, "product_id": f"40000000{i:05d}",
             "product_id_type": "EAN"} for i in range(10)]
    rows += [{"seller_sku": f"AMB-{i}", "status": "Inactive"} for i in range(4)]
    rows += [{"seller_sku": f"X-{i:03d}", "status": "Incomplete", "product_id": f"B0{i:08d}",
              "product_id_type": "ASIN"} for i in range(16)]
    de_offers = add_offers(host, de, rows)
    fr_offers = add_offers(host, fr, [{"seller_sku": "P-000", "status": "Active"}])
    return {"de": de, "fr": fr, "products": product_ids, "de_offers": de_offers,
            "fr_offers": fr_offers}


def test_bulk_link_and_its_errors(host: Any, shop: dict[str, Any]) -> None:
    client = host.app.test_client()
    page = client.get(OFFERS).get_data(as_text=True)
    token = _token(page)
    # The selection and the dialog: no picker at the top, no "Link to the chosen product".
    assert "xa-bulk-link-button" in page and "Link selected to product" in page
    assert "Link to the chosen product" not in page and "xa-bulk-product" not in page
    json_headers = {"Accept": "application/json"}
    chosen = [str(o) for o in shop["de_offers"][20:23]]
    # No product: said so, nothing linked (JSON for the dialog, a flash without script).
    response = client.post(OFFERS + "link/", headers=json_headers, data={
        "csrf_token": token, "offer_id": chosen, "product_id": ""})
    assert response.status_code == 400
    assert "Choose a product first" in response.get_json()["error"]
    response = client.post(OFFERS + "link/", data={
        "csrf_token": token, "offer_id": chosen, "product_id": ""}, follow_redirects=True)
    assert "Choose a product first" in response.get_data(as_text=True)
    # A product that is gone: a clear error, nothing linked.
    response = client.post(OFFERS + "link/", headers=json_headers, data={
        "csrf_token": token, "offer_id": chosen, "product_id": "987654"})
    assert response.status_code == 400
    assert "does not exist" in response.get_json()["error"]
    assert links(host) == {}
    response = client.post(OFFERS + "link/", headers=json_headers, data={
        "csrf_token": token, "offer_id": chosen, "product_id": str(shop["products"][3])})
    assert response.status_code == 200 and response.get_json() == {"linked": 3}
    assert {o: p for o, (p, _m) in links(host).items()} == {
        int(o): shop["products"][3] for o in chosen}
    assert "Linked 3 offers." in client.get(OFFERS).get_data(as_text=True)
    # An open redirect through the form's return URL is refused.
    response = client.post(OFFERS + "unlink/", data={
        "csrf_token": token, "offer_id": chosen[0], "url": "https://evil.example/"})
    assert response.headers["Location"].startswith(("/", "http://localhost/"))
    assert "evil" not in response.headers["Location"]


def test_product_picker_pages_counts_and_puts_same_key_first(host: Any,
                                                             shop: dict[str, Any]) -> None:
    client = host.app.test_client()
    url = "/xsale-amazon/products/search"
    first = client.get(url, query_string={"q": "", "page": 1, "limit": 20}).get_json()
    assert len(first["results"]) == 20 and first["more"] is True
    assert first["total"] == 63
    seen = [r["id"] for r in first["results"]]
    for page in (2, 3, 4):
        data = client.get(url, query_string={"page": page, "limit": 20}).get_json()
        seen += [r["id"] for r in data["results"]]
        assert data["more"] is (page < 4)
    assert len(seen) == len(set(seen)) == 63
    # Same SKU first, then same EAN, marked; the rest after them.
    offer = shop["de_offers"][7]  # SKU P-007, EAN 4000000000007
    data = client.get(url, query_string={"offer_id": offer, "limit": 5}).get_json()
    assert data["results"][0]["text"].startswith("P-007") and data["results"][0]["match"] == "sku"
    assert all(r["match"] is None for r in data["results"][1:])
    with host.app.app_context():
        product = host.db.session.get(host.Product, shop["products"][7])
        product.sku = "RENAMED"  # only the EAN is left in common
        host.db.session.commit()
    data = client.get(url, query_string={"offer_id": offer, "limit": 5}).get_json()
    assert data["results"][0]["text"].startswith("RENAMED")
    assert data["results"][0]["match"] == "ean"
    # A search still narrows; nothing found is an empty page, not an error.
    assert client.get(url, query_string={"q": "zzz-nothing"}).get_json() == {
        "results": [], "more": False, "total": 0, "total_label": "0"}


def _autolink(client: Any, token: str, **form: Any) -> str:
    response = client.post(OFFERS + "autolink/", data={"csrf_token": token, **form},
                           follow_redirects=True)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_autolink_everything_the_filter_shows_beyond_the_page(host: Any,
                                                               shop: dict[str, Any]) -> None:
    client = host.app.test_client()
    arg = _filter_arg(host, "integration")
    # Page size 20 of 30 unlinked DE offers: the filter scope is all 30, not the page.
    page = client.get(OFFERS, query_string={f"flt0_{arg}": shop["de"], "page_size": 20})
    text = page.get_data(as_text=True)
    assert "All 30 offers the current view shows" in text
    scope = re.search(r'name="scope" value="([^"]+)"', text).group(1)
    summary = _autolink(client, _token(text), by="sku", target="filter",
                        scope=scope.replace("&#34;", '"'))
    alerts = re.findall(r"alert-(?:success|info|danger)[^>]*>(.*?)<\/div>", summary, re.S)
    assert ("Auto-link by SKU checked 30 offers: 10 linked, 4 ambiguous, 16 without a "
            "matching product, 0 without SKU to compare, 0 already linked.") in summary, alerts
    assert len(links(host)) == 10
    assert shop["fr_offers"][0] not in links(host)  # other integration untouched
    review = re.search(r'class="alert-link xa-review-ambiguous" href="([^"]+)"', summary)
    assert review and "Review the 4 ambiguous offers" in summary
    listed = client.get(review.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert sorted(re.findall(r">\s*(AMB-\d)\s*<", listed)) == [f"AMB-{i}" for i in range(4)]
    # By EAN over the whole integration: the rest have no EAN to compare.
    summary = _autolink(client, _token(text), by="ean", target="integration",
                        integration_id=str(shop["de"]))
    assert ("checked 30 offers: 0 linked, 0 ambiguous, 0 without a matching product, "
            "20 without EAN to compare, 10 already linked.") in summary


def test_large_autolink_runs_in_the_background_with_progress(host: Any,
                                                             shop: dict[str, Any]) -> None:
    from rq import SimpleWorker

    host.configure(AUTOLINK_INLINE_LIMIT=5, AUTOLINK_BATCH=7)
    client = host.app.test_client()
    token = _token(client.get(OFFERS).get_data(as_text=True))
    response = client.post(OFFERS + "autolink/", data={
        "csrf_token": token, "by": "sku", "target": "integration",
        "integration_id": str(shop["de"])})
    assert response.status_code == 302
    run_page = response.headers["Location"]
    run_id = int(re.search(r"/autolink/(\d+)/", run_page).group(1))
    assert links(host) == {}  # nothing yet: it waits for a worker
    status = client.get(f"/xsale-amazon/autolink/{run_id}.json").get_json()
    assert status["active"] is True and status["status"] == "queued"
    queued = client.get(run_page).get_data(as_text=True)
    assert 'data-active="true"' in queued
    queue = host.state.queue
    job = queue.fetch_job(queue.job_ids[0])
    assert job.args == (run_id,)  # ids only
    worker = SimpleWorker([queue], connection=queue.connection, job_class=queue.job_class)
    deadline = time.monotonic() + 60
    worker.work(burst=True, logging_level="WARNING")
    assert time.monotonic() < deadline
    status = client.get(f"/xsale-amazon/autolink/{run_id}.json").get_json()
    assert (status["status"], status["percent"], status["done"], status["total"]) == (
        "succeeded", 100, 30, 30)
    assert status["linked"] + status["ambiguous"] + status["no_match"] + status["no_key"] + \
        status["already_linked"] == 30
    assert (status["linked"], status["ambiguous"], status["no_match"]) == (10, 4, 16)
    done = client.get(run_page).get_data(as_text=True)
    assert "checked 30 offers: 10 linked, 4 ambiguous, 16 without a matching product" in done
    assert "Review the 4 ambiguous offers" in done
    assert len(links(host)) == 10


def test_search_in_one_view_points_to_matches_in_the_others(host: Any,
                                                            shop: dict[str, Any]) -> None:
    client = host.app.test_client()
    token = _token(client.get(OFFERS).get_data(as_text=True))
    client.post(OFFERS + "link/", data={"csrf_token": token, "offer_id": shop["de_offers"][2],
                                        "product_id": str(shop["products"][2])})
    page = client.get(OFFERS, query_string={"search": "P-002"}).get_data(as_text=True)
    assert "No offers without a linked product match “P-002”." in page
    assert "1 match among linked offers" in page and "1 match among all offers" in page
    href = re.search(r'href="([^"]+)" id="xa-elsewhere-linked"', page).group(1)
    assert "view=linked" in href and "search=P-002" in href
    linked = client.get(href.replace("&amp;", "&")).get_data(as_text=True)
    assert re.search(r">\s*P-002\s*<", linked)
    # The other way round: an unlinked offer searched among the linked ones.
    page = client.get(OFFERS, query_string={"view": "linked", "search": "X-001"}).get_data(
        as_text=True)
    assert "No linked offers match “X-001”." in page
    assert "1 match among offers without a linked product" in page
    # Something that exists nowhere: no hint, the plain empty message.
    nothing = client.get(OFFERS, query_string={"search": "NOPE-NOPE"}).get_data(as_text=True)
    assert "xa-elsewhere" not in nothing and "No offers match." in nothing


def test_polish_workspace_translates_and_formats(host: Any, shop: dict[str, Any]) -> None:
    from flask_babel import Babel

    selected = {"locale": "pl"}
    Babel(host.app, locale_selector=lambda: selected["locale"])
    client = host.app.test_client()
    page = client.get(OFFERS, query_string={"view": "all", "page_size": 50}).get_data(
        as_text=True)
    assert "20 na stronę" in page and "rzeczy" not in page
    assert "370,72\xa0€" in page  # Babel: Polish decimal comma, euro after the amount
    assert "1\xa0200" in page  # quantity grouped the Polish way
    cells = re.findall(r'<td class="col-status">\s*([^<]*?)\s*</td>', page)
    assert set(cells) == {"Aktywna", "Nieaktywna", "Niekompletna"}
    groups = json.loads(html.unescape(
        re.search(r'id="filter-groups-data" class="d-none">(.*?)</div>', page).group(1)))
    assert groups["Rynek"][0]["options"] == [["DE", "DE — Niemcy (amazon.de)"],
                                             ["FR", "FR — Francja (amazon.fr)"]]
    assert [o[1] for o in groups["Status"][0]["options"]] == ["Aktywna", "Nieaktywna",
                                                               "Niekompletna"]
    assert "Nie znaleziono pasujących wyników" in page  # the picker's "No matches found"
    assert page.count("select2.css") == 1
    details = client.get(OFFERS + f"details/?id={shop['de_offers'][0]}").get_data(as_text=True)
    assert "Aktywna" in details and "370,72\xa0€" in details
    selected["locale"] = "en"
    english = client.get(OFFERS, query_string={"view": "all"}).get_data(as_text=True)
    assert "€370.72" in english and "DE \\u2014 Germany (amazon.de)" in english


def test_workspace_counts_add_up_on_every_database(host: Any, shop: dict[str, Any]) -> None:
    """Auto-link by ASIN over offers without ASIN: all of them are "no key", none lost."""
    m = host.models
    with host.app.app_context():
        from xsale_amazon_plugin.linking.autolink_job import AutoLinkRequest, start_autolink
        from xsale_amazon_plugin.linking.offer_scope import OfferScope

        outcome = start_autolink("asin", AutoLinkRequest.for_scope(
            OfferScope(filters=(("integration", str(shop["de"])),))))
        result = outcome.result
        total = host.db.session.execute(sa.select(sa.func.count()).select_from(
            m.AmazonOffer).where(m.AmazonOffer.integration_id == shop["de"])).scalar_one()
    assert result.total == total == 30
    assert (result.linked, result.no_key) == (0, 30)


def _english_fragments() -> list[str]:
    """Literal pieces of plugin msgids whose Polish differs, long enough not to be names."""
    from pathlib import Path

    from babel.messages.pofile import read_po

    po = (Path(__file__).resolve().parent.parent / "xsale_amazon_plugin" / "translations"
          / "pl" / "LC_MESSAGES" / "xsale_amazon.po")
    with po.open("rb") as f:
        catalog = read_po(f, locale="pl")
    out = set()
    for msg in catalog:
        ids = [msg.id] if isinstance(msg.id, str) else list(msg.id)
        strings = [msg.string] if isinstance(msg.string, str) else list(msg.string)
        for text in ids:
            if not text or text in strings:
                continue
            for piece in re.split(r"%\(\w+\)s|[“”\"']", text):
                piece = piece.strip(" .,:;()…—-")
                # Some translations keep Amazon's English term in brackets on purpose.
                if len(piece) >= 10 and " " in piece and not any(piece in t for t in strings):
                    out.add(piece)
    return sorted(out)


def test_offers_workspace_in_polish_has_no_english_plugin_text(host: Any,
                                                               shop: dict[str, Any]) -> None:
    """Every page and dialog of the workspace, rendered in Polish: no plugin msgid left."""
    from flask_babel import Babel
    from rq import SimpleWorker

    Babel(host.app, locale_selector=lambda: "pl")
    host.configure(AUTOLINK_INLINE_LIMIT=5)
    client = host.app.test_client()
    token = _token(client.get(OFFERS).get_data(as_text=True))
    client.post(OFFERS + "link/", data={"csrf_token": token, "offer_id": shop["de_offers"][2],
                                        "product_id": str(shop["products"][2])})
    response = client.post(OFFERS + "autolink/", data={
        "csrf_token": token, "by": "sku", "target": "integration",
        "integration_id": str(shop["de"])})
    run_page = response.headers["Location"]
    queued = client.get(run_page).get_data(as_text=True)
    queue = host.state.queue
    SimpleWorker([queue], connection=queue.connection,
                 job_class=queue.job_class).work(burst=True, logging_level="WARNING")
    pages = {
        "unlinked": client.get(OFFERS).get_data(as_text=True),
        "linked": client.get(OFFERS + "?view=linked").get_data(as_text=True),
        "all": client.get(OFFERS + "?view=all&page_size=100").get_data(as_text=True),
        "search elsewhere": client.get(OFFERS + "?search=P-002").get_data(as_text=True),
        "nothing found": client.get(OFFERS + "?search=NOPE").get_data(as_text=True),
        "details": client.get(OFFERS + f"details/?id={shop['de_offers'][0]}").get_data(
            as_text=True),
        "auto-link queued": queued,
        "auto-link done": client.get(run_page).get_data(as_text=True),
    }
    fragments = _english_fragments()
    assert len(fragments) > 50
    left = {name: [f for f in fragments if f in html.unescape(page)]
            for name, page in pages.items()}
    assert not any(left.values()), left
    assert "Automatyczne wiązanie po SKU sprawdziło oferty: 30" in html.unescape(
        pages["auto-link done"])
    assert "1 wynik wśród ofert powiązanych" in html.unescape(pages["search elsewhere"])


def test_capped_counts_follow_the_locale(host: Any) -> None:
    from flask_babel import Babel

    from xsale_amazon_plugin.admin.offers import COUNT_CAP, CappedCount
    from xsale_amazon_plugin.formatting import format_count

    selected = {"locale": "pl"}
    Babel(host.app, locale_selector=lambda: selected["locale"])
    with host.app.test_request_context("/"):
        assert format_count(CappedCount(COUNT_CAP + 1)) == "10\xa0000+"
        assert format_count(1234567) == "1\xa0234\xa0567"
    selected["locale"] = "en"
    with host.app.test_request_context("/"):
        assert format_count(CappedCount(COUNT_CAP + 1)) == "10,000+"


def test_autolink_run_whose_worker_died_says_so(host: Any, shop: dict[str, Any]) -> None:
    """A background run whose worker stopped reporting: the page tells the operator what to do,
    and links made so far stay."""
    from datetime import timedelta

    from xsale_amazon_plugin.timeutil import utcnow

    m = host.models
    with host.app.app_context():
        run = m.AutoLinkRun(key="sku", request={"scope": {"view": "all"}}, status="running",
                            offers_total=30, offers_done=10, count_linked=4,
                            started_at=utcnow() - timedelta(hours=1),
                            heartbeat_at=utcnow() - timedelta(minutes=30))
        host.db.session.add(run)
        host.db.session.commit()
        run_id = run.id
    client = host.app.test_client()
    page = client.get(f"{OFFERS}autolink/{run_id}/").get_data(as_text=True)
    assert "The worker stopped reporting progress" in page
    assert 'aria-valuenow="33"' in page
    status = client.get(f"/xsale-amazon/autolink/{run_id}.json").get_json()
    assert (status["active"], status["percent"], status["linked"]) == (True, 33, 4)
    assert client.get(f"{OFFERS}autolink/{2**40}/").status_code == 404
    assert client.get("/xsale-amazon/autolink/999999.json").status_code == 404


def test_autolink_with_hostile_scopes_never_fails(host: Any, shop: dict[str, Any]) -> None:
    """Forged scope documents and id lists: no 500, no auto-link outside what they can mean."""
    client = host.app.test_client()
    token = _token(client.get(OFFERS).get_data(as_text=True))
    scopes = [
        "not json", "[]", "5", '{"filters": 5}', '{"filters": [[1, 2, 3], "x", null]}',
        '{"filters": [["status", "\\u0000Active"]]}', '{"filters": [["integration", "1e99"]]}',
        json.dumps({"search": "a " * 5000}), json.dumps({"search": "%_\\\\" * 300}),
        json.dumps({"filters": [["integration", str(i)] for i in range(500)]}),
        json.dumps({"view": "<script>", "filters": [["ambiguous", "nope"]]}),
    ]
    for scope in scopes:
        response = client.post(OFFERS + "autolink/", data={
            "csrf_token": token, "by": "sku", "target": "filter", "scope": scope})
        assert response.status_code == 302, scope[:80]
    many = [str(i) for i in range(60_000)] + ["x", "-1", str(2**70)]
    response = client.post(OFFERS + "autolink/", data={
        "csrf_token": token, "by": "ean", "target": "selected", "offer_id": many})
    assert response.status_code == 302
    for bad in ({"by": "nope"}, {"by": "sku", "target": "integration", "integration_id": "x"},
                {"by": "sku", "target": "selected"}):
        response = client.post(OFFERS + "autolink/", data={"csrf_token": token, **bad},
                               follow_redirects=True)
        assert response.status_code == 200
        assert "alert-danger" in response.get_data(as_text=True), bad
