"""Hostile input to every plugin view and endpoint: validation errors, never a 500.

The host runs with ``PROPAGATE_EXCEPTIONS=False`` and ``FLASK_ADMIN_RAISE_ON_VIEW_EXCEPTION=False``
so an unhandled exception shows up as the 500 a user would get.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from .hostapp import Host, make_host
from .test_security import (
    POST_PAYLOADS,
    build_url,
    flashes,
    plugin_rules,
    seed,
    snapshot,
    token_of,
)

BAD_IDS = ("abc", "-1", "0", "999999999999999999999", "-999999999999999999999", "1;DROP",
           "1 OR 1=1", "", " ", "1.5", "1e3", "0x10", "ünïcødé-ид-标识", "%00", "\x00",
           "x" * 10_000, "9" * 400)
ID_FIELDS = ("id", "rowid", "offer_id", "product_id", "list_form_pk", "integration")
LONG = "x" * 10_000


@pytest.fixture
def strict_host(db_url: str, redis_conn: Any) -> Iterator[Host]:
    h = make_host(db_url, config={"PROPAGATE_EXCEPTIONS": False,
                                  "FLASK_ADMIN_RAISE_ON_VIEW_EXCEPTION": False})
    yield h
    with h.app.app_context():
        h.db.session.remove()
        for engine in h.db.engines.values():
            engine.dispose()


def _no_500(response: Any, what: str) -> None:
    assert response.status_code < 500, f"{what} -> {response.status_code}"
    assert response.status_code in (200, 302, 400, 404, 405), f"{what} -> {response.status_code}"


def _raw_url(rule: Any, value: str) -> str:
    """The rule's URL with every path argument replaced by ``value`` (not converter-checked)."""
    return re.sub(r"<[^>]+>", quote(value, safe="") or "%20", rule.rule)


def test_bad_ids_in_every_url_and_form(strict_host):
    host = strict_host
    ids = seed(host)
    client = host.app.test_client()
    token = token_of(client.get("/admin/xsale-amazon/offers/").get_data(as_text=True))
    requests = 0
    for rule in plugin_rules(host.app):
        name = rule.endpoint.rsplit(".", 1)[1]
        for bad in BAD_IDS:
            quoted = quote(bad, safe="")
            if rule.arguments:
                url = _raw_url(rule, bad)
            elif name in ("edit_view", "details_view"):
                url = build_url(host, rule, ids).split("?")[0] + f"?id={quoted}"
            else:
                url = build_url(host, rule, ids)
            if "GET" in rule.methods:
                _no_500(client.get(url), f"GET {url[:120]}")
                requests += 1
            if "POST" in rule.methods:
                for payload in POST_PAYLOADS[rule.endpoint](ids):
                    data = {k: ([bad] if isinstance(v, list) else bad) if k in ID_FIELDS else v
                            for k, v in payload.items()}
                    response = client.post(url, data=dict(data, csrf_token=token))
                    _no_500(response, f"POST {url[:120]} {str(data)[:200]}")
                    requests += 1
    assert requests > 500
    flashes(client)


def _form(**overrides: str) -> dict[str, str]:
    data = {"name": "Amazon PL", "marketplace": "PL", "account_type": "FBM",
            "seller_id": "A2SELLER", "lwa_client_id": "amzn1.application-oa2-client.x",
            "new_lwa_client_secret": "s3cret", "new_refresh_token": "Atzr|r", "active": "y"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


INVALID_FORMS = {
    "missing_name": {"name": None},
    "empty_name": {"name": ""},
    "unknown_marketplace": {"marketplace": "XX"},
    "marketplace_injection": {"marketplace": "DE' OR '1'='1"},
    "unknown_account_type": {"account_type": "FBX"},
    "missing_marketplace": {"marketplace": None},
    "long_name": {"name": LONG},
    "long_seller_id": {"seller_id": LONG},
    "long_client_id": {"lwa_client_id": LONG},
    "long_secret": {"new_lwa_client_secret": LONG},
    "long_refresh_token": {"new_refresh_token": LONG},
}


@pytest.mark.parametrize("case", sorted(INVALID_FORMS))
def test_integration_create_and_edit_reject_invalid_input(strict_host, case):
    host = strict_host
    integ = host.add_integration("DE", "FBM", name="Original")
    client = host.app.test_client()
    before = snapshot(host)
    for url in ("/admin/xsale-amazon/integrations/new/",
                f"/admin/xsale-amazon/integrations/edit/?id={integ}"):
        page = client.get(url).get_data(as_text=True)
        data = dict(_form(**{k: v for k, v in INVALID_FORMS[case].items() if v is not None}),
                    csrf_token=token_of(page))
        for key, value in INVALID_FORMS[case].items():
            if value is None:
                data.pop(key, None)
        response = client.post(url, data=data)
        assert response.status_code == 200, f"{case} {url}: {response.status_code}"
        html = response.get_data(as_text=True)
        assert "is-invalid" in html or "has-error" in html or "invalid-feedback" in html, case
        if "secret" in case or "token" in case:
            assert LONG not in html  # a (rejected) secret is never echoed back
        assert snapshot(host) == before, f"{case}: something was saved"


def test_link_endpoint_with_bad_products_and_offer_ids(strict_host):
    host = strict_host
    ids = seed(host)
    m = host.models
    client = host.app.test_client()
    token = token_of(client.get("/admin/xsale-amazon/offers/").get_data(as_text=True))
    before = snapshot(host)
    offer = str(ids["offers"][2])
    cases = [
        {"offer_id": offer, "product_id": "987654"},  # no such product
        {"offer_id": offer, "product_id": ""},
        {"offer_id": "abc", "product_id": str(ids["products"][0])},
        {"offer_id": ["1", "x;DROP"], "product_id": str(ids["products"][0])},
        {"offer_id": "", "product_id": str(ids["products"][0])},
        {"product_id": str(ids["products"][0])},
        {"offer_id": offer},
    ]
    for data in cases:
        # Bulk link goes through the link dialog too (the "link" action is gone).
        for url in ("/admin/xsale-amazon/offers/link/",):
            body = dict(data, csrf_token=token, url="/admin/xsale-amazon/offers/")
            if url.endswith("action/"):
                body = dict(body, action="link", rowid=body.pop("offer_id", []))
            response = client.post(url, data=body)
            _no_500(response, f"{url} {str(data)[:100]}")
            assert response.status_code == 302
            messages = flashes(client)
            if url.endswith("action/") and not body.get("rowid"):
                assert messages, data  # nothing selected: "Linked 0 offers."
            else:
                assert any(c == "error" for c, _ in messages), (data, messages)
            assert snapshot(host) == before, data
    # 10,000 offer ids (two real ones among them): the real ones are linked, the rest ignored.
    many = [str(i) for i in range(10_000, 20_000)] + [offer, str(ids["offers"][1])]
    response = client.post("/admin/xsale-amazon/offers/link/", data={
        "csrf_token": token, "offer_id": many, "product_id": str(ids["products"][1])})
    _no_500(response, "10,000 offer ids")
    with host.app.app_context():
        linked = dict(host.db.session.execute(sa.select(
            m.OfferProductLink.offer_id, m.OfferProductLink.product_id)).all())
    assert linked[int(offer)] == ids["products"][1]
    assert linked[ids["offers"][1]] == ids["products"][1]
    response = client.post("/admin/xsale-amazon/offers/unlink/", data={
        "csrf_token": token, "offer_id": many})
    _no_500(response, "unlink 10,000 offer ids")


def test_link_with_a_product_id_that_cannot_be_one(strict_host):
    host = strict_host
    ids = seed(host)
    client = host.app.test_client()
    token = token_of(client.get("/admin/xsale-amazon/offers/").get_data(as_text=True))
    before = snapshot(host)
    for product_id in ("abc", "999999999999999999999", LONG, "1;DROP"):
        response = client.post("/admin/xsale-amazon/offers/link/", data={
            "csrf_token": token, "offer_id": str(ids["offers"][2]), "product_id": product_id})
        assert response.status_code == 302, product_id[:40]
        assert any(c == "error" for c, _ in flashes(client)), product_id[:40]
    assert snapshot(host) == before


def test_link_with_offer_id_beyond_bigint(strict_host):
    host = strict_host
    ids = seed(host)
    client = host.app.test_client()
    token = token_of(client.get("/admin/xsale-amazon/offers/").get_data(as_text=True))
    for url, extra in (("/admin/xsale-amazon/offers/link/",
                        {"product_id": str(ids["products"][0])}),
                       ("/admin/xsale-amazon/offers/unlink/", {}),
                       ("/admin/xsale-amazon/offers/action/", {"action": "unlink",
                                                               "rowid": "999999999999999999999"})):
        response = client.post(url, data=dict(extra, csrf_token=token,
                                              offer_id="999999999999999999999"))
        assert response.status_code == 302, url


QUERY_STRINGS = (
    "search=" + "x" * 100_000,
    "search=" + "a " * 5_000,
    "search=" + quote("%_\\'\";--") + "&page=2",
    "search=" + quote("=") + "&flt0_0=1",
    "search=name:" + "y" * 50_000,
    "page=-5", "page=99999999999999999999", "page=abc", "page_size=999999", "page_size=-1",
    "page_size=abc", "flt0_0=abc", "flt0_0=999999999999999999999", "flt0_0=-1", "flt1_0=XX",
    "flt9_9=1", "flt0_999=1", "fltx=1", "flt2_0=garbage", "flt2_0=2021-01-01+to+garbage",
    "sort=999", "sort=-1", "sort=abc", "desc=abc", "view=%3Cscript%3E", "view=" + "v" * 10_000,
    "id=abc", "url=javascript:alert(1)", "search=%00", "search=a%00b+c", "flt1_0=%00",
    "flt2_0=%00", "flt3_0=%00", "flt4_0=%00", "search=" + quote("ünïcødé 标识"),
)


@pytest.mark.parametrize("view", ["integrations", "offers", "runs"])
def test_list_query_strings(strict_host, view):
    host = strict_host
    seed(host)
    client = host.app.test_client()
    for query in QUERY_STRINGS:
        url = f"/admin/xsale-amazon/{view}/?{query}"
        response = client.get(url)
        _no_500(response, url[:120])
        assert response.status_code == 200, url[:120]
    for query in ("q=" + "x" * 100_000, "q=%00", "q=%25%5F", "limit=abc", "limit=-5",
                  "limit=999999999999999999999", "q=" + quote("' OR 1=1 --")):
        response = client.get(f"/xsale-amazon/products/search?{query}")
        assert response.status_code == 200 and response.mimetype == "application/json", query
        assert len(response.get_json()["results"]) <= 50
    for run in ("0", "-1", "abc", "999999999999999999999", "1.json"):
        _no_500(client.get(f"/xsale-amazon/runs/{run}.json"), run)
