"""Linking offers to host products: manual, bulk, unlink, auto-link, signals, admin actions."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from xsale_amazon_plugin.linking.links import autolink, link_offers, unlink_offers
from xsale_amazon_plugin.signals import offers_linked, offers_unlinked


def add_offers(host, integration_id, rows):
    m = host.models
    with host.app.app_context():
        objs = [m.AmazonOffer(integration_id=integration_id, **r) for r in rows]
        host.db.session.add_all(objs)
        host.db.session.commit()
        return [o.id for o in objs]


def links(host):
    m = host.models
    with host.app.app_context():
        rows = host.db.session.execute(sa.select(
            m.OfferProductLink.offer_id, m.OfferProductLink.product_id, m.OfferProductLink.method
        )).all()
    return {r[0]: (r[1], r[2]) for r in rows}


@pytest.fixture
def catalogue(host):
    integ = host.add_integration("DE", "FBM")
    products = host.add_products([
        {"sku": "SKU-1", "ean": "4006381333931", "name": "Mug", "asin": "B000000001"},
        {"sku": "sku-1", "ean": "4006381333948", "name": "Mug lower", "asin": None},
        {"sku": "SKU-2", "ean": "4006381333955", "name": "Plate", "asin": "B000000002"},
        {"sku": "DUP", "ean": "5901234123457", "name": "Dup A", "asin": None},
        {"sku": "DUP", "ean": "5901234123457", "name": "Dup B", "asin": None},
    ])
    offers = add_offers(host, integ, [
        {"seller_sku": "SKU-1", "asin": "B000000001", "product_id": "4006381333931",
         "product_id_type": "EAN"},
        {"seller_sku": "Sku-1", "asin": "B0NOMATCH1"},
        {"seller_sku": "SKU-2", "asin": "B000000002", "product_id": "4006381333955",
         "product_id_type": "EAN"},
        {"seller_sku": "DUP", "product_id": "5901234123457", "product_id_type": "EAN"},
        {"seller_sku": "NOPE"},
    ])
    return integ, products, offers


def test_autolink_by_sku_is_exact_and_reports_ambiguity(host, catalogue):
    integ, products, offers = catalogue
    received = []
    offers_linked.connect(lambda sender, **kw: received.append(kw), weak=False)
    try:
        with host.app.app_context():
            result = autolink("sku", integration_id=integ, user="tester")
    finally:
        offers_linked.receivers.clear()
    assert (result.linked, result.ambiguous, result.no_match, result.already_linked) == (2, 1, 2, 0)
    assert result.ambiguous_examples == ["DUP"]
    got = links(host)
    assert got == {offers[0]: (products[0], "sku"), offers[2]: (products[2], "sku")}
    assert sorted(received[0]["offer_ids"]) == sorted([offers[0], offers[2]])
    with host.app.app_context():
        again = autolink("sku", integration_id=integ)
    assert again.linked == 0 and again.already_linked == 2


def test_autolink_counts_every_ambiguous_offer_and_names_the_first_ten(host):
    integ = host.add_integration("DE", "FBM")
    host.add_products([{"sku": f"TWIN-{i:02d}", "name": f"Twin {i}{c}"}
                       for i in range(13) for c in "ab"] + [{"sku": "ONE", "name": "One"}])
    add_offers(host, integ, [{"seller_sku": f"TWIN-{i:02d}"} for i in reversed(range(13))]
               + [{"seller_sku": "ONE"}, {"seller_sku": "NONE"}])
    with host.app.app_context():
        result = autolink("sku", integration_id=integ)
    assert (result.linked, result.ambiguous, result.no_match, result.total) == (1, 13, 1, 15)
    assert result.ambiguous_examples == [f"TWIN-{i:02d}" for i in range(10)]
    with host.app.app_context():
        none = autolink("sku", integration_id=integ)
    assert (none.linked, none.ambiguous, none.already_linked) == (0, 13, 1)
    assert len(none.ambiguous_examples) == 10


def test_autolink_by_ean_and_asin(host, catalogue):
    integ, products, offers = catalogue
    with host.app.app_context():
        by_ean = autolink("ean", integration_id=integ)
        assert (by_ean.linked, by_ean.ambiguous) == (2, 1)
        unlink_offers(offers)
        by_asin = autolink("asin", integration_id=integ)
        assert by_asin.linked == 2
    assert links(host)[offers[0]] == (products[0], "asin")


def test_autolink_skips_removed_offers_and_other_integrations(host, catalogue):
    integ, products, offers = catalogue
    other = host.add_integration("FR", "FBM")
    other_offers = add_offers(host, other, [{"seller_sku": "SKU-2"}])
    m = host.models
    with host.app.app_context():
        host.db.session.get(m.AmazonOffer, offers[0]).removed_at = sa.func.now()
        host.db.session.commit()
        result = autolink("sku", integration_id=integ)
    assert result.linked == 1
    assert offers[0] not in links(host) and other_offers[0] not in links(host)


def test_manual_link_relink_unlink_and_signals(host, catalogue):
    integ, products, offers = catalogue
    seen = {"linked": [], "unlinked": []}
    offers_linked.connect(lambda s, **kw: seen["linked"].append(kw), weak=False)
    offers_unlinked.connect(lambda s, **kw: seen["unlinked"].append(kw), weak=False)
    try:
        with host.app.app_context():
            assert link_offers([offers[1], offers[4]], products[1], by="anna") == 2
            assert link_offers([offers[1]], products[3]) == 1  # re-link moves it
            with pytest.raises(LookupError):
                link_offers([offers[1]], 999999 if isinstance(products[0], int) else "nope")
            with pytest.raises(ValueError):
                link_offers(["x"], products[0])
            assert unlink_offers([offers[4]]) == 1
    finally:
        offers_linked.receivers.clear()
        offers_unlinked.receivers.clear()
    assert links(host) == {offers[1]: (products[3], "manual")}
    assert seen["linked"][0]["product_id"] == products[1]
    assert seen["unlinked"][0]["offer_ids"] == [offers[4]]


def _token(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    return match.group(1)


def test_admin_link_unlink_and_bulk_actions(host, catalogue):
    integ, products, offers = catalogue
    client = host.app.test_client()
    page = client.get("/admin/xsale-amazon/offers/").get_data(as_text=True)
    assert "Offers without a linked product" in page
    for sku in ("SKU-1", "Sku-1", "NOPE"):
        assert sku in page
    token = _token(page)
    response = client.post("/admin/xsale-amazon/offers/link/", data={
        "csrf_token": token, "offer_id": str(offers[4]), "product_id": str(products[2]),
        "url": "/admin/xsale-amazon/offers/"})
    assert response.status_code == 302
    assert links(host)[offers[4]][0] == products[2]
    # Forged token: refused, nothing changes.
    client.post("/admin/xsale-amazon/offers/unlink/", data={
        "csrf_token": "forged", "offer_id": str(offers[4])})
    assert offers[4] in links(host)
    client.post("/admin/xsale-amazon/offers/unlink/", data={
        "csrf_token": token, "offer_id": str(offers[4])})
    assert offers[4] not in links(host)
    # Bulk: link the selected to one product, then auto-link the selected by SKU.
    client.post("/admin/xsale-amazon/offers/link/", data={
        "csrf_token": token, "offer_id": [str(offers[1]), str(offers[4])],
        "product_id": str(products[1]), "url": "/admin/xsale-amazon/offers/"})
    assert links(host)[offers[1]][0] == products[1] and links(host)[offers[4]][0] == products[1]
    response = client.post("/admin/xsale-amazon/offers/autolink/", data={
        "csrf_token": token, "by": "sku", "target": "selected",
        "offer_id": [str(o) for o in offers], "url": "/admin/xsale-amazon/offers/"},
        follow_redirects=True)
    text = response.get_data(as_text=True)
    assert ("checked 5 offers: 2 linked, 1 ambiguous, 0 without a matching product, "
            "0 without SKU to compare, 2 already linked") in text
    linked_page = client.get("/admin/xsale-amazon/offers/?view=linked").get_data(as_text=True)
    assert "Mug lower" in linked_page
    unlinked = client.get("/admin/xsale-amazon/offers/").get_data(as_text=True)
    assert "DUP" in unlinked and "SKU-2" not in unlinked


def test_product_search_endpoint(host, catalogue):
    client = host.app.test_client()
    found = client.get("/xsale-amazon/products/search?q=plat").get_json()["results"]
    assert [r["text"].split(" · ")[0] for r in found] == ["SKU-2"]
    by_ean = client.get("/xsale-amazon/products/search?q=59012341234").get_json()["results"]
    assert len(by_ean) == 2
    wild = client.get("/xsale-amazon/products/search?q=%25").get_json()["results"]
    assert wild == []
