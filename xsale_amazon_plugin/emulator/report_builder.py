"""Generate realistic All Listings Reports (``GET_MERCHANT_LISTINGS_ALL_DATA``) for tests and demos.

Every header family the parser supports can be rendered in any encoding. US, EU English and
Chinese headers are the verbatim lines quoted in the research notes; the localized families use
the documented localized column names in the English column order (FR default and JP default
have no ASIN column, like Amazon's). Canonical rows come from :func:`demo_listings` or from the
caller (dicts with the keys listed there).

Rendering rules: names are filtered to what the target encoding can round-trip (characters it
cannot hold, tabs, line breaks and NUL are dropped); all other fields are written verbatim, so a
caller can deliberately inject malformed values. Prices follow the family's number style
(``19.99``; JP ``1,980``; DE/IT/ES ``1.299,00``; FR/PL ``1 299,00`` with NBSP) and statuses are
localized for DE/FR/IT/ES/PL (the parser maps them back to English).
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import BinaryIO

__all__ = [
    "CN_HEADER_LINE",
    "DEFAULT_ENCODING",
    "EU_EN_HEADER_LINE",
    "FAMILIES",
    "FAMILY_MARKETPLACE",
    "HEADERS",
    "demo_listings",
    "encodable_text",
    "header_line",
    "render_report",
    "US_HEADER_LINE",
    "write_report",
]

FAMILIES: tuple[str, ...] = (
    "us",
    "eu_en",
    "custom_b2b",
    "fr",
    "fr_asin",
    "de",
    "it",
    "es",
    "jp",
    "jp_custom",
    "cn",
    "pl",
    "tr",
)

DEFAULT_ENCODING: dict[str, str] = {
    "us": "utf-8",
    "eu_en": "cp1252",
    "custom_b2b": "utf-8",
    "fr": "cp1252",
    "fr_asin": "cp1252",
    "de": "cp1252",
    "it": "cp1252",
    "es": "cp1252",
    "jp": "cp932",
    "jp_custom": "cp932",
    "cn": "utf-8",
    # Polish (ł, ś) and Turkish (ı, ş) letters do not exist in cp1252: these come as UTF-8.
    "pl": "utf-8",
    "tr": "utf-8",
}

#: Marketplace whose data a family's report typically carries.
FAMILY_MARKETPLACE: dict[str, str] = {
    "us": "US",
    "eu_en": "GB",
    "custom_b2b": "US",
    "fr": "FR",
    "fr_asin": "FR",
    "de": "DE",
    "it": "IT",
    "es": "ES",
    "jp": "JP",
    "jp_custom": "JP",
    "cn": "CN",
    "pl": "PL",
    "tr": "TR",
}

# --------------------------------------------------------------------------- headers

# Verbatim header lines: US (jlevers/selling-partner-api#525, 2023), EU English
# (selling-partner-api-models#3999, 2024: "Deprecated column" placeholders keep the ordinals,
# British "fulfilment-channel") and Chinese (jlevers/selling-partner-api#525).
US_HEADER_LINE = (
    "item-name\titem-description\tlisting-id\tseller-sku\tprice\tquantity\topen-date\t"
    "image-url\titem-is-marketplace\tproduct-id-type\tzshop-shipping-fee\titem-note\t"
    "item-condition\tzshop-category1\tzshop-browse-path\tzshop-storefront-feature\tasin1\t"
    "asin2\tasin3\twill-ship-internationally\texpedited-shipping\tzshop-boldface\tproduct-id\t"
    "bid-for-featured-placement\tadd-delete\tpending-quantity\tfulfillment-channel\t"
    "merchant-shipping-group\tstatus"
)
EU_EN_HEADER_LINE = (
    "item-name\titem-description\tlisting-id\tseller-sku\tprice\tquantity\topen-date\t"
    "Deprecated column\titem-is-marketplace\tproduct-id-type\tDeprecated column\titem-note\t"
    "item-condition\tDeprecated column\tDeprecated column\tDeprecated column\tasin1\t"
    "Deprecated column\tDeprecated column\twill-ship-internationally\texpedited-shipping\t"
    "Deprecated column\tproduct-id\tDeprecated column\tadd-delete\tpending-quantity\t"
    "fulfilment-channel\tmerchant-shipping-group\tstatus\tMinimum order quantity\tSell remainder"
)
CN_HEADER_LINE = (
    "商品名称\t商品描述\t商品编码\t卖家 SKU\t价格\t数量\t开售日期\t不适用项目\t"
    "是否为商城中的商品\t商品编码类型\t不适用项目\t商品备注\t商品状况\t不适用项目\t不适用项目\t"
    "不适用项目\tASIN1\t不适用项目\t不适用项目\t国际配送\t加急配送\t不适用项目\t商品编码\t"
    "不适用项目\t添加-删除\t等待购买数量\t配送渠道\t卖家配送组\t状态"
)
_US = US_HEADER_LINE.split("\t")
_EU_EN = EU_EN_HEADER_LINE.split("\t")
_CN = CN_HEADER_LINE.split("\t")
_CUSTOM_B2B = (
    [
        "seller-sku", "asin1", "item-name", "item-description", "listing-id", "price",
        "quantity", "open-date", "product-id-type", "item-note", "item-condition",
        "will-ship-internationally", "expedited-shipping", "product-id", "pending-quantity",
        "fulfillment-channel", "Business Price", "Quantity Price Type",
    ]
    + [f"Quantity {kind} {i}" for i in range(1, 6) for kind in ("Lower Bound", "Price")]
    + [
        "optional-payment-type-exclusion", "scheduled-delivery-sku-set",
        "merchant-shipping-group", "standard-price-point", "ProductTaxCode", "status",
        "minimum-seller-allowed-price", "maximum-seller-allowed-price", "Progressive Price Type",
    ]
    + [f"Progressive {kind} {i}" for i in range(1, 4) for kind in ("Lower Bound", "Price")]
)  # fmt: skip
_JP_CUSTOM = [
    "出品者SKU", "ASIN 1", "商品名", "商品の説明", "出品ID", "価格", "数量", "出品日",
    "商品IDタイプ", "コンディション説明", "コンディション", "国外へ配送可", "迅速な配送", "商品ID",
    "在庫数", "フルフィルメント・チャンネル", "法人価格", "数量割引のタイプ", "数量の下限1",
    "数量割引1", "数量の下限2", "数量割引2", "数量の下限3", "数量割引3", "数量の下限4",
    "数量割引4", "数量の下限5", "数量割引5", "使用しない支払い方法", "配送日時指定SKUリスト",
    "merchant-shipping-group", "ポイント", "商品税コード", "ステータス", "出品価格の下限",
    "出品価格の上限", "累積購入割引価格タイプ", "累積購入割引下限1", "累積購入割引価格1",
    "累積購入割引下限2", "累積購入割引価格2", "累積購入割引下限3", "累積購入割引価格3",
    "調達タイプ",
]  # fmt: skip
# JP custom columns in English, positionally (research notes 2.5 c).
_JP_CUSTOM_ROLES = (
    ["seller-sku", "asin1", "item-name", "item-description", "listing-id", "price", "quantity",
     "open-date", "product-id-type", "item-note", "item-condition", "will-ship-internationally",
     "expedited-shipping", "product-id", "pending-quantity", "fulfillment-channel"]
    + [None] * 14
    + ["merchant-shipping-group", None, None, "status"]
    + [None] * 10
)  # fmt: skip

# Localized families: (header text, English role or None).
_LOCALIZED: dict[str, list[tuple[str, str | None]]] = {
    "fr": [
        ("nom-produit", "item-name"), ("description-article", "item-description"),
        ("id-offre", "listing-id"), ("sku-vendeur", "seller-sku"), ("prix", "price"),
        ("quantité", "quantity"), ("date-ouverture", "open-date"),
        ("type-id-produit", "product-id-type"), ("note-état-article", "item-note"),
        ("état-produit", "item-condition"), ("id-produit", "product-id"),
        ("canal-traitement", "fulfillment-channel"), ("état", "status"),
    ],
    "de": [
        ("Artikelbezeichnung", "item-name"), ("Artikelbeschreibung", "item-description"),
        ("Angebotsnummer", "listing-id"), ("Händler-SKU", "seller-sku"), ("Preis", "price"),
        ("Menge", "quantity"), ("Erstellungsdatum", "open-date"),
        ("Artikel ist Marketplace-Angebot", "item-is-marketplace"),
        ("Produkt-ID-Typ", "product-id-type"), ("Anmerkung zum Artikel", "item-note"),
        ("Artikelzustand", "item-condition"), ("ASIN 1", "asin1"),
        ("Internationaler Versand", "will-ship-internationally"),
        ("Expressversand", "expedited-shipping"), ("Produkt-ID", "product-id"),
        ("Versender", "fulfillment-channel"), ("Händlerversandgruppe", "merchant-shipping-group"),
        ("Status", "status"), ("Mindestbestellmenge", None), ("Restposten verkaufen", None),
    ],
    "it": [
        ("Nome dell'articolo", "item-name"), ("Descrizione dell'articolo", "item-description"),
        ("Numero offerta", "listing-id"), ("SKU venditore", "seller-sku"), ("Prezzo", "price"),
        ("Quantità", "quantity"), ("Data di creazione", "open-date"),
        ("Articolo per la vendita", "item-is-marketplace"),
        ("Tipo di identificativo del prodotto", "product-id-type"),
        ("Note sull'articolo", "item-note"), ("Condizione dell'articolo", "item-condition"),
        ("ASIN 1", "asin1"), ("Spedizione internazionale", "will-ship-internationally"),
        ("Spedizione Express", "expedited-shipping"),
        ("Identificativo del prodotto", "product-id"), ("Aggiungi o elimina", "add-delete"),
        ("Quantità in sospeso", "pending-quantity"),
        ("Canale di gestione", "fulfillment-channel"),
        ("gruppo-spedizione-venditore", "merchant-shipping-group"), ("stato", "status"),
        ("Quantità minima per ordine", None), ("Vendi rimanenze", None),
    ],
    "es": [
        ("Título del producto", "item-name"), ("Descripción del producto", "item-description"),
        ("Identificador del listing", "listing-id"), ("SKU del vendedor", "seller-sku"),
        ("Precio", "price"), ("Cantidad", "quantity"), ("Fecha de creación", "open-date"),
        ("Columna en desuso", None), ("Producto para vender", "item-is-marketplace"),
        ("Tipo de identificador de producto", "product-id-type"),
        ("Columna en desuso", None), ("Nota sobre el producto", "item-note"),
        ("Estado del producto", "item-condition"), ("ASIN 1", "asin1"),
        ("Envío internacional", "will-ship-internationally"),
        ("Envío urgente", "expedited-shipping"),
        ("Identificador del producto", "product-id"), ("Añadir o eliminar", "add-delete"),
        ("Cantidad pendiente", "pending-quantity"),
        ("Canal de gestión logística", "fulfillment-channel"),
        ("merchant-shipping-group", "merchant-shipping-group"), ("estado", "status"),
        ("Cantidad de pedido mínima", None), ("Vender las unidades restantes", None),
    ],
    "jp": [
        ("商品名", "item-name"), ("出品ID", "listing-id"), ("出品者SKU", "seller-sku"),
        ("価格", "price"), ("数量", "quantity"), ("出品日", "open-date"),
        ("商品IDタイプ", "product-id-type"), ("コンディション説明", "item-note"),
        ("コンディション", "item-condition"), ("国外へ配送可", "will-ship-internationally"),
        ("迅速な配送", "expedited-shipping"), ("商品ID", "product-id"),
        ("在庫数", "pending-quantity"), ("フルフィルメント・チャンネル", "fulfillment-channel"),
        ("merchant-shipping-group", "merchant-shipping-group"), ("ステータス", "status"),
    ],
    "pl": [
        ("nazwa-produktu", "item-name"), ("opis-produktu", "item-description"),
        ("id-oferty", "listing-id"), ("sku-sprzedawcy", "seller-sku"), ("cena", "price"),
        ("ilość", "quantity"), ("data-otwarcia", "open-date"),
        ("typ-id-produktu", "product-id-type"), ("uwagi-o-produkcie", "item-note"),
        ("stan-produktu", "item-condition"), ("asin1", "asin1"), ("id-produktu", "product-id"),
        ("kanał-realizacji", "fulfillment-channel"),
        ("grupa-wysyłkowa-sprzedawcy", "merchant-shipping-group"), ("status", "status"),
    ],
    "tr": [
        ("item-name (ürün adı)", "item-name"),
        ("item-description (ürün açıklaması)", "item-description"),
        ("listing-id (ilan numarası)", "listing-id"), ("seller-sku (satıcı sku)", "seller-sku"),
        ("price (fiyat)", "price"), ("quantity (miktar)", "quantity"),
        ("open-date (açılış tarihi)", "open-date"),
        ("product-id-type (ürün kimliği türü)", "product-id-type"),
        ("item-note (ürün notu)", "item-note"), ("item-condition (ürün durumu)", "item-condition"),
        ("asin1", "asin1"), ("product-id (ürün kimliği)", "product-id"),
        ("fulfillment-channel (gönderim kanalı)", "fulfillment-channel"),
        ("merchant-shipping-group (satıcı gönderim grubu)", "merchant-shipping-group"),
        ("status (durum)", "status"),
    ],
}  # fmt: skip
_fr_asin = list(_LOCALIZED["fr"])
_fr_asin.insert(11, ("asin1", "asin1"))
_LOCALIZED["fr_asin"] = _fr_asin

_KNOWN_ROLES = set(_US) | {"fulfilment-channel"}
_COLUMNS: dict[str, list[tuple[str, str | None]]] = {
    "us": [(name, name) for name in _US],
    "eu_en": [
        (name, "fulfillment-channel" if name == "fulfilment-channel" else name)
        if name in _KNOWN_ROLES
        else (name, None)
        for name in _EU_EN
    ],
    "custom_b2b": [(name, name if name in _KNOWN_ROLES else None) for name in _CUSTOM_B2B],
    "cn": list(zip(_CN, _US, strict=True)),
    "jp_custom": list(zip(_JP_CUSTOM, _JP_CUSTOM_ROLES, strict=True)),
    **_LOCALIZED,
}
#: Header names per family, in column order.
HEADERS: dict[str, tuple[str, ...]] = {
    family: tuple(name for name, _ in _COLUMNS[family]) for family in FAMILIES
}

# English role -> placeholder of the prepared row, or a constant cell value.
_PLACEHOLDERS = {
    "item-name": "name",
    "listing-id": "listing_id",
    "seller-sku": "seller_sku",
    "price": "price",
    "quantity": "quantity",
    "open-date": "open_date_raw",
    "product-id-type": "product_id_type",
    "product-id": "product_id",
    "asin1": "asin",
    "fulfillment-channel": "fulfillment_channel",
    "status": "status",
    "pending-quantity": "pending_quantity",
}
_CONSTANTS = {
    "item-is-marketplace": "y",
    "item-condition": "11",
    "merchant-shipping-group": "Migrated Template",
}

_PRICE_STYLE = {"jp": "jp", "jp_custom": "jp", "de": "eu", "it": "eu", "es": "eu",
                "fr": "nbsp", "fr_asin": "nbsp", "pl": "nbsp"}  # fmt: skip
_STATUS_L10N = {
    "de": {"Active": "Aktiv", "Inactive": "Inaktiv", "Incomplete": "Unvollständig"},
    "fr": {"Active": "Actif", "Inactive": "Inactif", "Incomplete": "Incomplet"},
    "it": {"Active": "Attivo", "Inactive": "Inattivo", "Incomplete": "Incompleto"},
    "es": {"Active": "Activo", "Inactive": "Inactivo", "Incomplete": "Incompleto"},
    "pl": {"Active": "Aktywna", "Inactive": "Nieaktywna", "Incomplete": "Niekompletna"},
}
_STATUS_L10N["fr_asin"] = _STATUS_L10N["fr"]


def header_line(family: str) -> str:
    """The tab-separated header line of ``family`` (without line ending)."""
    return "\t".join(HEADERS[_check_family(family)])


def _check_family(family: str) -> str:
    if family not in _COLUMNS:
        raise ValueError(f"unknown report family {family!r}; use one of {', '.join(FAMILIES)}")
    return family


def _template(family: str) -> str:
    cells = []
    for _name, role in _COLUMNS[family]:
        if role in _PLACEHOLDERS:
            cells.append("{" + _PLACEHOLDERS[role] + "}")
        else:
            cells.append(_CONSTANTS.get(role or "", ""))
    return "\t".join(cells)


def _group(digits: str, sep: str) -> str:
    head = len(digits) % 3 or 3
    return sep.join([digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)])


def _format_price(price: Decimal | None, style: str) -> str:
    if price is None:
        return ""
    text = format(price, "f")
    if style == "plain":
        return text
    int_part, _, frac = text.partition(".")
    if style == "jp":
        return _group(int_part, ",") + (f".{frac}" if frac else "")
    # Comma decimal: always write a fraction, and never exactly three digits (", + 3 digits"
    # reads as a thousands separator).
    frac = frac or "00"
    if len(frac) == 3:
        frac += "0"
    return _group(int_part, "." if style == "eu" else "\u00a0") + "," + frac


_ROUNDTRIP_CACHE: dict[str, dict[str, bool]] = {}
_FORBIDDEN = frozenset("\t\r\n\x00")


def encodable_text(text: str, encoding: str) -> str:
    """``text`` without the characters ``encoding`` cannot round-trip (and tabs/newlines/NUL)."""
    if text.isprintable():
        try:
            if text.encode(encoding).decode(encoding) == text:
                return text
        except UnicodeError:
            pass
    cache = _ROUNDTRIP_CACHE.setdefault(encoding, {})
    kept = []
    for ch in text:
        ok = cache.get(ch)
        if ok is None:
            try:
                ok = ch not in _FORBIDDEN and ch.encode(encoding).decode(encoding) == ch
            except UnicodeError:
                ok = False
            cache[ch] = ok
        if ok:
            kept.append(ch)
    return "".join(kept)


def _prepare(row: dict, encoding: str, style: str, statuses: dict[str, str] | None) -> dict:
    name = encodable_text(row.get("name") or "", encoding)
    quantity = row.get("quantity")
    status = row.get("status") or ""
    if statuses:
        status = statuses.get(status, status)
    channel = row.get("fulfillment_channel") or ""
    price = row.get("price")
    return {
        "name": name,
        "listing_id": row.get("listing_id") or "",
        "seller_sku": row.get("seller_sku") or "",
        "price": price if isinstance(price, str) else _format_price(price, style),
        "quantity": "" if quantity is None else str(quantity),
        "open_date_raw": row.get("open_date_raw") or "",
        "product_id_type": row.get("product_id_type") or "",
        "product_id": row.get("product_id") or "",
        "asin": row.get("asin") or "",
        "fulfillment_channel": channel,
        "status": status,
        "pending_quantity": "" if channel.startswith("AMAZON") else "0",
    }


def _write(
    out: BinaryIO,
    rows: Iterable[dict],
    family: str,
    encoding: str | None,
    line_ending: str,
    bom: bool,
) -> int:
    family = _check_family(family)
    encoding = encoding or DEFAULT_ENCODING[family]
    if line_ending not in ("\n", "\r\n"):
        raise ValueError("line_ending must be '\\n' or '\\r\\n'")
    template = _template(family)
    style = _PRICE_STYLE.get(family, "plain")
    statuses = _STATUS_L10N.get(family)
    if bom:
        out.write(b"\xef\xbb\xbf")
    out.write((header_line(family) + line_ending).encode(encoding))
    count = 0
    batch: list[str] = []
    for row in rows:
        batch.append(template.format_map(_prepare(row, encoding, style, statuses)))
        count += 1
        if len(batch) >= 2000:
            batch.append("")
            out.write(line_ending.join(batch).encode(encoding))
            batch.clear()
    if batch:
        batch.append("")
        out.write(line_ending.join(batch).encode(encoding))
    return count


def render_report(
    rows: Iterable[dict],
    family: str,
    *,
    encoding: str | None = None,
    line_ending: str = "\n",
    bom: bool = False,
) -> bytes:
    """Render ``rows`` as a complete report file (header + one line per row) in ``encoding``."""
    buffer = io.BytesIO()
    _write(buffer, rows, family, encoding, line_ending, bom)
    return buffer.getvalue()


def write_report(
    path: str | os.PathLike,
    rows: Iterable[dict],
    family: str,
    *,
    encoding: str | None = None,
    line_ending: str = "\n",
    bom: bool = False,
) -> int:
    """Stream ``rows`` into a report file at ``path``; returns the number of data rows."""
    with open(path, "wb") as fh:
        return _write(fh, rows, family, encoding, line_ending, bom)


# --------------------------------------------------------------------------- demo data

_WORDS = {
    "en": ("Stainless Steel", "Water Bottle", "Kitchen Knife", "LED Desk Lamp", "USB-C Cable",
           "Organic Cotton", "T-Shirt", "Wireless Mouse", "Garden Hose", "Phone Case", "for",
           "with", "Pack of 3", "Premium", "Nail Art Stamping Plates", "Kids", "Travel Mug",
           "Black", "500 ml", "2 m", "Set", "Insulated", "Men's", "Women's", "XL"),
    "de": ("Edelstahl", "Trinkflasche", "Küchenmesser", "Größe M", "Schwarz", "Weiß",
           "Kinderspielzeug", "Gartenschlauch", "Handyhülle", "für", "mit", "Bürostuhl",
           "Kaffeemühle", "Strümpfe", "Übertopf", "3er-Pack", "spülmaschinenfest", "1 l"),
    "fr": ("Théière", "en inox", "Bouteille d'eau", "Couteau de cuisine", "Lampe de bureau",
           "Câble", "Élégant", "Noël", "Crème", "Garçon", "Forêt", "pour", "avec", "Lot de 3"),
    "it": ("Bottiglia", "Acciaio inossidabile", "Coltello da cucina", "Lampada da scrivania",
           "Perché", "Città", "Caffè", "Più", "per", "con", "Confezione da 3"),
    "es": ("Botella", "Acero inoxidable", "Cuchillo de cocina", "Lámpara de escritorio",
           "Niño", "Año", "Cámara", "Mañana", "para", "con", "Pack de 3"),
    "pl": ("Butelka", "Stal nierdzewna", "Nóż kuchenny", "Lampa biurkowa", "Żółty", "Łódź",
           "Świeca", "Gęś", "Źródło", "dla", "z", "Zestaw 3 szt."),
    "tr": ("Paslanmaz Çelik", "Şişe", "Mutfak Bıçağı", "Masa Lambası", "Işık", "Öğrenci",
           "Çanta", "için", "ile", "3'lü Paket"),
    "ja": ("ステンレス", "水筒", "包丁", "キッチン", "デスクライト", "充電ケーブル", "子供用",
           "ｶﾀｶﾅ", "保温", "日本製", "送料無料", "【公式】", "3個セット", "500ml"),
    "zh": ("不锈钢", "保温杯", "厨房", "刀具", "台灯", "数据线", "儿童", "礼盒", "套装", "500毫升"),
}  # fmt: skip
_LANGUAGE = {"DE": "de", "AT": "de", "FR": "fr", "BE": "fr", "IT": "it", "ES": "es", "MX": "es",
             "PL": "pl", "TR": "tr", "JP": "ja", "CN": "zh"}  # fmt: skip
_BRANDS = ("Acme", "Nordwind", "KitchenPro", "Sakura", "Lumière", "Brandt & Söhne", "ZenHome",
           "Orion", "PetJoy", "Helio")  # fmt: skip
# Names that trip naive parsers, HTML renderers or legacy encodings.
_SPECIALS = (
    lambda n: f'"Premium" {n}',
    lambda n: f'"{n}',
    lambda n: f"{n} <script>alert('x')</script>",
    lambda n: f"{n} – 19,99 €",
    lambda n: f"{n} „Deluxe“",
    lambda n: f"{n} ① ～ 髙島屋",
    lambda n: f"{n} 🚀👍🏽",
    lambda n: f"{n} & Co. <b>bold</b> 50% ™",
    lambda n: f"{n}   ",
)
_AFN = {"US": "AMAZON_NA", "CA": "AMAZON_NA", "MX": "AMAZON_NA", "JP": "AMAZON_JP",
        "IN": "AMAZON_IN", "AU": "AMAZON_FE", "SG": "AMAZON_FE", "CN": "AMAZON_FE",
        "BR": "AMAZON_NA"}  # fmt: skip
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_EPOCH = datetime(2015, 1, 1, tzinfo=timezone.utc)


def _check_digit(body: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def _zone(marketplace: str, when: datetime) -> tuple[str, int, str]:
    """(abbreviation, offset minutes, date style) a marketplace's report uses at ``when``."""
    month = when.month
    north_summer = 4 <= month <= 10
    if marketplace in ("US", "CA", "MX"):
        return ("PDT", -420, "ymd") if north_summer else ("PST", -480, "ymd")
    if marketplace in ("GB", "IE"):
        return ("BST", 60, "dmy") if north_summer else ("GMT", 0, "dmy")
    if marketplace in ("DE", "AT"):
        return ("MEST", 120, "ymd") if north_summer else ("MET", 60, "ymd")
    if marketplace in ("FR", "IT", "ES", "NL", "BE", "PL", "SE"):
        return ("CEST", 120, "ymd") if north_summer else ("CET", 60, "ymd")
    if marketplace == "JP":
        return ("JST", 540, "jp")
    if marketplace == "CN":
        return ("", 480, "iso")
    if marketplace == "AU":
        return ("AEST", 600, "ymd") if north_summer else ("AEDT", 660, "ymd")
    fixed = {"IN": ("IST", 330), "SG": ("SGT", 480), "BR": ("BRT", -180), "TR": ("TRT", 180)}
    abbr, offset = fixed.get(marketplace, ("UTC", 0))
    return abbr, offset, "ymd"


def _format_open_date(marketplace: str, when: datetime) -> str:
    abbr, offset, style = _zone(marketplace, when)
    local = when + timedelta(minutes=offset)
    if style == "dmy":
        return local.strftime("%d/%m/%Y %H:%M:%S ") + abbr
    if style == "jp":
        return local.strftime("%Y/%m/%d %H:%M:%S ") + abbr
    if style == "iso":
        return local.strftime("%Y-%m-%dT%H:%M:%S") + f"+{offset // 60:02d}:{offset % 60:02d}"
    return local.strftime("%Y-%m-%d %H:%M:%S ") + abbr


def demo_listings(
    n: int,
    *,
    seed: int = 0,
    channel: str = "DEFAULT",
    marketplace: str = "DE",
    sku_prefix: str = "SKU-",
) -> Iterator[dict]:
    """Yield ``n`` realistic canonical listing dicts (deterministic for a given seed).

    Keys: seller_sku, asin, name, listing_id, price, quantity, fulfillment_channel, status,
    product_id, product_id_type ("1".."4"), open_date_raw and open_date (the aware UTC datetime
    ``open_date_raw`` denotes). ``channel="mixed"`` makes about 30 % of the offers FBA with the
    marketplace's ``AMAZON_*`` network; FBA offers have ``quantity`` None. Listings share
    open-dates in upload batches, about 2 % reuse an earlier ASIN (several offers per product),
    incomplete listings have no price, and some names carry quotes, HTML, €, „“, ①～髙 or emoji.
    """
    rng = random.Random(seed)
    marketplace = marketplace.upper()
    words = _WORDS[_LANGUAGE.get(marketplace, "en")]
    afn = _AFN.get(marketplace, "AMAZON_EU")
    mixed = channel.lower() == "mixed"
    jp = marketplace == "JP"
    batch_left = 0
    batch_date = _EPOCH
    batch_raw = ""
    recent_asins: list[str] = []
    for i in range(n):
        row_channel = (afn if rng.random() < 0.3 else "DEFAULT") if mixed else channel
        fba = row_channel.upper().startswith("AMAZON")

        shape = rng.random()
        if shape < 0.7:
            sku = f"{sku_prefix}{i:06d}"
        elif shape < 0.8:
            sku = f"{sku_prefix}{i:06d}/B"
        elif shape < 0.9:
            sku = f"{sku_prefix.lower()}{i}_Blau-XL"
        else:
            sku = f"{sku_prefix}{i:06d}-{rng.choice(('FBA', 'NEW', 'used-LN'))}"

        if recent_asins and rng.random() < 0.02:
            asin = rng.choice(recent_asins)
        else:
            asin = "B0" + "".join(rng.choices(_ALNUM, k=8))
            recent_asins.append(asin)
            if len(recent_asins) > 50:
                recent_asins.pop(0)

        name = " ".join([rng.choice(_BRANDS)] + rng.sample(words, rng.randint(3, 7)))
        if rng.random() < 0.005:
            name = " ".join([name] + [rng.choice(words) for _ in range(80)])
        if rng.random() < 0.08:
            name = rng.choice(_SPECIALS)(name)

        status = rng.choices(("Active", "Inactive", "Incomplete"), (88, 10, 2))[0]
        if status == "Incomplete":
            price = None
        elif jp:
            price = Decimal(rng.choice((rng.randrange(300, 10000, 10), rng.randrange(980, 80000))))
        else:
            cents = rng.choice((rng.randrange(99, 10000), rng.randrange(99, 10000),
                                rng.randrange(10000, 250000)))  # fmt: skip
            price = Decimal(f"{cents // 100}.{cents % 100:02d}")

        kind = rng.choices(("1", "2", "3", "4"), (40, 5, 15, 40))[0]
        if kind == "1":
            product_id = asin
        elif kind == "2":
            body = f"978{rng.randrange(10**9):09d}"
            product_id = body + _check_digit(body)
        elif kind == "3":
            body = f"{rng.randrange(10**11):011d}"
            product_id = body + _check_digit(body)
        else:
            prefix = rng.choice(("45", "49")) if jp else rng.choice(("40", "42", "30", "80"))
            body = f"{prefix}{rng.randrange(10**10):010d}"
            product_id = body + _check_digit(body)

        if batch_left <= 0:
            batch_left = rng.choice((1, 1, 2, 5, 20, 200))
            batch_date = _EPOCH + timedelta(seconds=rng.randrange(11 * 365 * 86400))
            batch_raw = _format_open_date(marketplace, batch_date)
        batch_left -= 1

        yield {
            "seller_sku": sku,
            "asin": asin,
            "name": name,
            "listing_id": f"{rng.randrange(10000):04d}{rng.choice(_ALNUM[:26])}"
            f"{rng.randrange(1000000):06d}",
            "price": price,
            "quantity": None if fba else rng.choice((0, 1, 2, 5, 10, 25, rng.randrange(1000))),
            "fulfillment_channel": row_channel,
            "status": status,
            "product_id": product_id,
            "product_id_type": kind,
            "open_date_raw": batch_raw,
            "open_date": batch_date,
        }
