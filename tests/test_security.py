"""Attack tests: CSRF, access control, stored XSS, secrets, SSRF of the report download.

Endpoints are enumerated from ``app.url_map`` (every rule whose endpoint starts with
``xsale_amazon``), so an endpoint added later is covered - or fails these tests until a payload
for it is declared in :data:`POST_PAYLOADS`.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import re
import socket
import threading
import zlib
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from xsale_amazon_plugin.amazon.marketplaces import get_marketplace
from xsale_amazon_plugin.emulator.report_builder import demo_listings, render_report

from .conftest import drain
from .hostapp import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, Host, make_host

PLUGIN_TABLES = (
    "xsale_amazon_integration",
    "xsale_amazon_offer",
    "xsale_amazon_offer_product_link",
    "xsale_amazon_import_run",
    "xsale_amazon_schedule",
    "xsale_amazon_schedule_slot",
    "xsale_amazon_autolink_run",
    "xsale_amazon_suggestion",
    "xsale_amazon_suggestion_rejection",
)
#: The blueprint's CSS/JS assets carry no data and are served to anyone, like the host's own.
PUBLIC_ENDPOINTS = {"xsale_amazon.static"}
FORM_EXPIRED = "The form expired; reload the page and try again."
JS_DIR = Path(__file__).resolve().parent.parent / "xsale_amazon_plugin" / "static" / "js"


# ----------------------------------------------------------------------------- helpers


def plugin_rules(app: Any, method: str | None = None) -> list[Any]:
    rules = [
        r for r in app.url_map.iter_rules()
        if r.endpoint.startswith("xsale_amazon") and r.endpoint not in PUBLIC_ENDPOINTS
        and (method is None or method in r.methods)
    ]
    assert rules, "the plugin registered no rules"
    return sorted(rules, key=lambda r: r.endpoint)


def snapshot(host: Host) -> dict[str, list[tuple]]:
    """Every row of every plugin table (any change of any column shows up)."""
    out = {}
    with host.app.app_context():
        meta = host.db.metadata
        for name in PLUGIN_TABLES:
            table = meta.tables[name]
            rows = host.db.session.execute(sa.select(table).order_by(*table.primary_key)).all()
            out[name] = [tuple(repr(v) for v in row) for row in rows]
        host.db.session.remove()
    return out


def token_of(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def flashes(client: Any) -> list[tuple[str, str]]:
    with client.session_transaction() as sess:
        return list(sess.pop("_flashes", []))


def seed(host: Host) -> dict[str, Any]:
    """Products, five integrations, offers (one linked) and one finished run."""
    m = host.models
    products = host.add_products([
        {"sku": "P-1", "ean": "4006381333931", "name": "Mug", "asin": "B000000001"},
        {"sku": "P-2", "ean": "4006381333948", "name": "Plate", "asin": "B000000002"},
    ])
    ids: dict[str, Any] = {"products": products}
    for key, mp, kind in (("a", "DE", "FBM"), ("b", "DE", "FBA"), ("c", "FR", "FBM"),
                          ("d", "IT", "FBM"), ("e", "ES", "FBM")):
        ids[key] = host.add_integration(mp, kind, name=f"Integration {key.upper()}")
    with host.app.app_context():
        offers = [m.AmazonOffer(integration_id=ids["a"], seller_sku=f"SKU-{i}", name=f"Offer {i}",
                                asin=f"B00000000{i}", product_id=None) for i in (1, 2, 3)]
        host.db.session.add_all(offers)
        host.db.session.flush()
        host.db.session.add(m.OfferProductLink(offer_id=offers[0].id, product_id=products[0]))
        run = m.ImportRun(integration_id=ids["a"], status="succeeded", stage="done",
                          trigger="ui", count_read=3, count_created=3)
        host.db.session.add(run)
        host.db.session.commit()
        ids["offers"] = [o.id for o in offers]
        ids["run"] = run.id
    return ids


def integration_form(**overrides: str) -> dict[str, str]:
    data = {"name": "Forged", "marketplace": "PL", "account_type": "FBM", "seller_id": "AEVIL",
            "lwa_client_id": "amzn1.application-oa2-client.evil",
            "new_lwa_client_secret": "attacker-secret", "new_refresh_token": "Atzr|attacker",
            "active": "y"}
    data.update(overrides)
    return data


def view_id(endpoint: str, ids: dict[str, Any]) -> Any:
    if endpoint.startswith("xsale_amazon_integration"):
        return ids["a"]
    if endpoint.startswith("xsale_amazon_offer"):
        return ids["offers"][0]
    return ids["run"]


def build_url(host: Host, rule: Any, ids: dict[str, Any], **query: Any) -> str:
    """The URL of ``rule`` with sample ids filled in (path arguments and ``?id=``)."""
    values: dict[str, Any] = {}
    for arg in rule.arguments:
        values[arg] = {"integration_id": ids["b"], "run_id": ids["run"],
                       "export_type": "csv", "filename": "js/offers.js",
                       "offer_id": ids["offers"][0], "job_id": "no-such-job"}[arg]
    name = rule.endpoint.rsplit(".", 1)[1]
    if name in ("edit_view", "details_view"):
        values["id"] = view_id(rule.endpoint, ids)
    if name == "ajax_lookup":
        values.update(name="integration", query="a")
    values.update(query)
    with host.app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **values)


def _admin_url(view: str) -> str:
    return {"integration": "/admin/xsale-amazon/integrations/",
            "offer": "/admin/xsale-amazon/offers/", "run": "/admin/xsale-amazon/runs/"}[view]


#: Realistic bodies of every POST endpoint (several for the bulk-action endpoints). Each would
#: change state with a valid token (see ``EFFECTIVE`` for those proven to in the control test).
POST_PAYLOADS: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {
    "xsale_amazon_integration.create_view": lambda ids: [integration_form(seller_id="AFORGED")],
    "xsale_amazon_integration.edit_view": lambda ids: [integration_form(name="Renamed")],
    "xsale_amazon_integration.delete_view": lambda ids: [
        {"id": str(ids["d"]), "url": _admin_url("integration")}],
    "xsale_amazon_integration.action_view": lambda ids: [
        {"action": "import_offers", "rowid": [str(ids["c"])], "url": _admin_url("integration")},
        # Bulk delete is not offered (deleting goes through delete_confirm_view).
        {"action": "delete", "rowid": [str(ids["e"])], "url": _admin_url("integration")}],
    "xsale_amazon_integration.delete_confirm_view": lambda ids: [{"id": str(ids["d"])}],
    "xsale_amazon_integration.cancel_import_view": lambda ids: [{}],
    "xsale_amazon_integration.test_connection_view": lambda ids: [{}],
    "xsale_amazon_integration.ajax_update": lambda ids: [
        {"list_form_pk": str(ids["a"]), "name": "Forged"}],
    "xsale_amazon_integration.import_view": lambda ids: [{}],
    "xsale_amazon_integration.schedule_view": lambda ids: [
        {"kind": "every", "every_hours": "6"}, {"kind": "daily", "daily_at": "03:30"}],
    "xsale_amazon_integration.schedule_resume_view": lambda ids: [{}],
    "xsale_amazon_integration.alerts_seen_view": lambda ids: [
        {"url": _admin_url("integration")}],
    "xsale_amazon_offer.create_view": lambda ids: [
        {"seller_sku": "FORGED", "integration": str(ids["a"])}],
    "xsale_amazon_offer.edit_view": lambda ids: [{"seller_sku": "FORGED", "name": "Forged"}],
    "xsale_amazon_offer.delete_view": lambda ids: [
        {"id": str(ids["offers"][0]), "url": _admin_url("offer")}],
    "xsale_amazon_offer.action_view": lambda ids: [
        {"action": "unlink", "rowid": [str(ids["offers"][2])], "url": _admin_url("offer")},
        {"action": "unlink", "rowid": [str(ids["offers"][0])], "url": _admin_url("offer")}],
    "xsale_amazon_offer.autolink_view": lambda ids: [
        {"by": "asin", "target": "selected", "offer_id": [str(o) for o in ids["offers"]],
         "url": _admin_url("offer")},
        {"by": "sku", "target": "integration", "integration_id": str(ids["a"]),
         "url": _admin_url("offer")}],
    "xsale_amazon_offer.ajax_update": lambda ids: [
        {"list_form_pk": str(ids["offers"][0]), "name": "Forged"}],
    "xsale_amazon_offer.link_view": lambda ids: [
        {"offer_id": str(ids["offers"][2]), "product_id": str(ids["products"][0]),
         "url": _admin_url("offer")}],
    "xsale_amazon_offer.unlink_view": lambda ids: [
        {"offer_id": str(ids["offers"][0]), "url": _admin_url("offer")}],
    "xsale_amazon_run.create_view": lambda ids: [
        {"status": "queued", "stage": "queued", "integration": str(ids["a"])}],
    "xsale_amazon_run.edit_view": lambda ids: [{"status": "failed"}],
    "xsale_amazon_run.delete_view": lambda ids: [
        {"id": str(ids["run"]), "url": _admin_url("run")}],
    "xsale_amazon_run.action_view": lambda ids: [
        {"action": "delete", "rowid": [str(ids["run"])], "url": _admin_url("run")}],
    "xsale_amazon_run.ajax_update": lambda ids: [
        {"list_form_pk": str(ids["run"]), "status": "failed"}],
    "xsale_amazon_run.rerun_view": lambda ids: [{}],
    "xsale_amazon_run.confirm_view": lambda ids: [{}],
    "xsale_amazon_run.discard_view": lambda ids: [{}],
    "xsale_amazon_run.cancel_view": lambda ids: [{}],
    "xsale_amazon_suggestions.decide": lambda ids: [
        {"action": "accept", "offer_id": str(ids["offers"][2]),
         "product_key": str(ids["products"][0])},
        {"action": "reject", "offer_id": str(ids["offers"][2]),
         "product_key": str(ids["products"][1])},
        {"action": "no_match", "offer_id": str(ids["offers"][2])}],
    "xsale_amazon_suggestions.accept_high_view": lambda ids: [
        {"integration": str(ids["a"]), "offer_id": [str(o) for o in ids["offers"]]}],
    "xsale_amazon_mapping_csv.preview": lambda ids: [
        {"by": "sku", "integration": str(ids["a"]), "overwrite": "1"}],
    "xsale_amazon_mapping_csv.apply": lambda ids: [
        {"by": "sku", "integration": str(ids["a"]), "overwrite": "1", "digest": "",
         "text": "seller_sku,product\nSKU-2,P-2\n"}],
}
#: The endpoints whose payload changes state with a valid token, in an order where each one
#: still has something to change (rerun before the import of B; deletes of distinct rows).
EFFECTIVE = (
    "xsale_amazon_offer.link_view",
    "xsale_amazon_offer.unlink_view",
    "xsale_amazon_offer.action_view",
    "xsale_amazon_offer.autolink_view",
    "xsale_amazon_integration.edit_view",
    "xsale_amazon_integration.create_view",
    "xsale_amazon_integration.schedule_view",
    "xsale_amazon_integration.alerts_seen_view",
    "xsale_amazon_integration.delete_confirm_view",
    "xsale_amazon_integration.action_view",
    "xsale_amazon_run.rerun_view",
    "xsale_amazon_integration.import_view",
    "xsale_amazon_suggestions.decide",
)


def expected_refusal(host: Host, endpoint: str) -> str:
    """How a plugin-CSRF host refuses a tokenless POST to ``endpoint``."""
    view_endpoint, name = endpoint.split(".")
    admins = host.app.extensions["admin"]
    views = {v.endpoint: v for admin in admins for v in admin._views}
    view = views[view_endpoint]
    if name == "ajax_update" and not view.column_editable_list:
        return "404"
    if {"create_view": getattr(view, "can_create", True),
            "edit_view": getattr(view, "can_edit", True),
            "delete_view": getattr(view, "can_delete", True)}.get(name, True) is False:
        return "no-permission"
    if name in ("create_view", "edit_view"):
        return "rerender"
    if endpoint == "xsale_amazon_suggestions.decide":  # answers the page's script in JSON
        return "json-400"
    return "expired"


@pytest.fixture(params=[False, True], ids=["plugin-csrf", "host-CSRFProtect"])
def csrf_host(request: Any, db_url: str, redis_conn: Any) -> Iterator[Host]:
    h = make_host(db_url, csrf=request.param)
    yield h
    with h.app.app_context():
        h.db.session.remove()
        for engine in h.db.engines.values():
            engine.dispose()


# ----------------------------------------------------------------------------- 1. CSRF


def test_every_post_endpoint_has_a_payload(host):
    endpoints = {r.endpoint for r in plugin_rules(host.app, "POST")}
    assert endpoints == set(POST_PAYLOADS), (
        "declare an attack payload for every POST endpoint of the plugin: "
        f"missing {endpoints - set(POST_PAYLOADS)}, stale {set(POST_PAYLOADS) - endpoints}")


def test_csrf_enforced_on_every_state_changing_request(csrf_host):
    host = csrf_host
    ids = seed(host)
    client = host.app.test_client()
    client.get("/admin/xsale-amazon/offers/")  # a session with a real token exists
    protect = "csrf" in host.app.extensions
    before = snapshot(host)
    checked = 0
    for rule in plugin_rules(host.app, "POST"):
        url = build_url(host, rule, ids)
        for payload in POST_PAYLOADS[rule.endpoint](ids):
            for token in (None, "forged", "IjA4ZDk5ZWQ2ZmQ0NjU1.Zx1Hdw.invalid-signature"):
                data = dict(payload) if token is None else dict(payload, csrf_token=token)
                flashes(client)
                response = client.post(url, data=data)
                where = f"{rule.endpoint} token={token!r} payload={payload}"
                assert snapshot(host) == before, f"state changed: {where}"
                messages = flashes(client)
                if protect:
                    assert response.status_code == 400, where
                else:
                    expect = expected_refusal(host, rule.endpoint)
                    if expect == "rerender":  # Flask-Admin re-renders its form with the flash
                        assert response.status_code == 200, where
                        assert FORM_EXPIRED in response.get_data(as_text=True), where
                    elif expect == "expired":
                        assert response.status_code == 302, where
                        assert (FORM_EXPIRED, "error") in [(str(m), c) for c, m in messages], (
                            where, messages)
                    elif expect == "404":
                        assert response.status_code == 404, where
                    elif expect == "json-400":
                        assert response.status_code == 400, where
                        assert FORM_EXPIRED in response.get_json()["error"], where
                    else:  # the view cannot create/edit/delete at all
                        assert response.status_code == 302, where
                checked += 1
    assert checked >= 2 * len(POST_PAYLOADS)
    with host.app.app_context():
        assert host.state.queue.count == 0  # no import job was enqueued either


def test_same_payloads_with_a_valid_token_do_change_state(csrf_host):
    """Control: the payloads above are effective, so their refusal proves the CSRF check."""
    host = csrf_host
    ids = seed(host)
    client = host.app.test_client()
    token = token_of(client.get("/admin/xsale-amazon/offers/").get_data(as_text=True))
    rules = {r.endpoint: r for r in plugin_rules(host.app, "POST")}
    for endpoint in EFFECTIVE:
        before = snapshot(host)
        url = build_url(host, rules[endpoint], ids)
        payload = POST_PAYLOADS[endpoint](ids)[0]
        response = client.post(url, data=dict(payload, csrf_token=token))
        assert response.status_code in (200, 302), (endpoint, response.status_code)
        assert snapshot(host) != before, f"{endpoint}: the control payload changed nothing"


# ----------------------------------------------------------------------------- 2. access


@pytest.mark.parametrize("mode", ["denied", "raises"])
def test_every_plugin_rule_refuses_a_denied_user(host, mode):
    ids = seed(host)
    client = host.app.test_client()
    token = token_of(client.get("/admin/xsale-amazon/offers/").get_data(as_text=True))
    index = client.get("/admin/").get_data(as_text=True)
    assert "xsale-amazon/offers" in index  # the menu is there while access is granted

    if mode == "denied":
        host.access["allowed"] = False
    else:
        def boom() -> bool:
            raise RuntimeError("auth backend down")

        host.state.access_check = boom
    before = snapshot(host)
    seen = 0
    for rule in plugin_rules(host.app):
        url = build_url(host, rule, ids)
        if "GET" in rule.methods:
            assert client.get(url).status_code == 403, f"GET {url}"
            assert client.get(url + ("&" if "?" in url else "?") + "q=a").status_code == 403
            seen += 1
        if "POST" in rule.methods:
            for payload in POST_PAYLOADS[rule.endpoint](ids):
                response = client.post(url, data=dict(payload, csrf_token=token))
                assert response.status_code == 403, f"POST {url} {payload}"
                seen += 1
    assert seen > 30
    assert snapshot(host) == before
    index = client.get("/admin/").get_data(as_text=True)
    assert "xsale-amazon" not in index
    assert ">Amazon<" not in re.sub(r"\s+", "", index.replace("> ", ">").replace(" <", "<"))


# ----------------------------------------------------------------------------- 3. stored XSS

P_SCRIPT = "<script>alert('xa-s')</script>"
P_IMG = "\"><img src=x onerror=alert('xa-i')>"
P_JS = "javascript:alert('xa-j')"
P_TPL = "{{7*7}}xa-t"
P_END = "</script><svg onload=alert('xa-e')>"
P_ATTR = "' onmouseover='alert(`xa-q`)' x='"
P_ASIN = '"><svg onload=alert>'  # 20 characters: the longest ASIN that is stored
PAYLOADS = (P_SCRIPT, P_IMG, P_JS, P_TPL, P_END, P_ATTR)
_JS_NOOPS = {"javascript:void(0)", "javascript:void(0);"}  # Flask-Admin's own dropdown links
_URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "data", "poster"}


class _Inspector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            value = value or ""
            if name.startswith("on") and ("alert" in value.lower() or "xa-" in value):
                self.problems.append(f"<{tag} {name}={value!r}>")
            url = value.strip().lower()
            if name in _URL_ATTRS and url.startswith("javascript:") and url not in _JS_NOOPS:
                self.problems.append(f"<{tag} {name}={value!r}>")
            self.text.append(value)
        if tag in ("img", "svg", "iframe", "object", "embed"):
            self.problems.append(f"<{tag}> element")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and ("xa-" in data or "alert(" in data):
            self.problems.append(f"script content {data[:80]!r}")
        self.text.append(data)


def assert_inert(html: str, page: str, must_show: tuple[str, ...] = ()) -> str:
    """No injected element/attribute/script; ``must_show`` payloads appear as plain text."""
    inspector = _Inspector()
    inspector.feed(html)
    inspector.close()
    assert not inspector.problems, f"{page}: injected markup {inspector.problems}"
    for raw in (P_SCRIPT, P_IMG, P_END, "<svg onload", "<SVG ONLOAD", "<img src=x"):
        assert raw not in html, f"{page}: {raw!r} appears unescaped"
    assert "49xa-t" not in html, f"{page}: template injection evaluated"
    text = "\n".join(inspector.text)
    for payload in must_show:
        assert payload in text, f"{page}: {payload!r} is not shown (as text)"
    return text


def _static_js_is_safe() -> None:
    sinks = re.compile(r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\.html\(|"
                       r"\.append\(\s*(?:data|r|response)|escapeMarkup|\beval\(|new Function")
    files = sorted(JS_DIR.glob("*.js"))
    assert files
    for path in files:
        source = path.read_text(encoding="utf-8")
        assert not sinks.findall(source), f"{path.name}: HTML sink {sinks.findall(source)}"
    progress = (JS_DIR / "run_progress.js").read_text(encoding="utf-8")
    # Every value of the progress JSON that is text goes through textContent.
    for field in ("stage_label", "status_label"):
        assert re.search(rf"textContent\s*=\s*data\.{field}", progress), field


def test_client_scripts_never_parse_response_data_as_html():
    _static_js_is_safe()


def test_amazon_supplied_text_renders_inert_everywhere(amazon_host, amazon):
    host, m = amazon_host, amazon_host.models
    de, it, es = (get_marketplace(c).marketplace_id for c in ("DE", "IT", "ES"))
    base = list(demo_listings(4, seed=7))
    rows = [
        dict(base[0], seller_sku=P_SCRIPT, name=P_IMG + " " + P_SCRIPT + " " + P_TPL,
             asin=P_ASIN, listing_id=P_JS, product_id="</script><b>x", product_id_type="4",
             status="<b onclick=alert(1)>", open_date_raw=P_TPL + P_SCRIPT,
             fulfillment_channel="DEFAULT"),
        dict(base[1], seller_sku=P_IMG, name=P_END, asin="B0XSS00002", status="Active",
             fulfillment_channel="DEFAULT"),
        dict(base[2], seller_sku=P_TPL, name=P_ATTR, asin=P_JS[:20], status="Active",
             fulfillment_channel="DEFAULT"),
        dict(base[3], seller_sku=P_JS, name=P_TPL, asin="B0XSS00004", status="Active",
             fulfillment_channel="DEFAULT", price=P_SCRIPT),  # invalid price: quoted in reason
        dict(base[0], seller_sku=P_SCRIPT, name="duplicate", fulfillment_channel="DEFAULT"),
    ]
    amazon.set_listings(de, render_report(rows, "eu_en", encoding="utf-8"), charset="utf-8")
    amazon.set_listings(it, b"", final_status="FATAL",
                        fatal_document=(P_SCRIPT + P_IMG + P_TPL + P_END).encode())
    amazon.set_listings(es, (P_IMG + "\t" + P_SCRIPT + "\t" + P_TPL + "\n").encode(),
                        charset="utf-8")
    host.configure(MAX_INVALID_SHARE=0.5)  # 1 invalid line of 5 must still import here
    a = host.add_integration("DE", "FBM", name="Shop " + P_IMG)
    b = host.add_integration("IT", "FBM", name="Shop IT " + P_TPL)
    c = host.add_integration("ES", "FBM", name="Shop ES " + P_SCRIPT)
    (product,) = host.add_products([{"sku": P_IMG, "ean": "4006381333931", "name": P_SCRIPT}])
    client = host.app.test_client()
    runs = {}
    for integ in (a, b, c):
        edit = client.get(f"/admin/xsale-amazon/integrations/edit/?id={integ}")
        response = client.post(f"/admin/xsale-amazon/integrations/import/{integ}/",
                               data={"csrf_token": token_of(edit.get_data(as_text=True))})
        runs[integ] = int(response.location.split("id=")[1])
        drain(host, runs[integ])
    with host.app.app_context():
        got = {r.integration_id: r for r in host.db.session.execute(sa.select(m.ImportRun))
               .scalars()}
        assert got[a].status == "succeeded" and got[a].count_invalid == 1
        assert got[a].count_duplicate == 1
        assert (got[b].error_code, got[c].error_code) == ("report_fatal", "unknown_header")
        offers = {o.seller_sku: o.id for o in host.db.session.execute(
            sa.select(m.AmazonOffer)).scalars()}
        assert set(offers) == {P_SCRIPT, P_IMG, P_TPL}
    token = token_of(client.get("/admin/xsale-amazon/offers/").get_data(as_text=True))
    client.post("/admin/xsale-amazon/offers/link/", data={
        "csrf_token": token, "offer_id": str(offers[P_IMG]), "product_id": str(product)})

    pages: dict[str, tuple[str, ...]] = {
        "/admin/xsale-amazon/offers/?view=unlinked": (P_SCRIPT, P_TPL, P_ATTR),
        "/admin/xsale-amazon/offers/?view=linked": (P_IMG, P_END, P_SCRIPT),
        "/admin/xsale-amazon/offers/?view=all&page_size=100": (P_SCRIPT, P_IMG, P_TPL),
        f"/admin/xsale-amazon/offers/?view=all&search={P_TPL}": (P_TPL,),
        f"/admin/xsale-amazon/runs/details/?id={runs[a]}": (P_SCRIPT,),
        f"/admin/xsale-amazon/runs/details/?id={runs[b]}": (P_SCRIPT + P_IMG,),
        f"/admin/xsale-amazon/runs/details/?id={runs[c]}": (P_IMG,),
        "/admin/xsale-amazon/runs/": (),
        "/admin/xsale-amazon/integrations/": ("Shop " + P_IMG,),
        f"/admin/xsale-amazon/offers/?view=all&flt0_0={a}": (),
    }
    for integ in (a, b, c):
        pages[f"/admin/xsale-amazon/integrations/edit/?id={integ}"] = ()
    for sku, offer_id in offers.items():
        pages[f"/admin/xsale-amazon/offers/details/?id={offer_id}"] = (sku,)
    for url, must_show in pages.items():
        response = client.get(url)
        assert response.status_code == 200, url
        text = assert_inert(response.get_data(as_text=True), url, must_show)
        if url.startswith("/admin/xsale-amazon/runs/details/?id=" + str(runs[a])):
            # The invalid-lines table quotes the bad price and the duplicate SKU verbatim.
            assert f"price {P_SCRIPT!r} is not a number" in text
            assert "duplicate seller-sku" in text
        if "details/?id=" in url and "offers" in url and str(offers[P_SCRIPT]) in url[-8:]:
            assert P_JS in text and P_TPL + P_SCRIPT in text  # listing id, open date as text
    # JSON consumed by JavaScript: JSON content type; strings verbatim, rendered via textContent.
    for run_id in runs.values():
        response = client.get(f"/xsale-amazon/runs/{run_id}.json")
        assert response.status_code == 200 and response.mimetype == "application/json"
        assert "text/html" not in response.content_type
        data = response.get_json()
        assert "49xa-t" not in response.get_data(as_text=True)
        if data["error"]:
            assert any(p in data["error"] for p in (P_SCRIPT, P_IMG)), data["error"]
    found = client.get("/xsale-amazon/products/search?q=xa-s")
    assert found.mimetype == "application/json"
    assert [r["text"] for r in found.get_json()["results"]] == [f"{P_IMG} · 4006381333931 · "
                                                                f"{P_SCRIPT}"]
    _static_js_is_safe()


# ----------------------------------------------------------------------------- 4. secrets

ALL_LOGGERS = ("", "sp_api", "sp_api.base.client", "sp_api.auth.access_token_client",
               "sp_api.auth.credential_provider", "httpx", "httpcore", "rq", "rq.worker",
               "rq.job", "rq.queue", "rq.scheduler", "urllib3", "xsale_amazon_plugin",
               "xsale_amazon_plugin.importing.step_job", "xsale_amazon_plugin.amazon.client",
               "werkzeug", "flask_admin", "sqlalchemy")


def _debug_everything(caplog: Any) -> None:
    for name in set(ALL_LOGGERS) | set(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name or None)


def _drain_debug(host: Host, run_id: int) -> Any:
    """Like conftest.drain, but the RQ worker logs at DEBUG too."""
    from rq import SimpleWorker
    from rq.scheduler import RQScheduler

    queue = host.state.queue
    worker = SimpleWorker([queue], connection=queue.connection, job_class=queue.job_class)
    scheduler = RQScheduler([queue], connection=queue.connection)
    for _ in range(2000):
        scheduler.acquire_locks()
        scheduler.enqueue_scheduled_jobs()
        scheduler.release_locks()
        worker.work(burst=True, logging_level="DEBUG")
        with host.app.app_context():
            run = host.db.session.get(host.models.ImportRun, run_id)
            if run.status not in ("queued", "requesting", "waiting", "processing"):
                host.db.session.expunge(run)
                return run
        threading.Event().wait(0.02)
    raise AssertionError("import did not finish")


def _start(host: Host, integration_id: int) -> int:
    from xsale_amazon_plugin.importing.lifecycle import start_import

    with host.app.app_context():
        run_id = start_import(integration_id, trigger="ui", requested_by="tester").id
        host.db.session.remove()
    return run_id


JOB_ID = r"xsale-amazon-[A-Za-z0-9_-]+-[0-9]+-[0-9]+-[0-9]+"


def _redis_dump(host: Host) -> list[str]:
    """Every key, hash field and value of the test queue's jobs, decompressed and unpickled."""
    conn = host.state.redis
    name = host.state.queue.name
    out: list[str] = []
    job_ids: set[str] = set()
    for key in conn.scan_iter(match=f"*{name}*", count=1000):
        out.append(key.decode())
        kind = conn.type(key).decode()
        if kind == "list":
            values = conn.lrange(key, 0, -1)
        elif kind == "zset":
            values = [v for v in conn.zrange(key, 0, -1)]
        elif kind == "set":
            values = list(conn.smembers(key))
        elif kind == "hash":
            values = [x for kv in conn.hgetall(key).items() for x in kv]
        elif kind == "stream":
            values = [repr(conn.xrange(key))]
        else:
            values = [conn.get(key) or b""]
        for value in values:
            out.append(repr(value))
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            job_ids.update(re.findall(JOB_ID, text))
    for job_id in job_ids:
        for key in (f"rq:job:{job_id}", f"rq:results:{job_id}"):
            kind = conn.type(key).decode()
            fields: list[Any] = []
            if kind == "hash":
                fields = [x for kv in conn.hgetall(key).items() for x in kv]
            elif kind == "stream":
                fields = [x for _id, entry in conn.xrange(key) for kv in entry.items() for x in kv]
            for value in fields:
                out.append(repr(value))
                if isinstance(value, bytes):
                    for decode in (zlib.decompress, lambda b: b):
                        # Not a pickle: the raw repr above covers it.
                        with contextlib.suppress(Exception):
                            out.append(repr(pickle.loads(decode(value))))
    assert job_ids, "no RQ job of the test queue was found in Redis"
    return out


def _issued_tokens(amazon: Any) -> set[str]:
    tokens = {e["headers"].get("x-amz-access-token") for e in amazon.requests}
    return {t for t in tokens if t}


def test_secrets_never_reach_logs_redis_or_pages(amazon_host, amazon, caplog):
    host = amazon_host
    _debug_everything(caplog)
    amazon.set_listings(get_marketplace("DE").marketplace_id,
                        render_report(list(demo_listings(30, seed=3)), "eu_en"))
    integ = host.add_integration("DE", "FBM")
    run = _drain_debug(host, _start(host, integ))
    assert run.status == "succeeded"
    access_tokens = _issued_tokens(amazon)
    assert access_tokens, "the emulator issued no access token"
    secrets = {CLIENT_SECRET, REFRESH_TOKEN, *access_tokens}
    assert len(caplog.records) > 20, "DEBUG logging did not capture the import"
    for record in caplog.records:
        rendered = " ".join([record.getMessage(), repr(record.args), record.exc_text or "",
                             repr(getattr(record, "__dict__", {}))])
        for secret in secrets:
            assert secret not in rendered, f"secret in log record {record.name}: {rendered[:300]}"
    for secret in secrets:
        assert secret not in caplog.text
    dump = "\n".join(_redis_dump(host))
    for secret in secrets:
        assert secret not in dump, "secret in Redis"
    client = host.app.test_client()
    for url in (f"/admin/xsale-amazon/integrations/edit/?id={integ}",
                "/admin/xsale-amazon/integrations/", "/admin/xsale-amazon/offers/?view=all",
                "/admin/xsale-amazon/runs/", f"/admin/xsale-amazon/runs/details/?id={run.id}",
                f"/xsale-amazon/runs/{run.id}.json",
                "/admin/xsale-amazon/integrations/export/csv/"):
        page = client.get(url).get_data(as_text=True)
        for secret in secrets:
            assert secret not in page, url


FAILURES = {
    "bad_client_secret": ({"secret": "wrong-client-secret-Kk3"}, None, "amazon_auth"),
    "bad_client_id": ({"client_id": "amzn1.application-oa2-client.unknown"}, None,
                      "amazon_auth"),
    "bad_refresh_token": ({"refresh": "Atzr|revoked-refresh-token-Pp4"}, None, "amazon_auth"),
    "forbidden": ({}, ("createReport", 403), "amazon_forbidden"),
    "bad_request": ({}, ("createReport", 400), "amazon_bad_request"),
    "report_not_found": ({}, ("getReport", 404), "amazon_bad_request"),
    "document_forbidden": ({}, ("getReportDocument", 403), "amazon_forbidden"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_failed_runs_never_reveal_secrets(amazon_host, amazon, caplog, case):
    host, m = amazon_host, amazon_host.models
    _debug_everything(caplog)
    creds, injection, code = FAILURES[case]
    amazon.set_listings(get_marketplace("DE").marketplace_id,
                        render_report(list(demo_listings(5, seed=1)), "eu_en"))
    if injection:
        amazon.inject(injection[0], *([injection[1]] * 10))
    integ = host.add_integration("DE", "FBM", client_id=creds.get("client_id", CLIENT_ID))
    secret = creds.get("secret", CLIENT_SECRET)
    refresh = creds.get("refresh", REFRESH_TOKEN)
    with host.app.app_context():
        row = host.db.session.get(m.AmazonIntegration, integ)
        row.lwa_client_secret, row.refresh_token = secret, refresh
        host.db.session.commit()
    run = _drain_debug(host, _start(host, integ))
    assert (run.status, run.error_code) == ("failed", code), (run.error_code, run.error_params)
    secrets = {secret, refresh, CLIENT_SECRET, REFRESH_TOKEN, *_issued_tokens(amazon)}
    client = host.app.test_client()
    shown = [repr(run.error_message), repr(run.error_params), caplog.text,
             client.get(f"/xsale-amazon/runs/{run.id}.json").get_data(as_text=True),
             client.get(f"/admin/xsale-amazon/runs/details/?id={run.id}").get_data(as_text=True),
             client.get(f"/admin/xsale-amazon/integrations/edit/?id={integ}").get_data(
                 as_text=True),
             *(r.getMessage() + repr(r.args) + (r.exc_text or "") for r in caplog.records),
             "\n".join(_redis_dump(host))]
    for text in shown:
        for value in secrets:
            assert value not in text, f"{case}: secret shown in {text[:300]!r}"


# ----------------------------------------------------------------------------- 5. SSRF


class _Listener:
    """A TCP listener on a free loopback port that counts connections."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


SSRF_URLS = {
    "metadata": "http://169.254.169.254/latest/meta-data/",
    "loopback": "http://127.0.0.1:{port}/",
    "loopback_https": "https://127.0.0.1:{port}/x.gz",
    "evil": "https://evil.example.com/x",
    "suffix": "https://amazonaws.com.evil.example/",
    "file": "file:///etc/passwd",
    "userinfo": "https://s3.amazonaws.com@evil.example/",
    "userinfo_port": "https://s3.amazonaws.com:443@evil.example/",
    "http_amazon": "http://tortuga-prod-eu.s3-eu-west-1.amazonaws.com/doc",
    "amazon_other_port": "https://tortuga-prod-eu.s3-eu-west-1.amazonaws.com:8443/doc",
    "emulator_userinfo": "{emulator_userinfo}",
}


@pytest.mark.parametrize("case", sorted(SSRF_URLS))
def test_report_download_refuses_urls_outside_amazon(amazon_host, amazon, case):
    host, m = amazon_host, amazon_host.models
    listener = _Listener()
    try:
        emu = amazon.url.split("://", 1)[1].rstrip("/")
        url = SSRF_URLS[case].format(port=listener.port,
                                     emulator_userinfo=f"http://user:pw@{emu}/download/x")
        amazon.set_listings(get_marketplace("DE").marketplace_id,
                            render_report(list(demo_listings(10, seed=5)), "eu_en"))
        amazon.configure(document_url=url)
        integ = host.add_integration("DE", "FBM")
        with host.app.app_context():
            host.db.session.add(m.AmazonOffer(integration_id=integ, seller_sku="KEEP-ME",
                                              name="existing"))
            host.db.session.commit()
        before = snapshot(host)["xsale_amazon_offer"]
        run = drain(host, _start(host, integ))
        assert (run.status, run.error_code) == ("failed", "url_not_allowed"), run.error_params
        assert snapshot(host)["xsale_amazon_offer"] == before
        assert listener.connections == 0, "a request reached the loopback listener"
        assert "Signature" not in str(run.error_params)
        downloads = [e for e in amazon.requests if e["operation"] == "download"]
        assert downloads == []
    finally:
        listener.close()
    # The listener did accept connections: the zero above is meaningful.
    probe = _Listener()
    try:
        socket.create_connection(("127.0.0.1", probe.port), timeout=2).close()
        for _ in range(50):
            if probe.connections:
                break
            threading.Event().wait(0.02)
        assert probe.connections == 1
    finally:
        probe.close()
