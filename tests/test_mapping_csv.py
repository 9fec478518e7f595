"""CSV round trip of mappings: export with links, dry-run plan, one-transaction apply that
never overwrites a link unless asked, and the admin preview/apply flow."""

from __future__ import annotations

import csv
import io

import pytest

from xsale_amazon_plugin.linking.mapping_csv import apply_plan, export_csv, plan_import

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
    from xsale_amazon_plugin.linking.links import link_offers

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


# --- operator walkthrough: an untouched export, keys, empty files, conflicts, headers -------

PREVIEW = "/admin/xsale-amazon/mapping-csv/preview/"


def _client(host):
    client = host.app.test_client()
    page = client.get("/admin/xsale-amazon/mapping-csv/").get_data(as_text=True)
    return client, page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]


def _upload(client, token, content, *, name="map.csv", follow=False, **form):
    data = {"csrf_token": token, **form}
    if content is not None:
        data["file"] = (io.BytesIO(content if isinstance(content, bytes) else content.encode()),
                        name)
    return client.post(PREVIEW, data=data, content_type="multipart/form-data",
                       follow_redirects=follow)


def test_untouched_export_skips_offers_without_a_product(host, shop):
    with host.app.test_request_context():
        text = "".join(export_csv(shop["a"]))
    plan = _plan(host, text.lstrip("\ufeff"), by="sku", integration_id=shop["a"])
    assert plan.errors == []
    assert plan.skipped == 4  # S-1, S-3, BOTH, =FORMULA: no product in the export
    assert {x.seller_sku: x.outcome for x in plan.lines}["S-2"] == "same"
    # an empty seller SKU next to a product is still an error
    assert [x.outcome for x in _plan(host, "seller_sku,product\n,P-1\n", by="sku").lines] == [
        "error"]
    client, token = _client(host)
    html = _upload(client, token, text.encode(), by="sku",
                   integration=str(shop["a"])).get_data(as_text=True)
    assert 'id="xa-import-errors">0<' in html
    assert "4 lines without a product, skipped." in html


def test_export_offer_ean_only_for_gtin_types(host):
    integ = host.add_integration()
    add_offers(host, integ, [
        {"seller_sku": "E", "product_id": "5901234123457", "product_id_type": "EAN"},
        {"seller_sku": "U", "product_id": "012345678905", "product_id_type": "UPC"},
        {"seller_sku": "A", "product_id": "B0FXCTNCSB", "product_id_type": "ASIN"},
        {"seller_sku": "N", "product_id": "5901234123464", "product_id_type": None},
    ])
    with host.app.test_request_context():
        text = "".join(export_csv(integ))
    rows = {r["seller_sku"]: r for r in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))}
    assert {sku: r["offer_ean"] for sku, r in rows.items()} == {
        "E": "5901234123457", "U": "012345678905", "A": "", "N": ""}


def test_product_key_defaults_to_sku_and_hints_at_the_key(host, shop):
    client, token = _client(host)
    index = client.get("/admin/xsale-amazon/mapping-csv/").get_data(as_text=True)
    assert '<option value="sku" selected>' in index
    assert '<option value="id"' in index  # still available
    assert '<option value="asin"' in index  # the test host configures PRODUCT_ASIN_ATTR
    # a file of seller SKU -> product SKU with no key chosen: linked by SKU
    html = _upload(client, token, "seller_sku,product\nS-1,P-1\n",
                   integration=str(shop["a"])).get_data(as_text=True)
    assert 'id="xa-import-will-link">1<' in html


def test_products_not_found_by_the_key_hint_at_it_once(host, shop):
    client, token = _client(host)
    # a file of product SKUs read by product ID: one file-level hint naming the key
    plan = _plan(host, "seller_sku,product\nS-1,P-1\nS-3,P-2\n", by="id",
                 integration_id=shop["a"])
    assert plan.counts["unknown_product"] == 2
    assert plan.key_warning == ("No line’s product was found by product ID: check "
                                "“Product key in the file”.")
    html = _upload(client, token, "seller_sku,product\nS-1,P-1\nS-3,P-2\n", by="id",
                   integration=str(shop["a"])).get_data(as_text=True)
    assert html.count("No line’s product was found by product ID") == 1
    mostly = _plan(host, "seller_sku,product\nS-1,P-1\nS-3,X-1\nS-2,X-2\n", by="sku",
                   integration_id=shop["a"])
    assert mostly.key_warning is not None and mostly.key_warning.startswith(
        "The products of 2 of 3 lines were not found by SKU")
    assert _plan(host, FILE, by="sku").key_warning is None


def test_unconfigured_product_key_is_one_file_error(host, shop):
    client, _token = _client(host)
    # a key whose attribute the products lack: one file-level error, and no such option
    host.configure(PRODUCT_ASIN_ATTR=None, PRODUCT_SKU_ATTR=None)
    plan = _plan(host, "seller_sku,product\nS-1,B0X\nS-3,B0Y\n", by="asin")
    assert plan.lines == [] and "ASIN" in plan.file_error
    index = client.get("/admin/xsale-amazon/mapping-csv/").get_data(as_text=True)
    assert '<option value="asin"' not in index and '<option value="sku"' not in index
    assert '<option value="id" selected>' in index


def test_empty_files_say_so(host, shop):
    client, token = _client(host)
    empty = _upload(client, token, b"", by="sku", follow=True).get_data(as_text=True)
    assert "The file is empty." in empty and "Choose a CSV file" not in empty
    none = _upload(client, token, None, by="sku", follow=True).get_data(as_text=True)
    assert "Choose a CSV file to import." in none
    header_only = _upload(client, token, "seller_sku,product\r\n", by="sku")
    html = header_only.get_data(as_text=True)
    assert "The file has a header line but no lines to import." in html
    assert _plan(host, "\ufeff\r\n\r\n", by="sku").file_error == "The file is empty."


def test_conflicts_can_be_replaced_from_the_preview(host, shop):
    client, token = _client(host)
    text = "seller_sku,product\nS-2,P-2\nS-1,P-1\n"
    html = _upload(client, token, text, by="sku",
                   integration=str(shop["a"])).get_data(as_text=True)
    assert 'id="xa-import-will-link">1<' in html
    assert "To replace them with the file’s products" in html
    assert 'id="xa-import-overwrite-form"' in html
    # the preview asks again with the option ticked, without uploading the file again
    again = client.post(PREVIEW, data={"csrf_token": token, "by": "sku", "text": text,
                                       "integration": str(shop["a"]), "overwrite": "1"})
    html = again.get_data(as_text=True)
    assert again.status_code == 200 and 'id="xa-import-will-link">2<' in html
    digest = html.split('name="digest" value="')[1].split('"')[0]
    applied = client.post("/admin/xsale-amazon/mapping-csv/apply/", data={
        "by": "sku", "integration": str(shop["a"]), "text": text, "digest": digest,
        "overwrite": "1", "csrf_token": token})
    assert applied.status_code == 302
    assert links(host)[shop["offers_a"][1]][0] == shop["products"][1]  # replaced


def test_header_error_lists_the_columns_found(host, shop):
    one = _plan(host, "sku;product\nS-1;P-1\n", by="sku")
    assert one.file_error.startswith("The header has no column seller_sku.")
    assert one.file_error.endswith("Found: sku, product.")
    two = _plan(host, "sku;name\nS-1;P-1\n", by="sku")
    assert two.file_error.startswith("The header has no columns seller_sku, product_sku.")
    assert two.file_error.endswith("Found: sku, name.")


@pytest.mark.parametrize("lang", ["en", "pl"])
def test_new_messages_in_both_languages(tmp_path, redis_conn, lang):
    from .hostapp import make_host

    host = make_host(f"sqlite:///{tmp_path}/h.sqlite", config={"BABEL_DEFAULT_LOCALE": lang})
    try:
        integ = host.add_integration()
        host.add_products([{"sku": "P-1", "name": "Mug"}])
        add_offers(host, integ, [{"seller_sku": "S-1"}, {"seller_sku": "S-2"}])
        with host.app.test_request_context():
            one = plan_import("sku;product\nS-1;P-1\n", by="sku").file_error
            two = plan_import("sku;name\nS-1;P-1\n", by="sku").file_error
            skipped = plan_import("seller_sku,product\nS-1,\nS-2,\n", by="sku")
            unknown = plan_import("seller_sku,product\nS-1,X\n", by="id")
        assert skipped.errors == [] and skipped.skipped == 2
        client, token = _client(host)
        html = _upload(client, token, "seller_sku,product\nS-1,\nS-2,\n",
                       by="sku").get_data(as_text=True)
        if lang == "pl":
            assert one.startswith("W nagłówku brak kolumny seller_sku.")
            assert two.startswith("W nagłówku brak kolumn seller_sku, product_sku.")
            assert one.endswith("Znalezione: sku, product.")
            assert "ID towaru" in unknown.key_warning
            assert "„Klucz towaru w pliku”" in unknown.key_warning
            assert "2 wiersze bez towaru, pominięte." in html
        else:
            assert two.startswith("The header has no columns seller_sku, product_sku.")
            assert "2 lines without a product, skipped." in html
    finally:
        host.close()
