"""Labelled offer -> product sets for the mapping-assistant benchmark (seeded, reproducible).

A catalogue of product *families* (brand, product type, optional model code, a material or
feature word) in several *variants* (colour, capacity, volume, size, length, power), named
the way ERP systems name them: short, in the shop's language (Polish, German or English),
sometimes abbreviated. Offers are written the way Amazon titles are: brand first, the type in
the *marketplace's* language (which differs from the ERP language for 40 % of the families),
variant spelled differently ("64GB" vs "64 GB", "schwarz" vs "czarny"), keyword stuffing and
marketing filler, segments in random order.

Offers without a true product: the family is not in the catalogue at all, or the offer's
variant value is missing from an otherwise present family (the near-duplicate trap).

Keys (EAN, seller SKU = ERP code plus a channel affix) are given to some offers; the
``titles_only`` flag drops them, which is what public entity-matching benchmarks measure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

LANGS = ("pl", "de", "en")

# type: (en, de, pl, variant dimension)
TYPES = [
    ("drum unit", "Trommeleinheit", "bęben", None),
    ("toner cartridge", "Tonerkartusche", "toner", "colour"),
    ("coffee mug", "Kaffeetasse", "kubek", "volume"),
    ("keyboard", "Tastatur", "klawiatura", "colour"),
    ("wireless mouse", "kabellose Maus", "mysz bezprzewodowa", "colour"),
    ("headphones", "Kopfhörer", "słuchawki", "colour"),
    ("power bank", "Powerbank", "powerbank", "capacity_mah"),
    ("usb flash drive", "USB-Stick", "pendrive", "capacity"),
    ("t-shirt", "T-Shirt", "koszulka", "size"),
    ("water bottle", "Trinkflasche", "bidon", "volume"),
    ("backpack", "Rucksack", "plecak", "colour"),
    ("phone case", "Handyhülle", "etui na telefon", "colour"),
    ("desk lamp", "Schreibtischlampe", "lampka biurkowa", "colour"),
    ("cordless drill", "Akku-Bohrschrauber", "wiertarko-wkrętarka", "power"),
    ("electric kettle", "Wasserkocher", "czajnik elektryczny", "volume"),
    ("frying pan", "Bratpfanne", "patelnia", "diameter"),
    ("rain jacket", "Regenjacke", "kurtka przeciwdeszczowa", "size"),
    ("running shoes", "Laufschuhe", "buty do biegania", "shoe"),
    ("memory card", "Speicherkarte", "karta pamięci", "capacity"),
    ("hdmi cable", "HDMI-Kabel", "kabel hdmi", "length"),
    ("usb charger", "USB-Ladegerät", "ładowarka usb", "power"),
    ("chef knife", "Kochmesser", "nóż szefa kuchni", "diameter"),
    ("bath towel", "Badetuch", "ręcznik kąpielowy", "colour"),
    ("pillow", "Kopfkissen", "poduszka", "size_cm"),
    ("garden hose", "Gartenschlauch", "wąż ogrodowy", "length"),
    ("led bulb", "LED-Lampe", "żarówka led", "power"),
    ("yoga mat", "Yogamatte", "mata do jogi", "colour"),
    ("thermos flask", "Thermosflasche", "termos", "volume"),
    ("screwdriver set", "Schraubendreher-Set", "zestaw wkrętaków", None),
    ("bicycle lock", "Fahrradschloss", "zapięcie rowerowe", "length"),
]

FEATURES = [
    ("stainless steel", "Edelstahl", "stal nierdzewna"),
    ("ceramic", "Keramik", "ceramiczny"),
    ("wireless", "kabellos", "bezprzewodowy"),
    ("leather", "Leder", "skórzany"),
    ("cotton", "Baumwolle", "bawełna"),
    ("waterproof", "wasserdicht", "wodoodporny"),
    ("foldable", "faltbar", "składany"),
    ("ergonomic", "ergonomisch", "ergonomiczny"),
    ("professional", "professionell", "profesjonalny"),
    ("compact", "kompakt", "kompaktowy"),
    ("non-stick", "antihaft", "nieprzywierający"),
    ("rechargeable", "wiederaufladbar", "akumulatorowy"),
]

COLOURS = [
    ("black", "schwarz", "czarny"), ("white", "weiß", "biały"), ("red", "rot", "czerwony"),
    ("blue", "blau", "niebieski"), ("green", "grün", "zielony"), ("grey", "grau", "szary"),
    ("pink", "rosa", "różowy"), ("silver", "silber", "srebrny"),
]

STUFFING = {
    "en": ["ideal gift for men and women", "for home office and travel", "dishwasher safe",
           "easy to use", "compatible with most devices", "lightweight and durable",
           "2 year warranty", "perfect for everyday use", "modern design", "BPA free"],
    "de": ["ideales Geschenk für Männer und Frauen", "für Büro und Reisen",
           "spülmaschinenfest", "einfache Bedienung", "kompatibel mit den meisten Geräten",
           "leicht und langlebig", "2 Jahre Garantie", "perfekt für den Alltag",
           "modernes Design", "BPA frei"],
    "pl": ["idealny prezent dla niej i dla niego", "do domu biura i w podróż",
           "można myć w zmywarce", "łatwy w użyciu", "kompatybilny z większością urządzeń",
           "lekki i wytrzymały", "2 lata gwarancji", "idealny na co dzień",
           "nowoczesny design", "bez BPA"],
}
MARKETING = {
    "en": ["NEW", "Premium Quality", "Bestseller", "Original", "2024 Model"],
    "de": ["NEU", "Premium Qualität", "Bestseller", "Original", "Modell 2024"],
    "pl": ["NOWOŚĆ", "Jakość Premium", "Bestseller", "Oryginał", "Model 2024"],
}
LANG_INDEX = {"en": 0, "de": 1, "pl": 2}

SYLLABLES = ["ka", "no", "vi", "ta", "ro", "lex", "zen", "mar", "tek", "sol", "pri", "do",
             "ver", "lum", "ax", "or", "bel", "qu", "fin", "gra", "hel", "io", "ny", "stra"]


def variant_values(dimension: str | None) -> list[tuple[str, tuple[str, str, str]]]:
    """(erp value, (en, de, pl) Amazon spellings) of a dimension's values."""
    if dimension is None:
        return [("", ("", "", ""))]
    if dimension == "colour":
        return [(c[2], c) for c in COLOURS]
    if dimension == "capacity":
        return [(f"{g}GB", (f"{g} GB", f"{g}GB", f"{g} GB")) for g in (16, 32, 64, 128, 256)]
    if dimension == "capacity_mah":
        return [(f"{m}mAh", (f"{m} mAh", f"{m}mAh", f"{m} mAh"))
                for m in (5000, 10000, 20000, 26800)]
    if dimension == "volume":
        return [(f"{v}ml", (f"{v} ml", f"{v}ml", f"{v} ml") if v < 1000 else
                 ("1 l", "1 Liter", "1 l")) for v in (300, 500, 750, 1000)]
    if dimension in ("size", "shoe"):
        sizes = ("S", "M", "L", "XL", "XXL") if dimension == "size" else \
            ("40", "41", "42", "43", "44")
        return [(f"rozm. {s}", (f"Size {s}", f"Größe {s}", f"rozmiar {s}")) for s in sizes]
    if dimension == "size_cm":
        return [(f"{a}x{b}", (f"{a} x {b} cm", f"{a}x{b} cm", f"{a}x{b}cm"))
                for a, b in ((40, 40), (40, 60), (50, 70), (70, 80))]
    if dimension == "length":
        return [(f"{m}m", (f"{m} m", f"{m}m", f"{m} metry")) for m in (1, 2, 3, 5, 10)]
    if dimension == "power":
        return [(f"{w}W", (f"{w} W", f"{w}W", f"{w} W")) for w in (5, 9, 18, 40, 65)]
    if dimension == "diameter":
        return [(f"{c}cm", (f"{c} cm", f"{c}cm", f"{c} cm")) for c in (20, 24, 28, 32)]
    raise ValueError(dimension)


@dataclass
class Product:
    key: int
    sku: str
    ean: str | None
    name: str


@dataclass
class Offer:
    seller_sku: str
    title: str
    ean: str | None
    truth: int | None  # Product.key, or None when no product is the same item


def _brand(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def _model(rng: random.Random) -> str:
    letters = "".join(rng.choice("ABCDEFGHKLMNPRSTVXZ") for _ in range(rng.randint(1, 3)))
    digits = str(rng.randint(10, 9999))
    tail = rng.choice(["", "", "C", "X", "Pro", "S"])
    return rng.choice([f"{letters}-{digits}{tail}", f"{letters}{digits}{tail}",
                       f"{letters} {digits}{tail}"])


def _ean(rng: random.Random) -> str:
    body = "590" + "".join(rng.choice("0123456789") for _ in range(9))
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _abbreviate(rng: random.Random, words: str) -> str:
    if rng.random() < 0.2:
        return " ".join(w[:4] + "." if len(w) > 6 and rng.random() < 0.5 else w
                        for w in words.split())
    return words


def generate(families: int, *, seed: int = 7, no_match_share: float = 0.15,
             key_share: float = 0.4, titles_only: bool = False,
             cross_language_share: float = 0.4, offers_per_family: float = 1.0
             ) -> tuple[list[Product], list[Offer]]:
    rng = random.Random(seed)
    products: list[Product] = []
    offers: list[Offer] = []
    brands = [_brand(rng) for _ in range(max(20, families // 15))]
    used: set[tuple[str, str]] = set()
    for fam in range(families):
        # A brand makes one product line of a type (two "Acme mugs" without model codes
        # would be the same product to any reader, making the label arbitrary).
        for _ in range(50):
            type_ = rng.choice(TYPES)
            brand = rng.choice(brands)
            if (brand, type_[0]) not in used:
                break
        else:
            brand = _brand(rng) + str(fam)
        used.add((brand, type_[0]))
        model = _model(rng) if rng.random() < 0.6 else ""
        feature = rng.choice(FEATURES) if rng.random() < 0.5 else None
        erp_lang = rng.choice(LANGS)
        amz_lang = erp_lang if rng.random() > cross_language_share else \
            rng.choice([x for x in LANGS if x != erp_lang])
        values = variant_values(type_[3])
        rng.shuffle(values)
        n_variants = min(len(values), rng.randint(1, 4))
        in_catalogue = values[:n_variants]
        family_missing = rng.random() < no_match_share / 2
        family_products: list[tuple[Product, tuple[str, str, str]]] = []
        if not family_missing:
            for erp_value, spellings in in_catalogue:
                key = len(products) + 1
                sku = f"{brand[:3].upper()}-{rng.randint(100, 99999)}"
                name = " ".join(x for x in (
                    _abbreviate(rng, type_[LANG_INDEX[erp_lang]]).capitalize(), brand, model,
                    feature[LANG_INDEX[erp_lang]] if feature and rng.random() < 0.5 else "",
                    erp_value) if x)
                p = Product(key, sku, _ean(rng) if rng.random() < 0.7 else None, name)
                products.append(p)
                family_products.append((p, spellings))
        # offers of this family
        n_offers = 1 if rng.random() < offers_per_family else 0
        for _ in range(n_offers):
            variant_missing = (not family_missing and len(values) > n_variants
                               and rng.random() < no_match_share / 2)
            if family_missing:
                truth = None
                spellings = rng.choice(values)[1]
            elif variant_missing:
                truth = None
                spellings = values[n_variants][1]
            else:
                product, spellings = rng.choice(family_products)
                truth = product.key
            li = LANG_INDEX[amz_lang]
            segments = [
                f"{brand} {type_[li]}" if rng.random() < 0.7 else f"{type_[li]} {brand}",
                model if model and rng.random() < 0.9 else "",
                feature[li] if feature and rng.random() < 0.7 else "",
                spellings[li],
            ]
            extras = rng.sample(STUFFING[amz_lang], rng.randint(1, 3))
            head = " ".join(s for s in segments[:2] if s)
            tail = [s for s in segments[2:] if s] + extras
            rng.shuffle(tail)
            title = head + ", " + ", ".join(tail)
            if rng.random() < 0.4:
                title = rng.choice(MARKETING[amz_lang]) + " " + title
            seller_sku = f"AMZ-{rng.randint(100000, 999999)}"
            ean = None
            if not titles_only and truth is not None and rng.random() < key_share:
                product = products[truth - 1]
                if product.ean and rng.random() < 0.6:
                    ean = product.ean
                else:
                    seller_sku = product.sku + rng.choice(["-FBA", "/B", "-NEW", "_fba", ""])
                    if rng.random() < 0.3:
                        seller_sku = seller_sku.lower().replace("-", "")
            offers.append(Offer(seller_sku, title, ean, truth))
    return products, offers
