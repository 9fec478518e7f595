"""Ranked product suggestions for offers: retrieval from the index, then scoring.

Retrieval engine: an inverted index in the plugin's own tables (``term -> product``, see
:mod:`.index`) queried with plain indexed SQL, and IDF weights from the stored
document frequencies. Why not the databases' own text search: the plugin runs on PostgreSQL,
SQLite and MariaDB, whose engines rank differently (``ts_rank``, FTS5 ``bm25``, MariaDB's
natural-language mode with its 50 % threshold and stopword list), and none of them knows
that "DR-2010C" and "dr2010c" are the same model, that "schwarz" and "czarny" are one
colour, or that 64 GB and 128 GB are different products. ``pg_trgm`` similarity over long,
keyword-stuffed Amazon titles against short ERP names is both slow on a million rows and a
poor signal (the extra words dominate). One index with the same behaviour everywhere, with
retrieval bounded by only querying an offer's rarest terms (a term in more than
``MAX_TERM_DF`` products never drives retrieval), keeps one offer to a few indexed lookups
at a million products and lets a batch of offers share one query per step (on PostgreSQL
the per-offer sums and top-k are one aggregate query over a ``VALUES`` list). Candidates
are then scored in Python (see ``SuggestionEngine._score``):

* IDF-weighted word overlap, measured two ways: a cosine, and a *contrast* among the
  retrieved candidates: the product's words the offer lacks count against it, and so does
  an offer word that some other candidate has and this one lacks ("deluxe", "upgrade", a
  colour), while offer words no candidate has (Amazon's keyword stuffing) count against
  none;
* RapidFuzz's token-set ratio (C++, typo tolerant);
* model codes weighted by rarity: a code few products carry identifies a model, a code that
  extends another ("EC-ST65" / "EC-ST65ZZBPU") is a weaker match, two different identifying
  codes contradict; numbers without a unit (versions, years), variant attributes
  (capacity, size, colour) and the item's condition (a compatible, remanufactured or
  refurbished item against the original) that disagree contradict as well.

Scores are in [0, 1]. Exact keys (EAN/GTIN, ASIN, SKU) score highest; normalised SKUs next;
title evidence is scaled below them. The ``high`` band requires either a unique exact key or
strong, unambiguous title evidence: a clear lead over the runner-up, nothing contradicting,
and no uncontradicted rival that has nearly as much of the offer's words (then the choice
would be a guess). It is designed to be precise first, so anything doubtful lands in ``medium``.
``bench/suggest_bench.py`` measures all of this against a TF-IDF baseline, on its own
labelled sets and on public entity-matching benchmarks.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa
from rapidfuzz import fuzz

from ..amazon.report_parser import GTIN_TYPES
from .index import SuggestTables
from .text import (
    NormalisedSku,
    TitleFeatures,
    normalise_gtin,
    normalise_sku,
    title_features,
)

HIGH = "high"
MEDIUM = "medium"
LOW = "low"

#: Candidates retrieved per offer by title terms before scoring.
TITLE_CANDIDATES = 30
#: Terms of an offer used for retrieval (the rarest ones).
RETRIEVAL_TERMS = 8
#: A term drives retrieval only while it is in at most this many products
#: (``max(MIN_TERM_DF, min(MAX_TERM_DF, N * COMMON_TERM_SHARE))``); it still counts in scoring.
MIN_TERM_DF = 200
MAX_TERM_DF = 400
COMMON_TERM_SHARE = 0.002
#: Below this score a product is not suggested at all.
MIN_SCORE = 0.15
#: Lowest title-evidence score that can be ``high``.
HIGH_TITLE_SCORE = 0.55
#: ``high`` needs every uncontradicted rival to explain at least this much less of the offer.
EXPLAIN_GAP = 0.1
#: The lead over the runner-up ``high`` needs on title evidence.
HIGH_MARGIN = 0.25
#: Lowest score that is ``medium`` (below: ``low``, unless a key matches).
MEDIUM_SCORE = 0.55
#: Highest score of title evidence: below every exact key's score (``KEY_SCORES``).
TITLE_CAP = 0.94
#: Added to the title score when both name the same model code.
MODEL_BONUS = 0.2
#: Shortest model code another code may extend and still name the same model.
MIN_CODE_PREFIX = 5
#: A model code in at most this many products identifies a model.
IDENTIFYING_CODE_DF = 10
#: Title evidence at or above this maps to ``TITLE_CAP``.
TEXT_MAX = 1.0
#: Added instead when one code extends the other (see ``_model_code_evidence``).
EXTENDED_MODEL_BONUS = MODEL_BONUS / 2
#: Factor on the title score when both name identifying model codes and none agree.
MODEL_CONFLICT_PENALTY = 0.6
#: Factor on the title score when only the product names an identifying model code: titles
#: often omit the code, so its absence costs little.
MISSING_MODEL_PENALTY = 0.92
#: Factor on the title score when both name numbers (versions, years) and none agree.
NUMBER_PENALTY = 0.8
#: Factor when the item's condition differs (a compatible or refurbished item against the
#: original); weighed like numbers that differ.
CONDITION_PENALTY = NUMBER_PENALTY
#: Factor per variant dimension (capacity, size, colour) in which offer and product differ:
#: 64 GB and 128 GB are different products however alike their titles are.
VARIANT_PENALTY = 0.55
#: Weight of a shared stem whose words differ ("kabel"/"kabla"; "belver"/"belverhel").
STEM_ONLY_WEIGHT = 0.6

#: Weights of the title measures (see ``_title_match``); they add up to 1.
W_CONTRAST = 0.5
W_COSINE = 0.3
W_FUZZY = 0.2

KEY_SCORES = {"ean": 1.0, "asin": 1.0, "sku": 0.99, "sku_norm": 0.97}


@dataclass(frozen=True)
class OfferInput:
    id: int
    seller_sku: str
    name: str | None = None
    asin: str | None = None
    product_id: str | None = None
    product_id_type: str | None = None


@dataclass
class Suggestion:
    product_key: str
    score: float
    confidence: str
    #: ``[{"code": ..., **params}]``; rendered by :func:`.service.reason_text`.
    reasons: list[dict[str, Any]] = field(default_factory=list)
    title: str | None = None
    sku: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"product_key": self.product_key, "score": self.score,
                "confidence": self.confidence, "reasons": self.reasons,
                "title": self.title, "sku": self.sku}


@dataclass
class _Product:
    key: str
    sku: str | None
    sku_norm: str | None
    gtin: str | None
    asin: str | None
    title: str | None
    features: TitleFeatures


@dataclass(frozen=True)
class _OfferView:
    """What scoring needs of an offer, computed once for all its candidates."""

    features: TitleFeatures
    #: Stemmed words and model codes (as ``#code``) of the title.
    terms: frozenset[str]
    #: Weight of the terms some product has.
    mass: float
    #: Terms some retrieved candidate has: one of them missing counts against a candidate.
    telling: frozenset[str]


@dataclass
class _Scored:
    product: _Product
    score: float
    key_match: str | None
    #: A model code, number or variant contradicts the offer (never ``high`` on the title,
    #: and no rival of a better candidate).
    conflicts: bool
    reasons: list[dict[str, Any]]
    #: Share of the offer's known words (by weight) the product has.
    explains: float = 0.0


class _TitleMatch(NamedTuple):
    #: Blend of the title measures, before model codes and contradictions move it.
    score: float
    #: Share of the offer's known words (by weight) the product has.
    explains: float


class _Evidence(NamedTuple):
    """A finding that moves the title score: a bonus added or a penalty factor applied."""

    reason: dict[str, Any] | None
    bonus: float = 0.0
    factor: float = 1.0
    #: Contradicts the offer (see ``_Scored.conflicts``).
    conflicts: bool = False

    def applied_to(self, text: float) -> float:
        return text + self.bonus if self.bonus else text * self.factor


def _identifying_codes(models: frozenset[str], df: dict[str, int]) -> set[str]:
    # Only codes few products carry identify a model; "DDR2" or "240-PIN" are just words.
    return {c for c in models if df.get("#" + c, 0) <= IDENTIFYING_CODE_DF}


class SuggestionEngine:
    """Suggestions for batches of offers against one version of the index."""

    def __init__(self, conn: sa.Connection, tables: SuggestTables, product_count: int,
                 affixes: Sequence[Any]) -> None:
        self.conn = conn
        self.t = tables
        self.n = max(product_count, 1)
        self.affixes = affixes
        self.term_cap = max(MIN_TERM_DF, min(MAX_TERM_DF, int(self.n * COMMON_TERM_SHARE)))
        self._weights: dict[str, float] = {}

    # --- public ---------------------------------------------------------------------------

    def suggest(self, offers: Sequence[OfferInput], *, limit: int = 5,
                rejected: dict[int, set[str]] | None = None) -> dict[int, list[Suggestion]]:
        rejected = rejected or {}
        self._weights = {}  # document frequencies are read afresh for every call
        feats = {o.id: title_features(o.name) for o in offers}
        skus = {o.id: normalise_sku(o.seller_sku, self.affixes) for o in offers}
        gtins = {o.id: self._offer_gtin(o) for o in offers}
        asins = {o.id: (o.asin or "").strip().upper() or None for o in offers}

        df = self._document_frequencies({t for f in feats.values() for t in f.terms | f.joined})
        candidates: dict[int, set[str]] = {o.id: set() for o in offers}
        self._retrieve_by_terms([o.id for o in offers], feats, df, candidates)
        keyed = self._retrieve_by_keys(offers, skus, gtins, asins, candidates)
        products = self._load_products({k for c in candidates.values() for k in c})
        # Weights of the candidates' own words (a product word the offer lacks counts
        # against it by how rare it is).
        df.update(self._document_frequencies(
            {t for p in products.values() for t in p.features.terms} - df.keys()))

        out: dict[int, list[Suggestion]] = {}
        for offer in offers:
            scored = []
            keys = candidates[offer.id] - rejected.get(offer.id, set())
            # Offer words some candidate has: each one tells candidates apart ("deluxe",
            # "upgrade", a colour), so a candidate without it is less likely the item. Words
            # no candidate has (keyword stuffing) say nothing about any of them.
            pool: set[str] = set()
            for key in keys:
                if key in products:
                    pool |= products[key].features.terms
            view = self._offer_view(feats[offer.id], df, pool)
            for key in keys:
                product = products.get(key)
                if product is None:
                    continue
                s = self._score(offer, view, skus[offer.id], gtins[offer.id],
                                asins[offer.id], product, df)
                if s.score >= MIN_SCORE:
                    scored.append(s)
            scored.sort(key=lambda s: (-s.score, s.product.key))
            out[offer.id] = self._banded(scored, keyed.get(offer.id, {}))[:limit]
        return out

    # --- retrieval ------------------------------------------------------------------------

    def _offer_gtin(self, offer: OfferInput) -> str | None:
        kind = (offer.product_id_type or "").upper()
        if kind and kind not in GTIN_TYPES:
            return None
        return normalise_gtin(offer.product_id)

    def _document_frequencies(self, terms: set[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        items = sorted(terms)
        for start in range(0, len(items), 2000):
            part = items[start:start + 2000]
            out.update(self.conn.execute(
                sa.select(self.t.term_df.c.term, self.t.term_df.c.df)
                .where(self.t.term_df.c.term.in_(part))
            ).all())
        return out

    def idf(self, df: int) -> float:
        return math.log((self.n + 1) / (df + 1)) + 1.0

    def _weight(self, term: str, df: dict[str, int]) -> float:
        """IDF squared (a term's weight in both title vectors), cached per :meth:`suggest`."""
        w = self._weights.get(term)
        if w is None:
            w = self._weights[term] = self.idf(df.get(term, 0)) ** 2
        return w

    def _offer_view(self, of: TitleFeatures, df: dict[str, int], pool: set[str]) -> _OfferView:
        # A model code weighs as one term ("#dr2010c"), not as its pieces ("dr", "2010c").
        terms = ((of.terms - of.model_terms) | {"#" + c for c in of.models}
                 | {t for t in of.joined if df.get(t, 0) > 0})
        mass = sum(self._weight(t, df) for t in terms if df.get(t, 0) > 0) or 1.0
        return _OfferView(of, frozenset(terms), mass, frozenset(terms & pool))

    def _retrieve_by_terms(self, offer_ids: Sequence[int], feats: dict[int, TitleFeatures],
                           df: dict[str, int], candidates: dict[int, set[str]]) -> None:
        chosen: dict[int, list[str]] = {}
        for offer_id in offer_ids:
            known = [t for t in feats[offer_id].terms if 0 < df.get(t, 0) <= self.term_cap]
            known.sort(key=lambda t: (df[t], t))
            chosen[offer_id] = known[:RETRIEVAL_TERMS]
        if self.conn.dialect.name == "postgresql":
            self._top_by_terms_sql(chosen, df, candidates)
        else:
            self._top_by_terms_python(chosen, df, candidates)

    def _top_by_terms_sql(self, chosen: dict[int, list[str]], df: dict[str, int],
                          candidates: dict[int, set[str]]) -> None:
        """Sum of IDF per (offer, product) and the top candidates per offer, in one query.

        Each query term reads its postings through a ``LATERAL`` subquery bounded by the
        per-term cap, so the plan is one index range scan per term whatever the planner's
        statistics say. (A plain join of the ``VALUES`` list with the term table let a
        planner without statistics on the term table, e.g. right after the first index
        build or with autovacuum off, hash-join it against a parallel sequential scan of
        all postings: ~0.5 s for one offer at a million products.)
        """
        rows = [(offer_id, term, self.idf(df[term]))
                for offer_id, terms in chosen.items() for term in terms]
        if not rows:
            return
        query_terms = sa.values(sa.column("offer_id", sa.BigInteger),
                                sa.column("term", sa.String), sa.column("w", sa.Float),
                                name="query_terms").data(rows)
        term = self.t.term
        postings = (
            sa.select(term.c.product_key)
            .where(term.c.term == query_terms.c.term)
            .limit(self.term_cap)
            .lateral("postings")
        )
        summed = (
            sa.select(query_terms.c.offer_id, postings.c.product_key,
                      sa.func.sum(query_terms.c.w).label("weight"))
            .select_from(query_terms.join(postings, sa.true()))
            .group_by(query_terms.c.offer_id, postings.c.product_key)
            .subquery()
        )
        ranked = sa.select(
            summed.c.offer_id, summed.c.product_key,
            sa.func.row_number().over(partition_by=summed.c.offer_id,
                                      order_by=(summed.c.weight.desc(), summed.c.product_key))
            .label("rank"),
        ).subquery()
        for offer_id, key in self.conn.execute(
            sa.select(ranked.c.offer_id, ranked.c.product_key)
            .where(ranked.c.rank <= TITLE_CANDIDATES)
        ):
            candidates[offer_id].add(key)

    def _top_by_terms_python(self, chosen: dict[int, list[str]], df: dict[str, int],
                             candidates: dict[int, set[str]]) -> None:
        wanted = sorted({t for terms in chosen.values() for t in terms})
        postings: dict[str, list[str]] = defaultdict(list)
        for start in range(0, len(wanted), 1000):
            part = wanted[start:start + 1000]
            for term, key in self.conn.execute(
                sa.select(self.t.term.c.term, self.t.term.c.product_key)
                .where(self.t.term.c.term.in_(part))
            ):
                postings[term].append(key)
        for offer_id, terms in chosen.items():
            weights: dict[str, float] = defaultdict(float)
            for term in terms:
                w = self.idf(df[term])
                for key in postings.get(term, ()):
                    weights[key] += w
            best = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:TITLE_CANDIDATES]
            candidates[offer_id].update(k for k, _ in best)

    def _retrieve_by_keys(self, offers: Sequence[OfferInput], skus: dict[int, Any],
                          gtins: dict[int, str | None], asins: dict[int, str | None],
                          candidates: dict[int, set[str]]) -> dict[int, dict[str, int]]:
        """Products sharing a key with an offer; returns per offer how many share each key."""
        p = self.t.product.c
        lookups = (("gtin", p.gtin, gtins), ("asin", p.asin, asins),
                   ("sku_norm", p.sku_norm, {k: v.value or None for k, v in skus.items()}))
        counts: dict[int, dict[str, int]] = defaultdict(dict)
        for name, column, by_offer in lookups:
            values = sorted({v for v in by_offer.values() if v})
            if not values:
                continue
            found: dict[str, list[str]] = defaultdict(list)
            for start in range(0, len(values), 1000):
                for value, key in self.conn.execute(
                    sa.select(column, p.product_key).where(column.in_(values[start:start + 1000]))
                ):
                    found[value].append(key)
            for offer_id, value in by_offer.items():
                keys = found.get(value or "", [])
                if keys:
                    candidates[offer_id].update(keys[:TITLE_CANDIDATES])
                    counts[offer_id][name] = len(keys)
        return counts

    def _load_products(self, keys: Iterable[str]) -> dict[str, _Product]:
        out: dict[str, _Product] = {}
        items = sorted(keys)
        p = self.t.product.c
        for start in range(0, len(items), 2000):
            for row in self.conn.execute(
                sa.select(p.product_key, p.sku, p.sku_norm, p.gtin, p.asin, p.title)
                .where(p.product_key.in_(items[start:start + 2000]))
            ):
                out[row.product_key] = _Product(row.product_key, row.sku, row.sku_norm, row.gtin,
                                                row.asin, row.title, title_features(row.title))
        return out

    # --- scoring --------------------------------------------------------------------------

    def _score(self, offer: OfferInput, view: _OfferView, sku: NormalisedSku,
               gtin: str | None, asin: str | None, product: _Product,
               df: dict[str, int]) -> _Scored:
        key_match, reasons = self._key_match(offer, sku, gtin, asin, product)
        title = self._title_match(view, product.features, df)
        text = title.score
        conflicts = False
        for evidence in (self._model_code_evidence(view.features, product.features, df),
                         *self._contradictions(view.features, product.features)):
            if evidence is None:
                continue
            text = evidence.applied_to(text)
            conflicts = conflicts or evidence.conflicts
            if evidence.reason is not None:
                reasons.append(evidence.reason)
        if product.features.folded:
            reasons.append({"code": "title", "percent": int(round(100 * min(text, 1.0)))})

        # Title evidence stays below exact keys; scaled, not clipped, so it still ranks.
        score = KEY_SCORES[key_match] if key_match else TITLE_CAP * min(text, TEXT_MAX) / TEXT_MAX
        return _Scored(product, round(score, 4), key_match, conflicts, reasons,
                       explains=title.explains)

    @staticmethod
    def _key_match(offer: OfferInput, sku: NormalisedSku, gtin: str | None, asin: str | None,
                   product: _Product) -> tuple[str | None, list[dict[str, Any]]]:
        """The strongest key offer and product share (or None), and a reason per shared key."""
        reasons: list[dict[str, Any]] = []
        keys: list[str] = []
        if gtin and product.gtin == gtin:
            keys.append("ean")
            reasons.append({"code": "same_ean", "value": gtin})
        if asin and product.asin == asin:
            keys.append("asin")
            reasons.append({"code": "same_asin", "value": asin})
        if product.sku is not None and offer.seller_sku.strip() == str(product.sku).strip():
            keys.append("sku")
            reasons.append({"code": "same_sku", "value": offer.seller_sku})
        elif sku.value and product.sku_norm == sku.value:
            keys.append("sku_norm")
            if sku.removed:
                reasons.append({"code": "sku_affix", "value": " ".join(sku.removed)})
            else:
                reasons.append({"code": "sku_normalised"})
        return (keys[0] if keys else None), reasons

    def _title_match(self, view: _OfferView, pf: TitleFeatures,
                     df: dict[str, int]) -> _TitleMatch:
        """Word overlap (contrast and cosine, IDF-weighted) and fuzzy ratio of the titles."""
        of = view.features
        # Product codes only weigh when the offer names codes at all: titles often omit
        # them (a product code the offer lacks costs a little, see _model_code_evidence).
        p_terms = (pf.terms - pf.model_terms) | (pf.joined & view.terms)
        if of.models:
            p_terms = p_terms | {"#" + c for c in pf.models}
        o_terms = view.terms
        weight = self._weight
        common = p_terms & o_terms
        shared = 0.0
        for t in common:
            same_word = bool(pf.words.get(t, frozenset()) & of.words.get(t, frozenset()))
            shared += weight(t, df) * (1.0 if same_word else STEM_ONLY_WEIGHT)
        product_mass = sum(weight(t, df) for t in p_terms) or 1.0
        missing_in_offer = product_mass - sum(weight(t, df) for t in common)
        telling = sum(weight(t, df) for t in view.telling - p_terms)
        contrast = shared / (shared + missing_in_offer + telling or 1.0)
        offer_mass = view.mass
        cosine = shared / math.sqrt(product_mass * offer_mass)
        fuzzy = fuzz.token_set_ratio(pf.folded, of.folded) / 100.0 if pf.folded else 0.0
        return _TitleMatch(W_CONTRAST * contrast + W_COSINE * cosine + W_FUZZY * fuzzy,
                           explains=shared / offer_mass)

    def _model_code_evidence(self, of: TitleFeatures, pf: TitleFeatures,
                             df: dict[str, int]) -> _Evidence | None:
        """What the identifying model codes of offer and product say; None: nothing."""
        p_codes = _identifying_codes(pf.models, df)
        o_codes = _identifying_codes(of.models, df)
        common_models = p_codes & o_codes
        # A code that extends the other ("EC-ST65" / "EC-ST65ZZBPU", "GS716T" / "GS716T-200")
        # usually names the same model in a colour, region or packaging.
        extended = {min(a, b, key=len) for a in p_codes for b in o_codes
                    if a != b and min(len(a), len(b)) >= MIN_CODE_PREFIX
                    and (a.startswith(b) or b.startswith(a))}
        if common_models:
            code = sorted(common_models, key=len)[-1]
            return _Evidence({"code": "model", "value": pf.model_display.get(code, code)},
                             bonus=MODEL_BONUS)
        if extended:
            code = sorted(extended, key=len)[-1]
            return _Evidence({"code": "model", "value": pf.model_display.get(code, code.upper())},
                             bonus=EXTENDED_MODEL_BONUS)
        if p_codes and o_codes:
            return _Evidence({"code": "model_differs",
                              "value": ", ".join(sorted(pf.model_display[c] for c in p_codes))},
                             factor=MODEL_CONFLICT_PENALTY, conflicts=True)
        if p_codes:
            return _Evidence(None, factor=MISSING_MODEL_PENALTY)
        return None

    @staticmethod
    def _contradictions(of: TitleFeatures, pf: TitleFeatures) -> list[_Evidence]:
        """Numbers, item condition and variant attributes on which offer and product disagree."""
        found: list[_Evidence] = []
        if pf.numbers and of.numbers and not pf.numbers & of.numbers:
            # Versions, years, editions: "Excel 2004" is not "Excel 2007".
            found.append(_Evidence({"code": "number_differs",
                                    "value": ", ".join(sorted(pf.numbers)),
                                    "offer_value": ", ".join(sorted(of.numbers))},
                                   factor=NUMBER_PENALTY, conflicts=True))
        if set(pf.conditions) != set(of.conditions) and not (
                set(pf.conditions) & set(of.conditions)):
            found.append(_Evidence(
                {"code": "condition_differs",
                 "value": ", ".join(sorted((pf.conditions | of.conditions).values()))},
                factor=CONDITION_PENALTY, conflicts=True))
        for dimension in sorted(set(pf.variants) & set(of.variants)):
            if not pf.variants[dimension] & of.variants[dimension]:
                found.append(_Evidence({"code": "variant_differs", "dimension": dimension,
                                        "value": "/".join(sorted(pf.variants[dimension])),
                                        "offer_value": "/".join(sorted(of.variants[dimension]))},
                                       factor=VARIANT_PENALTY, conflicts=True))
        return found

    def _banded(self, scored: list[_Scored], key_counts: dict[str, int]) -> list[Suggestion]:
        out = []
        for i, s in enumerate(scored):
            runner_up = scored[i + 1].score if i + 1 < len(scored) else 0.0
            confidence = LOW
            if i == 0 and s.key_match:
                column = "gtin" if s.key_match == "ean" else s.key_match
                column = "sku_norm" if column == "sku" else column
                unique = key_counts.get(column, 1) == 1
                confidence = HIGH if unique and not (
                    len(scored) > 1 and scored[1].key_match == s.key_match) else MEDIUM
            elif (i == 0 and not s.conflicts and s.score >= HIGH_TITLE_SCORE
                  and s.score - runner_up >= HIGH_MARGIN
                  and not any(r.explains >= s.explains - EXPLAIN_GAP
                              for r in scored[1:] if not r.conflicts)):
                # A rival that has the offer's words as well as the best one does makes the
                # choice a guess, however big the score gap its extra words cause.
                confidence = HIGH
            elif s.score >= MEDIUM_SCORE or s.key_match:
                confidence = MEDIUM
            out.append(Suggestion(s.product.key, s.score, confidence, s.reasons,
                                  s.product.title, s.product.sku))
        return out
