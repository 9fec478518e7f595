"""Translations of the ``xsale_amazon`` domain: completeness, freshness and rendering.

When a test here fails because a string was added or changed, run ``bash scripts/i18n.sh``,
translate the new entries in ``xsale_amazon_plugin/translations/pl/LC_MESSAGES/xsale_amazon.po``
(and remove their ``fuzzy`` flag), then run the script again to recompile the ``.mo`` files.
"""

from __future__ import annotations

import gettext as std_gettext
import os
import re
import shlex
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from .hostapp import Host, make_host

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "i18n.sh"
TDIR = ROOT / "xsale_amazon_plugin" / "translations"
DOMAIN = "xsale_amazon"
POT = TDIR / f"{DOMAIN}.pot"
LOCALES = ("pl", "en")
PL_PLURAL_EXPR = "(n==1 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2)"
FIX = "Run `bash scripts/i18n.sh` (then translate the new Polish entries and run it again)."

# A printf-style placeholder with a mapping key, e.g. %(num)s or %(price).2f.
PLACEHOLDER = re.compile(r"%\((\w+)\)[#0\- +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")


def po_path(lang: str) -> Path:
    return TDIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(lang: str) -> Path:
    return TDIR / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"


def load_po(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=locale)


def key(msgid: str | tuple[str, ...]) -> str:
    return msgid if isinstance(msgid, str) else msgid[0]


def describe(msgid: str | tuple[str, ...]) -> str:
    return repr(msgid if isinstance(msgid, str) else msgid[0])


def placeholders(text: str) -> Counter[str]:
    return Counter(PLACEHOLDER.findall(text))


def messages(catalog: Catalog) -> dict[str, Any]:
    return {key(m.id): m for m in catalog if m.id}


def catalog_dict(mo: Path) -> dict[Any, str]:
    with mo.open("rb") as f:
        translations = std_gettext.GNUTranslations(f)
    # The header ("" key) carries the generator's version and is not a message.
    return {k: v for k, v in translations._catalog.items() if k != ""}


# --------------------------------------------------------------------------------------------
# Catalog files
# --------------------------------------------------------------------------------------------


def test_catalog_files_exist() -> None:
    missing = [str(p.relative_to(ROOT)) for p in
               [POT, *(po_path(lang) for lang in LOCALES), *(mo_path(lang) for lang in LOCALES)]
               if not p.is_file()]
    assert not missing, f"Missing translation files: {missing}. {FIX}"


def test_pot_is_not_empty() -> None:
    pot = messages(load_po(POT))
    # A broken babel.cfg (or a path mismatch) silently extracts nothing.
    assert len(pot) > 50, f"Only {len(pot)} messages in {POT.name}; is babel.cfg right?"
    for expected in ("Offers without a linked product", "Service actions", "Import offers",
                     "Connection", "Integrations"):
        assert expected in pot, f"{expected!r} not extracted into {POT.name}. {FIX}"


def test_polish_catalog_is_complete_and_not_fuzzy() -> None:
    pot = messages(load_po(POT))
    pl_catalog = load_po(po_path("pl"), locale="pl")
    pl = messages(pl_catalog)
    assert not pl_catalog.fuzzy, "The Polish catalog header is marked fuzzy"
    assert pl_catalog.num_plurals == 3
    assert pl_catalog.plural_expr.replace(" ", "") == PL_PLURAL_EXPR.replace(" ", "")

    problems = []
    for msgid, template in pot.items():
        msg = pl.get(msgid)
        if msg is None:
            problems.append(f"missing from pl .po: {describe(template.id)}")
            continue
        if msg.fuzzy:
            problems.append(f"fuzzy: {describe(msg.id)}")
        if template.pluralizable:
            if not msg.pluralizable:
                problems.append(f"must be a plural entry: {describe(msg.id)}")
                continue
            forms = list(msg.string)
            if len(forms) != 3 or not all(s.strip() for s in forms):
                problems.append(f"needs 3 non-empty plural forms: {describe(msg.id)} -> {forms}")
        elif not (isinstance(msg.string, str) and msg.string.strip()):
            problems.append(f"untranslated: {describe(msg.id)}")
    assert not problems, (
        f"{len(problems)} Polish catalog problem(s); {FIX}\n  " + "\n  ".join(problems)
    )


def test_polish_placeholders_match() -> None:
    problems = []
    for msg in load_po(po_path("pl"), locale="pl"):
        if not msg.id or not msg.string:
            continue
        if msg.pluralizable:
            expected = placeholders(msg.id[0]) | placeholders(msg.id[1])
            for i, form in enumerate(msg.string):
                if set(placeholders(form)) != set(expected):
                    problems.append(f"{describe(msg.id)} form {i}: {form!r}")
        elif placeholders(msg.string) != placeholders(msg.id):
            problems.append(f"{msg.id!r} -> {msg.string!r}")
    assert not problems, "Placeholders differ between msgid and msgstr:\n  " + "\n  ".join(
        problems
    )


def test_polish_glossary() -> None:
    """xSale's established Polish terms."""
    pl = {k: m.string for k, m in messages(load_po(po_path("pl"), locale="pl")).items()}
    glossary = {
        "Integrations": "Integracje",
        "Offers": "Oferty",
        "Product": "Towar",
        "Import offers": "Importuj oferty",
        "Service actions": "Akcje serwisowe",
        "Connection": "Połączenia",
        "Offers without a linked product": "Oferty bez powiązanego towaru",
        "Import runs": "Importy",
        "Link": "Powiąż",
        "Unlink": "Usuń powiązanie",
        "Auto-link by SKU": "Powiąż automatycznie po SKU",
        "Auto-link by EAN": "Powiąż automatycznie po EAN",
        "Auto-link by ASIN": "Powiąż automatycznie po ASIN",
        "Linked offers": "Oferty powiązane",
        "All offers": "Wszystkie oferty",
    }
    wrong = {en: (pl.get(en), want) for en, want in glossary.items()
             if en in pl and pl[en] != want}
    assert not wrong, f"Glossary terms differ (got, want): {wrong}"


def test_english_catalog_matches_template() -> None:
    pot = set(messages(load_po(POT)))
    en = load_po(po_path("en"), locale="en")
    assert set(messages(en)) == pot, f"The en catalog is out of date. {FIX}"
    # Empty msgstr = the English msgid is shown; a fuzzy flag only matters on a real override.
    fuzzy = [describe(m.id) for m in en
             if m.id and m.fuzzy and any(s for s in ([m.string] if isinstance(m.string, str)
                                                     else m.string))]
    assert not fuzzy, f"Fuzzy entries in the en catalog: {fuzzy}. {FIX}"
    assert not en.fuzzy, "The en catalog header is marked fuzzy (pybabel would skip it)"


@pytest.mark.parametrize("lang", LOCALES)
def test_mo_files_are_up_to_date(lang: str, tmp_path: Path) -> None:
    fresh = tmp_path / f"{DOMAIN}.mo"
    with fresh.open("wb") as f:
        write_mo(f, load_po(po_path(lang), locale=lang))
    committed = catalog_dict(mo_path(lang))
    compiled = catalog_dict(fresh)
    assert committed == compiled, (
        f"{mo_path(lang).relative_to(ROOT)} does not match its .po file. {FIX}"
    )


def test_polish_plural_rule_in_mo() -> None:
    with mo_path("pl").open("rb") as f:
        translations = std_gettext.GNUTranslations(f)
    expected = {1: 0, 2: 1, 3: 1, 4: 1, 5: 2, 11: 2, 12: 2, 14: 2, 21: 2, 22: 1, 25: 2,
                104: 1, 112: 2, 122: 1, 0: 2}
    assert {n: translations.plural(n) for n in expected} == expected


# --------------------------------------------------------------------------------------------
# The template covers the source
# --------------------------------------------------------------------------------------------


def _extract_args() -> list[str]:
    """The ``pybabel extract`` options used by scripts/i18n.sh (keywords, ignored dirs)."""
    text = SCRIPT.read_text(encoding="utf-8")
    match = re.search(r'"\$PYBABEL" extract(.*?)\n\s*\.\s*\n', text, re.S)
    assert match, "Could not find the `pybabel extract` call in scripts/i18n.sh"
    tokens = shlex.split(match.group(1).replace("\\\n", " ").rstrip().rstrip("\\"))
    args: list[str] = []
    it = iter(tokens)
    for tok in it:
        if tok in ("-k", "--keyword", "--ignore-dirs"):
            args += [tok, next(it)]
        elif tok == "--no-default-keywords":
            args.append(tok)
    assert "-k" in args, "No keywords found in scripts/i18n.sh"
    return args


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("i18n") / f"{DOMAIN}.pot"
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        CommandLineInterface().run(
            ["pybabel", "-q", "extract", "-F", "babel.cfg", *_extract_args(), "-o", str(out),
             "."]
        )
    finally:
        os.chdir(cwd)
    return messages(load_po(out))


def test_pot_contains_every_source_string(extracted: dict[str, Any]) -> None:
    assert extracted, "Extraction found no strings at all; check babel.cfg"
    committed = messages(load_po(POT))
    missing = [describe(m.id) for k, m in extracted.items() if k not in committed]
    assert not missing, (
        f"{len(missing)} translatable string(s) in the source are not in "
        f"{POT.relative_to(ROOT)}. {FIX}\n  " + "\n  ".join(missing)
    )
    wrong_plural = [describe(m.id) for k, m in extracted.items()
                    if k in committed and m.id != committed[k].id]
    assert not wrong_plural, f"Plural forms changed for {wrong_plural}. {FIX}"


def test_pot_has_no_stale_strings(extracted: dict[str, Any]) -> None:
    committed = messages(load_po(POT))
    stale = [describe(m.id) for k, m in committed.items() if k not in extracted]
    assert not stale, (
        f"{len(stale)} string(s) in {POT.name} are no longer used in the source. {FIX}\n  "
        + "\n  ".join(stale)
    )


# --------------------------------------------------------------------------------------------
# Rendering in a host application
# --------------------------------------------------------------------------------------------


@pytest.fixture
def i18n_host(db_url: str, redis_conn: Any) -> Iterator[tuple[Host, dict[str, str]]]:
    from flask_babel import Babel

    selected = {"locale": "pl"}
    host = make_host(db_url)
    Babel(host.app, locale_selector=lambda: selected["locale"])
    yield host, selected
    with host.app.app_context():
        host.db.session.remove()
        for engine in host.db.engines.values():
            engine.dispose()


def _get(host: Host, url: str) -> str:
    resp = host.app.test_client().get(url)
    assert resp.status_code == 200, (url, resp.status_code)
    return resp.get_data(as_text=True)


def test_admin_pages_render_in_polish(i18n_host: tuple[Host, dict[str, str]]) -> None:
    host, selected = i18n_host
    selected["locale"] = "pl"
    integ_id = host.add_integration()

    offers = _get(host, "/admin/xsale-amazon/offers/")
    assert "Oferty bez powiązanego towaru" in offers
    assert "Oferty powiązane" in offers
    assert "Wszystkie oferty" in offers
    assert "Offers without a linked product" not in offers

    edit = _get(host, f"/admin/xsale-amazon/integrations/edit/?id={integ_id}")
    for text in ("Akcje serwisowe", "Importuj oferty", "Połączenia", "Historia importów"):
        assert text in edit, text
    for text in ("Service actions", "Import history"):
        assert text not in edit, text


def test_admin_pages_render_in_english(i18n_host: tuple[Host, dict[str, str]]) -> None:
    host, selected = i18n_host
    selected["locale"] = "en"
    integ_id = host.add_integration()

    offers = _get(host, "/admin/xsale-amazon/offers/")
    assert "Offers without a linked product" in offers
    assert "Oferty bez powiązanego towaru" not in offers

    edit = _get(host, f"/admin/xsale-amazon/integrations/edit/?id={integ_id}")
    for text in ("Service actions", "Import offers", "Connection"):
        assert text in edit, text
    for text in ("Akcje serwisowe", "Importuj oferty", "Połączenia"):
        assert text not in edit, text


def test_error_text_follows_request_locale(i18n_host: tuple[Host, dict[str, str]]) -> None:
    from xsale_amazon_plugin.importing.messages import error_text

    host, selected = i18n_host
    selected["locale"] = "pl"
    with host.app.test_request_context("/"):
        text = error_text("missing_asin_column")
        assert "asin1" in text and "Seller Central" in text
        assert "Raporty magazynowe" in text and "Niczego nie zmieniono" in text
        assert "Nothing was changed" not in text
        detail = error_text("amazon_bad_request", {"detail": "InvalidInput"})
        assert detail == "Amazon odrzucił zapytanie: InvalidInput"

    selected["locale"] = "en"
    with host.app.test_request_context("/"):
        text = error_text("missing_asin_column")
        assert "Nothing was changed" in text and "Inventory Reports" in text

    # Outside a request (workers, CLI) messages stay in English.
    assert "Nothing was changed" in error_text("missing_asin_column")
