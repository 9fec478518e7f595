"""The mapping assistant's service layer: stored suggestions, decisions and accepting them.

Suggestions for every unlinked live offer are computed in batches (an RQ job or the CLI)
and stored in ``xsale_amazon_suggestion`` with the offer's hash and the catalogue version
they were computed against, so a changed offer or a changed product catalogue makes them
stale and they are computed again before use. Rejected suggestions are remembered per
offer and never offered again.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import sqlalchemy as sa
from flask import has_request_context

from ..babel import gettext as _
from ..linking.links import link_offers, link_pairs, product_key
from ..models import LinkMethod
from ..proxies import current_amazon
from ..timeutil import utcnow
from .catalogue_check import active_check, start_rebuild
from .engine import HIGH, MEDIUM, OfferInput, Suggestion, SuggestionEngine
from .index import (
    ProductColumns,
    RefreshTooLarge,
    SuggestTables,
    catalog_state,
    product_count,
    quick_check,
    refresh,
    suggest_tables,
)
from .text import compile_affixes
from .triggers import drop_watch_triggers

log = logging.getLogger(__name__)

#: Suggestions kept per offer (the CLI's --limit above this computes on the fly).
STORED_SUGGESTIONS = 10
#: Reasons of an exact key match: never contested (several listings of a product share its EAN).
KEY_REASONS = frozenset({"same_ean", "same_asin", "same_sku", "sku_affix", "sku_normalised"})
#: Up to this many products a contest check looks up by product, else reads the integrations.
CONTEST_LOOKUP_KEYS = 1000


@dataclass(frozen=True)
class _Context:
    state: Any
    tables: SuggestTables
    cols: ProductColumns
    affix_patterns: tuple[str, ...]

    @property
    def session(self) -> Any:
        return self.state.db.session


def _context() -> _Context:
    state = current_amazon
    m = state.models

    def column(which: str) -> Any:
        attr = state.product_attr(which)
        if attr is None:
            return None
        return attr.expression if hasattr(attr, "expression") else attr

    cols = ProductColumns(m.product_pk, column("sku"), column("ean"), column("name"),
                          column("asin"))
    return _Context(state, suggest_tables(m), cols, tuple(state.settings.suggest_sku_affixes))


def _pk_from_key(key: str) -> Any:
    return product_key(current_amazon.models.product_pk, key)


def offer_hash(offer: Any) -> int:
    parts = (offer.seller_sku, offer.name, offer.asin, offer.product_id, offer.product_id_type)
    return zlib.crc32("\x1f".join("" if p is None else str(p) for p in parts).encode())


class IndexRebuilding(Exception):
    """The product index is stale and refreshing it is more work than a web request may do
    (``XSALE_AMAZON_SUGGEST_INLINE_REFRESH_LIMIT``): the check job refreshes it, and nothing
    may be suggested from the stale index meanwhile.

    ``products``: about how many products the refresh goes through; ``job_id`` / ``job``: the
    job and its :func:`~xsale_amazon_plugin.suggest.catalogue_check.rebuild_state`, both None
    when the job queue is unreachable (then ``flask xsale-amazon suggest`` refreshes it)."""

    def __init__(self, products: int, job_id: str | None,
                 job: dict[str, Any] | None) -> None:
        super().__init__(f"The product index is being rebuilt (about {products} products).")
        self.products = products
        self.job_id = job_id
        self.job = job


def refresh_index(*, verify: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> Any:
    """Check the index against the product table and update it if needed (commits).

    ``verify`` compares the fingerprint even when the triggers' change log is trusted: what
    the log cannot see (MariaDB's TRUNCATE, PostgreSQL writes with triggers disabled) is
    noticed then.

    In a web request (a request context) a refresh that re-indexes runs inline only when it
    goes through at most ``XSALE_AMAZON_SUGGEST_INLINE_REFRESH_LIMIT`` products; a larger one
    is left to the check job (started unless queued or running) and :class:`IndexRebuilding`
    is raised. The CLI and jobs (no request context) always refresh inline."""
    ctx = _context()
    settings = ctx.state.settings
    max_age = 0.0 if verify else (settings.suggest_fingerprint_max_age or None)
    conn = ctx.session.connection()
    result = quick_check(conn, ctx.tables, ctx.cols, triggers=settings.suggest_triggers,
                         fingerprint_max_age=max_age)
    ctx.session.commit()  # releases the table lock of trigger DDL the check may have run
    if result is not None:
        return result
    limit = settings.suggest_inline_refresh_limit if has_request_context() else None
    try:
        result = refresh(ctx.session.connection(), ctx.tables, ctx.cols, ctx.affix_patterns,
                         _pk_from_key, progress, max_products=limit)
    except RefreshTooLarge:
        ctx.session.rollback()  # nothing was written; releases the refresh lock
        _start_rebuild(ctx)
    ctx.session.commit()
    return result


def drop_triggers() -> list[str]:
    """Drop the triggers the mapping assistant added to the host's product table (commits);
    returns their names. See :func:`.triggers.drop_watch_triggers`."""
    ctx = _context()
    product = ctx.cols.pk.table
    assert isinstance(product, sa.Table)
    names = drop_watch_triggers(ctx.session.connection(), product)
    ctx.session.commit()
    return names


def _start_rebuild(ctx: _Context) -> NoReturn:
    """Hand the refresh to the check job and raise :class:`IndexRebuilding`."""
    conn = ctx.session.connection()
    state = catalog_state(conn, ctx.tables)
    ctx.session.commit()  # ends the read transaction (and keeps a change trigger just created)
    active = None
    try:
        active = active_check()
    except Exception:  # no Redis: counted and reported below
        log.warning("Index rebuild: the job queue is not reachable", exc_info=True)
    if active is not None and active[1].get("total"):
        raise IndexRebuilding(int(active[1]["total"]), *active)
    products = max(product_count(ctx.session.connection(), ctx.cols),
                   state.product_count if state else 0)
    ctx.session.commit()
    if active is not None:
        raise IndexRebuilding(products, *active)
    try:
        job_id, job = start_rebuild(products)
    except Exception:  # Redis down or not configured: the CLI is the way out
        log.warning("Index rebuild of %s products could not be enqueued", products,
                    exc_info=True)
        raise IndexRebuilding(products, None, None) from None
    raise IndexRebuilding(products, job_id, job)


def _engine(ctx: _Context, product_count: int) -> SuggestionEngine:
    return SuggestionEngine(ctx.session.connection(), ctx.tables, product_count,
                            compile_affixes(ctx.affix_patterns))


def _rejections(ctx: _Context, offer_ids: Sequence[int]) -> dict[int, set[str]]:
    r = ctx.tables.rejection
    out: dict[int, set[str]] = {}
    for offer_id, key in ctx.session.connection().execute(
        sa.select(r.c.offer_id, r.c.product_key).where(r.c.offer_id.in_(list(offer_ids)))
    ):
        out.setdefault(offer_id, set()).add(key)
    return out


def _unlinked_live(ctx: _Context, integration_id: int | None) -> Any:
    m = ctx.state.models
    offer = m.AmazonOffer.__table__
    link = m.OfferProductLink.__table__
    query = (
        sa.select(offer.c.id, offer.c.integration_id, offer.c.seller_sku, offer.c.name,
                  offer.c.asin, offer.c.product_id, offer.c.product_id_type)
        .where(offer.c.removed_at.is_(None),
               ~sa.exists().where(link.c.offer_id == offer.c.id))
    )
    if integration_id is not None:
        query = query.where(offer.c.integration_id == integration_id)
    return query


def _store(ctx: _Context, offers: Sequence[Any], results: dict[int, list[Suggestion]],
           version: int) -> None:
    s = ctx.tables.suggestion
    conn = ctx.session.connection()
    ids = [o.id for o in offers]
    decisions = dict(conn.execute(
        sa.select(s.c.offer_id, s.c.decision).where(s.c.offer_id.in_(ids))).all())
    conn.execute(s.delete().where(s.c.offer_id.in_(ids)))
    now = utcnow()
    rows = []
    for o in offers:
        found = results.get(o.id, [])
        best = found[0] if found else None
        rows.append({
            "offer_id": o.id, "offer_hash": offer_hash(o), "catalog_version": version,
            "computed_at": now,
            "best_product_key": best.product_key if best else None,
            "best_score": best.score if best else None,
            "best_confidence": best.confidence if best else None,
            "suggestions": [x.as_dict() for x in found],
            "decision": decisions.get(o.id),
        })
    if rows:
        conn.execute(s.insert(), rows)


@dataclass(frozen=True)
class _Row:
    id: int
    integration_id: Any
    suggestions: list[dict[str, Any]]


@dataclass
class ComputeResult:
    offers: int
    computed: int
    catalog_version: int
    #: Stale offers left for later because ``max_seconds`` ran out.
    remaining: int = 0


def _stale_rows(ctx: _Context, integration_id: int | None, version: int,
                force: bool = False) -> tuple[int, list[Any]]:
    s = ctx.tables.suggestion
    base = _unlinked_live(ctx, integration_id).subquery()
    query = (
        sa.select(base, s.c.offer_hash.label("stored_hash"),
                  s.c.catalog_version.label("stored_version"))
        .select_from(base.outerjoin(s, s.c.offer_id == base.c.id))
        .order_by(base.c.id)
    )
    stale = []
    total = 0
    for row in ctx.session.connection().execute(query):
        total += 1
        if (force or row.stored_hash is None or row.stored_version != version
                or row.stored_hash != offer_hash(row)):
            stale.append(row)
    return total, stale


def _contested(ctx: _Context, rows: Sequence[Any], version: int | None
               ) -> dict[int, dict[str, Any]]:
    """The offers among ``rows`` (``id``, ``integration_id``, stored ``suggestions``) whose
    best suggestion is a ``high`` on title evidence alone for a product that another live
    offer of the same integration is linked to, or has as its own ``high`` best suggestion:
    ``{offer id: the reason}``.

    Read when suggestions are used, not stored with them: linking another offer changes it.
    One integration (a marketplace and account type) normally lists a product once, so a
    second offer on it is a duplicate listing or another variant, for the operator to decide
    (on the benchmark sets, 14 of the 27 title-only ``high`` suggestions that shared their
    product with another offer's were wrong).
    """
    candidates = [r for r in rows if r.suggestions and r.suggestions[0]["confidence"] == HIGH
                  and not any(x.get("code") in KEY_REASONS
                              for x in r.suggestions[0].get("reasons", ()))]
    if not candidates:
        return {}
    keys = sorted({r.suggestions[0]["product_key"] for r in candidates})
    integrations = sorted({r.integration_id for r in candidates})
    # A few keys (a page of the queue, the link dialog) are looked up by the indexes on the
    # link's product and the best suggestion's product; many (Accept all) read the
    # integrations' links and high suggestions once instead.
    by_key = len(keys) <= CONTEST_LOOKUP_KEYS
    linked = _claims(ctx, _linked_query(ctx, integrations), keys if by_key else None, pk=True)
    claimed = _claims(ctx, _high_query(ctx, integrations, version), keys if by_key else None)
    out: dict[int, dict[str, Any]] = {}
    for r in candidates:
        where = (r.integration_id, r.suggestions[0]["product_key"])
        others = [sku for offer_id, sku in linked.get(where, ()) if offer_id != r.id]
        if others:
            out[r.id] = {"code": "linked_elsewhere", "value": others[0]}
            continue
        others = [sku for offer_id, sku in claimed.get(where, ()) if offer_id != r.id]
        if others:
            out[r.id] = {"code": "contested", "value": others[0]}
    return out


def _linked_query(ctx: _Context, integrations: Sequence[Any]) -> Any:
    """(offer id, integration, seller SKU, product) of the integrations' linked live offers."""
    m = ctx.state.models
    offer, link = m.AmazonOffer.__table__, m.OfferProductLink.__table__
    return (sa.select(offer.c.id, offer.c.integration_id, offer.c.seller_sku,
                      link.c.product_id.label("product"))
            .select_from(link.join(offer, offer.c.id == link.c.offer_id))
            .where(offer.c.removed_at.is_(None), offer.c.integration_id.in_(integrations)))


def _high_query(ctx: _Context, integrations: Sequence[Any], version: int | None) -> Any:
    """(offer id, integration, seller SKU, product) of the integrations' unlinked live offers
    whose best suggestion is ``high`` and undecided."""
    m = ctx.state.models
    offer, link = m.AmazonOffer.__table__, m.OfferProductLink.__table__
    s = ctx.tables.suggestion
    query = (sa.select(offer.c.id, offer.c.integration_id, offer.c.seller_sku,
                       s.c.best_product_key.label("product"))
             .select_from(s.join(offer, offer.c.id == s.c.offer_id))
             .where(s.c.best_confidence == HIGH, s.c.decision.is_(None),
                    offer.c.removed_at.is_(None), offer.c.integration_id.in_(integrations),
                    ~sa.exists().where(link.c.offer_id == offer.c.id)))
    return query if version is None else query.where(s.c.catalog_version == version)


def _claims(ctx: _Context, query: Any, keys: Sequence[str] | None, *, pk: bool = False
            ) -> dict[tuple[Any, str], list[tuple[int, str]]]:
    """``{(integration, product key): [(offer id, seller SKU), ...]}`` of ``query``'s rows,
    only for ``keys`` when given (converted to the host's primary key type when ``pk``)."""
    conn = ctx.session.connection()
    product = query.selected_columns.product
    if keys is None:
        parts: list[list[Any] | None] = [None]
    else:
        values: list[Any] = []
        for key in keys:
            try:
                values.append(_pk_from_key(key) if pk else key)
            except LookupError:
                continue
        parts = [values[i:i + 1000] for i in range(0, len(values), 1000)]
    out: dict[tuple[Any, str], list[tuple[int, str]]] = {}
    for part in parts:
        selected = query if part is None else query.where(product.in_(part))
        for offer_id, integration_id, sku, value in conn.execute(selected):
            out.setdefault((integration_id, str(value)), []).append((offer_id, sku))
    return out


def _as_read(ctx: _Context, rows: Sequence[Any], version: int | None, limit: int
             ) -> dict[int, list[dict[str, Any]]]:
    """Each row's first ``limit`` stored suggestions as they are shown and used: a contested
    best one as ``medium`` (:func:`_contested`)."""
    contested = _contested(ctx, rows, version)
    return {row.id: _uncontested(list(row.suggestions or [])[:limit], contested.get(row.id))
            for row in rows}


def _uncontested(found: Sequence[dict[str, Any]], reason: dict[str, Any] | None
                 ) -> list[dict[str, Any]]:
    """The suggestions with a contested best one (see :func:`_contested`) as ``medium``."""
    if reason is None or not found:
        return list(found)
    best = {**found[0], "confidence": MEDIUM, "reasons": [*found[0]["reasons"], reason]}
    return [best, *found[1:]]


@dataclass
class QueueSummary:
    unlinked: int
    stale: int
    high: int
    no_match: int
    #: The (fresh) index version the counts are for.
    catalog_version: int = -2


def queue_summary(integration_id: int | None) -> QueueSummary:
    """How many unlinked live offers there are, how many need (re)computing, how many have a
    fresh ``high`` suggestion and how many were marked "no match"."""
    ctx = _context()
    fresh = refresh_index()
    total, stale = _stale_rows(ctx, integration_id, fresh.version)
    s = ctx.tables.suggestion
    base = _unlinked_live(ctx, integration_id).subquery()
    no_match = ctx.session.connection().execute(
        sa.select(sa.func.count()).select_from(base.join(s, s.c.offer_id == base.c.id))
        .where(s.c.decision == "no_match")).scalar_one()
    return QueueSummary(total, len(stale), len(high_confidence(integration_id)), no_match,
                        fresh.version)


def review_queue(integration_id: int | None, *, offset: int = 0, limit: int = 50,
                 per_offer: int = 5, version: int | None = None) -> list[dict[str, Any]]:
    """Unlinked live offers with fresh suggestions and no decision, best first.

    ``version``: the index version just checked fresh (by :func:`queue_summary`); without it
    the index is checked (and refreshed) first."""
    ctx = _context()
    if version is None:
        version = refresh_index().version
    s = ctx.tables.suggestion
    base = _unlinked_live(ctx, integration_id).subquery()
    query = (
        sa.select(base, s.c.suggestions, s.c.best_score, s.c.offer_hash)
        .select_from(base.join(s, s.c.offer_id == base.c.id))
        .where(s.c.decision.is_(None), s.c.catalog_version == version)
        .order_by(sa.func.coalesce(s.c.best_score, -1.0).desc(), base.c.id)
        .offset(max(offset, 0)).limit(max(1, min(limit, 500)))
    )
    rows = ctx.session.connection().execute(query).all()
    shown = _as_read(ctx, rows, version, per_offer)
    out = []
    for row in rows:
        out.append({
            "offer_id": row.id, "seller_sku": row.seller_sku, "name": row.name,
            "asin": row.asin, "product_id": row.product_id,
            "product_id_type": row.product_id_type,
            "stale": row.offer_hash != offer_hash(row),
            "suggestions": [displayed(x) for x in shown[row.id]],
        })
    return out


def compute_for_integration(integration_id: int | None, *, force: bool = False,
                            progress: Callable[[int, int], None] | None = None,
                            batch_size: int | None = None,
                            max_seconds: float | None = None,
                            yield_to: Callable[[], bool] | None = None) -> ComputeResult:
    """Compute missing or stale suggestions for the integration's unlinked live offers.

    With ``max_seconds`` it stops after the batch that used the time up, and with
    ``yield_to`` after the first batch for which it returns True; either way it reports the
    stale offers it left in ``remaining`` (the next call continues with them)."""
    started = time.monotonic()
    ctx = _context()
    fresh = refresh_index()
    batch = int(batch_size or ctx.state.settings.suggest_batch_size)
    total, stale = _stale_rows(ctx, integration_id, fresh.version, force)
    done = 0
    if progress:
        progress(0, len(stale))
    for start in range(0, len(stale), batch):
        part = stale[start:start + batch]
        engine = _engine(ctx, fresh.product_count)
        results = engine.suggest(
            [OfferInput(o.id, o.seller_sku, o.name, o.asin, o.product_id, o.product_id_type)
             for o in part],
            limit=STORED_SUGGESTIONS, rejected=_rejections(ctx, [o.id for o in part]))
        _store(ctx, part, results, fresh.version)
        ctx.session.commit()
        done += len(part)
        if progress:
            progress(done, len(stale))
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            break
        if yield_to is not None and yield_to():
            break
    return ComputeResult(total, done, fresh.version, remaining=len(stale) - done)


def stored_for_integration(integration_id: int | None, *, limit: int = 5
                           ) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """(offer row, suggestions) for every unlinked live offer, in offer id order (the row's
    ``decision`` is ``no_match`` when an operator said no product fits)."""
    ctx = _context()
    s = ctx.tables.suggestion
    base = _unlinked_live(ctx, integration_id).subquery()
    query = (sa.select(base, s.c.suggestions, s.c.decision)
             .select_from(base.outerjoin(s, s.c.offer_id == base.c.id)).order_by(base.c.id))
    state = catalog_state(ctx.session.connection(), ctx.tables)
    version = state.version if state else None
    result = ctx.session.connection().execute(query.execution_options(yield_per=1000))
    for part in result.partitions():
        shown = _as_read(ctx, part, version, limit)
        for row in part:
            yield row, shown[row.id]


def suggestions_for_offer(offer_id: int, *, limit: int = 5) -> list[dict[str, Any]]:
    """Fresh suggestions of one offer (stored ones when still valid, else computed now)."""
    ctx = _context()
    fresh = refresh_index()
    m = ctx.state.models
    offer = ctx.session.get(m.AmazonOffer, offer_id)
    if offer is None:
        raise LookupError(f"Offer {offer_id} does not exist.")
    s = ctx.tables.suggestion
    conn = ctx.session.connection()
    row = conn.execute(sa.select(s).where(s.c.offer_id == offer_id)).first()
    if (row is not None and row.catalog_version == fresh.version
            and row.offer_hash == offer_hash(offer) and limit <= STORED_SUGGESTIONS):
        found = list(row.suggestions)[:limit]
    else:
        results = _engine(ctx, fresh.product_count).suggest(
            [OfferInput(offer.id, offer.seller_sku, offer.name, offer.asin, offer.product_id,
                        offer.product_id_type)],
            limit=max(limit, STORED_SUGGESTIONS), rejected=_rejections(ctx, [offer.id]))
        _store(ctx, [offer], results, fresh.version)
        ctx.session.commit()
        found = [x.as_dict() for x in results.get(offer.id, [])][:limit]
    return _as_read(ctx, [_Row(offer.id, offer.integration_id, found)], fresh.version,
                    limit)[offer.id]


def reject(offer_id: int, product_key: str, *, user: str | None = None) -> None:
    """Never suggest this product for this offer again."""
    ctx = _context()
    r, s = ctx.tables.rejection, ctx.tables.suggestion
    conn = ctx.session.connection()
    exists = conn.execute(sa.select(r.c.offer_id).where(
        r.c.offer_id == offer_id, r.c.product_key == str(product_key))).first()
    if exists is None:
        conn.execute(r.insert().values(offer_id=offer_id, product_key=str(product_key)[:64],
                                       created_by=user, created_at=utcnow()))
    # Stored suggestions are recomputed without it on next use.
    conn.execute(s.update().where(s.c.offer_id == offer_id).values(catalog_version=-1))
    ctx.session.commit()


def set_no_match(offer_id: int, no_match: bool = True) -> None:
    """Record (or clear) the operator's "no product fits this offer" decision."""
    ctx = _context()
    s = ctx.tables.suggestion
    conn = ctx.session.connection()
    updated = conn.execute(s.update().where(s.c.offer_id == offer_id)
                           .values(decision="no_match" if no_match else None)).rowcount
    if not updated and no_match:
        conn.execute(s.insert().values(offer_id=offer_id, offer_hash=0, catalog_version=-1,
                                       computed_at=utcnow(), suggestions=[],
                                       decision="no_match"))
    ctx.session.commit()


def accept(offer_id: int, product_key: str, *, user: str | None = None) -> int:
    return link_offers([offer_id], product_key, by=user, method=LinkMethod.SUGGESTION)


def high_confidence(integration_id: int | None, *, limit: int | None = None) -> list[Any]:
    """Unlinked live offers whose fresh best suggestion is ``high`` (offer, suggestion)."""
    ctx = _context()
    fresh = refresh_index()
    s = ctx.tables.suggestion
    base = _unlinked_live(ctx, integration_id).subquery()
    query = (
        sa.select(base, s.c.best_product_key, s.c.best_score, s.c.suggestions, s.c.offer_hash)
        .select_from(base.join(s, s.c.offer_id == base.c.id))
        .where(s.c.best_confidence == HIGH, s.c.catalog_version == fresh.version,
               s.c.decision.is_(None))
        .order_by(base.c.id)
    )
    rows = [r for r in ctx.session.connection().execute(query) if r.offer_hash == offer_hash(r)]
    contested = _contested(ctx, rows, fresh.version)
    rows = [r for r in rows if r.id not in contested]
    return rows[:limit] if limit is not None else rows


def accept_high(integration_id: int | None, *, user: str | None = None,
                offer_ids: Sequence[int] | None = None) -> int:
    """Link every offer whose best (fresh) suggestion is ``high``; returns how many."""
    rows = high_confidence(integration_id)
    if offer_ids is not None:
        wanted = {int(i) for i in offer_ids}
        rows = [r for r in rows if r.id in wanted]
    return link_pairs([(r.id, r.best_product_key) for r in rows], by=user,
                      method=LinkMethod.SUGGESTION)


# --- reasons -------------------------------------------------------------------------------

def reason_text(reason: dict[str, Any]) -> str:
    code = reason.get("code")
    value = str(reason.get("value", ""))
    if code == "same_ean":
        return _("same EAN %(value)s", value=value)
    if code == "same_asin":
        return _("same ASIN %(value)s", value=value)
    if code == "same_sku":
        return _("same SKU")
    if code == "sku_affix":
        return _("SKU equal after removing %(value)s", value=value)
    if code == "sku_normalised":
        return _("SKU equal ignoring case and separators")
    if code == "model":
        return _("model number %(value)s in both", value=value)
    if code == "model_differs":
        return _("different model number (%(value)s)", value=value)
    if code == "variant_differs":
        return _("different variant: %(value)s vs %(offer)s", value=value,
                 offer=str(reason.get("offer_value", "")))
    if code == "number_differs":
        return _("different number: %(value)s vs %(offer)s", value=value,
                 offer=str(reason.get("offer_value", "")))
    if code == "condition_differs":
        return _("not the original item in one title: %(value)s", value=value)
    if code == "linked_elsewhere":
        return _("the product is already linked to offer %(value)s", value=value)
    if code == "contested":
        return _("also the best match of offer %(value)s", value=value)
    if code == "title":
        return _("title %(percent)s %% similar", percent=reason.get("percent", 0))
    return str(code)


def _reason_is_negative(reason: dict[str, Any]) -> bool:
    return reason.get("code") in ("model_differs", "variant_differs", "number_differs",
                                  "condition_differs", "linked_elsewhere", "contested")


def displayed(suggestion: dict[str, Any]) -> dict[str, Any]:
    """A stored suggestion with its reasons rendered in the current language."""
    return {
        "product_id": suggestion["product_key"], "title": suggestion.get("title"),
        "sku": suggestion.get("sku"), "score": suggestion["score"],
        "confidence": suggestion["confidence"],
        "confidence_label": confidence_label(suggestion["confidence"]),
        "reasons": [{"text": reason_text(r), "negative": _reason_is_negative(r)}
                    for r in suggestion["reasons"]],
    }


def confidence_label(confidence: str) -> str:
    return {"high": _("high"), "medium": _("medium"), "low": _("low")}.get(confidence,
                                                                            confidence)
