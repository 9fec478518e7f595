"""The mapping assistant's small wording gaps, in English and Polish, through the test client:
plural forms of the CSV apply button, conflicts naming the linked product, the offers list
before any import."""

from __future__ import annotations

import io
from typing import Any

import pytest

from .hostapp import make_host
from .test_linking import add_offers

WORDING = {
    "en": {
        "one": "Link 1 offer<", "few": "Link 2 offers<", "many": "Link 5 offers<",
        "no_offers": "No offers have been imported yet. Open an integration in",
        "import": "Import offers",
        "all_linked": "Every offer here is linked to a product.",
    },
    "pl": {
        "one": "Powiąż 1 ofertę<", "few": "Powiąż 2 oferty<", "many": "Powiąż 5 ofert<",
        "no_offers": "Nie zaimportowano jeszcze żadnych ofert. Otwórz integrację w",
        "import": "Importuj oferty",
        "all_linked": "Wszystkie oferty są powiązane z towarami.",
    },
}


def _token(client: Any) -> str:
    page = client.get("/admin/xsale-amazon/mapping-csv/").get_data(as_text=True)
    return page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]


def _preview(client: Any, token: str, text: str, integration: int) -> str:
    response = client.post("/admin/xsale-amazon/mapping-csv/preview/", data={
        "by": "sku", "integration": str(integration), "csrf_token": token,
        "file": (io.BytesIO(text.encode()), "map.csv")}, content_type="multipart/form-data")
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.parametrize("lang", ["en", "pl"])
def test_assistant_wording(tmp_path: Any, redis_conn: Any, lang: str) -> None:
    words = WORDING[lang]
    host = make_host(f"sqlite:///{tmp_path}/h.sqlite", config={"BABEL_DEFAULT_LOCALE": lang})
    client = host.app.test_client()
    # No offer imported yet: the offers list says so and points to Import offers.
    empty = client.get("/admin/xsale-amazon/offers/").get_data(as_text=True)
    assert words["no_offers"] in empty and words["import"] in empty
    assert 'href="/admin/xsale-amazon/integrations/"' in empty
    assert words["all_linked"] not in empty

    integ = host.add_integration()
    products = host.add_products([{"sku": f"P-{i}", "name": f"Mug {i}"} for i in range(6)]
                                 + [{"sku": None, "name": None}])
    offers = add_offers(host, integ, [{"seller_sku": f"S-{i}", "name": f"s{i}"}
                                      for i in range(7)])
    from xsale_amazon_plugin.linking.links import link_offers

    with host.app.test_request_context():
        link_offers([offers[5]], products[5])  # S-5: linked to "P-5 · Mug 5"
        link_offers([offers[6]], products[6])  # S-6: to a product without SKU and name
    token = _token(client)
    for count, form in ((1, "one"), (2, "few"), (5, "many")):
        text = "seller_sku,product\n" + "".join(f"S-{i},P-{i}\n" for i in range(count))
        html = _preview(client, token, text, integ)
        assert words[form] in html, (form, html.split('id="xa-import-apply"')[1][:200])
    conflict = _preview(client, token, "seller_sku,product\nS-5,P-0\nS-6,P-1\n", integ)
    assert "P-5 · Mug 5" in conflict
    assert f"ID {products[6]}" in conflict
    # Offers exist: an empty unlinked view is "every offer is linked" again.
    with host.app.test_request_context():
        link_offers(offers[:5], products[0])
    linked = client.get("/admin/xsale-amazon/offers/").get_data(as_text=True)
    assert words["all_linked"] in linked and words["no_offers"] not in linked
    with host.app.app_context():
        host.db.session.remove()
        for engine in host.db.engines.values():
            engine.dispose()


def test_conflicts_name_the_linked_product_on_every_database(host: Any) -> None:
    from xsale_amazon_plugin.linking.links import link_offers
    from xsale_amazon_plugin.linking.mapping_csv import plan_import

    integ = host.add_integration()
    products = host.add_products([{"sku": "P-1", "name": "Mug"}, {"sku": "P-2", "name": None}])
    offers = add_offers(host, integ, [{"seller_sku": "S-1"}, {"seller_sku": "S-2"}])
    with host.app.test_request_context():
        link_offers([offers[0]], products[1])
        link_offers([offers[1]], products[0])
        plan = plan_import("seller_sku,product\nS-1,P-1\nS-2,P-2\n", by="sku")
    messages = {x.seller_sku: x.message for x in plan.lines}
    assert [x.outcome for x in plan.lines] == ["conflict", "conflict"]
    assert messages["S-1"].endswith("(P-2).")  # no name: the SKU alone
    assert messages["S-2"].endswith("(P-1 · Mug).")
