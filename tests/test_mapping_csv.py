"""CSV round trip of mappings: export with links, dry-run plan, one-transaction apply that
never overwrites a link unless asked, and the admin preview/apply flow."""

from __future__ import annotations

import csv
import io

import pytest

from xsale_amazon_plugin.mapping_csv import apply_plan, export_csv, plan_import

from .test_linking import add_offers, links


@pytest.fixture
def shop(host):
    a = host.add_integration("DE", "FBM")
    b = host.add_integration("DE", "FBA")
    products = host.add_products([
        {"sku": "P-1", "ean": "5901234123457", "name": "Mug black"},
        {"sku": "P-2", "ean": "5901234123464", "name": "Mug white"},
        {"sku": "P-3", "ean": None, "name": "Plate"},
        {"sku": "DUP", "ean": None, "name": "Dup A"},
        {"sku": "DUP", "ean": None, "name": "Dup B"},
    ])
    offers_a = add_offers(host, a, [{"seller_sku": s, "name": s} for s in
                                    ("S-1", "S-2", "S-3", "BOTH", "=FORMULA")])
    offers_b = add_offers(host, b, [{"seller_sku": "BOTH", "name": "in b"}])
    from xsale_amazon_plugin.linking import link_offers

    with host.app.test_request_context():
        link_offers([offers_a[1]], products[2])  # S-2 is linked to P-3 already
    return {"a": a, "b": b, "products": products, "offers_a": offers_a, "offers_b": offers_b}


def _plan(host, text, **kwargs):
    with host.app.test_request_context():
        return plan_import(text, **kwargs)


FILE = (
    "seller_sku;product;note\n"
    "S-1;P-1;new link\n"
    "S-2;P-2;conflict: linked to P-3\n"
    "S-3;NOPE;unknown product\n"
    "GHOST;P-1;unknown offer\n"
    "BOTH;P-1;ambiguous without integration\n"
    "S-3;DUP;ambiguous product key\n"
    ";P-1;missing sku\n"
)


def test_plan_counts_and_errors_change_nothing(host, shop):
    before = links(host)
    plan = _plan(host, FILE, by="sku")
    assert plan.file_error is None
    by_line = {x.line: x for x in plan.lines}
    assert [by_line[n].outcome for n in range(2, 9)] == [
        "link", "conflict", "unknown_product", "unknown_offer", "error", "error", "error"]
    assert (plan.will_link, plan.conflicts, plan.unknown) == (1, 1, 2)
    assert "several integrations" in by_line[6].message
    assert "2 products have SKU DUP" in by_line[7].message
    assert links(host) == before  # a plan writes nothing


def test_apply_never_overwrites_unless_asked(host, shop):
    p, oa = shop["products"], shop["offers_a"]
    with host.app.test_request_context():
        plan = plan_import(FILE, by="sku")
        assert apply_plan(plan, user="tester") == 1
    assert links(host)[oa[0]][0] == p[0]
    assert links(host)[oa[1]][0] == p[2]  # the existing link is kept
    with host.app.test_request_context():
        plan = plan_import(FILE, by="sku", overwrite=True)
        assert plan.will_link == 1  # S-1 is now "same", S-2 the conflict to replace
        assert apply_plan(plan, user="tester") == 1
    assert links(host)[oa[1]][0] == p[1]  # replaced on request


def test_integration_column_and_keys(host, shop):
    p, ob = shop["products"], shop["offers_b"]
    text = f"seller_sku,integration_id,product_ean\nBOTH,{shop['b']},5901234123464\n"
    plan = _plan(host, text, by="ean")
    assert [x.outcome for x in plan.lines] == ["link"]
    with host.app.test_request_context():
        apply_plan(plan)
    assert links(host)[ob[0]][0] == p[1]
    by_id = _plan(host, f"seller_sku\tproduct\nS-3\t{p[2]}\nS-1\tnot-an-id\n", by="id",
                  integration_id=shop["a"])
    assert [x.outcome for x in by_id.lines] == ["link", "unknown_product"]
    bad = _plan(host, "sku,product\nS-1,P-1\n", by="sku")
    assert bad.file_error and "seller_sku" in bad.file_error


def test_export_round_trip(host, shop):
    with host.app.test_request_context():
        text = "".join(export_csv(shop["a"]))
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert {r["seller_sku"] for r in rows} == {"S-1", "S-2", "S-3", "BOTH", "'=FORMULA"}
    s2 = next(r for r in rows if r["seller_sku"] == "S-2")
    assert (s2["product_sku"], s2["link_method"]) == ("P-3", "manual")
    # the export imports back as "already linked like this"
    plan = _plan(host, text.lstrip("\ufeff"), by="sku", integration_id=shop["a"])
    outcomes = {x.seller_sku: x.outcome for x in plan.lines}
    assert outcomes["S-2"] == "same"


def test_admin_preview_then_apply(host, shop):
    client = host.app.test_client()
    page = client.get("/admin/xsale-amazon/mapping-csv/")
    assert page.status_code == 200
    token = page.get_data(as_text=True).split('name="csrf_token" type="hidden" value="')[1]
    token = token.split('"')[0]
    export = client.get(f"/admin/xsale-amazon/mapping-csv/export.csv?integration={shop['a']}")
    assert export.status_code == 200 and "attachment" in export.headers["Content-Disposition"]
    data = {"by": "sku", "integration": str(shop["a"]), "csrf_token": token,
            "file": (io.BytesIO(FILE.encode()), "map.csv")}
    preview = client.post("/admin/xsale-amazon/mapping-csv/preview/", data=data,
                          content_type="multipart/form-data")
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200, html
    # with the integration chosen, BOTH is no longer ambiguous: S-1 and BOTH will be linked
    assert 'id="xa-import-will-link">2<' in html
    assert links(host).get(shop["offers_a"][0]) is None  # preview only
    digest = html.split('name="digest" value="')[1].split('"')[0]
    applied = client.post("/admin/xsale-amazon/mapping-csv/apply/", data={
        "by": "sku", "integration": str(shop["a"]), "text": FILE, "digest": digest,
        "csrf_token": token})
    assert applied.status_code == 302
    assert links(host)[shop["offers_a"][0]][0] == shop["products"][0]
    # a stale preview (the data changed since) is shown again instead of applied
    stale = client.post("/admin/xsale-amazon/mapping-csv/apply/", data={
        "by": "sku", "integration": str(shop["a"]), "text": FILE, "digest": digest,
        "csrf_token": token})
    assert stale.status_code == 200 and "changed since the preview" in stale.get_data(as_text=True)
    utf16 = io.BytesIO("seller_sku,product\nS-1,P-1\n".encode("utf-16"))
    bad = client.post("/admin/xsale-amazon/mapping-csv/preview/", data={
        "by": "sku", "csrf_token": token, "file": (utf16, "map.csv")},
        content_type="multipart/form-data")
    assert bad.status_code == 302
