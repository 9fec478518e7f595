"""Amazon marketplaces: ids, SP-API regions, domains, currencies, report encodings."""

from __future__ import annotations

from dataclasses import dataclass

NA_ENDPOINT = "https://sellingpartnerapi-na.amazon.com"
EU_ENDPOINT = "https://sellingpartnerapi-eu.amazon.com"
FE_ENDPOINT = "https://sellingpartnerapi-fe.amazon.com"


@dataclass(frozen=True)
class Marketplace:
    """One Amazon marketplace: ids, domain, currency, report encoding, ASIN-column needs."""

    code: str
    marketplace_id: str
    name: str
    endpoint: str
    aws_region: str
    domain: str
    currency: str
    #: Python codec used when the report download does not name a charset.
    default_encoding: str
    #: Whether Amazon's *default* All Listings Report for this market lacks the ASIN column,
    #: so the seller has to add ``asin``/``asin1`` in Seller Central before importing.
    asin_column_needs_setup: bool = False

    def product_url(self, asin: str) -> str:
        return f"https://www.{self.domain}/dp/{asin}"


def _mp(code, mid, name, endpoint, domain, currency, encoding="cp1252", asin_setup=False):
    regions = {NA_ENDPOINT: "us-east-1", EU_ENDPOINT: "eu-west-1", FE_ENDPOINT: "us-west-2"}
    region = regions[endpoint]
    return Marketplace(code, mid, name, endpoint, region, domain, currency, encoding, asin_setup)


MARKETPLACES: dict[str, Marketplace] = {
    m.code: m
    for m in (
        _mp("US", "ATVPDKIKX0DER", "United States", NA_ENDPOINT, "amazon.com", "USD", "utf-8"),
        _mp("CA", "A2EUQ1WTGCTBG2", "Canada", NA_ENDPOINT, "amazon.ca", "CAD", "utf-8"),
        _mp("MX", "A1AM78C64UM0Y8", "Mexico", NA_ENDPOINT, "amazon.com.mx", "MXN"),
        _mp("BR", "A2Q3Y263D00KWC", "Brazil", NA_ENDPOINT, "amazon.com.br", "BRL"),
        _mp("GB", "A1F83G8C2ARO7P", "United Kingdom", EU_ENDPOINT, "amazon.co.uk", "GBP"),
        _mp("DE", "A1PA6795UKMFR9", "Germany", EU_ENDPOINT, "amazon.de", "EUR"),
        _mp("FR", "A13V1IB3VIYZZH", "France", EU_ENDPOINT, "amazon.fr", "EUR", asin_setup=True),
        _mp("IT", "APJ6JRA9NG5V4", "Italy", EU_ENDPOINT, "amazon.it", "EUR"),
        _mp("ES", "A1RKKUPIHCS9HS", "Spain", EU_ENDPOINT, "amazon.es", "EUR"),
        _mp("NL", "A1805IZSGTT6HS", "Netherlands", EU_ENDPOINT, "amazon.nl", "EUR"),
        _mp("SE", "A2NODRKZP88ZB9", "Sweden", EU_ENDPOINT, "amazon.se", "SEK"),
        _mp("PL", "A1C3SOZRARQ6R3", "Poland", EU_ENDPOINT, "amazon.pl", "PLN"),
        _mp("BE", "AMEN7PMS3EDWL", "Belgium", EU_ENDPOINT, "amazon.com.be", "EUR"),
        _mp("TR", "A33AVAJ2PDY3EV", "Turkey", EU_ENDPOINT, "amazon.com.tr", "TRY"),
        _mp("IE", "A28R8C7NBKEWEA", "Ireland", EU_ENDPOINT, "amazon.ie", "EUR"),
        _mp("AE", "A2VIGQ35RCS4UG", "United Arab Emirates", EU_ENDPOINT, "amazon.ae", "AED",
            "utf-8"),
        _mp("SA", "A17E79C6D8DWNP", "Saudi Arabia", EU_ENDPOINT, "amazon.sa", "SAR", "utf-8"),
        _mp("EG", "ARBP9OOSHTCHU", "Egypt", EU_ENDPOINT, "amazon.eg", "EGP", "utf-8"),
        _mp("IN", "A21TJRUUN4KGV", "India", EU_ENDPOINT, "amazon.in", "INR", "utf-8"),
        _mp("ZA", "AE08WJ6YKNBMC", "South Africa", EU_ENDPOINT, "amazon.co.za", "ZAR"),
        _mp("JP", "A1VC38T7YXB528", "Japan", FE_ENDPOINT, "amazon.co.jp", "JPY", "cp932", True),
        _mp("AU", "A39IBJ37TRP1C6", "Australia", FE_ENDPOINT, "amazon.com.au", "AUD", "utf-8"),
        _mp("SG", "A19VAU5U5O7RUS", "Singapore", FE_ENDPOINT, "amazon.sg", "SGD", "utf-8"),
        # Amazon China is not an SP-API region of its own; the Far East endpoint is used.
        _mp("CN", "AAHKV2X7AFYLW", "China", FE_ENDPOINT, "amazon.cn", "CNY", "utf-8", True),
    )
}

BY_MARKETPLACE_ID: dict[str, Marketplace] = {m.marketplace_id: m for m in MARKETPLACES.values()}


def get_marketplace(code: str) -> Marketplace:
    """Return the marketplace for an ISO-like code (``"DE"``); ``"UK"`` is accepted for ``"GB"``."""

    code = code.upper()
    if code == "UK":
        code = "GB"
    try:
        return MARKETPLACES[code]
    except KeyError:
        raise KeyError(
            f"Unknown Amazon marketplace {code!r}; use one of {', '.join(sorted(MARKETPLACES))}."
        ) from None
