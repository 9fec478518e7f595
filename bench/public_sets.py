"""Public entity-matching benchmarks as offer -> product suggestion tasks (titles only).

The issue's quality bar is also measured "on real product-title pairs from public
entity-matching benchmarks" (Abt-Buy, Amazon-Google, Walmart-Amazon, WDC products...). They
are not shipped here (their licences are the publishers'); point ``--public`` at a directory
in either of the two layouts they are usually distributed in:

* **DeepMatcher / Magellan CSV**: ``tableA.csv`` and ``tableB.csv`` (an ``id`` column and a
  ``title`` or ``name`` column) plus any of ``train.csv``, ``valid.csv``, ``test.csv``
  (``ltable_id``, ``rtable_id``, ``label``);
* **Ditto text pairs** (``data/er_magellan/*/*`` in megagonlabs/ditto): ``train.txt``,
  ``valid.txt``, ``test.txt`` with ``COL title VAL ... <TAB> COL title VAL ... <TAB> label``.

The task built from them: every record of the right table (B) that appears anywhere in the
files is a product of the catalogue; every left record (A) with at least one positive pair is
an offer whose true products are its positive partners. Nothing is tuned to these sets.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "valid", "test")
_COLUMN = re.compile(r"COL (\S+) VAL ")


@dataclass
class PublicProduct:
    key: int
    name: str
    sku: str | None = None
    ean: str | None = None


@dataclass
class PublicOffer:
    seller_sku: str
    title: str
    ean: str | None = None
    truth: frozenset[int] = field(default_factory=frozenset)


def _title(record: dict[str, str]) -> str:
    for column in ("title", "name"):
        if record.get(column):
            return record[column].strip()
    return " ".join(v for v in record.values() if v).strip()


def _ditto_record(text: str) -> dict[str, str]:
    parts = _COLUMN.split(" " + text.strip())
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def _pairs_from_ditto(directory: Path) -> list[tuple[str, str, bool]]:
    pairs = []
    for split in SPLITS:
        path = directory / f"{split}.txt"
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                cols = line.rstrip("\n").split("\t")
                if len(cols) == 3:
                    pairs.append((_title(_ditto_record(cols[0])), _title(_ditto_record(cols[1])),
                                  cols[2].strip() == "1"))
    return pairs


def _pairs_from_csv(directory: Path) -> list[tuple[str, str, bool]]:
    def table(name: str) -> dict[str, str]:
        with (directory / name).open(encoding="utf-8", errors="replace", newline="") as f:
            return {row["id"]: _title(row) for row in csv.DictReader(f)}

    left, right = table("tableA.csv"), table("tableB.csv")
    pairs = []
    for split in SPLITS:
        path = directory / f"{split}.csv"
        if not path.exists():
            continue
        with path.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                a, b = left.get(row["ltable_id"]), right.get(row["rtable_id"])
                if a and b:
                    pairs.append((a, b, str(row["label"]).strip() == "1"))
    return pairs


def _plain(title: str) -> str:
    return " ".join(re.findall(r"\w+", title.casefold()))


def identical_title_agreement(products: list[PublicProduct],
                              offers: list[PublicOffer]) -> tuple[int, int]:
    """How far the labels follow the titles: the offers with a catalogue product of the same
    title (case and punctuation aside), and how many of them are labelled as that product.

    No title-only scorer can be more precise than the labels are on identical titles: on a
    set where they disagree, the ``high`` band's precision has a ceiling the scorer cannot
    move.
    """
    by_title: dict[str, set[int]] = {}
    for product in products:
        by_title.setdefault(_plain(product.name), set()).add(product.key)
    same = agree = 0
    for offer in offers:
        keys = by_title.get(_plain(offer.title))
        if keys:
            same += 1
            agree += bool(keys & offer.truth)
    return same, agree


def load_public(directory: str | Path) -> tuple[list[PublicProduct], list[PublicOffer]]:
    """Products and labelled offers of one benchmark directory (either layout)."""
    path = Path(directory)
    pairs = (_pairs_from_csv(path) if (path / "tableA.csv").exists()
             else _pairs_from_ditto(path))
    if not pairs:
        raise SystemExit(f"{path}: no train/valid/test pairs found (see bench/public_sets.py)")
    products: dict[str, int] = {}
    lefts: dict[str, set[int]] = {}
    for left, right, positive in pairs:
        if not left or not right:
            continue
        key = products.setdefault(right, len(products) + 1)
        truths = lefts.setdefault(left, set())
        if positive:
            truths.add(key)
    catalogue = [PublicProduct(key, name) for name, key in products.items()]
    offers = [PublicOffer(f"P{i:06d}", title, None, frozenset(truth))
              for i, (title, truth) in enumerate(lefts.items()) if truth]
    return catalogue, offers
