"""Every registered filter of every plugin list view answers (and filters), on every database.

The offers view is tried in each of its three mapping views (unlinked / linked / all), with and
without a search; the integration-attribute filters (marketplace, account type) are checked to
return exactly the offers of the chosen value.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import url_for
from flask_admin.contrib.sqla import filters as sqla_filters
from flask_admin.model import filters as base_filters

from .test_linking import add_offers

LISTS = {
    "xsale_amazon_integration": "/admin/xsale-amazon/integrations/",
    "xsale_amazon_offer": "/admin/xsale-amazon/offers/",
    "xsale_amazon_run": "/admin/xsale-amazon/runs/",
}
OFFER_VIEWS = ("unlinked", "linked", "all")


@pytest.fixture
def workspace(host: Any) -> dict[str, Any]:
    de = host.add_integration("DE", "FBM", name="Shop DE")
    fr = host.add_integration("FR", "FBA", name="Shop FR")
    products = host.add_products([{"sku": "DE-1", "ean": "4006381333931", "name": "Mug"}])
    de_offers = add_offers(host, de, [
        {"seller_sku": "DE-1", "asin": "B000000001", "status": "Active", "price": 370.72,
         "currency": "EUR", "quantity": 3, "fulfillment_channel": "DEFAULT"},
        {"seller_sku": "DE-2", "asin": "B000000002", "status": "Inactive",
         "fulfillment_channel": "DEFAULT"},
    ])
    fr_offers = add_offers(host, fr, [
        {"seller_sku": "FR-1", "asin": "B000000003", "status": "Active",
         "fulfillment_channel": "AMAZON_EU"},
        {"seller_sku": "FR-2", "asin": "B000000004", "status": "Incomplete",
         "fulfillment_channel": "AMAZON_EU"},
    ])
    m = host.models
    with host.app.app_context():
        from xsale_amazon_plugin.linking.links import link_offers

        link_offers([de_offers[0], fr_offers[0]], products[0], by="tester")
        host.db.session.add(m.ImportRun(integration_id=de, status="succeeded", stage="done"))
        host.db.session.commit()
    return {"de": de, "fr": fr, "de_offers": de_offers, "fr_offers": fr_offers}


def _views(host: Any) -> dict[str, Any]:
    """Every list view of the plugin (Flask-Admin model views with the plugin's prefix)."""
    from flask_admin.model import BaseModelView

    admin = host.app.extensions["admin"][0]
    return {v.endpoint: v for v in admin._views
            if v.endpoint.startswith("xsale_amazon_") and isinstance(v, BaseModelView)}


def _value_for(flt: Any, options: list[tuple[Any, Any]] | None, workspace: dict[str, Any]) -> str:
    """A value the filter accepts (the first option, or one of the right type)."""
    if options:
        return str(options[0][0])
    if isinstance(flt, (base_filters.BaseBooleanFilter, sqla_filters.FilterEmpty)):
        return "1"
    if isinstance(flt, base_filters.BaseDateTimeBetweenFilter):
        return "2000-01-01 00:00:00 to 2100-01-01 00:00:00"
    if isinstance(flt, base_filters.BaseDateBetweenFilter):
        return "2000-01-01 to 2100-01-01"
    if isinstance(flt, base_filters.BaseDateTimeFilter):
        return "2000-01-01 00:00:00"
    if isinstance(flt, base_filters.BaseDateFilter):
        return "2000-01-01"
    if isinstance(flt, base_filters.BaseIntListFilter):
        return f"{workspace['de']},{workspace['fr']}"
    if isinstance(flt, (base_filters.BaseIntFilter, base_filters.BaseFloatFilter)):
        return str(workspace["de"])
    return "DE"


def _rows(page: str) -> list[str]:
    return re.findall(r'<td class="col-seller_sku">\s*([^<\s]+)\s*</td>', page)


def test_every_filter_of_every_list_view_answers(host: Any, workspace: dict[str, Any]) -> None:
    client = host.app.test_client()
    views = _views(host)
    assert set(LISTS) <= set(views)
    with host.app.test_request_context():
        urls = {endpoint: url_for(f"{endpoint}.index_view") for endpoint in views}
    assert {e: urls[e] for e in LISTS} == LISTS
    tried = 0
    for endpoint, url in urls.items():
        view = views[endpoint]
        if not view.column_filters:
            continue
        assert client.get(url).status_code == 200
        # Filters build their option lists per request (integrations change).
        with host.app.test_request_context(url):
            view._refresh_filters_cache()
            filters = list(enumerate(view._filters))
            options = {idx: flt.get_options(view) for idx, flt in filters}
            args = {idx: view.get_filter_arg(idx, flt) for idx, flt in filters}
        assert filters, endpoint
        variants = [{}]
        if endpoint == "xsale_amazon_offer":
            variants = [{"view": v, **s} for v in OFFER_VIEWS for s in ({}, {"search": "DE"})]
        for idx, flt in filters:
            value = _value_for(flt, options[idx], workspace)
            for extra in variants:
                query = {f"flt0_{args[idx]}": value, **extra}
                response = client.get(url, query_string=query)
                page = response.get_data(as_text=True)
                label = f"{endpoint} filter {flt.name!s} {flt.operation()!s}={value!r} {extra}"
                assert response.status_code == 200, label
                assert "Invalid Filter Value" not in page, label
                tried += 1
    assert tried > 40


@pytest.mark.parametrize("mapping_view", OFFER_VIEWS)
def test_integration_filters_select_the_right_offers(host: Any, workspace: dict[str, Any],
                                                     mapping_view: str) -> None:
    client = host.app.test_client()
    view = _views(host)["xsale_amazon_offer"]
    with host.app.test_request_context():
        view._refresh_filters_cache()
        by_name = {str(flt.name): (idx, flt) for idx, flt in enumerate(view._filters)}
    expected_all = {
        ("Marketplace", "FR"): {"FR-1", "FR-2"},
        ("Marketplace", "DE"): {"DE-1", "DE-2"},
        ("Account type", "FBA"): {"FR-1", "FR-2"},
        ("Account type", "FBM"): {"DE-1", "DE-2"},
    }
    linked = {"DE-1", "FR-1"}
    for (name, value), skus in expected_all.items():
        idx, flt = by_name[name]
        arg = view.get_filter_arg(idx, flt)
        for search in ("", "R-"):
            query = {f"flt0_{arg}": value, "view": mapping_view}
            if search:
                query["search"] = search
            response = client.get("/admin/xsale-amazon/offers/", query_string=query)
            assert response.status_code == 200, (name, value, mapping_view, search)
            want = set(skus)
            if mapping_view == "linked":
                want &= linked
            elif mapping_view == "unlinked":
                want -= linked
            if search:
                want = {s for s in want if s.startswith(search)}
            assert set(_rows(response.get_data(as_text=True))) == want, (name, value, search)


def test_ambiguous_filter_and_autolink_agree_on_keys_that_differ_in_case(host: Any) -> None:
    """SKUs are compared exactly (as on Amazon): "K-CASE" and "k-case" are two keys, each held
    by one product, so auto-link links both offers and the "Auto-link ambiguous by" filter
    lists neither, also on MariaDB, whose host column compares case-insensitively."""
    de = host.add_integration("DE", "FBM", name="Shop DE")
    host.add_products([
        {"sku": "K-CASE", "ean": None, "name": "Upper", "asin": None},
        {"sku": "k-case", "ean": None, "name": "Lower", "asin": None},
        {"sku": "K-TWIN", "ean": None, "name": "Twin a", "asin": None},
        {"sku": "K-TWIN", "ean": None, "name": "Twin b", "asin": None},
    ])
    add_offers(host, de, [{"seller_sku": "K-CASE"}, {"seller_sku": "k-case"},
                          {"seller_sku": "K-TWIN"}])
    view = _views(host)["xsale_amazon_offer"]
    with host.app.test_request_context():
        view._refresh_filters_cache()
        idx, flt = next((i, f) for i, f in enumerate(view._filters) if f.field == "ambiguous")
        arg = view.get_filter_arg(idx, flt)
    response = host.app.test_client().get("/admin/xsale-amazon/offers/",
                                          query_string={f"flt0_{arg}": "sku", "view": "all"})
    assert _rows(response.get_data(as_text=True)) == ["K-TWIN"]
    with host.app.app_context():
        from xsale_amazon_plugin.linking.links import autolink

        result = autolink("sku", integration_id=de)
    assert (result.linked, result.ambiguous, result.ambiguous_examples) == (2, 1, ["K-TWIN"])


def test_ambiguous_filter_selects_exactly_the_ambiguous_offers(host: Any) -> None:
    """"Auto-link ambiguous by" SKU / EAN / ASIN lists exactly the offers whose key is held by
    more than one product: not those matching one product or none, not offers without a key
    (an EAN must be a GTIN type), not empty product keys; in every mapping view and with a
    search."""
    de = host.add_integration("DE", "FBM", name="Shop DE")
    fr = host.add_integration("FR", "FBA", name="Shop FR")
    products = host.add_products([
        {"sku": "S-AMB", "ean": None, "name": "Twin a", "asin": None},
        {"sku": "S-AMB", "ean": None, "name": "Twin b", "asin": None},
        {"sku": "S-ONE", "ean": "4000000000024", "name": "Single", "asin": "B0SINGLE01"},
        {"sku": "", "ean": "4000000000017", "name": "EAN twin a", "asin": "B0AMBIGUO1"},
        {"sku": "", "ean": "4000000000017", "name": "EAN twin b", "asin": ""},
        {"sku": None, "ean": "", "name": "Blank a", "asin": "B0AMBIGUO1"},
        {"sku": None, "ean": "", "name": "Blank b", "asin": ""},
    ])
    gtin, asin_amb = "4000000000017", "B0AMBIGUO1"
    add_offers(host, de, [
        {"seller_sku": "S-AMB"},                                       # sku
        {"seller_sku": "S-ONE", "product_id": "4000000000024", "product_id_type": "EAN",
         "asin": "B0SINGLE01"},                                        # one product each
        {"seller_sku": "S-NONE", "product_id": "4000000000031", "product_id_type": "EAN",
         "asin": "B0NOTHING1"},                                        # no product
        {"seller_sku": "E-EAN", "product_id": gtin, "product_id_type": "EAN"},   # ean
        {"seller_sku": "E-ISBN", "product_id": gtin, "product_id_type": "ISBN"},  # ean
        {"seller_sku": "E-ASINTYPE", "product_id": gtin, "product_id_type": "ASIN"},
        {"seller_sku": "E-BLANK", "product_id": "", "product_id_type": "EAN", "asin": ""},
        {"seller_sku": "A-AMB", "asin": asin_amb},                     # asin
    ])
    fr_offers = add_offers(host, fr, [
        {"seller_sku": "S-AMB", "asin": asin_amb, "product_id": gtin,
         "product_id_type": "UPC"},                                    # all three
    ])
    with host.app.app_context():
        from xsale_amazon_plugin.linking.links import link_offers

        link_offers(fr_offers, products[0], by="tester")  # linked by hand despite the twins
    linked = {"S-AMB@FR"}
    expected = {
        "sku": {"S-AMB", "S-AMB@FR"},
        "ean": {"E-EAN", "E-ISBN", "S-AMB@FR"},
        "asin": {"A-AMB", "S-AMB@FR"},
    }
    client = host.app.test_client()
    view = _views(host)["xsale_amazon_offer"]
    with host.app.test_request_context():
        view._refresh_filters_cache()
        idx, flt = next((i, f) for i, f in enumerate(view._filters) if f.field == "ambiguous")
        arg = view.get_filter_arg(idx, flt)
    for by, offers in expected.items():
        for mapping_view in OFFER_VIEWS:
            want = {o for o in offers if (o in linked) == (mapping_view == "linked")
                    or mapping_view == "all"}
            for search in ("", "S-", "=B0AMBIGUO1"):
                query = {f"flt0_{arg}": by, "view": mapping_view}
                if search:
                    query["search"] = search
                response = client.get("/admin/xsale-amazon/offers/", query_string=query)
                page = response.get_data(as_text=True)
                assert response.status_code == 200, (by, mapping_view, search)
                rows = _rows(page)
                wanted = [o.split("@")[0] for o in want
                          if not search or (search == "S-" and o.startswith("S-"))
                          or (search.startswith("=") and o in {"A-AMB", "S-AMB@FR"})]
                assert sorted(rows) == sorted(wanted), (by, mapping_view, search, rows)
