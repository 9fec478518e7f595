"""Decoding and parsing of All Listings Reports, checked against generated and hand-made files."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from xsale_amazon_plugin.amazon import report_parser
from xsale_amazon_plugin.amazon.report_parser import (
    InvalidRow,
    MissingAsinColumnError,
    OfferRow,
    ReportFormatError,
    ReportReader,
    parse_open_date,
    parse_price,
    parse_quantity,
    resolve_charset,
)
from xsale_amazon_plugin.emulator.report_builder import (
    CN_HEADER_LINE,
    DEFAULT_ENCODING,
    EU_EN_HEADER_LINE,
    FAMILIES,
    FAMILY_MARKETPLACE,
    HEADERS,
    US_HEADER_LINE,
    demo_listings,
    encodable_text,
    header_line,
    render_report,
    write_report,
)

PID_TYPES = {"1": "ASIN", "2": "ISBN", "3": "UPC", "4": "EAN"}
EXPECTED_FAMILY = {
    "us": "en", "eu_en": "en", "custom_b2b": "en", "fr": "fr", "fr_asin": "fr", "de": "de",
    "it": "it", "es": "es", "jp": "jp", "jp_custom": "jp", "cn": "cn", "pl": "pl", "tr": "tr",
}  # fmt: skip
NO_ASIN_FAMILIES = {"fr", "jp"}
US_COLS = US_HEADER_LINE.split("\t")


def _write(tmp_path: Path, data: bytes, name: str = "report.tsv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _read(
    path: Path, declared: str | None = None, default: str = "utf-8", **kwargs
) -> tuple[ReportReader, list[OfferRow | InvalidRow]]:
    reader = ReportReader(path, declared_charset=declared, default_encoding=default, **kwargs)
    return reader, list(reader.rows())


def _us_line(**values: str) -> str:
    """A US-format data line; keyword names use underscores for the column dashes."""
    cells = dict.fromkeys(US_COLS, "")
    cells.update(
        {"seller-sku": "SKU-1", "price": "9.99", "quantity": "3", "asin1": "B00TEST001",
         "status": "Active", "fulfillment-channel": "DEFAULT"}
    )  # fmt: skip
    cells.update({key.replace("_", "-"): value for key, value in values.items()})
    return "\t".join(cells[name] for name in US_COLS)


def _us_report(*lines: str, ending: str = "\n") -> bytes:
    return ending.join([US_HEADER_LINE, *lines, ""]).encode("utf-8")


def _offers(rows) -> list[OfferRow]:
    return [row for row in rows if isinstance(row, OfferRow)]


def _invalid(rows) -> list[InvalidRow]:
    return [row for row in rows if isinstance(row, InvalidRow)]


def _assert_matches(offer: OfferRow, row: dict, encoding: str, has_asin: bool) -> None:
    assert offer.seller_sku == row["seller_sku"]
    assert offer.name == encodable_text(row["name"], encoding)
    assert offer.listing_id == row["listing_id"]
    assert offer.price == row["price"]
    assert offer.quantity == row["quantity"]
    assert offer.fulfillment_channel == row["fulfillment_channel"]
    assert offer.status == row["status"]
    assert offer.product_id == row["product_id"]
    assert offer.product_id_type == PID_TYPES[row["product_id_type"]]
    assert offer.open_date == row["open_date"]
    assert offer.open_date.tzinfo == timezone.utc
    assert offer.open_date_raw == row["open_date_raw"]
    if has_asin:
        assert offer.asin == row["asin"]
        assert offer.asin_from_product_id is False
    else:
        from_pid = row["product_id_type"] == "1"
        assert offer.asin == (row["product_id"] if from_pid else None)
        assert offer.asin_from_product_id is from_pid


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("family", FAMILIES)
def test_round_trip_every_family(tmp_path, family):
    encoding = DEFAULT_ENCODING[family]
    marketplace = FAMILY_MARKETPLACE[family]
    rows = list(demo_listings(300, seed=7, channel="mixed", marketplace=marketplace))
    path = tmp_path / f"{family}.tsv"
    assert write_report(path, rows, family) == 300

    has_asin = family not in NO_ASIN_FAMILIES
    reader, parsed = _read(path, default=encoding, require_asin=has_asin)

    assert reader.encoding == encoding
    assert reader.header_family == EXPECTED_FAMILY[family]
    assert reader.has_asin_column is has_asin
    assert reader.header == list(HEADERS[family])
    assert reader.total_lines == 300
    assert all(isinstance(row, OfferRow) for row in parsed)
    assert [row.line for row in parsed] == list(range(2, 302))
    for offer, row in zip(parsed, rows, strict=True):
        _assert_matches(offer, row, encoding, has_asin)
    # The sample is varied enough to exercise FBA rows, incomplete rows and special names.
    assert any(row.quantity is None for row in parsed)
    assert any(row.price is None for row in parsed)
    assert any(row.status == "Inactive" for row in parsed)


def test_demo_names_really_use_the_special_characters():
    names = [row["name"] for row in demo_listings(2000, seed=1, marketplace="US")]
    for fragment in ('"', "<script>", "€", "„", "①", "～", "髙", "🚀"):
        assert any(fragment in name for name in names), fragment
    assert any(name.startswith('"') for name in names)


@pytest.mark.parametrize("family", ["us", "de", "jp_custom"])
def test_crlf_and_bom(tmp_path, family):
    rows = list(demo_listings(50, seed=3, channel="mixed", marketplace=FAMILY_MARKETPLACE[family]))
    plain = _write(tmp_path, render_report(rows, family, encoding="utf-8"), "lf.tsv")
    crlf = _write(
        tmp_path,
        render_report(rows, family, encoding="utf-8", line_ending="\r\n", bom=True),
        "crlf.tsv",
    )
    # The marketplace default is wrong for these UTF-8 files; the BOM/UTF-8 scan corrects it.
    reader, parsed = _read(crlf, default=DEFAULT_ENCODING[family])
    assert reader.encoding == "utf-8"
    assert reader.header == list(HEADERS[family])  # no BOM left in the first column name
    _, expected = _read(plain, default="utf-8")
    assert parsed == expected
    for offer, row in zip(parsed, rows, strict=True):
        _assert_matches(offer, row, "utf-8", True)
        assert not offer.status.endswith("\r")


def test_final_line_without_newline_and_blank_lines(tmp_path):
    data = _us_report("", _us_line(seller_sku="A"), "   ", "\t\t", _us_line(seller_sku="B"))
    path = _write(tmp_path, data.rstrip(b"\n") + b"\n\n" + _us_line(seller_sku="C").encode())
    reader, parsed = _read(path)
    assert [(row.line, row.seller_sku) for row in parsed] == [(3, "A"), (6, "B"), (8, "C")]
    assert reader.total_lines == 7


def test_header_only_report_yields_nothing(tmp_path):
    reader, parsed = _read(_write(tmp_path, (US_HEADER_LINE + "\r\n").encode()))
    assert parsed == []
    assert reader.total_lines == 0
    _, parsed = _read(_write(tmp_path, US_HEADER_LINE.encode(), "no-newline.tsv"))
    assert parsed == []


def test_rows_can_be_read_twice(tmp_path):
    path = _write(tmp_path, render_report(demo_listings(20), "eu_en"))
    reader = ReportReader(path, declared_charset="Cp1252", default_encoding="cp1252")
    assert list(reader.rows()) == list(reader.rows())


def test_leading_blank_lines_before_header(tmp_path):
    reader, parsed = _read(_write(tmp_path, b"\n\r\n" + _us_report(_us_line())))
    assert reader.header == US_COLS
    assert [row.line for row in parsed] == [4]


# --------------------------------------------------------------------------- no quoting


def test_title_starting_with_quote_does_not_swallow_rows(tmp_path):
    lines = [
        _us_line(seller_sku="Q1", item_name='"Premium Kaffeebecher'),
        _us_line(seller_sku="Q2", item_name='Tasse "groß'),
        _us_line(seller_sku="Q3", item_name='"'),
        _us_line(seller_sku="Q4", item_name='"Ends with quote"'),
    ]
    _, parsed = _read(_write(tmp_path, _us_report(*lines)))
    assert [(row.seller_sku, row.name) for row in parsed] == [
        ("Q1", '"Premium Kaffeebecher'),
        ("Q2", 'Tasse "groß'),
        ("Q3", '"'),
        ("Q4", '"Ends with quote"'),
    ]


SPECIAL_NAMES = {
    "utf-8": [
        "<script>alert('x')</script>", "Becher 19,99 €", "„Deluxe“ Tasse", "①～髙島屋",
        "Rakete 🚀👍🏽", '"Quoted', "Name with trailing spaces   ", "ｶﾀｶﾅ",
    ],
    "cp1252": ["<script>alert(1)</script>", "Becher 19,99 €", "„Deluxe“ Tasse ™", '"Q'],
    "cp932": ["<script>alert(1)</script>", "①～髙島屋", "ｶﾀｶﾅ 【公式】", '"Q'],
}  # fmt: skip


@pytest.mark.parametrize("encoding", sorted(SPECIAL_NAMES))
def test_special_names_survive_exactly(tmp_path, encoding):
    names = SPECIAL_NAMES[encoding]
    demo = demo_listings(len(names))
    rows = [dict(row, name=name) for row, name in zip(demo, names, strict=True)]
    for family in ("us", "jp_custom" if encoding == "cp932" else "eu_en"):
        data = render_report(rows, family, encoding=encoding)
        _, parsed = _read(_write(tmp_path, data), default=encoding)
        assert [row.name for row in parsed] == names


def test_unencodable_name_characters_are_filtered():
    assert encodable_text("Rakete 🚀 19 €", "cp1252") == "Rakete  19 €"
    assert encodable_text("Becher € ① −", "cp932") == "Becher  ① "  # − does not round-trip
    assert encodable_text("a\tb\nc\x00d\re", "utf-8") == "abcde"
    row = dict(next(demo_listings(1)), name="Rakete 🚀")
    assert "Rakete \t" in render_report([row], "de").decode("cp1252")


# --------------------------------------------------------------------------- charsets


@pytest.mark.parametrize(
    ("declared", "codec"),
    [
        ("Windows-31J", "cp932"),
        ("windows-31j", "cp932"),
        ("Shift_JIS", "cp932"),
        ("Cp1252", "cp1252"),
        ("windows-1252", "cp1252"),
        ("utf8", "utf-8"),
        ("UTF-8", "utf-8"),
        ('"utf-8"', "utf-8"),
        ("ISO-8859-1", "latin-1"),
        ("iso-8859-15", "iso8859-15"),
        ("UTF-8-SIG", "utf-8"),
        ("no-such-charset", None),
        ("UTF-16", None),
        ("utf-7", None),
        ("base64", None),
        ("", None),
        (None, None),
    ],
)
def test_resolve_charset(declared, codec):
    assert resolve_charset(declared) == codec


@pytest.mark.parametrize(
    ("declared", "encoding", "default"),
    [("Windows-31J", "cp932", "utf-8"), ("Cp1252", "cp1252", "utf-8"), ("utf8", "utf-8", "cp932")],
)
def test_declared_charset_is_used(tmp_path, declared, encoding, default):
    family = "jp" if encoding == "cp932" else "de"
    rows = list(demo_listings(30, seed=5, marketplace="JP" if family == "jp" else "DE"))
    path = _write(tmp_path, render_report(rows, family, encoding=encoding))
    reader, parsed = _read(path, declared=declared, default=default, require_asin=False)
    assert reader.encoding == encoding
    assert reader.encoding_source in ("declared", "detected")
    assert [row.name for row in parsed] == [encodable_text(r["name"], encoding) for r in rows]


def test_default_encoding_used_without_declaration(tmp_path):
    rows = list(demo_listings(30, seed=5, marketplace="JP"))
    path = _write(tmp_path, render_report(rows, "jp_custom"))
    reader, parsed = _read(path, declared=None, default="cp932")
    assert (reader.encoding, reader.encoding_source) == ("cp932", "default")
    assert parsed[0].name == encodable_text(rows[0]["name"], "cp932")
    # An unusable declared charset falls back to the default too.
    reader, _ = _read(path, declared="x-unknown", default="cp932")
    assert reader.encoding == "cp932"


def test_utf8_file_declared_cp1252_is_read_as_utf8(tmp_path):
    rows = list(demo_listings(40, seed=2, marketplace="DE"))
    path = _write(tmp_path, render_report(rows, "de", encoding="utf-8"))
    reader, parsed = _read(path, declared="Cp1252", default="cp1252")
    assert (reader.encoding, reader.encoding_source) == ("utf-8", "detected")
    assert reader.header[3] == "Händler-SKU"
    assert [row.name for row in parsed] == [encodable_text(r["name"], "utf-8") for r in rows]


def test_ascii_only_file_keeps_declared_charset(tmp_path):
    reader, _ = _read(_write(tmp_path, _us_report(_us_line())), declared="Cp1252")
    assert (reader.encoding, reader.encoding_source) == ("cp1252", "declared")


def _cp1252_report_declared_utf8() -> bytes:
    header = EU_EN_HEADER_LINE.encode("cp1252")
    width = len(EU_EN_HEADER_LINE.split("\t"))

    def line(sku: str, name: str, description: str = "") -> bytes:
        cells = [""] * width
        cells[0], cells[1], cells[3], cells[4], cells[16] = name, description, sku, "1.00", "B0X"
        return "\t".join(cells).encode("cp1252")

    return b"\n".join(
        [
            header,
            line("OK-1", "Kaffeebecher"),
            line("BAD-1", "Küchenmesser"),
            line("OK-2", "Tasse", description="Beschreibung: schön"),
            line("BAD-2", "Preis 19 €"),
            b"",
        ]
    )


def test_cp1252_file_declared_utf8_falls_back_to_the_marketplace_encoding(tmp_path):
    data = _cp1252_report_declared_utf8()
    reader, parsed = _read(_write(tmp_path, data), declared="utf8", default="cp1252")
    assert (reader.encoding, reader.encoding_source) == ("cp1252", "fallback")
    assert reader.rejected_encoding == "utf-8"
    assert not _invalid(parsed)
    assert [(row.seller_sku, row.name) for row in _offers(parsed)] == [
        ("OK-1", "Kaffeebecher"), ("BAD-1", "Küchenmesser"), ("OK-2", "Tasse"),
        ("BAD-2", "Preis 19 €")]


def test_cp1252_bytes_without_a_fallback_become_invalid_rows_that_keep_their_sku(tmp_path):
    """A US (UTF-8) marketplace has no other usual encoding: the lines are rejected, naming
    the byte, but their SKU is still read (evidence that the offer exists)."""
    data = _cp1252_report_declared_utf8()
    reader, parsed = _read(_write(tmp_path, data), declared="utf8", default="utf-8")
    assert reader.encoding == "utf-8"
    assert [row.seller_sku for row in _invalid(parsed)] == ["BAD-1", "BAD-2"]
    assert [row.seller_sku for row in _offers(parsed)] == ["OK-1", "OK-2"]
    # Undecodable bytes in an ignored column (item-description) do not reject the row.
    assert _offers(parsed)[1].name == "Tasse"
    bad = _invalid(parsed)
    assert [(row.line, row.column) for row in bad] == [(3, "item-name"), (5, "item-name")]
    for row, byte in zip(bad, (b"\xfc", b"\x80"), strict=True):
        assert "utf-8" in row.reason
        offset = int(row.reason.rsplit("offset ", 1)[1])
        assert data[offset : offset + 1] == byte
        assert f"0x{byte[0]:02X}" in row.reason


def test_undecodable_line_in_cp1252_is_invalid_row(tmp_path):
    # 0x81 is unassigned in cp1252 and the file is not UTF-8 either.
    bad_line = _us_line(seller_sku="B", item_name="Tasse @").encode().replace(b"@", b"\x81")
    data = _us_report(_us_line(seller_sku="A")) + bad_line + b"\n"
    _, parsed = _read(_write(tmp_path, data), default="cp1252")
    assert [row.seller_sku for row in _offers(parsed)] == ["A"]
    (bad,) = _invalid(parsed)
    assert (bad.line, bad.column) == (3, "item-name")
    assert "cp1252" in bad.reason and "0x81" in bad.reason


def test_undecodable_header_raises(tmp_path):
    data = header_line("de").encode("cp1252") + b"\n"
    with pytest.raises(ReportFormatError) as info:
        ReportReader(_write(tmp_path, data), declared_charset="utf8", default_encoding="utf-8")
    assert info.value.code == "undecodable"
    assert "utf-8" in info.value.message
    assert "H\\xe4ndler-SKU" in info.value.message
    # A marketplace whose usual encoding decodes it reads it with that one instead.
    reader = ReportReader(_write(tmp_path, data), declared_charset="utf8",
                          default_encoding="cp1252")
    assert (reader.encoding, reader.header_family) == ("cp1252", "de")


def test_utf16_file_is_rejected(tmp_path):
    path = _write(tmp_path, (US_HEADER_LINE + "\n").encode("utf-16"))
    with pytest.raises(ReportFormatError) as info:
        ReportReader(path, declared_charset=None, default_encoding="cp1252")
    assert info.value.code == "undecodable"
    assert "NUL" in info.value.message


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize("family", sorted(NO_ASIN_FAMILIES))
def test_missing_asin_column_raises(tmp_path, family):
    path = _write(tmp_path, render_report(demo_listings(3), family))
    with pytest.raises(MissingAsinColumnError) as info:
        ReportReader(path, declared_charset=None, default_encoding=DEFAULT_ENCODING[family])
    error = info.value
    assert isinstance(error, ReportFormatError)
    assert error.code == "missing_asin_column"
    assert error.header_family == EXPECTED_FAMILY[family]
    assert error.header == header_line(family)
    assert "asin1" in error.message and header_line(family) in error.message


@pytest.mark.parametrize("family", ["fr_asin", "jp_custom", "cn", "de", "tr"])
def test_asin_column_variants(family):
    reader_header = HEADERS[family]
    index = next(i for i, name in enumerate(reader_header) if name.lower().startswith("asin"))
    assert reader_header[index] in ("asin1", "ASIN 1", "ASIN1")


def test_cn_duplicate_column_resolves_by_position(tmp_path):
    rows = list(demo_listings(10, seed=4, marketplace="CN"))
    reader, parsed = _read(_write(tmp_path, render_report(rows, "cn")))
    assert reader.header.count("商品编码") == 2
    assert reader.columns["listing-id"] == 2
    assert reader.columns["product-id"] == 22
    assert reader.columns["seller-sku"] == 3
    assert reader.columns["asin"] == 16
    assert [(r.listing_id, r.product_id) for r in parsed] == [
        (row["listing_id"], row["product_id"]) for row in rows
    ]
    assert header_line("cn") == CN_HEADER_LINE


def test_eu_english_deprecated_columns_are_ignored(tmp_path):
    reader, _ = _read(_write(tmp_path, (EU_EN_HEADER_LINE + "\n").encode()), default="cp1252")
    assert reader.header.count("Deprecated column") == 9
    assert reader.columns == {
        "item-name": 0, "listing-id": 2, "seller-sku": 3, "price": 4, "quantity": 5,
        "open-date": 6, "product-id-type": 9, "asin": 16, "product-id": 22,
        "fulfillment-channel": 26, "status": 28,
    }  # fmt: skip


def test_custom_b2b_price_columns_are_not_price(tmp_path):
    reader, _ = _read(_write(tmp_path, (header_line("custom_b2b") + "\n").encode()))
    assert reader.header[reader.columns["price"]] == "price"
    assert reader.columns["seller-sku"] == 0 and reader.columns["asin"] == 1


def test_localized_condition_is_not_status():
    for family, status, condition in (
        ("fr", "état", "état-produit"),
        ("es", "estado", "Estado del producto"),
        ("jp_custom", "ステータス", "コンディション"),
    ):
        header = list(HEADERS[family])
        assert status in header and condition in header
    assert report_parser._lookup_header("état-produit") is None
    assert report_parser._lookup_header("Estado del producto") is None
    assert report_parser._lookup_header("état")[0] == ("status",)


def test_jp_custom_pending_quantity_is_not_quantity(tmp_path):
    rows = list(demo_listings(20, seed=9, marketplace="JP"))
    reader, parsed = _read(_write(tmp_path, render_report(rows, "jp_custom")), default="cp932")
    assert reader.header[reader.columns["quantity"]] == "数量"
    assert "在庫数" in reader.header
    assert [r.quantity for r in parsed] == [row["quantity"] for row in rows]


def test_header_matching_is_forgiving(tmp_path):
    header = "  SELLER-SKU \tItem-Name\tASIN 1\tQuantite\tprix\tdescription\tFulfilment-Channel"
    data = (header + "\nS1\tName\tb00abc1234\t4\t12,50\tx\tamazon_eu\n").encode()
    reader, (row,) = _read(_write(tmp_path, data))
    assert set(reader.columns) == {
        "seller-sku", "item-name", "asin", "quantity", "price", "fulfillment-channel"
    }  # fmt: skip
    assert (row.asin, row.quantity, row.price) == ("B00ABC1234", 4, Decimal("12.50"))
    assert row.fulfillment_channel == "AMAZON_EU"


def test_duplicate_seller_sku_header_first_wins(tmp_path):
    data = b"seller-sku\tasin1\tseller-sku\nA\tB0X\tB\n"
    reader, (row,) = _read(_write(tmp_path, data))
    assert reader.columns["seller-sku"] == 0 and row.seller_sku == "A"


def test_unknown_header_raises_with_header_in_message(tmp_path):
    header = "Produktname\tArtikelnummer\tPreis"
    with pytest.raises(ReportFormatError) as info:
        _read(_write(tmp_path, (header + "\nA\tB\tC\n").encode()))
    error = info.value
    assert error.code == "unknown_header"
    assert header in error.message and error.header == header
    assert "not recognised" in error.message
    assert not isinstance(error, MissingAsinColumnError)


def test_unknown_header_message_is_truncated(tmp_path):
    header = "\t".join(f"column-{i}" for i in range(300))
    with pytest.raises(ReportFormatError) as info:
        _read(_write(tmp_path, header.encode() + b"\n"))
    assert len(info.value.header) < 520
    assert info.value.header.startswith("column-0\tcolumn-1")
    assert len(info.value.message) < 1000


@pytest.mark.parametrize("data", [b"", b"   ", b"\n\n\r\n", b" \t \n  \n", b"\xef\xbb\xbf"])
def test_empty_report_raises(tmp_path, data):
    with pytest.raises(ReportFormatError) as info:
        _read(_write(tmp_path, data))
    assert info.value.code == "empty_report"
    assert info.value.message


def test_missing_sku_header_is_unknown_header(tmp_path):
    with pytest.raises(ReportFormatError) as info:
        _read(_write(tmp_path, b"item-name\tasin1\tprice\nA\tB\t1\n"))
    assert info.value.code == "unknown_header"


# --------------------------------------------------------------------------- values


def test_asin_from_product_id_when_asin_column_is_empty(tmp_path):
    lines = [
        _us_line(seller_sku="A", asin1="", product_id_type="1", product_id="b00v7i4dha"),
        _us_line(seller_sku="B", asin1="", product_id_type="4", product_id="4006381333931"),
        _us_line(seller_sku="C", asin1=" b0asin0001 ", product_id_type="1", product_id="B0OTHER"),
    ]
    _, parsed = _read(_write(tmp_path, _us_report(*lines)))
    assert [(r.asin, r.asin_from_product_id, r.product_id_type) for r in parsed] == [
        ("B00V7I4DHA", True, "ASIN"),
        (None, False, "EAN"),
        ("B0ASIN0001", False, "ASIN"),
    ]


def test_us_sample_row_from_research(tmp_path):
    # The verbatim US row from jlevers/selling-partner-api#525 (FBA, quantity blank).
    row = (
        "Stamping Plates Set Nail Art\t\t0816Y30OYFH\t194312\t19.99\t\t2021-08-15 20:35:17 PDT\t"
        "\ty\t1\t\t\t11\t\t\t\tB00V7I4DHA\t\t\t\t\t\tB00V7I4DHA\t\t\t\tAMAZON_NA\t"
        "Migrated Template\tActive"
    )
    _, (offer,) = _read(_write(tmp_path, _us_report(row)))
    assert offer == OfferRow(
        line=2,
        seller_sku="194312",
        asin="B00V7I4DHA",
        name="Stamping Plates Set Nail Art",
        listing_id="0816Y30OYFH",
        price=Decimal("19.99"),
        quantity=None,
        fulfillment_channel="AMAZON_NA",
        status="Active",
        product_id="B00V7I4DHA",
        product_id_type="ASIN",
        open_date=datetime(2021, 8, 16, 3, 35, 17, tzinfo=timezone.utc),
        open_date_raw="2021-08-15 20:35:17 PDT",
        asin_from_product_id=False,
    )


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("19.99", "19.99"),
        ("0.5", "0.5"),
        ("1980", "1980"),
        ("1,980", "1980"),
        ("1,234,567", "1234567"),
        ("12,99", "12.99"),
        ("12,5", "12.5"),
        ("1,2", "1.2"),
        ("1.299,00", "1299.00"),
        ("1,299.00", "1299.00"),
        ("1 299,00", "1299.00"),
        ("1\u00a0299,00", "1299.00"),
        ("1\u202f299,00", "1299.00"),
        ("1'299.50", "1299.50"),
        ("1.234.567", "1234567"),
        ("1,299 JPY", "1299"),
        ("EUR 12,99", "12.99"),
        ("12,99 €", "12.99"),
        ("$19.99", "19.99"),
        (" 19.99 ", "19.99"),
        ("", None),
        ("   ", None),
    ],
)
def test_price_formats(raw, value):
    assert parse_price(raw) == (None if value is None else Decimal(value))


@pytest.mark.parametrize(
    "raw", ["abc", "1e5", "NaN", "Infinity", "-5", "12,34,5", "1.2.3,4", "١٢", "12..5", "€"]
)
def test_invalid_prices(raw):
    with pytest.raises(ValueError, match="price"):
        parse_price(raw)


@pytest.mark.parametrize(
    ("raw", "value"), [("0", 0), ("17", 17), (" 3 ", 3), ("1,000", 1000), ("", None), (" ", None)]
)
def test_quantity_formats(raw, value):
    assert parse_quantity(raw) == value


@pytest.mark.parametrize("raw", ["-1", "2.5", "x", "1,00", "²"])
def test_invalid_quantities(raw):
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(raw)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2021-08-15 20:35:17 PDT", _utc(2021, 8, 16, 3, 35, 17)),
        ("2021-01-15 20:35:17 PST", _utc(2021, 1, 16, 4, 35, 17)),
        ("2008-02-27 20:15:20 GMT", _utc(2008, 2, 27, 20, 15, 20)),
        ("15/04/2020 15:15:46 BST", _utc(2020, 4, 15, 14, 15, 46)),
        ("2009/09/18 15:18:58 JST", _utc(2009, 9, 18, 6, 18, 58)),
        ("2020-06-01 12:00:00 MEST", _utc(2020, 6, 1, 10, 0, 0)),
        ("2020-06-01 12:00:00 CEST", _utc(2020, 6, 1, 10, 0, 0)),
        ("2020-06-01 12:00:00 MESZ", _utc(2020, 6, 1, 10, 0, 0)),
        ("2020-01-01 12:00:00 CET", _utc(2020, 1, 1, 11, 0, 0)),
        ("2020-01-01 12:00:00 MET", _utc(2020, 1, 1, 11, 0, 0)),
        ("2020-01-01 12:00:00 MEZ", _utc(2020, 1, 1, 11, 0, 0)),
        ("2020-01-01 12:00:00 UTC", _utc(2020, 1, 1, 12, 0, 0)),
        ("2020-01-01 12:00:00 EST", _utc(2020, 1, 1, 17, 0, 0)),
        ("2020-07-01 12:00:00 EDT", _utc(2020, 7, 1, 16, 0, 0)),
        ("2020-01-01 12:00:00 CST", _utc(2020, 1, 1, 18, 0, 0)),
        ("2020-07-01 12:00:00 CDT", _utc(2020, 7, 1, 17, 0, 0)),
        ("2020-01-01 12:00:00 MST", _utc(2020, 1, 1, 19, 0, 0)),
        ("2020-07-01 12:00:00 MDT", _utc(2020, 7, 1, 18, 0, 0)),
        ("2020-01-01 12:00:00 IST", _utc(2020, 1, 1, 6, 30, 0)),
        ("2020-07-01 12:00:00 AEST", _utc(2020, 7, 1, 2, 0, 0)),
        ("2020-01-01 12:00:00 AEDT", _utc(2020, 1, 1, 1, 0, 0)),
        ("2020-01-01 12:00:00 SGT", _utc(2020, 1, 1, 4, 0, 0)),
        ("2020-01-01 12:00:00 BRT", _utc(2020, 1, 1, 15, 0, 0)),
        ("2021-08-15T20:35:17+00:00", _utc(2021, 8, 15, 20, 35, 17)),
        ("2021-08-15T20:35:17+08:00", _utc(2021, 8, 15, 12, 35, 17)),
        ("2021-08-15T20:35:17.250Z", _utc(2021, 8, 15, 20, 35, 17, 250000)),
        ("2021-08-15 20:35:17 +0530", _utc(2021, 8, 15, 15, 5, 17)),
        ("2021-08-15 20:35:17 GMT+01:00", _utc(2021, 8, 15, 19, 35, 17)),
        ("2021-01-01 00:30:00 PST", _utc(2021, 1, 1, 8, 30, 0)),
        ("2020-12-31 23:30:00 JST", _utc(2020, 12, 31, 14, 30, 0)),
        ("04/15/2020 15:15:46 EDT", _utc(2020, 4, 15, 19, 15, 46)),
        ("  2008-02-27 20:15:20 gmt ", _utc(2008, 2, 27, 20, 15, 20)),
    ],
)
def test_open_date_formats(raw, expected):
    parsed = parse_open_date(raw)
    assert parsed == expected
    assert parsed.tzinfo == timezone.utc


@pytest.mark.parametrize(
    "raw",
    ["", "yesterday", "2021-08-15", "2021-08-15 20:35:17", "2021-08-15 20:35:17 XYZ",
     "2021-02-30 10:00:00 UTC", "21-08-15 20:35:17 UTC", "2021-08-15 25:00:00 UTC",
     "2021-08-15 20:35:17 +99:00"],
)  # fmt: skip
def test_unparseable_open_dates(raw):
    assert parse_open_date(raw) is None


def test_unparseable_open_date_is_kept_raw(tmp_path):
    lines = [_us_line(seller_sku="A", open_date="sometime 2020"), _us_line(seller_sku="B")]
    _, parsed = _read(_write(tmp_path, _us_report(*lines)))
    assert [(r.open_date, r.open_date_raw) for r in parsed] == [
        (None, "sometime 2020"),
        (None, None),
    ]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("Active", "Active"), ("Aktiv", "Active"), ("Actif", "Active"), ("Attivo", "Active"),
        ("Activo", "Active"), ("アクティブ", "Active"), ("在售", "Active"), ("Aktywna", "Active"),
        ("ACTIVE", "Active"), (" Inactive ", "Inactive"), ("Inaktiv", "Inactive"),
        ("Inactif", "Inactive"), ("Inattivo", "Inactive"), ("Inactivo", "Inactive"),
        ("出品停止中", "Inactive"), ("不可售", "Inactive"), ("Nieaktywna", "Inactive"),
        ("Incomplete", "Incomplete"), ("Unvollständig", "Incomplete"),
        ("Incomplet", "Incomplete"), ("Incompleto", "Incomplete"), ("Suppressed", "Suppressed"),
        ("", None),
    ],
)  # fmt: skip
def test_status_values(tmp_path, raw, status):
    _, (row,) = _read(_write(tmp_path, _us_report(_us_line(status=raw))))
    assert row.status == status


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", "ASIN"), ("2", "ISBN"), ("3", "UPC"), ("4", "EAN"), ("jan", "JAN"), ("5", "5"),
     (" 4 ", "EAN"), ("", None)],
)  # fmt: skip
def test_product_id_types(tmp_path, raw, expected):
    _, (row,) = _read(_write(tmp_path, _us_report(_us_line(product_id_type=raw))))
    assert row.product_id_type == expected


def test_sku_is_stripped_but_case_sensitive(tmp_path):
    skus = ["  abc-1 ", "ABC-1", "a b"]
    lines = [_us_line(seller_sku=sku) for sku in skus]
    _, parsed = _read(_write(tmp_path, _us_report(*lines)))
    assert [row.seller_sku for row in parsed] == ["abc-1", "ABC-1", "a b"]


# --------------------------------------------------------------------------- invalid rows


def test_invalid_rows_carry_line_and_column(tmp_path):
    huge = "x" * 4001
    lines = [
        _us_line(seller_sku="OK-1"),
        "only\tthree\tfields",
        _us_line(seller_sku="NUL", item_name="bad\x00name"),
        _us_line(seller_sku="HUGE", item_name=huge),
        _us_line(seller_sku="   "),
        _us_line(seller_sku="L" * 201),
        _us_line(seller_sku="P", price="abc"),
        _us_line(seller_sku="Q", quantity="many"),
        "",
        _us_line(seller_sku="OK-2", item_description="d" * 10_000),
    ]
    _, parsed = _read(_write(tmp_path, _us_report(*lines)))
    assert [row.seller_sku for row in _offers(parsed)] == ["OK-1", "OK-2"]
    assert [row.line for row in parsed] == [2, 3, 4, 5, 6, 7, 8, 9, 11]
    bad = {row.line: row for row in _invalid(parsed)}
    assert (bad[3].column, bad[3].reason) == (None, "row has 3 fields, header has 29")
    assert (bad[4].column, bad[4].reason) == (None, "contains NUL byte")
    assert bad[5].column == "item-name" and "huge field" in bad[5].reason
    assert (bad[6].column, bad[6].reason) == ("seller-sku", "empty seller-sku")
    assert (bad[7].column, bad[7].reason) == (
        "seller-sku",
        "seller-sku longer than 200 characters",
    )
    assert (bad[8].column, bad[8].reason) == ("price", "price 'abc' is not a number")
    assert (bad[9].column, bad[9].reason) == ("quantity", "quantity 'many' is not a whole number")


def test_ragged_rows_missing_only_unmapped_trailing_columns_are_fine(tmp_path):
    header = "seller-sku\tprice\titem-description\tnote"
    data = f"{header}\nA\t1.00\nB\t2.00\tdesc\tnote\textra\textra\nC\n".encode()
    _, parsed = _read(_write(tmp_path, data), require_asin=False)
    assert [(r.line, getattr(r, "seller_sku", None)) for r in parsed] == [
        (2, "A"),
        (3, "B"),
        (4, None),
    ]
    assert parsed[2].reason == "row has 1 fields, header has 4"


def test_sku_of_exactly_200_characters_is_valid(tmp_path):
    _, (row,) = _read(_write(tmp_path, _us_report(_us_line(seller_sku="S" * 200))))
    assert isinstance(row, OfferRow)


def test_overlong_line_is_reported_and_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(report_parser, "_CHUNK_SIZE", 64)
    monkeypatch.setattr(report_parser, "_MAX_LINE_BYTES", 200)
    lines = [_us_line(seller_sku="A"), "y" * 1000, _us_line(seller_sku="B"), "z" * 5000]
    _, parsed = _read(_write(tmp_path, _us_report(*lines)))
    assert [(row.line, type(row).__name__) for row in parsed] == [
        (2, "OfferRow"),
        (3, "InvalidRow"),
        (4, "OfferRow"),
        (5, "InvalidRow"),
    ]
    assert "longer than 200 bytes" in parsed[1].reason


def test_small_chunks_give_identical_rows(tmp_path, monkeypatch):
    rows = list(demo_listings(200, seed=11, channel="mixed", marketplace="JP"))
    path = _write(tmp_path, render_report(rows, "jp_custom", line_ending="\r\n"))
    _, expected = _read(path, default="cp932")
    monkeypatch.setattr(report_parser, "_CHUNK_SIZE", 97)
    _, parsed = _read(path, default="cp932")
    assert parsed == expected and len(parsed) == 200


def test_write_report_streams_the_same_bytes(tmp_path):
    rows = list(demo_listings(4500, seed=8, channel="mixed", marketplace="GB"))
    path = tmp_path / "stream.tsv"
    assert write_report(path, iter(rows), "eu_en", line_ending="\r\n") == 4500
    assert path.read_bytes() == render_report(rows, "eu_en", line_ending="\r\n")


def test_demo_listings_are_deterministic_and_plausible():
    options = {"seed": 42, "channel": "mixed", "marketplace": "DE", "sku_prefix": "X-"}
    rows = list(demo_listings(3000, **options))
    assert rows == list(demo_listings(3000, **options))
    assert len({row["seller_sku"] for row in rows}) == 3000
    assert all(row["seller_sku"].lower().startswith("x-") for row in rows)
    assert all(len(row["asin"]) == 10 and row["asin"].startswith("B0") for row in rows)
    channels = {row["fulfillment_channel"] for row in rows}
    assert channels == {"DEFAULT", "AMAZON_EU"}
    for row in rows:
        assert (row["quantity"] is None) == (row["fulfillment_channel"] == "AMAZON_EU")
        assert parse_open_date(row["open_date_raw"]) == row["open_date"]
    # Shared upload timestamps keep the parser's date cache effective.
    assert len({row["open_date_raw"] for row in rows}) < 1500
    fba_only = list(demo_listings(10, channel="AMAZON_NA", marketplace="US"))
    assert all(row["quantity"] is None for row in fba_only)


# -- issue 13: truncation, readable SKUs of rejected lines ------------------------------------


def test_last_line_cut_mid_line_is_a_truncated_report(tmp_path):
    full = _us_report(_us_line(seller_sku="A"), _us_line(seller_sku="ZZ-LAST"))
    cut = full[: full.index(b"ZZ-LAST") + 7]  # "...\tZZ-LAST" - cut right after the SKU
    with pytest.raises(ReportFormatError) as exc:
        ReportReader(_write(tmp_path, cut), declared_charset="utf8", default_encoding="utf-8")
    assert exc.value.code == "truncated"
    assert "line 3" in exc.value.message and "cut off" in exc.value.message


def test_complete_last_line_without_newline_is_not_truncated(tmp_path):
    data = _us_report(_us_line(seller_sku="A"), _us_line(seller_sku="B")).rstrip(b"\n")
    reader, parsed = _read(_write(tmp_path, data), declared="utf8")
    assert [row.seller_sku for row in _offers(parsed)] == ["A", "B"]


def test_header_only_without_newline_is_not_truncated(tmp_path):
    reader, parsed = _read(_write(tmp_path, US_HEADER_LINE.encode()), declared="utf8")
    assert parsed == []


def test_rejected_lines_keep_their_sku_when_it_can_be_read(tmp_path):
    nul = _us_line(seller_sku="NUL-1", item_name="a\x00b")
    nul_as_tabs = _us_line(seller_sku="NUL-2").replace("\t", "\x00")
    huge = _us_line(seller_sku="HUGE", item_name="x" * 5000)
    short = "\t".join(_us_line(seller_sku="SHORT").split("\t")[:5])
    sku_last = "\t".join(_us_line(seller_sku="CUT").split("\t")[:4])  # SKU is field 4
    data = _us_report(_us_line(seller_sku="OK"), _us_line(seller_sku="PRICE", price="abc"),
                      _us_line(seller_sku="QTY", quantity="x"), nul, nul_as_tabs, huge, short,
                      sku_last, _us_line(seller_sku="S" * 201, price="abc"))
    _, parsed = _read(_write(tmp_path, data), declared="utf8")
    assert [row.seller_sku for row in _offers(parsed)] == ["OK"]
    assert [(row.line, row.seller_sku) for row in _invalid(parsed)] == [
        (3, "PRICE"), (4, "QTY"), (5, "NUL-1"), (6, None), (7, "HUGE"), (8, "SHORT"),
        (9, None), (10, None)]


def test_undecodable_sku_is_not_read_but_other_columns_are(tmp_path):
    bad_name = _us_line(seller_sku="N1", item_name="Tasse @").encode().replace(b"@", b"\x81")
    bad_sku = _us_line(seller_sku="S@").encode().replace(b"@", b"\x81")
    data = _us_report(_us_line(seller_sku="A")) + bad_name + b"\n" + bad_sku + b"\n"
    _, parsed = _read(_write(tmp_path, data), default="cp1252")
    assert [(row.column, row.seller_sku) for row in _invalid(parsed)] == [
        ("item-name", "N1"), ("seller-sku", None)]
