"""Mapping assistant: text features, the product index and its staleness check, the
suggestion engine, stored suggestions, decisions and the ``suggest`` CLI contract."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from xsale_amazon_plugin.suggest.text import (
    DEFAULT_SKU_AFFIXES,
    compile_affixes,
    normalise_gtin,
    normalise_sku,
    title_features,
)

from .test_linking import add_offers, links

AFFIXES = compile_affixes(DEFAULT_SKU_AFFIXES)


@pytest.mark.parametrize(("sku", "expected", "removed"), [
    ("AB-123-FBA", "ab123", ("-FBA",)),
    ("fba-ab123", "ab123", ("FBA-",)),
    ("ab_123/B", "ab123", ("/B",)),
    ("AB123-NEW-FBA", "ab123", ("-FBA", "-NEW")),
    ("DR2010B", "dr2010b", ()),  # a trailing letter without separator is part of the code
    ("x-FBA", "xfba", ()),  # never strip down to less than three characters
])
def test_normalise_sku(sku, expected, removed):
    result = normalise_sku(sku, AFFIXES)
    assert (result.value, result.removed) == (expected, removed)


def test_gtin_and_title_features():
    assert normalise_gtin("036000291452") == "0036000291452"  # UPC-A -> EAN-13
    assert normalise_gtin("4006381333931") == "4006381333931"
    assert normalise_gtin("B00ABC") is None
    f = title_features("Brother DR-2010C Trommel, schwarz, 64 GB, Größe XL - für HL-2130")
    assert {"dr2010c", "hl2130"} <= f.models
    assert f.variants["colour"] == {"black"}
    assert f.variants["gb"] == {"64gb"}
    assert f.variants["size"] == {"xl"}
    assert "tromm" in f.terms and "fur" not in f.terms
    assert title_features("Kubek czarny 0,5 l").variants == {
        "ml": {"500ml"}, "colour": {"black"}}
    assert title_features("Poduszka 40 x 60 cm, 2 x 64GB").variants == {
        "dims": {"40x60"}, "gb": {"64gb"}}


PRODUCTS = [
    {"sku": "DR2010C", "ean": "4977766654321", "name": "Brother DR-2010C drum unit"},
    {"sku": "TN2010", "ean": "4977766600001", "name": "Brother TN-2010 toner black"},
    {"sku": "MUG-BLK-300", "ean": "5901234123457", "name": "Kubek ceramiczny czarny 300 ml"},
    {"sku": "MUG-WHT-300", "ean": "5901234123464", "name": "Kubek ceramiczny biały 300 ml"},
    {"sku": "MUG-BLK-500", "ean": "5901234123471", "name": "Kubek ceramiczny czarny 500 ml"},
    {"sku": "KB-7731", "ean": None, "name": "Logitech K120 Tastatur USB"},
    {"sku": "CAB-HDMI-2M", "ean": None, "name": "HDMI cable 2 m"},
]


@pytest.fixture
def shop(host):
    integ = host.add_integration("DE", "FBM")
    products = host.add_products(PRODUCTS)
    offers = add_offers(host, integ, [
        # same EAN, different SKU and a keyword-stuffed title
        {"seller_sku": "AMZ-7781", "name": "Drum Brother", "product_id": "4977766654321",
         "product_id_type": "EAN"},
        # SKU with a channel suffix
        {"seller_sku": "TN-2010-FBA", "name": "Toner"},
        # title only: colour and capacity decide
        {"seller_sku": "X1", "name": "Czarny kubek ceramiczny do kawy i herbaty, 500 ml, "
                                     "idealny prezent"},
        # title only, German keyword stuffing, model number
        {"seller_sku": "X2", "name": "Logitech K120 kabelgebundene Business Tastatur, "
                                     "deutsches Layout QWERTZ, USB, schwarz"},
        # nothing in the catalogue
        {"seller_sku": "X3", "name": "Garden hose reel 30 m with wall bracket"},
    ])
    return {"integration": integ, "products": products, "offers": offers}


def _suggest(host, offer_id, limit=5):
    from xsale_amazon_plugin.suggest.service import suggestions_for_offer

    with host.app.test_request_context():
        return suggestions_for_offer(offer_id, limit=limit)


def test_engine_ranks_by_keys_models_and_variants(host, shop):
    p, o = shop["products"], shop["offers"]
    ean = _suggest(host, o[0])
    assert ean[0]["product_key"] == str(p[0]) and ean[0]["confidence"] == "high"
    assert ean[0]["reasons"][0] == {"code": "same_ean", "value": "4977766654321"}

    sku = _suggest(host, o[1])
    assert sku[0]["product_key"] == str(p[1]) and sku[0]["confidence"] == "high"
    assert sku[0]["reasons"][0] == {"code": "sku_affix", "value": "-FBA"}

    mug = _suggest(host, o[2])
    assert mug[0]["product_key"] == str(p[4])
    others = {s["product_key"]: s for s in mug[1:]}
    # the white and the 300 ml mugs rank below, with the differing variant as a reason
    assert all(s["score"] < mug[0]["score"] for s in others.values())
    if str(p[3]) in others:
        assert any(r["code"] == "variant_differs" for r in others[str(p[3])]["reasons"])

    keyboard = _suggest(host, o[3])
    assert keyboard[0]["product_key"] == str(p[5])
    assert {"code": "model", "value": "K120"} in keyboard[0]["reasons"]

    hose = _suggest(host, o[4])
    assert all(s["confidence"] != "high" for s in hose)

    # every key both share is a reason, the strongest first
    (both,) = add_offers(host, shop["integration"], [
        {"seller_sku": "MUG-BLK-300", "name": "Mug", "product_id": "5901234123457",
         "product_id_type": "EAN"}])
    found = _suggest(host, both)[0]
    assert found["product_key"] == str(p[2]) and found["confidence"] == "high"
    assert found["reasons"][:2] == [{"code": "same_ean", "value": "5901234123457"},
                                    {"code": "same_sku", "value": "MUG-BLK-300"}]


def test_title_features_numbers_and_code_parts():
    f = title_features("Microsoft Excel 2004 (Mac), 2nd edition, 12 feet, 42-inches")
    assert f.numbers == {"2004", "2"}  # units are variants, not numbers
    assert f.variants["ft"] == {"12ft"} and f.variants["in"] == {"42in"}
    # a code's code-like parts name the model too; a spaced code gives its number part
    assert {"sght249", "t249"} <= title_features("Samsung SGH-T249 phone").models
    assert {"n1183px", "1183px"} <= title_features("Trommel Kasol N 1183PX").models
    assert "webra" in title_features("Web Radio Recorder").joined
    # digits-only part numbers are codes; a range of years is not
    part = title_features("Microsoft Office Mac 2004, English, 731-01163")
    assert part.models == {"73101163"} and part.numbers == {"2004"}
    assert title_features("Calendar 2007-2008").models == frozenset()


def test_title_features_counts_are_quantities_not_codes():
    """"340pk", "24-count", "mounts-1pair": how many items, never a model code, so a product
    with a real code is not contradicted by them; "EL-334MB" still is a code."""
    flags = title_features("Post-it flags dispenser, assorted colors 340pk")
    assert flags.models == frozenset() and flags.variants["pcs"] == {"340pcs"}
    mounts = title_features("Satellite speaker mounts-1pair")
    assert mounts.models == frozenset() and mounts.variants["pair"] == {"1pair"}
    assert title_features("BIC pencil 0.7 mm 24-count").variants["pcs"] == {"24pcs"}
    assert title_features("Crayola crayons 24ct").variants["pcs"] == {"24pcs"}
    assert title_features("Socks, 3 pairs").variants["pair"] == {"3pair"}
    assert title_features("Sharp EL-334MB calculator").models >= {"el334mb"}
    assert title_features("D-Link DGS-1008P switch").models >= {"dgs1008p"}


def test_title_features_conditions():
    """Words saying an item is not the brand's original new one, in several languages."""
    assert title_features("Premium compatible Canon CLI-221 magenta").conditions == {
        "compatible": "compatible"}
    assert set(title_features("Toner zamiennik regenerowany do HP 85A").conditions) == {
        "compatible", "remanufactured"}
    assert title_features("Kartridż regenerowana HP 301").conditions == {
        "remanufactured": "regenerowana"}
    assert set(title_features("iPhone 12 generalüberholt").conditions) == {"refurbished"}
    # whole words only: "compact" is not "compatible", "recycled paper" is a material;
    # "compatible with ..." says what an item fits
    assert title_features("Canon compact camera, recycled paper box").conditions == {}
    assert title_features("Case compatible with iPhone 12, kompatybilny z iPhone").conditions == {}


CONTRAST_PRODUCTS = [
    {"sku": "WOF-1", "ean": None, "name": "Wheel of Fortune"},
    {"sku": "WOF-2", "ean": None, "name": "Wheel of Fortune Deluxe Edition"},
    {"sku": "XL-04", "ean": None, "name": "Microsoft Excel 2004 Mac"},
    {"sku": "XL-07", "ean": None, "name": "Microsoft Excel 2007 PC"},
    {"sku": "CAM-1", "ean": None, "name": "Samsung EC-ST65 digital camera indigo blue"},
    {"sku": "CAM-2", "ean": None, "name": "Samsung EC-ST30 digital camera indigo blue"},
    {"sku": "SB-1", "ean": None, "name": "Adobe Soundbooth CS3"},
    {"sku": "SB-2", "ean": None, "name": "Adobe Soundbooth CS3 audio editing software"},
    {"sku": "RAM-1", "ean": None, "name": "Kingston 2 GB DDR2 240-pin server memory KTH-MLG4"},
    {"sku": "RAM-2", "ean": None, "name": "Kingston 2 GB DDR2 240-pin memory KTH-XW4300"},
    {"sku": "RAM-3", "ean": None, "name": "Kingston 1 GB DDR2 240-pin memory KTH-XW4400"},
    {"sku": "WR-1", "ean": None, "name": "MAGIX Webradio Recorder"},
    {"sku": "WR-2", "ean": None, "name": "MP3 radio recorder for iPod"},
]


@pytest.fixture
def contrast_shop(host):
    integ = host.add_integration("DE", "FBM")
    products = host.add_products(CONTRAST_PRODUCTS)
    offers = add_offers(host, integ, [
        {"seller_sku": "C1", "name": "Wheel of Fortune Deluxe"},
        {"seller_sku": "C2", "name": "Microsoft Excel 2004 (Mac)"},
        {"seller_sku": "C3", "name": "Microsoft Excel 2007"},
        {"seller_sku": "C4", "name": "Samsung EC-ST65ZZBPU indigo blue 14.2 MP camera"},
        {"seller_sku": "C5", "name": "Adobe Soundbooth CS3"},
        {"seller_sku": "C6", "name": "Kingston KTH-MLG4 2GB DDR2 240-pin SDRAM module"},
        {"seller_sku": "C7", "name": "Web Radio Recorder"},
    ])
    return {"products": products, "offers": offers}


def test_engine_tells_editions_versions_and_extended_codes_apart(host, contrast_shop):
    p, o = contrast_shop["products"], contrast_shop["offers"]
    best = {i: _suggest(host, o[i]) for i in range(len(o))}
    # "Deluxe" is a word another candidate has: the candidate without it loses, although
    # all of its own name is in the offer
    assert best[0][0]["product_key"] == str(p[1])
    # versions are numbers that must agree; the other version says why it ranks lower
    assert best[1][0]["product_key"] == str(p[2])
    assert best[2][0]["product_key"] == str(p[3])
    other = next(s for s in best[1] if s["product_key"] == str(p[3]))
    assert {"code": "number_differs", "value": "2007", "offer_value": "2004"} in other["reasons"]
    # EC-ST65ZZBPU extends EC-ST65 (same model, a colour/region suffix), not EC-ST30
    assert best[3][0]["product_key"] == str(p[4])
    assert {"code": "model", "value": "EC-ST65"} in best[3][0]["reasons"]
    # a rare code decides; DDR2 and 240-PIN are in every memory module and decide nothing
    assert best[5][0]["product_key"] == str(p[8])
    assert {"code": "model", "value": "KTH-MLG4"} in best[5][0]["reasons"]
    # two words written as one ("Web Radio" / "Webradio") are the same word
    assert best[6][0]["product_key"] == str(p[11])


def test_a_count_never_contradicts_a_model_code_and_another_count_does(host):
    integ = host.add_integration("DE", "FBM")
    p = host.add_products([
        {"sku": "FL-1", "ean": None, "name": "Post-it flags DS420VA dispenser, 340 flags pack"},
        {"sku": "FL-2", "ean": None, "name": "Post-it flags DS100 dispenser 100pk"},
    ])
    o = add_offers(host, integ, [
        {"seller_sku": "F1", "name": "Post-it flags dispenser assorted colors 340pk"},
    ])
    found = _suggest(host, o[0])
    assert found[0]["product_key"] == str(p[0])
    assert not any(r["code"] == "model_differs" for r in found[0]["reasons"])
    other = next(s for s in found if s["product_key"] == str(p[1]))
    assert {"code": "variant_differs", "dimension": "pcs", "value": "100pcs",
            "offer_value": "340pcs"} in other["reasons"]


def test_compatible_or_remanufactured_is_another_product(host):
    integ = host.add_integration("DE", "FBM")
    p = host.add_products([
        {"sku": "INK-O", "ean": None, "name": "HP 301 Druckerpatrone schwarz CH561EE"},
        {"sku": "INK-C", "ean": None,
         "name": "HP 301 Druckerpatrone schwarz CH561EE kompatibel (wiederaufbereitet)"},
    ])
    o = add_offers(host, integ, [
        {"seller_sku": "O1", "name": "HP 301 CH561EE Original Druckerpatrone Schwarz"},
        {"seller_sku": "O2", "name": "Kompatibel HP 301 CH561EE Druckerpatrone schwarz XL"},
    ])
    original, compatible = _suggest(host, o[0]), _suggest(host, o[1])
    assert original[0]["product_key"] == str(p[0])
    assert compatible[0]["product_key"] == str(p[1])
    rival = next(s for s in original if s["product_key"] == str(p[1]))
    assert rival["confidence"] != "high"
    assert {"code": "condition_differs", "value": "kompatibel, wiederaufbereitet"} in (
        rival["reasons"])
    with host.app.test_request_context():
        from flask_babel import force_locale

        from xsale_amazon_plugin.suggest.service import reason_text

        reason = {"code": "condition_differs", "value": "kompatibel"}
        assert reason_text(reason) == "not the original item in one title: kompatibel"
        with force_locale("pl"):
            assert reason_text(reason) == (
                "nieoryginalny towar w jednym z tytułów: kompatibel")


def test_high_band_never_guesses_between_rivals(host, contrast_shop):
    """Two products have every word of the offer: however large the score gap that the
    longer name causes, the best one is only a guess, so it is not ``high``."""
    p, o = contrast_shop["products"], contrast_shop["offers"]
    found = _suggest(host, o[4])
    assert found[0]["product_key"] == str(p[6])
    assert found[1]["product_key"] == str(p[7])
    assert found[0]["confidence"] != "high"
    # with the rival gone the same offer is a confident match
    with host.app.app_context():
        host.db.session.execute(sa.delete(host.Product).where(host.Product.id == p[7]))
        host.db.session.commit()
    alone = _suggest(host, o[4])
    assert [s["product_key"] for s in alone if s["confidence"] == "high"] == [str(p[6])]


@pytest.mark.parametrize("lookup", ["by product", "whole integration"])
def test_a_product_claimed_by_another_offer_is_not_high_on_its_title(host, shop, lookup,
                                                                      monkeypatch):
    """One integration lists a product once: a second offer whose title matches it as well is
    a duplicate listing or another variant, so neither is ``high`` on its title (and Accept
    all high-confidence leaves both), nor is one whose product is already linked elsewhere in
    the integration. Exact keys and other integrations are not affected. Both ways of looking
    the claims up (a few products by index, many by reading the integration) agree."""
    from xsale_amazon_plugin.linking.links import link_offers
    from xsale_amazon_plugin.suggest import service as module

    if lookup == "whole integration":
        monkeypatch.setattr(module, "CONTEST_LOOKUP_KEYS", 0)
    from xsale_amazon_plugin.suggest.service import (
        accept_high,
        compute_for_integration,
        high_confidence,
        reason_text,
        stored_for_integration,
    )

    p, o = shop["products"], shop["offers"]
    keyboard = str(p[5])
    assert _suggest(host, o[3])[0]["confidence"] == "high"  # alone, a confident match
    integ = shop["integration"]
    twin, same_ean = add_offers(host, integ, [
        {"seller_sku": "X2-DUP", "name": "Logitech K120 Tastatur USB, deutsches Layout"},
        {"seller_sku": "AMZ-7781-B", "name": "Drum", "product_id": "4977766654321",
         "product_id_type": "EAN"},
    ])
    other_integ = host.add_integration("DE", "FBA")
    (elsewhere,) = add_offers(host, other_integ, [
        {"seller_sku": "X2", "name": "Logitech K120 Tastatur USB, QWERTZ"}])
    with host.app.test_request_context():
        compute_for_integration(None)
        for offer_id, other in ((o[3], "X2-DUP"), (twin, "X2")):
            best = _suggest(host, offer_id)[0]
            assert (best["product_key"], best["confidence"]) == (keyboard, "medium")
            assert {"code": "contested", "value": other} in best["reasons"]
        assert reason_text({"code": "contested", "value": "X2"}) == (
            "also the best match of offer X2")
        # the same rows everywhere: the queue's count, the CLI's JSON, accept-all
        high = {r.id for r in high_confidence(integ)}
        assert o[3] not in high and twin not in high
        assert {o[0], same_ean} <= high  # one EAN, two listings: both keyed, both high
        stored = {row.id: found for row, found in stored_for_integration(integ)}
        assert stored[twin][0]["confidence"] == "medium"
        assert _suggest(host, elsewhere)[0]["confidence"] == "high"
        # linked to one of them: the other says where the product is linked
        link_offers([twin], p[5])
        best = _suggest(host, o[3])[0]
        assert best["confidence"] == "medium"
        assert {"code": "linked_elsewhere", "value": "X2-DUP"} in best["reasons"]
        accept_high(integ)
    assert o[3] not in links(host) and links(host)[same_ean][0] == p[0]


def test_index_rebuilds_when_the_text_features_change(host, shop, monkeypatch):
    """A new version of the text features re-indexes every product, even when the trigger
    log (PostgreSQL) says nothing changed."""
    from xsale_amazon_plugin.suggest import index as suggest_index
    from xsale_amazon_plugin.suggest import service as suggestions

    with host.app.app_context():
        first = suggestions.refresh_index()
        assert suggestions.refresh_index().checked_only
        monkeypatch.setattr(suggest_index, "FEATURES_VERSION", 99)
        again = suggestions.refresh_index()
        assert not again.checked_only
        assert again.indexed == len(PRODUCTS) and again.version == first.version + 1
        assert suggestions.refresh_index().checked_only


def test_index_notices_plain_sql_changes(host, shop):
    """Products edited, added and deleted with plain SQL (no ORM events) are seen."""
    p, o = shop["products"], shop["offers"]
    assert _suggest(host, o[1])[0]["product_key"] == str(p[1])
    with host.app.app_context():
        conn = host.db.session.connection()
        conn.execute(sa.text("UPDATE product SET sku = 'OLD-TN' WHERE id = :id"), {"id": p[1]})
        conn.execute(sa.text("INSERT INTO product (sku, ean, name) VALUES "
                             "('TN2010', NULL, 'Toner cartridge TN2010 new stock')"))
        conn.execute(sa.text("DELETE FROM product WHERE id = :id"), {"id": p[6]})
        host.db.session.commit()
        new_id = conn = host.db.session.execute(
            sa.text("SELECT id FROM product WHERE sku = 'TN2010'")).scalar_one()
    top = _suggest(host, o[1])
    assert top[0]["product_key"] == str(new_id)
    assert all(s["product_key"] != str(p[1]) or s["score"] < top[0]["score"] for s in top)
    with host.app.app_context():
        from xsale_amazon_plugin.suggest.index import suggest_tables

        t = suggest_tables(host.models)
        keys = set(host.db.session.execute(sa.select(t.product.c.product_key)).scalars())
        assert str(p[6]) not in keys and str(new_id) in keys
        df = dict(host.db.session.execute(sa.select(t.term_df.c.term, t.term_df.c.df)).all())
        # "cable" belonged only to the deleted product
        assert "cable" not in df
        postings = host.db.session.execute(
            sa.select(t.term.c.term, sa.func.count()).group_by(t.term.c.term)).all()
        assert dict(postings) == df  # document frequencies match the postings exactly
        if host.db.engine.dialect.name == "postgresql":
            # the trigger logged the changes; the refresh consumed the log
            assert host.db.session.execute(sa.select(sa.func.count()).select_from(
                t.change)).scalar_one() == 0
            host.db.session.execute(sa.text("UPDATE product SET name = 'x' WHERE id = :id"),
                                    {"id": p[0]})
            host.db.session.commit()
            assert host.db.session.execute(sa.select(sa.func.count()).select_from(
                t.change)).scalar_one() == 1


def test_rejected_suggestion_never_offered_again(host, shop):
    from xsale_amazon_plugin.suggest.service import reject

    p, o = shop["products"], shop["offers"]
    first = _suggest(host, o[2])[0]["product_key"]
    with host.app.test_request_context():
        reject(o[2], first, user="tester")
    again = _suggest(host, o[2])
    assert first not in {s["product_key"] for s in again}
    assert again and again[0]["product_key"] in {str(p[2]), str(p[3])}


def _cli(host, *args):
    runner = host.app.test_cli_runner()
    return runner.invoke(args=["xsale-amazon", "suggest", *map(str, args)])


def test_cli_json_contract(host, shop):
    p, o = shop["products"], shop["offers"]
    result = _cli(host, shop["integration"], "--json", "--limit", 2)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [x["offer_id"] for x in lines] == o
    assert lines[1]["seller_sku"] == "TN-2010-FBA"
    for line in lines:
        assert set(line) == {"offer_id", "seller_sku", "suggestions"}
        assert len(line["suggestions"]) <= 2
        scores = [s["score"] for s in line["suggestions"]]
        assert scores == sorted(scores, reverse=True)
        for s in line["suggestions"]:
            assert set(s) == {"product_id", "score", "confidence", "reasons"}
            assert isinstance(s["product_id"], str) and 0 <= s["score"] <= 1
            assert s["confidence"] in ("high", "medium", "low")
            assert all(isinstance(r, str) for r in s["reasons"])
    best = lines[0]["suggestions"][0]
    assert (best["product_id"], best["score"], best["confidence"]) == (str(p[0]), 1.0, "high")
    assert best["reasons"][0] == "same EAN 4977766654321"
    assert lines[1]["suggestions"][0]["reasons"][0] == "SKU equal after removing -FBA"
    # the default limit is 5
    result = _cli(host, shop["integration"], "--json")
    assert max(len(json.loads(x)["suggestions"]) for x in result.output.splitlines()) <= 5


def test_cli_accept_high_links_and_skips_linked(host, shop):
    p, o = shop["products"], shop["offers"]
    result = _cli(host, shop["integration"], "--accept", "high")
    assert result.exit_code == 0, result.output
    linked = links(host)
    n = int(result.output.strip().split()[-1])
    assert result.output.startswith("linked ") and n == len(linked) >= 2
    assert linked[o[0]] == (p[0], "suggestion")
    assert linked[o[1]] == (p[1], "suggestion")
    assert o[4] not in linked
    # linked offers leave the JSON output; a second accept links nothing
    lines = [json.loads(x) for x in _cli(host, shop["integration"], "--json").output.splitlines()]
    assert o[0] not in {x["offer_id"] for x in lines}
    assert _cli(host, shop["integration"], "--accept", "high").output.strip() == "linked 0"


def test_cli_summary_counts_no_match_apart(host, shop):
    """The summary's high count is what --accept high links: an offer marked "no match" is
    counted apart, not as high."""
    from xsale_amazon_plugin.suggest.service import set_no_match

    o = shop["offers"]
    before = _cli(host, shop["integration"]).output
    assert before.rstrip().endswith("no match 0"), before
    with host.app.app_context():
        set_no_match(o[0])
    after = _cli(host, shop["integration"]).output
    high = int(after.split("high ")[1].split(",")[0])
    assert after.rstrip().endswith("no match 1")
    assert high == int(before.split("high ")[1].split(",")[0]) - 1
    assert _cli(host, shop["integration"], "--accept", "high").output.strip() == f"linked {high}"


def test_cli_recomputes_when_products_change(host, shop):
    o = shop["offers"]
    before = [json.loads(x) for x in _cli(host, shop["integration"], "--json").output.splitlines()]
    hose = next(x for x in before if x["offer_id"] == o[4])
    assert all(s["confidence"] != "high" for s in hose["suggestions"])
    with host.app.app_context():
        host.db.session.execute(sa.text(
            "INSERT INTO product (sku, ean, name) VALUES ('GH-30', NULL, "
            "'Gardena hose reel 30 m wall bracket GH30')"))
        host.db.session.commit()
    after = [json.loads(x) for x in _cli(host, shop["integration"], "--json").output.splitlines()]
    hose = next(x for x in after if x["offer_id"] == o[4])
    assert hose["suggestions"] and hose["suggestions"][0]["score"] > 0.6


def test_cli_unknown_integration(host):
    result = _cli(host, 999)
    assert result.exit_code != 0 and "does not exist" in result.output


def test_suggestion_job_computes_with_progress(host, shop):
    """The RQ job (what the Suggestions view starts for many offers) stores suggestions for
    every unlinked offer and reports its progress in the job's meta."""
    from rq import SimpleWorker

    from xsale_amazon_plugin.suggest.jobs import enqueue, job_state
    from xsale_amazon_plugin.suggest.service import queue_summary

    with host.app.app_context():
        job_id = enqueue(shop["integration"])
        assert enqueue(shop["integration"]) == job_id  # one job per integration at a time
        queue = host.state.queue
        SimpleWorker([queue], connection=queue.connection,
                     job_class=queue.job_class).work(burst=True, logging_level="WARNING")
        state = job_state(job_id)
        assert state["status"] == "finished" and not state["active"]
        assert state["done"] == state["total"] == len(shop["offers"])
        summary = queue_summary(shop["integration"])
        assert summary.unlinked == len(shop["offers"]) and summary.stale == 0
        assert summary.high >= 2
        assert job_state("not-a-job") is None


def test_suggestions_view_access_csrf_and_polish(db_url, redis_conn):
    from .hostapp import make_host

    host = make_host(db_url, config={"BABEL_DEFAULT_LOCALE": "pl"})
    integ = host.add_integration()
    host.add_products(PRODUCTS)
    [offer] = add_offers(host, integ, [{"seller_sku": "TN-2010-FBA", "name": "Toner"}])
    client = host.app.test_client()
    page = client.get("/admin/xsale-amazon/suggestions/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Akceptuj wszystkie o wysokiej pewności (1)" in html
    queue = json.loads(html.split('id="xa-suggest-data">')[1].split("</script>")[0])
    assert queue[0]["suggestions"][0]["reasons"][0] == {  # reasons rendered in Polish
        "text": "SKU zgodne po usunięciu -FBA", "negative": False}
    dialog = client.get(f"/xsale-amazon/offers/{offer}/suggestions.json").get_json()
    assert dialog["suggestions"][0]["confidence_label"] == "wysoka"
    assert client.get("/xsale-amazon/offers/999999/suggestions.json").status_code == 404
    # decisions need the form's CSRF token
    refused = client.post("/admin/xsale-amazon/suggestions/decide/",
                          data={"action": "no_match", "offer_id": offer})
    assert refused.status_code == 400 and "error" in refused.get_json()
    # no access: every page and endpoint answers 403
    host.access["allowed"] = False
    for url in ("/admin/xsale-amazon/suggestions/", "/admin/xsale-amazon/suggestions/queue.json",
                "/admin/xsale-amazon/suggestions/accept-high/",
                f"/xsale-amazon/offers/{offer}/suggestions.json"):
        assert client.get(url).status_code == 403, url
    assert client.post("/admin/xsale-amazon/suggestions/decide/").status_code == 403
    with host.app.app_context():
        host.db.session.remove()
        for engine in host.db.engines.values():
            engine.dispose()


@pytest.mark.parametrize("pk", ["uuid", "str"])
def test_any_product_primary_key(db_url, redis_conn, pk):
    """UUID and string primary keys: keys in the JSON are the pk as a string, accepting links
    the right product, deleting a product removes it from the index."""
    from .hostapp import make_host

    host = make_host(db_url, pk=pk, table="towar")
    integ = host.add_integration()
    products = host.add_products(PRODUCTS)
    add_offers(host, integ, [{"seller_sku": "TN-2010-FBA", "name": "Toner"}])
    lines = [json.loads(x) for x in _cli(host, integ, "--json").output.splitlines()]
    assert lines[0]["suggestions"][0]["product_id"] == str(products[1])
    assert _cli(host, integ, "--accept", "high").output.strip() == "linked 1"
    assert list(links(host).values()) == [(products[1], "suggestion")]
    with host.app.app_context():
        host.db.session.execute(sa.delete(host.Product).where(host.Product.id == products[0]))
        host.db.session.commit()
        from xsale_amazon_plugin.suggest.index import suggest_tables
        from xsale_amazon_plugin.suggest.service import refresh_index

        refresh_index()
        t = suggest_tables(host.models)
        keys = set(host.db.session.execute(sa.select(t.product.c.product_key)).scalars())
        assert str(products[0]) not in keys and len(keys) == len(PRODUCTS) - 1
        host.db.session.remove()
        for engine in host.db.engines.values():
            engine.dispose()


def test_retrieval_by_terms_same_on_every_path_and_indexed(host):
    """The PostgreSQL retrieval query (per-offer sums and top-k in SQL) finds the same
    candidates as the portable path, and reads each query term's postings through the term
    index whatever the planner estimates (without statistics on the term table, right after
    the first build, it chose a hash join against a parallel sequential scan of every
    posting: ~0.5 s per offer at 1M products)."""
    from xsale_amazon_plugin.suggest import engine as se
    from xsale_amazon_plugin.suggest.index import suggest_tables
    from xsale_amazon_plugin.suggest.service import refresh_index

    colours = ["black", "white", "red", "blue", "green", "grey", "pink", "yellow"]
    kinds = ["mug", "kettle", "drill", "lamp", "towel", "bottle", "backpack", "charger"]
    with host.app.app_context():
        host.db.session.execute(host.Product.__table__.insert(), [
            {"sku": f"S{i}", "ean": None,
             "name": f"Brand{i % 97} {kinds[i % 8]} {colours[i % 7]} model Q{i % 331}X "
                     f"series{i % 53} {i % 5 + 1} l"}
            for i in range(4000)])
        host.db.session.commit()
        fresh = refresh_index()
        conn = host.db.session.connection()
        engine = se.SuggestionEngine(conn, suggest_tables(host.models), fresh.product_count, [])
        offers = [se.OfferInput(i, f"O{i}", f"Brand{i % 97} {kinds[i % 8]} Q{i % 331}X "
                                            f"{colours[(i + 1) % 7]} series{i % 53}")
                  for i in range(1, 41)]
        feats = {o.id: se.title_features(o.name) for o in offers}
        df = engine._document_frequencies({t for f in feats.values() for t in f.terms})
        chosen = {}
        for o in offers:
            known = sorted((t for t in feats[o.id].terms if 0 < df.get(t, 0) <= engine.term_cap),
                           key=lambda t: (df[t], t))
            chosen[o.id] = known[:se.RETRIEVAL_TERMS]
        assert sum(len(c) >= 3 for c in chosen.values()) >= 30  # multi-term offers
        portable = {o.id: set() for o in offers}
        engine._top_by_terms_python(chosen, df, portable)
        assert all(len(c) == se.TITLE_CANDIDATES for c in portable.values())
        if conn.dialect.name != "postgresql":
            return
        in_sql = {o.id: set() for o in offers}
        engine._top_by_terms_sql(chosen, df, in_sql)
        assert in_sql == portable
        # The plan of one offer's query when the planner thinks nested loops are expensive
        # (as with no statistics on a large term table): still per-term index lookups.
        conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
        statements = []

        def capture(conn, cursor, statement, parameters, context, executemany):
            statements.append((statement, parameters))

        sa.event.listen(conn, "before_cursor_execute", capture)
        try:
            engine._top_by_terms_sql({1: chosen[1]}, df, {1: set()})
        finally:
            sa.event.remove(conn, "before_cursor_execute", capture)
        [(statement, parameters)] = statements
        [plan] = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement,
                                      parameters).scalar_one()

        def nodes(node):
            yield node
            for child in node.get("Plans", []):
                yield from nodes(child)

        scans = [(n["Node Type"], n.get("Index Cond") or n.get("Recheck Cond"))
                 for n in nodes(plan["Plan"])
                 if n.get("Relation Name") == "xsale_amazon_suggest_term"]
        assert scans and all(kind != "Seq Scan" and cond for kind, cond in scans), scans
        host.db.session.rollback()
