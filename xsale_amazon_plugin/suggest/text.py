"""Text features of offers and products for the mapping assistant (pure functions, no I/O).

Everything here is language-agnostic on purpose: accents are folded, words are reduced to a
short prefix ("stem by truncation", which merges Polish and German inflections as well as
English plurals without a per-language stemmer), and the only vocabularies are small closed
sets that mean the same in every catalogue (colour names in the EU marketplace languages,
clothing sizes, units of capacity/size). Nothing is tuned to particular products.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..settings import DEFAULT_SKU_AFFIXES as DEFAULT_SKU_AFFIXES  # defined with the setting

#: Version of what :func:`title_features` indexes; a new version re-indexes every product.
FEATURES_VERSION = 4
#: Length of the prefix a word is reduced to before comparison.
STEM_LENGTH = 5

_FOLD_EXTRA = str.maketrans({
    "ß": "ss", "ł": "l", "Ł": "L", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe",
    "Œ": "OE", "đ": "d", "Đ": "D", "ı": "i", "″": '"', "”": '"', "“": '"', "×": "x",
})

# Function words of EN, DE, PL, FR, IT, ES and marketing filler common in Amazon titles.
STOPWORDS = frozenset("""
a an and the for with of to in on by or from at as is new set pack pcs pc piece pieces
und mit fur der die das den dem des ein eine einer fuer von zu im auf oder inkl
i z ze w we na do dla oraz lub od po sztuk szt
et de la le les du des pour avec en un une au aux sur
e di il lo gli con per da del della
y el los las para sin por
original genuine premium quality high top best ideal perfect great
""".split())  # noqa: SIM905

# Colour words (folded, stemmed) of the marketplace languages -> one canonical colour.
_COLOURS = {
    "black": "black schwarz czarn noir nero negro zwart svart",
    "white": "white weiss bial blanc bianc blanco wit",
    "red": "red rot czerwo rouge rosso rojo",
    "blue": "blue blau niebie bleu blu azul",
    "green": "green grun zielo vert verde",
    "grey": "grey gray grau szary szara szare gris grigio",
    "silver": "silver silber srebr argen plata",
    "gold": "gold zloty zlota zlote dorad oro",
    "pink": "pink rosa rozow",
    "yellow": "yellow gelb zolty zolta zolte jaune giall amari",
    "purple": "purple violet lila fiolet viola morad",
    "orange": "orange pomar aranc naranj",
    "brown": "brown braun brazo marro",
    "beige": "beige bezow",
    "navy": "navy granat",
}
#: Colour stems; a word is a colour when it starts with one (>= 4 letters) or equals it.
COLOUR_OF: dict[str, str] = {
    word: canon for canon, words in _COLOURS.items() for word in words.split()
}
_SIZES = frozenset(["xxs", "xs", "xl", "xxl", "xxxl", "2xl", "3xl", "4xl", "5xl"])
_SIZE_WORDS = frozenset(["size", "grosse", "gr", "rozmiar", "rozm", "taille", "talla", "taglia"])
_PLAIN_SIZES = frozenset(["s", "m", "l"])
# Words saying an item is not the brand's original new product (EN, DE, PL, FR, IT, ES):
# a compatible cartridge is not the original one, whatever else the titles share.
_CONDITIONS = {
    "compatible": "compatible kompatibel kompatybiln compatibile zamiennik",
    "remanufactured": "remanufactured reman regenerowan wiederaufbereitet rebuilt refilled "
                      "reconditioned",
    "refurbished": "refurbished refurb renewed generaluberholt odnowion reacondicionado "
                   "ricondizionato reconditionne",
}
_CONDITION_OF = {w: canon for canon, words in _CONDITIONS.items() for w in words.split()}
#: "compatible with most devices" says what an item fits, not that it is a substitute.
_FITS = frozenset(["with", "mit", "z", "ze", "avec", "con", "for", "fur", "fuer", "do", "pour",
                   "per", "para"])


def _conditions(words: Sequence[str]) -> dict[str, str]:
    """``{"compatible": "zamiennik"}``: canonical condition -> the word used (whole words;
    the Polish stems match their inflections)."""
    found: dict[str, str] = {}
    for i, word in enumerate(words):
        canon = _CONDITION_OF.get(word)
        if canon is None and len(word) > 8:
            canon = next((c for stem, c in _CONDITION_OF.items()
                          if len(stem) > 8 and word.startswith(stem)), None)
        if canon == "compatible" and i + 1 < len(words) and words[i + 1] in _FITS:
            continue
        if canon:
            found.setdefault(canon, word)
    return found


def _colour_of(word: str) -> str | None:
    if not word.isalpha():
        return None
    if word in COLOUR_OF:
        return COLOUR_OF[word]
    for length in range(min(len(word), 6), 3, -1):
        canon = COLOUR_OF.get(word[:length])
        if canon is not None:
            return canon
    return None


# Units after a number; the number and the unit are joined into one attribute ("64gb").
_UNIT_ALIASES = {
    "gb": "gb", "tb": "tb", "mb": "mb", "kb": "kb", "ml": "ml", "l": "l", "ltr": "l",
    "liter": "l", "litre": "l", "g": "g", "gr": "g", "kg": "kg", "mg": "mg", "mm": "mm",
    "cm": "cm", "m": "m", "w": "w", "kw": "kw", "v": "v", "mah": "mah", "ah": "ah",
    "hz": "hz", "khz": "khz", "mhz": "mhz", "ghz": "ghz", '"': "in", "in": "in",
    "inch": "in", "inches": "in", "zoll": "in", "cali": "in", "ft": "ft", "feet": "ft",
    "foot": "ft", "oz": "oz", "lb": "lb", "lbs": "lb",
    "st": "pcs", "stk": "pcs", "stuck": "pcs", "szt": "pcs", "pcs": "pcs", "pack": "pcs",
    "pk": "pcs", "pks": "pcs", "packs": "pcs", "ct": "pcs", "count": "pcs", "piece": "pcs",
    "pieces": "pcs", "pair": "pair", "pairs": "pair",
    "er": "pcs", "db": "db", "mp": "mp", "k": "k", "p": "p",
    "litr": "l", "litry": "l", "litrow": "l", "liters": "l", "litres": "l",
    "meter": "m", "metre": "m", "metr": "m", "metry": "m", "metrow": "m", "meters": "m",
    "metres": "m",
}
#: Units that count items: a number with one of them is a quantity, never a model code.
_COUNT_UNITS = frozenset(["pcs", "pair"])
#: Units compared in a common base: 1 l = 1000 ml, 1 kg = 1000 g, 1 TB = 1000 GB.
_UNIT_BASE = {"l": ("ml", 1000.0), "kg": ("g", 1000.0), "tb": ("gb", 1000.0),
              "kw": ("w", 1000.0)}
_DIMENSIONS = re.compile(
    r"(?<![a-z0-9.,/-])(\d+(?:[.,]\d+)?)(?:x|\s+x\s+)(\d+(?:[.,]\d+)?)"
    r"(?:(?:x|\s+x\s+)(\d+(?:[.,]\d+)?))?(?:\s*(?:cm|mm|m|in))?(?![a-z0-9])"
)
# Letters and digits separated by a space ("GCR 6335"), upper case in the original.
_SPACED_CODE = re.compile(r"(?<![A-Za-z0-9])([A-Z]{1,4}) (\d{2,}[A-Z0-9]*)(?![A-Za-z0-9])")
_NUMBER_UNIT = re.compile(
    r"(?<![a-z0-9])(\d+(?:[.,]\d+)?)(?:\s*|-)(" + "|".join(
        sorted((re.escape(u) for u in _UNIT_ALIASES), key=len, reverse=True)
    ) + r")(?![a-z0-9])"
)
# A number standing alone (a version, a year, an edition): "2007", "7.2", "2nd".
_BARE_NUMBER = re.compile(r"(?<![a-z0-9.,])(\d+(?:[.,]\d+)?)(?:st|nd|rd|th)?(?![a-z0-9])")
_CODE = re.compile(r"(?<![a-z0-9])[a-z0-9]+(?:[-/.][a-z0-9]+)*(?![a-z0-9])")
_WORD = re.compile(r"[a-z0-9]+")
_DIGIT = re.compile(r"\d")
_ALPHA = re.compile(r"[a-z]")


_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def _fold_case(text: str | None) -> str:
    """Accents folded, case kept."""
    if not text:
        return ""
    if text.isascii():
        return text
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text.translate(_FOLD_EXTRA)))


def _fold(text: str | None) -> str:
    """Lower case without accents: ``"Größe Biała"`` -> ``"grosse biala"``."""
    return _fold_case(text).lower()


def _number(text: str) -> float:
    return float(text.replace(",", "."))


def stem(word: str) -> str:
    return word if word.isdigit() else word[:STEM_LENGTH]


@dataclass(frozen=True)
class TitleFeatures:
    #: Stemmed words used for retrieval and weighted similarity (no stopwords).
    terms: frozenset[str]
    #: Model-number-like codes (letters and digits), separators removed: ``"dr2010c"``.
    models: frozenset[str]
    #: Original spelling of each model code, for reasons shown to the operator.
    model_display: dict[str, str] = field(compare=False, hash=False)
    #: Variant attributes by dimension: ``{"colour": {"black"}, "gb": {"64gb"}}``.
    variants: dict[str, frozenset[str]] = field(compare=False, hash=False)
    folded: str = ""
    #: Full words behind each term (a shared stem with a different word weighs less).
    words: dict[str, frozenset[str]] = field(default_factory=dict, compare=False, hash=False)
    #: Terms that are parts of model codes (weighed through ``models`` instead).
    model_terms: frozenset[str] = frozenset()
    #: Numbers standing alone, without a unit: versions, years, editions ("2007", "7.2").
    numbers: frozenset[str] = frozenset()
    #: Stems of two neighbouring words written as one ("web radio" -> "webra", as in
    #: "webradio"): compared with the other title's words, never indexed.
    joined: frozenset[str] = frozenset()
    #: Not the original new item: ``{"compatible": "zamiennik"}`` (canonical -> word used).
    conditions: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


_PART_NUMBER = re.compile(r"\d{2,}(?:-\d{2,})+")
_YEARS = re.compile(r"(?:19|20)\d\d-(?:19|20)\d\d")


def _is_code(code: str) -> bool:
    compact = re.sub(r"[-/.]", "", code)
    if _PART_NUMBER.fullmatch(code):
        # Digits-only part numbers ("731-01163", "059-03871"), not a range of years.
        return len(compact) >= 7 and not _YEARS.fullmatch(code)
    if not (len(compact) >= 4 and _DIGIT.search(compact) and _ALPHA.search(compact)
            and not _NUMBER_UNIT.fullmatch(code) and not _DIMENSIONS.fullmatch(code)):
        return False
    # A word glued to a count ("mounts-1pair", "flags-340pk") is not a model code: its only
    # digits are the count's. ("EL-334MB" and "DGS-1008P" are codes: units end codes too.)
    return any(_DIGIT.search(part) and not _is_count(part) for part in re.split(r"[-/.]", code))


def _is_count(text: str) -> bool:
    match = _NUMBER_UNIT.fullmatch(text)
    return bool(match and _UNIT_ALIASES[match.group(2)] in _COUNT_UNITS)


@functools.lru_cache(maxsize=100_000)
def title_features(title: str | None) -> TitleFeatures:
    """Features of a title (cached: batches see the same candidate products again)."""
    text = _fold(title)
    variants: dict[str, set[str]] = {}
    for dims in _DIMENSIONS.findall(text):
        variants.setdefault("dims", set()).add("x".join(f"{_number(d):g}" for d in dims if d))
    for number, unit in _NUMBER_UNIT.findall(_DIMENSIONS.sub(" ", text)):
        canon = _UNIT_ALIASES[unit]
        value = _number(number)
        if canon in _UNIT_BASE:
            canon, factor = _UNIT_BASE[canon]
            value *= factor
        variants.setdefault(canon, set()).add(f"{value:g}{canon}")
    no_units = _NUMBER_UNIT.sub(" ", _DIMENSIONS.sub(" ", text))
    numbers = {f"{_number(n):g}" for n in _BARE_NUMBER.findall(no_units)}
    models: dict[str, str] = {}
    for match in _CODE.finditer(text):
        code = match.group(0)
        if _is_code(code):
            models.setdefault(re.sub(r"[-/.]", "", code), code.upper())
            # Its code-like parts name the model too: "SGH-T249" is sold as "T249",
            # "NEW-108R00602" is "108R00602".
            parts = re.split(r"[-/.]", code)
            if len(parts) > 1:
                for part in parts:
                    if _is_code(part):
                        models.setdefault(part, part.upper())
    original = _fold_case(title)
    for letters, digits in _SPACED_CODE.findall(original):
        models.setdefault((letters + digits).lower(), f"{letters} {digits}")
        if _is_code(digits.lower()):
            models.setdefault(digits.lower(), digits)
    model_words = {w for code in models.values() for w in _WORD.findall(code.lower())}
    words = _WORD.findall(text)
    terms: set[str] = set()
    by_term: dict[str, set[str]] = {}
    previous = ""
    for word in words:
        colour = _colour_of(word)
        if colour:
            variants.setdefault("colour", set()).add(colour)
        if word in _SIZES or (previous in _SIZE_WORDS and (word in _PLAIN_SIZES
                                                           or word.isdigit())):
            variants.setdefault("size", set()).add(word)
        previous = word
        if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        term = stem(word)
        terms.add(term)
        by_term.setdefault(term, set()).add(word)
    terms.update("#" + code for code in models)
    joined: set[str] = set()
    for first, second in itertools.pairwise(words):
        if (first.isalpha() and second.isalpha() and first not in STOPWORDS
                and second not in STOPWORDS):
            term = stem(first + second)
            if term not in terms:
                joined.add(term)
                by_term.setdefault(term, set()).add(first + second)
    return TitleFeatures(
        terms=frozenset(terms),
        models=frozenset(models),
        model_display=models,
        variants={k: frozenset(v) for k, v in variants.items()},
        folded=" ".join(words),
        words={k: frozenset(v) for k, v in by_term.items()},
        model_terms=frozenset(stem(w) for w in model_words) | {"#" + c for c in models},
        numbers=frozenset(numbers - {f"{_number(n):g}" for c in models.values()
                                     for n in re.findall(r"\d+", c)}),
        joined=frozenset(joined),
        conditions=_conditions(words),
    )


# --- keys ------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[-_/. ]+")


@dataclass(frozen=True)
class NormalisedSku:
    value: str
    removed: tuple[str, ...]


def normalise_sku(sku: str | None, affixes: Sequence[re.Pattern[str]] = ()) -> NormalisedSku:
    """Case, separators and seller affixes removed: ``"ab-123-FBA"`` -> ``"ab123"``.

    ``removed`` lists the affixes taken off (upper case), for the reason text. An affix is
    only removed while at least three characters remain.
    """
    text = _fold(sku).strip()
    removed: list[str] = []
    for _ in range(3):
        changed = False
        for pattern in affixes:
            m = pattern.search(text)
            rest = text[:m.start()] + text[m.end():] if m else ""
            if m and m.group(0) and len(_SEPARATORS.sub("", rest)) >= 3:
                removed.append(m.group(0).upper())
                text = rest
                changed = True
        if not changed:
            break
    return NormalisedSku(_SEPARATORS.sub("", text), tuple(removed))


def compile_affixes(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


def normalise_gtin(value: str | None) -> str | None:
    """EAN/UPC/JAN/ISBN-13 as 13 digits (UPC-A gets its leading zero), else None."""
    digits = re.sub(r"[\s-]", "", value or "")
    if not digits.isdigit() or len(digits) not in (8, 12, 13, 14):
        return None
    if len(digits) == 14 and digits.startswith("0"):
        digits = digits[1:]
    if len(digits) == 12:
        digits = "0" + digits
    return digits


def row_hash(*values: object) -> int:
    """A stable 32-bit hash of a product's indexed attributes (change detection)."""
    joined = "\x1f".join("" if v is None else str(v) for v in values)
    return zlib.crc32(joined.encode("utf-8", "surrogatepass"))
