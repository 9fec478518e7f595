"""Decode and parse a downloaded All Listings Report (``GET_MERCHANT_LISTINGS_ALL_DATA``).

The input is the already-gunzipped report document as raw bytes on disk. :class:`ReportReader`
reads and validates the header at construction time and then streams :class:`OfferRow` /
:class:`InvalidRow` objects with constant memory.

Decoding
--------
* Charset: the charset declared in the download's ``Content-Type`` (Java/Amazon names such as
  ``Windows-31J``, ``Cp1252`` or ``utf8`` are mapped by :func:`resolve_charset`), otherwise the
  marketplace default (JP ``cp932``, EU ``cp1252``, US ``utf-8`` ...).
* UTF-8 preference: a binary pre-scan (1 MiB chunks, incremental strict UTF-8 decoder) checks
  whether the file is valid UTF-8. If it is and it contains non-ASCII bytes, UTF-8 is used even
  when another charset was declared or defaulted. Amazon has shipped UTF-8 files labelled
  ``Cp1252``/``ISO-8859-1``; accidental UTF-8 validity of real cp1252 or Shift_JIS text (every
  non-ASCII byte forming well-formed multibyte sequences) is practically impossible. The same
  scan counts newlines for :attr:`ReportReader.total_lines`.
* Charset fallback: when the declared charset cannot decode the whole file but the
  marketplace's usual encoding can, that one is used (``encoding_source == "fallback"``,
  ``rejected_encoding`` names the declared one). Lines are rejected as undecodable only when
  no sensible encoding decodes the file.
* A UTF-8 BOM is stripped. LF and CRLF line endings are accepted, as is a final line without a
  newline. Blank (empty or whitespace-only) lines are skipped; line numbers stay physical.
* Decoding is strict. A data line that cannot be decoded becomes an :class:`InvalidRow` naming
  the codec, the byte and its file offset - unless the undecodable bytes sit only in columns the
  importer ignores (e.g. ``item-description``); those fields are blanked and the row is kept,
  because their content is never stored. An undecodable header raises
  :class:`ReportFormatError` (``"undecodable"``). A line containing a NUL byte is an
  :class:`InvalidRow` (PostgreSQL text cannot hold NUL). An :class:`InvalidRow` carries the
  line's SKU when it can still be read: the importer keeps that offer as it is.
* Truncation: a file whose last line has no newline and fewer fields than the header was cut
  off; :class:`ReportFormatError` (``"truncated"``) is raised before any row is read.

Parsing
-------
Tab-separated with no quote processing at all (Amazon does not quote; a title starting with ``"``
must not swallow the following rows). Columns are mapped by header name - English, EU English
(``fulfilment-channel``, ``Deprecated column``), FR, DE, IT, ES, JP, CN, PL and bilingual TR
(``item-name (ürün adı)``) - to canonical names; duplicate names resolve by position (CN
``商品编码`` is ``listing-id`` first and ``product-id`` second).
"""

from __future__ import annotations

import codecs
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from operator import itemgetter

from .charsets import resolve_charset

__all__ = [
    "ASIN",
    "CANONICAL_COLUMNS",
    "FULFILLMENT_CHANNEL",
    "GTIN_TYPES",
    "ITEM_NAME",
    "LISTING_ID",
    "MAX_FIELD_LENGTH",
    "MAX_SKU_LENGTH",
    "OPEN_DATE",
    "PRICE",
    "PRODUCT_ID",
    "PRODUCT_ID_TYPE",
    "QUANTITY",
    "SELLER_SKU",
    "STATUS",
    "InvalidRow",
    "MissingAsinColumnError",
    "OfferRow",
    "ReportFormatError",
    "ReportReader",
    "parse_open_date",
    "parse_price",
    "parse_quantity",
    "resolve_charset",
]

ITEM_NAME = "item-name"
LISTING_ID = "listing-id"
SELLER_SKU = "seller-sku"
PRICE = "price"
QUANTITY = "quantity"
OPEN_DATE = "open-date"
PRODUCT_ID_TYPE = "product-id-type"
PRODUCT_ID = "product-id"
ASIN = "asin"
FULFILLMENT_CHANNEL = "fulfillment-channel"
STATUS = "status"
#: Values of ``product-id-type`` whose ``product-id`` is a GTIN (comparable with an EAN).
GTIN_TYPES = ("EAN", "UPC", "JAN", "GTIN", "ISBN")
CANONICAL_COLUMNS: tuple[str, ...] = (
    ITEM_NAME,
    LISTING_ID,
    SELLER_SKU,
    PRICE,
    QUANTITY,
    OPEN_DATE,
    PRODUCT_ID_TYPE,
    PRODUCT_ID,
    ASIN,
    FULFILLMENT_CHANNEL,
    STATUS,
)

MAX_SKU_LENGTH = 200
MAX_FIELD_LENGTH = 4000
_HEADER_PREVIEW = 500
_CHUNK_SIZE = 1 << 20
# Longer lines are reported and skipped instead of being buffered without bound.
_MAX_LINE_BYTES = 16 << 20
_MAX_HEADER_BYTES = 1 << 20
_DATE_CACHE_SIZE = 20_000
_SMALL_CACHE = 256


class ReportFormatError(Exception):
    """The report cannot be imported at all (raised before any row is yielded)."""

    def __init__(self, code: str, message: str, header: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.header = header

    def __str__(self) -> str:
        return self.message


class MissingAsinColumnError(ReportFormatError):
    """The header has a seller-sku column but no ASIN column."""

    def __init__(self, message: str, header: str | None, header_family: str | None = None) -> None:
        super().__init__("missing_asin_column", message, header)
        self.header_family = header_family


@dataclass(slots=True)
class OfferRow:
    """One parsed offer line of the report."""

    line: int
    seller_sku: str
    asin: str | None
    name: str | None
    listing_id: str | None
    price: Decimal | None
    quantity: int | None
    fulfillment_channel: str | None
    status: str | None
    product_id: str | None
    product_id_type: str | None
    open_date: datetime | None
    open_date_raw: str | None
    asin_from_product_id: bool


@dataclass(slots=True)
class InvalidRow:
    """A data line that was rejected; ``column`` is a canonical name or None for the whole line.

    ``seller_sku`` is set when the line's SKU could still be read: the line is evidence that
    the offer exists, so the importer neither updates nor removes that offer.
    """

    line: int
    column: str | None
    reason: str
    seller_sku: str | None = None


# --------------------------------------------------------------------------- header mapping

# family -> canonical -> header names. Matching is NFKC + casefold + collapsed whitespace.
_HEADER_NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        ITEM_NAME: ("item-name", "item name", "item_name"),
        LISTING_ID: ("listing-id", "listing id", "listing_id"),
        SELLER_SKU: ("seller-sku", "seller sku", "seller_sku", "sku"),
        PRICE: ("price",),
        QUANTITY: ("quantity",),
        OPEN_DATE: ("open-date", "open date", "open_date"),
        PRODUCT_ID_TYPE: ("product-id-type", "product id type", "product_id_type"),
        PRODUCT_ID: ("product-id", "product id", "product_id"),
        ASIN: ("asin1", "asin", "asin 1", "asin-1"),
        FULFILLMENT_CHANNEL: (
            "fulfillment-channel",
            "fulfilment-channel",
            "fulfillment channel",
            "fulfilment channel",
            "fulfillment_channel",
        ),
        STATUS: ("status",),
    },
    "fr": {
        ITEM_NAME: ("nom-produit",),
        LISTING_ID: ("id-offre",),
        SELLER_SKU: ("sku-vendeur",),
        PRICE: ("prix",),
        QUANTITY: ("quantité",),
        OPEN_DATE: ("date-ouverture",),
        PRODUCT_ID_TYPE: ("type-id-produit",),
        PRODUCT_ID: ("id-produit",),
        FULFILLMENT_CHANNEL: ("canal-traitement",),
        STATUS: ("état",),
    },
    "de": {
        ITEM_NAME: ("Artikelbezeichnung",),
        LISTING_ID: ("Angebotsnummer",),
        SELLER_SKU: ("Händler-SKU",),
        PRICE: ("Preis",),
        QUANTITY: ("Menge",),
        OPEN_DATE: ("Erstellungsdatum",),
        PRODUCT_ID_TYPE: ("Produkt-ID-Typ",),
        PRODUCT_ID: ("Produkt-ID",),
        FULFILLMENT_CHANNEL: ("Versender",),
        STATUS: ("Status",),
    },
    "it": {
        ITEM_NAME: ("Nome dell'articolo",),
        LISTING_ID: ("Numero offerta",),
        SELLER_SKU: ("SKU venditore",),
        PRICE: ("Prezzo",),
        QUANTITY: ("Quantità",),
        OPEN_DATE: ("Data di creazione",),
        PRODUCT_ID_TYPE: ("Tipo di identificativo del prodotto",),
        PRODUCT_ID: ("Identificativo del prodotto",),
        FULFILLMENT_CHANNEL: ("Canale di gestione",),
        STATUS: ("stato",),
    },
    "es": {
        ITEM_NAME: ("Título del producto",),
        LISTING_ID: ("Identificador del listing",),
        SELLER_SKU: ("SKU del vendedor",),
        PRICE: ("Precio",),
        QUANTITY: ("Cantidad",),
        OPEN_DATE: ("Fecha de creación",),
        PRODUCT_ID_TYPE: ("Tipo de identificador de producto",),
        PRODUCT_ID: ("Identificador del producto",),
        FULFILLMENT_CHANNEL: ("Canal de gestión logística",),
        STATUS: ("estado",),
    },
    "jp": {
        ITEM_NAME: ("商品名",),
        LISTING_ID: ("出品ID",),
        SELLER_SKU: ("出品者SKU",),
        PRICE: ("価格",),
        # 在庫数 is pending-quantity, not quantity (see research doc 2.5).
        QUANTITY: ("数量",),
        OPEN_DATE: ("出品日",),
        PRODUCT_ID_TYPE: ("商品IDタイプ",),
        PRODUCT_ID: ("商品ID",),
        FULFILLMENT_CHANNEL: ("フルフィルメント・チャンネル",),
        STATUS: ("ステータス",),
    },
    "cn": {
        ITEM_NAME: ("商品名称",),
        SELLER_SKU: ("卖家 SKU", "卖家SKU"),
        PRICE: ("价格",),
        QUANTITY: ("数量",),
        OPEN_DATE: ("开售日期",),
        PRODUCT_ID_TYPE: ("商品编码类型",),
        FULFILLMENT_CHANNEL: ("配送渠道",),
        STATUS: ("状态",),
    },
    "pl": {
        ITEM_NAME: ("nazwa-produktu",),
        LISTING_ID: ("id-oferty",),
        SELLER_SKU: ("sku-sprzedawcy",),
        PRICE: ("cena",),
        QUANTITY: ("ilość",),
        OPEN_DATE: ("data-otwarcia",),
        PRODUCT_ID_TYPE: ("typ-id-produktu",),
        PRODUCT_ID: ("id-produktu",),
        FULFILLMENT_CHANNEL: ("kanał-realizacji",),
        STATUS: ("status",),
    },
}
# Names that map to several canonical columns, assigned by order of appearance.
_POSITIONAL_NAMES: dict[str, tuple[tuple[str, ...], str]] = {
    "商品编码": ((LISTING_ID, PRODUCT_ID), "cn"),
}


def _header_key(name: str) -> str:
    name = unicodedata.normalize("NFKC", name).replace("\u2019", "'")
    return " ".join(name.casefold().split())


def _fold_accents(key: str) -> str:
    decomposed = unicodedata.normalize("NFKD", key)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _build_header_maps() -> tuple[dict, dict]:
    exact: dict[str, tuple[tuple[str, ...], str]] = {}
    for family, table in _HEADER_NAMES.items():
        for canonical, names in table.items():
            for name in names:
                exact.setdefault(_header_key(name), ((canonical,), family))
    for name, value in _POSITIONAL_NAMES.items():
        exact[_header_key(name)] = value
    folded: dict[str, tuple[tuple[str, ...], str]] = {}
    for key, value in exact.items():
        folded.setdefault(_fold_accents(key), value)
    return exact, folded


_HEADER_EXACT, _HEADER_FOLDED = _build_header_maps()


def _lookup_header(name: str) -> tuple[tuple[str, ...], str] | None:
    key = _header_key(name)
    if not key:
        return None
    hit = _HEADER_EXACT.get(key) or _HEADER_FOLDED.get(_fold_accents(key))
    if hit is None and " (" in key:
        # Turkish bilingual header: "item-name (ürün adı)".
        english = key.split(" (", 1)[0].strip()
        hit = _HEADER_EXACT.get(english)
        if hit is not None:
            hit = (hit[0], "tr")
    return hit


def _preview(header_line: str) -> str:
    if len(header_line) <= _HEADER_PREVIEW:
        return header_line
    return header_line[:_HEADER_PREVIEW] + "..."


# --------------------------------------------------------------------------- value parsing

_STATUS: dict[str, str] = {}
# fmt: off
for _english, _words in (
    (
        "Active",
        ("active", "aktiv", "actif", "attivo", "activo", "ativo", "actief", "aktywna",
         "aktywny", "aktywne", "aktif", "アクティブ", "出品中", "在售", "有效", "نشط"),
    ),
    (
        "Inactive",
        ("inactive", "inaktiv", "inactif", "inattivo", "inactivo", "inativo", "inactief",
         "nieaktywna", "nieaktywny", "nieaktywne", "pasif", "inaktif", "非アクティブ",
         "出品停止中", "停止中", "不可售", "停售", "无效", "غير نشط"),
    ),
    (
        "Incomplete",
        ("incomplete", "unvollständig", "incomplet", "incompleto", "onvolledig", "niekompletna",
         "niekompletny", "niekompletne", "eksik", "不完全", "不完整"),
    ),
):
    for _word in _words:
        _STATUS[_word] = _english
        _STATUS[_word.capitalize()] = _english
# fmt: on
del _english, _words, _word


def _parse_status(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    return _STATUS.get(value.casefold(), value)


_PRODUCT_ID_TYPES = {"1": "ASIN", "2": "ISBN", "3": "UPC", "4": "EAN"}
_PRODUCT_ID_NAMES = {"ASIN", "ISBN", "UPC", "EAN", "JAN", "GTIN", "GCID"}


def _parse_product_id_type(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    known = _PRODUCT_ID_TYPES.get(value)
    if known is not None:
        return known
    upper = value.upper()
    return upper if upper in _PRODUCT_ID_NAMES else value


_PRICE_RE = re.compile(
    r"(?:[A-Za-z]{1,3}\$?|[€$£¥￥₹₺]|zł)?\s*"
    r"(?P<num>[0-9][0-9.,'\u00a0\u202f ]*)"
    r"\s*(?:[A-Za-z]{1,3}|[€$£¥￥₹₺円]|zł)?"
)
_GROUP_SEPARATORS = ",.'\u00a0\u202f "


def _split_groups(int_part: str, separators: str) -> str | None:
    """Remove thousands separators from ``int_part``; None when the grouping is malformed."""
    used = {ch for ch in int_part if ch in separators}
    if not used:
        return int_part if int_part.isdigit() and int_part.isascii() else None
    if len(used) > 1:
        return None
    groups = int_part.split(used.pop())
    if not (1 <= len(groups[0]) <= 3) or any(len(g) != 3 for g in groups[1:]):
        return None
    digits = "".join(groups)
    return digits if digits.isdigit() and digits.isascii() else None


def parse_price(raw: str) -> Decimal | None:
    """Parse a report price; ``None`` when blank, :class:`ValueError` when not a price.

    Accepts ``19.99``, ``1,980`` (JP thousands), ``12,99`` / ``1.299,00`` / ``1 299,00``
    (localized EU) and a leading/trailing currency symbol or code. A lone ``,`` followed by
    exactly three digits is a thousands separator; a lone ``.`` is always the decimal point.
    """
    text = raw.strip()
    if not text:
        return None
    fast = text.replace(".", "", 1)
    if fast.isdigit() and fast.isascii():
        return Decimal(text)
    if "," in text:
        # Fast path for JP-style thousands ("1,980"), the common non-plain form.
        groups = text.split(",")
        if 1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:]):
            digits = "".join(groups)
            if digits.isdigit() and digits.isascii():
                return Decimal(digits)
    if text.startswith("-"):
        raise ValueError(f"price {raw!r} is negative")
    match = _PRICE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"price {raw!r} is not a number")
    num = match.group("num").rstrip(" \u00a0\u202f")
    last_dot, last_comma = num.rfind("."), num.rfind(",")
    decimal_at = -1
    if last_dot >= 0 and last_comma >= 0:
        decimal_at = max(last_dot, last_comma)
    elif last_dot >= 0:
        if num.count(".") == 1:
            decimal_at = last_dot
    elif last_comma >= 0 and num.count(",") == 1 and len(num) - last_comma - 1 != 3:
        decimal_at = last_comma
    if decimal_at >= 0:
        int_part, frac = num[:decimal_at], num[decimal_at + 1 :]
        if not (frac.isdigit() and frac.isascii()):
            raise ValueError(f"price {raw!r} is not a number")
    else:
        int_part, frac = num, ""
    grouped = _split_groups(int_part, _GROUP_SEPARATORS)
    if grouped is None:
        raise ValueError(f"price {raw!r} is not a number")
    digits = grouped
    try:
        return Decimal(f"{digits}.{frac}" if frac else digits)
    except InvalidOperation:  # pragma: no cover - digits are validated above
        raise ValueError(f"price {raw!r} is not a number") from None


def parse_quantity(raw: str) -> int | None:
    """Parse a quantity; ``None`` when blank (FBA rows), :class:`ValueError` when invalid."""
    text = raw.strip()
    if not text:
        return None
    if text.isdigit() and text.isascii():
        return int(text)
    digits = _split_groups(text, _GROUP_SEPARATORS)
    if digits is None:
        raise ValueError(f"quantity {raw!r} is not a whole number")
    return int(digits)


def _minutes(offset: int) -> timezone:
    return timezone(timedelta(minutes=offset))


# Fixed offsets per abbreviation. Ambiguous ones follow Amazon's marketplaces: IST = India
# (amazon.in), CST = US Central (amazon.com); China dates are expected with a numeric offset.
# fmt: off
_TZ_OFFSETS: dict[str, timezone] = {
    name: _minutes(offset)
    for name, offset in {
        "UTC": 0, "GMT": 0, "UT": 0, "Z": 0, "WET": 0, "BST": 60, "WEST": 60, "CET": 60,
        "MET": 60, "MEZ": 60, "CEST": 120, "MEST": 120, "MESZ": 120, "EET": 120,
        "EEST": 180, "TRT": 180, "MSK": 180, "GST": 240, "IST": 330, "PKT": 300,
        "SGT": 480, "HKT": 480, "AWST": 480, "JST": 540, "KST": 540, "ACST": 570,
        "ACDT": 630, "AEST": 600, "AEDT": 660, "NZST": 720, "NZDT": 780, "BRT": -180,
        "BRST": -120, "ART": -180, "EST": -300, "EDT": -240, "CST": -360, "CDT": -300,
        "MST": -420, "MDT": -360, "PST": -480, "PDT": -420, "AKST": -540, "AKDT": -480,
        "HST": -600,
    }.items()
}
# fmt: on
_DATE_RE = re.compile(
    r"(?P<a>[0-9]{1,4})[-/.](?P<b>[0-9]{1,2})[-/.](?P<c>[0-9]{1,4})"
    r"[ T]+(?P<H>[0-9]{1,2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:[.,](?P<f>[0-9]{1,9}))?)?"
    r"\s*(?P<abbr>[A-Za-z]{1,5})?"
    r"\s*(?P<off>[+-][0-9]{1,2}(?::?[0-9]{2})?)?"
)


def parse_open_date(raw: str) -> datetime | None:
    """Parse an open-date into an aware UTC datetime; ``None`` when unparseable or without zone.

    Handles ``2021-08-15 20:35:17 PDT``, ``15/04/2020 15:15:46 BST`` (day first),
    ``2009/09/18 15:18:58 JST``, ``2021-08-15T20:35:17+00:00`` and ``... GMT+01:00``.
    """
    match = _DATE_RE.fullmatch(raw.strip())
    if match is None:
        return None
    a, b, c = match.group("a", "b", "c")
    if len(a) == 4:
        year, month, day = int(a), int(b), int(c)
    elif len(c) == 4:
        # Day first (UK style); swap when that is impossible but month first is not.
        year, month, day = int(c), int(b), int(a)
        if month > 12 >= day:
            month, day = day, month
    else:
        return None
    abbr, off = match.group("abbr"), match.group("off")
    if abbr is None and off is None:
        return None
    tz = timezone.utc
    offset = timedelta(0)
    if abbr is not None:
        zone = _TZ_OFFSETS.get(abbr.upper())
        if zone is None:
            return None
        tz = zone
    if off is not None:
        sign = -1 if off[0] == "-" else 1
        digits = off[1:].replace(":", "")
        hours, minutes = (digits[:-2], digits[-2:]) if len(digits) > 2 else (digits, "0")
        offset = sign * timedelta(hours=int(hours), minutes=int(minutes))
        if abs(offset) >= timedelta(hours=24):
            return None
    fraction = (match.group("f") or "0")[:6].ljust(6, "0")
    try:
        local = datetime(
            year,
            month,
            day,
            int(match.group("H")),
            int(match.group("M")),
            int(match.group("S") or 0),
            int(fraction),
        )
        return (local - offset).replace(tzinfo=tz).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


# --------------------------------------------------------------------------- reader


@dataclass
class _Scan:
    lines: int
    #: The file ends with a newline (or is empty).
    ends_with_newline: bool
    non_ascii: bool
    #: Codecs (of those checked) that decode the whole file strictly.
    decodes: frozenset[str]


def _prescan(path: str | os.PathLike, check: tuple[str, ...]) -> _Scan:
    """Count lines and find which of the ``check`` codecs decode the whole file."""
    newlines = 0
    last = b""
    decoders = {name: codecs.getincrementaldecoder(name)("strict") for name in dict.fromkeys(check)}
    non_ascii = False
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK_SIZE):
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
            if not non_ascii and not chunk.isascii():
                non_ascii = True
            if non_ascii:
                for name, decoder in list(decoders.items()):
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError:
                        del decoders[name]
        for name, decoder in list(decoders.items()):
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                del decoders[name]
    ends = not last or last == b"\n"
    return _Scan(newlines + (0 if ends else 1), ends, non_ascii, frozenset(decoders))


class ReportReader:
    """Streaming reader of one All Listings Report file.

    Attributes set at construction: ``encoding`` (Python codec used), ``encoding_source``
    (``"declared"``, ``"default"``, ``"detected"`` for the UTF-8 override or ``"fallback"`` when
    the marketplace's usual encoding decodes a file the declared charset cannot),
    ``rejected_encoding`` (the declared or default codec that was not used, else None),
    ``header`` (raw names), ``columns`` (canonical name -> index), ``header_family``,
    ``has_asin_column`` and ``total_lines`` (physical lines after the header, blank lines
    included - a progress bound).

    ``require_asin=False`` (an extension of the base API) lets a report without an ASIN column
    be read anyway; ASINs then come only from ``product-id`` when its type is ASIN.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        declared_charset: str | None,
        default_encoding: str,
        require_asin: bool = True,
    ) -> None:
        self.path = path
        codec = resolve_charset(declared_charset)
        self.encoding_source = "declared"
        default = resolve_charset(default_encoding)
        if default is None:
            raise ValueError(f"unknown default encoding {default_encoding!r}")
        if codec is None:
            codec = default
            self.encoding_source = "default"
        #: The codec the download declared (or the default) when another one had to be used.
        self.rejected_encoding: str | None = None
        if codec == "utf-8":
            check: tuple[str, ...] = () if default == "utf-8" else (codec,)
        else:
            check = ("utf-8", codec)
        scan = _prescan(path, check)
        if scan.non_ascii and "utf-8" in scan.decodes:
            if codec != "utf-8":
                self.encoding_source = "detected"
                self.rejected_encoding = codec
            codec = "utf-8"
        elif (
            scan.non_ascii
            and codec not in scan.decodes
            and default not in (codec, "utf-8")
            # The declared charset cannot decode the file: the marketplace's usual one may.
            and default in _prescan(path, (default,)).decodes
        ):
            self.encoding_source = "fallback"
            self.rejected_encoding = codec
            codec = default
        self.encoding: str = codec
        physical_lines = scan.lines
        self._read_header(physical_lines)
        if not scan.ends_with_newline:
            self._check_last_line()
        if not self.has_asin_column and require_asin:
            raise MissingAsinColumnError(
                f"The report has no ASIN column (header family {self.header_family!r}). "
                "Amazon's default All Listings Report omits it for some marketplaces (e.g. "
                "France, Japan); add the 'asin1' column to the report in Seller Central "
                "(custom All Listings Report) or import without ASINs. "
                f"Header line: {self._header_preview}",
                self._header_preview,
                self.header_family,
            )

    # -- header --------------------------------------------------------------

    def _read_header(self, physical_lines: int) -> None:
        lineno = 0
        with open(self.path, "rb") as fh:
            offset = 0
            if fh.read(3) == codecs.BOM_UTF8:
                offset = 3
            fh.seek(offset)
            while True:
                raw = fh.readline(_MAX_HEADER_BYTES)
                if not raw:
                    raise ReportFormatError(
                        "empty_report", "The report file is empty (no header line)."
                    )
                lineno += 1
                offset += len(raw)
                if raw.strip():
                    break
            if not raw.endswith(b"\n") and len(raw) >= _MAX_HEADER_BYTES:
                raise ReportFormatError(
                    "unknown_header",
                    "The first line of the report is longer than 1 MiB; this is not an "
                    "All Listings Report header.",
                    None,
                )
        raw = raw.rstrip(b"\r\n")
        if b"\x00" in raw:
            preview = _preview(raw.decode(self.encoding, "backslashreplace"))
            raise ReportFormatError(
                "undecodable",
                "The report header contains NUL bytes; the file is binary or UTF-16, not a "
                f"tab-separated text report. Header line: {preview}",
                preview,
            )
        try:
            line = raw.decode(self.encoding)
        except UnicodeDecodeError as exc:
            preview = _preview(raw.decode(self.encoding, "backslashreplace"))
            raise ReportFormatError(
                "undecodable",
                f"The report header cannot be decoded as {self.encoding} (byte "
                f"0x{raw[exc.start]:02X} at offset {exc.start}); the declared charset is wrong. "
                f"Header line: {preview}",
                preview,
            ) from None
        self._header_preview = _preview(line)
        self._header_line = lineno
        self._data_offset = offset
        self.header: list[str] = line.split("\t")
        columns: dict[str, int] = {}
        family = None
        for index, name in enumerate(self.header):
            hit = _lookup_header(name)
            if hit is None:
                continue
            for canonical in hit[0]:
                if canonical not in columns:
                    columns[canonical] = index
                    if canonical == SELLER_SKU:
                        family = hit[1]
                    break
        if SELLER_SKU not in columns:
            raise ReportFormatError(
                "unknown_header",
                "The report header family was not recognised: no seller-sku column was found. "
                "Request the report with English headers (reportOptions "
                "preferredReportDocumentLocale=en_US or Seller Central > Settings > Account Info "
                "> Language for feed processing reports). "
                f"Header line: {self._header_preview}",
                self._header_preview,
            )
        self.columns: dict[str, int] = columns
        self.header_family: str = family or "en"
        self.has_asin_column: bool = ASIN in columns
        self.total_lines: int | None = max(physical_lines - lineno, 0)

    def _check_last_line(self) -> None:
        """A last line without a newline and with fewer fields than the header: cut off."""
        size = os.path.getsize(self.path)
        tail = b""
        with open(self.path, "rb") as fh:
            end = size
            while end > self._data_offset and b"\n" not in tail and len(tail) <= _MAX_LINE_BYTES:
                start = max(self._data_offset, end - _CHUNK_SIZE)
                fh.seek(start)
                tail = fh.read(end - start) + tail
                end = start
        last = tail.rsplit(b"\n", 1)[-1].rstrip(b"\r")
        if not last.strip() or len(tail) > _MAX_LINE_BYTES:
            return
        fields = last.count(b"\t") + 1
        if fields < len(self.header):
            line = self._header_line + (self.total_lines or 0)
            raise ReportFormatError(
                "truncated",
                f"the report ends in the middle of line {line} (no newline, {fields} of the "
                f"header's {len(self.header)} fields): the file was cut off",
            )

    # -- lines ---------------------------------------------------------------

    def _blocks(self) -> Iterator[tuple[int, list[str | InvalidRow]]]:
        """Yield (number of the first line, lines) per chunk; a line is text or an InvalidRow.

        Blank lines are kept (as empty or whitespace text) so that numbering stays positional.
        """
        lineno = self._header_line
        offset = self._data_offset
        carry = b""
        skipping = False
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            while True:
                chunk = fh.read(_CHUNK_SIZE)
                if skipping:
                    if not chunk:
                        return
                    end = chunk.find(b"\n")
                    if end < 0:
                        offset += len(chunk)
                        continue
                    skipping = False
                    lineno += 1
                    offset += end + 1
                    chunk = chunk[end + 1 :]
                    if not chunk:
                        continue
                if not chunk:
                    if carry:
                        yield lineno + 1, self._block(carry + b"\n", offset, lineno)
                    return
                data = carry + chunk if carry else chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    if len(carry) > _MAX_LINE_BYTES:
                        reason = f"line is longer than {_MAX_LINE_BYTES} bytes"
                        yield lineno + 1, [InvalidRow(lineno + 1, None, reason)]
                        offset += len(carry)
                        carry = b""
                        skipping = True
                    continue
                block = data[: cut + 1]
                carry = data[cut + 1 :]
                yield lineno + 1, self._block(block, offset, lineno)
                lineno += block.count(b"\n")
                offset += len(block)

    def _block(self, block: bytes, offset: int, lineno: int) -> list[str | InvalidRow]:
        """Decode a run of complete lines (``block`` ends with a newline)."""
        try:
            text = block.decode(self.encoding)
        except UnicodeDecodeError:
            return self._block_slow(block, offset, lineno)
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        lines: list[str | InvalidRow] = text.split("\n")  # type: ignore[assignment]
        lines.pop()
        if "\x00" in text:
            for index, line in enumerate(lines):
                if "\x00" in line:  # type: ignore[operator]
                    lines[index] = InvalidRow(lineno + 1 + index, None, "contains NUL byte",
                                              self._readable_sku(line.split("\t")))  # type: ignore[union-attr]
        return lines

    def _block_slow(self, block: bytes, offset: int, lineno: int) -> list[str | InvalidRow]:
        """Per-line strict decoding of a block that failed to decode as a whole."""
        lines: list[str | InvalidRow] = []
        pos = offset
        for raw in block.split(b"\n")[:-1]:
            lineno += 1
            line_offset = pos
            pos += len(raw) + 1
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if b"\x00" in raw:
                lines.append(InvalidRow(lineno, None, "contains NUL byte",
                                        self._readable_sku(self._decoded_fields(raw))))
                continue
            try:
                lines.append(raw.decode(self.encoding))
            except UnicodeDecodeError:
                lines.append(self._salvage(raw, line_offset, lineno))
        return lines

    def _salvage(self, raw: bytes, line_offset: int, lineno: int) -> str | InvalidRow:
        """Decode field by field; undecodable ignored columns are blanked, mapped ones reject."""
        by_index = {index: name for name, index in self.columns.items()}
        fields = []
        field_offset = line_offset
        for index, field in enumerate(raw.split(b"\t")):
            try:
                fields.append(field.decode(self.encoding))
            except UnicodeDecodeError as exc:
                canonical = by_index.get(index)
                if canonical is not None:
                    return InvalidRow(
                        lineno,
                        canonical,
                        f"{canonical} cannot be decoded as {self.encoding}: byte "
                        f"0x{field[exc.start]:02X} at file offset {field_offset + exc.start}",
                        self._readable_sku(self._decoded_fields(raw)),
                    )
                fields.append("")
            field_offset += len(field) + 1
        return "\t".join(fields)

    def _decoded_fields(self, raw: bytes) -> list[str]:
        """The fields of a raw line; an undecodable field becomes NUL (never a readable SKU)."""
        fields = []
        for field in raw.split(b"\t"):
            try:
                fields.append(field.decode(self.encoding))
            except UnicodeDecodeError:
                fields.append("\x00")
        return fields

    def _readable_sku(self, fields: list[str]) -> str | None:
        """The SKU of a rejected line if it can still be read with certainty, else None.

        The SKU field must be followed by another field (a last field may be cut off) and be
        a plausible SKU: not empty, no NUL, not too long.
        """
        index = self.columns[SELLER_SKU]
        if index >= len(fields) - 1:
            return None
        sku = fields[index].strip()
        if not sku or "\x00" in sku or len(sku) > MAX_SKU_LENGTH:
            return None
        return sku

    # -- rows ----------------------------------------------------------------

    def rows(self) -> Iterator[OfferRow | InvalidRow]:
        """Stream the data rows; never raises for bad content (I/O errors still propagate)."""
        cols = self.columns
        header_width = len(self.header)
        needed = max(cols.values()) + 1
        mapped = tuple(sorted((index, name) for name, index in cols.items()))
        # Missing columns read index -1, which is the "" appended to every row's fields.
        getter = itemgetter(
            *(
                cols.get(name, -1)
                for name in (
                    SELLER_SKU, ASIN, ITEM_NAME, LISTING_ID, PRICE, QUANTITY, OPEN_DATE,
                    PRODUCT_ID_TYPE, PRODUCT_ID, STATUS, FULFILLMENT_CHANNEL,
                )
            )
        )  # fmt: skip
        # Small per-read caches for low-cardinality columns; bounded by _SMALL_CACHE.
        dates: dict[str, datetime | None] = {}
        statuses: dict[str, str | None] = {"": None}
        channels: dict[str, str | None] = {"": None}
        pid_types: dict[str, str | None] = {"": None, **_PRODUCT_ID_TYPES}
        for first, lines in self._blocks():
            lineno = first - 1
            for line in lines:
                lineno += 1
                if not line:
                    continue
                if line.__class__ is not str:  # an InvalidRow of the line splitter
                    yield line  # type: ignore[misc]
                    continue
                # Columns after the last mapped one stay unsplit in the final element.
                fields = line.split("\t", needed)
                if len(fields) < needed:
                    if line.isspace():
                        continue
                    yield InvalidRow(
                        lineno, None, f"row has {len(fields)} fields, header has {header_width}",
                        self._readable_sku(fields),
                    )
                    continue
                if len(line) > MAX_FIELD_LENGTH:
                    huge = next(
                        (idx for idx, _ in mapped if len(fields[idx]) > MAX_FIELD_LENGTH), None
                    )
                    if huge is not None:
                        column = dict(mapped)[huge]
                        yield InvalidRow(
                            lineno,
                            column,
                            f"{column} is {len(fields[huge])} characters long "
                            f"(huge field, limit {MAX_FIELD_LENGTH})",
                            None if column == SELLER_SKU else self._readable_sku(fields + [""]),
                        )
                        continue
                fields.append("")
                (sku, asin, name, listing_id, price_raw, qty_raw, date_raw, pid_type_raw,
                 pid, status_raw, channel_raw) = getter(fields)  # fmt: skip

                sku = sku.strip()
                if not sku:
                    if not line.isspace():
                        yield InvalidRow(lineno, SELLER_SKU, "empty seller-sku")
                    continue
                if len(sku) > MAX_SKU_LENGTH:
                    yield InvalidRow(
                        lineno, SELLER_SKU, f"seller-sku longer than {MAX_SKU_LENGTH} characters"
                    )
                    continue

                price = None
                if price_raw:
                    probe = price_raw.replace(".", "", 1)
                    if probe.isdigit() and probe.isascii():
                        price = Decimal(price_raw)
                    else:
                        try:
                            price = parse_price(price_raw)
                        except ValueError as exc:
                            yield InvalidRow(lineno, PRICE, str(exc), sku)
                            continue
                quantity = None
                if qty_raw:
                    if qty_raw.isdigit() and qty_raw.isascii():
                        quantity = int(qty_raw)
                    else:
                        try:
                            quantity = parse_quantity(qty_raw)
                        except ValueError as exc:
                            yield InvalidRow(lineno, QUANTITY, str(exc), sku)
                            continue

                open_date = open_date_raw = None
                if date_raw:
                    try:
                        open_date = dates[date_raw]
                    except KeyError:
                        open_date = parse_open_date(date_raw)
                        if len(dates) >= _DATE_CACHE_SIZE:
                            dates.clear()
                        dates[date_raw] = open_date
                    open_date_raw = date_raw.strip() or None
                try:
                    pid_type = pid_types[pid_type_raw]
                except KeyError:
                    pid_type = _parse_product_id_type(pid_type_raw)
                    if len(pid_types) < _SMALL_CACHE:
                        pid_types[pid_type_raw] = pid_type
                try:
                    status = statuses[status_raw]
                except KeyError:
                    status = _parse_status(status_raw)
                    if len(statuses) < _SMALL_CACHE:
                        statuses[status_raw] = status
                try:
                    channel = channels[channel_raw]
                except KeyError:
                    channel = channel_raw.strip().upper() or None
                    if len(channels) < _SMALL_CACHE:
                        channels[channel_raw] = channel

                pid = pid.strip() or None
                asin = asin.strip().upper() or None
                from_pid = False
                if asin is None and pid is not None and pid_type == "ASIN":
                    asin = pid.upper()
                    from_pid = True

                yield OfferRow(
                    lineno,
                    sku,
                    asin,
                    name or None,
                    listing_id.strip() or None,
                    price,
                    quantity,
                    channel,
                    status,
                    pid,
                    pid_type,
                    open_date,
                    open_date_raw,
                    from_pid,
                )
