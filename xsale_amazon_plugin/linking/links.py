"""Linking offers to host products: manual, bulk, unlink and set-based auto-link.

The services write through the host's session. With ``commit=True`` (the default) they commit
it; with ``commit=False`` they only flush, the caller owns the transaction, and the
``offers_linked`` / ``offers_unlinked`` signals are sent once the caller commits (never if it
rolls back).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..dialects import is_mysql, session_read_committed
from ..models import LinkMethod, int_in_range
from ..proxies import current_amazon
from ..signals import offers_linked, offers_unlinked
from ..timeutil import utcnow
from .offer_scope import AUTOLINK_KEYS, key_present


@dataclass
class AutoLinkResult:
    """What :func:`autolink` did: offers linked, left ambiguous, without a match, linked
    before; ``ambiguous_examples`` lists a few SKUs of ambiguous offers."""

    linked: int
    ambiguous: int
    no_match: int
    already_linked: int
    ambiguous_examples: list[str]
    #: Offers with nothing to compare (no EAN/GTIN, no ASIN).
    no_key: int = 0
    #: Not removed offers in scope: linked + ambiguous + no_match + no_key + already_linked.
    total: int = 0

    def add(self, other: AutoLinkResult) -> AutoLinkResult:
        """The counts of two disjoint scopes together."""
        return AutoLinkResult(
            linked=self.linked + other.linked,
            ambiguous=self.ambiguous + other.ambiguous,
            no_match=self.no_match + other.no_match,
            already_linked=self.already_linked + other.already_linked,
            ambiguous_examples=(self.ambiguous_examples + other.ambiguous_examples)[:10],
            no_key=self.no_key + other.no_key,
            total=self.total + other.total,
        )


def _finish(session: Any, commit: bool, notify: Callable[[], object]) -> None:
    """Commit and notify, or (``commit=False``) notify when the caller's transaction commits."""
    if commit:
        session.commit()
        notify()
        return
    session.flush()
    target = session() if callable(session) else session  # scoped_session -> Session
    state = {"open": True}

    def committed(_session: Any) -> None:
        if state["open"]:
            state["open"] = False
            notify()

    def rolled_back(_session: Any) -> None:
        state["open"] = False

    sa.event.listen(target, "after_commit", committed, once=True)
    sa.event.listen(target, "after_rollback", rolled_back, once=True)


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    """An INSERT of the connection's dialect (with ON CONFLICT support where it has one)."""
    if conn.dialect.name == "postgresql":
        return postgresql_insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite_insert(table)
    if is_mysql(conn):
        return mysql_insert(table)
    return table.insert()


def _ids(values: Sequence[Any]) -> list[int]:
    id_column = current_amazon.models.AmazonOffer.__table__.c.id
    out = []
    for v in values:
        n = int_in_range(v, id_column)
        if n is None:
            raise ValueError(f"Invalid offer id {str(v)[:40]!r}.")
        out.append(n)
    return out


def product_key(pk: sa.Column, value: Any) -> Any:
    """The form value as the product primary key's Python type; LookupError if it can't be."""
    missing = LookupError("The selected product does not exist.")
    if isinstance(pk.type, sa.Integer):
        value = int_in_range(value, pk)
        if value is None:
            raise missing
    elif isinstance(pk.type, sa.Uuid):
        try:
            value = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        except ValueError:
            raise missing from None
    elif isinstance(value, str) and "\x00" in value:
        raise missing
    return value


def link_offers(offer_ids: Sequence[Any], product_id: Any, *, by: str | None = None,
                commit: bool = True, method: str = LinkMethod.MANUAL) -> int:
    """Link the offers to one product (re-linking offers that were linked elsewhere).

    Sends :data:`~xsale_amazon_plugin.offers_linked` after the commit (the caller's, with
    ``commit=False``).

    :param offer_ids: ids of the plugin's offers.
    :param product_id: the primary key of the host's product.
    :param by: the operator's name recorded on the links.
    :param commit: commit the session; with False the caller owns the transaction.
    :param method: how the link was made (:class:`~xsale_amazon_plugin.models.LinkMethod`).
    :returns: how many offers were linked.
    :raises LookupError: the product does not exist.
    :raises ValueError: an id cannot be an offer id.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
        ``commit`` and ``method``.
    """
    m = current_amazon.models
    session = current_amazon.db.session
    ids = _ids(offer_ids)
    product = session.get(m.product_model, product_key(m.product_pk, product_id))
    if product is None:
        raise LookupError("The selected product does not exist.")
    pk_value = getattr(product, m.product_pk.key)
    link = m.OfferProductLink.__table__
    offer = m.AmazonOffer.__table__
    conn = session.connection()
    existing = set(conn.execute(sa.select(offer.c.id).where(offer.c.id.in_(ids))).scalars())
    if not existing:
        return 0
    conn.execute(link.delete().where(link.c.offer_id.in_(existing)))
    conn.execute(link.insert(), [
        {"offer_id": oid, "product_id": pk_value, "method": method,
         "created_by": by, "created_at": utcnow()}
        for oid in sorted(existing)
    ])
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    _finish(session, commit, lambda: offers_linked.send(
        app, offer_ids=sorted(existing), product_id=pk_value, method=method))
    return len(existing)


def link_pairs(pairs: Sequence[tuple[Any, Any]], *, by: str | None = None,
               method: str = LinkMethod.MANUAL, replace: bool = False,
               commit: bool = True) -> int:
    """Link each offer to its own product in one transaction.

    Offers already linked are left alone unless ``replace``; unknown offers or products are
    skipped. Returns how many offers were linked.
    """
    m = current_amazon.models
    link = m.OfferProductLink.__table__
    offer = m.AmazonOffer.__table__
    pk = m.product_pk
    session = current_amazon.db.session
    conn = session.connection()
    wanted: dict[int, Any] = {}
    for offer_id, product_id in pairs:
        try:
            wanted[_ids([offer_id])[0]] = product_key(pk, product_id)
        except (ValueError, LookupError):
            continue
    rows = []
    offer_list = sorted(wanted)
    for start in range(0, len(offer_list), 1000):
        part = offer_list[start:start + 1000]
        existing = set(conn.execute(sa.select(offer.c.id).where(offer.c.id.in_(part))).scalars())
        linked = set(conn.execute(sa.select(link.c.offer_id)
                                  .where(link.c.offer_id.in_(part))).scalars())
        keys = list({wanted[o] for o in part if o in existing})
        alive = set(conn.execute(sa.select(pk).where(pk.in_(keys))).scalars()) if keys else set()
        for oid in part:
            if oid not in existing or wanted[oid] not in alive:
                continue
            if oid in linked and not replace:
                continue
            rows.append({"offer_id": oid, "product_id": wanted[oid], "method": method,
                         "created_by": by, "created_at": utcnow()})
    if replace and rows:
        ids = [r["offer_id"] for r in rows]
        for start in range(0, len(ids), 1000):
            conn.execute(link.delete().where(link.c.offer_id.in_(ids[start:start + 1000])))
    for start in range(0, len(rows), 5000):
        conn.execute(link.insert(), rows[start:start + 5000])
    linked_ids = [r["offer_id"] for r in rows]
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    _finish(session, commit, lambda: linked_ids and offers_linked.send(
        app, offer_ids=linked_ids, product_id=None, method=method))
    return len(rows)


def unlink_offers(offer_ids: Sequence[Any], *, commit: bool = True) -> int:
    """Remove the links of the offers.

    Sends :data:`~xsale_amazon_plugin.offers_unlinked` after the commit (the caller's, with
    ``commit=False``) when any link was removed.

    :param offer_ids: ids of the plugin's offers; offers without a link are skipped.
    :param commit: commit the session; with False the caller owns the transaction.
    :returns: how many of the offers were linked before.
    :raises ValueError: an id cannot be an offer id.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
        ``commit``.
    """
    link = current_amazon.models.OfferProductLink.__table__
    ids = _ids(offer_ids)
    session = current_amazon.db.session
    conn = session.connection()
    if is_mysql(conn):  # MySQL has no DELETE ... RETURNING: lock, read, delete
        removed = list(conn.execute(
            sa.select(link.c.offer_id).where(link.c.offer_id.in_(ids)).with_for_update()
        ).scalars())
        if removed:
            conn.execute(link.delete().where(link.c.offer_id.in_(removed)))
    else:
        removed = list(conn.execute(
            link.delete().where(link.c.offer_id.in_(ids)).returning(link.c.offer_id)
        ).scalars())
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if removed:
        _finish(session, commit,
                lambda: offers_unlinked.send(app, offer_ids=sorted(removed)))
    elif commit:
        session.commit()
    return len(removed)


def autolink(by: str, *, integration_id: int | None = None,
             offer_ids: Sequence[Any] | None = None, criteria: Sequence[Any] = (),
             user: str | None = None, commit: bool = True) -> AutoLinkResult:
    """Link unlinked, not removed offers to the one product whose key equals the offer's.

    Exact, case-sensitive comparison; offers whose key matches several products are left
    alone and reported as ambiguous. All in a few set-based statements. ``criteria`` are
    extra conditions on the offer table (an
    :class:`~xsale_amazon_plugin.linking.offer_scope.OfferScope` or an id window of a
    background run). The counts add up: every not removed offer in scope is exactly one of
    linked, ambiguous, no match, no key (nothing to compare) or already linked.

    :param by: the key: ``"sku"``, ``"ean"`` or ``"asin"`` (the offer's seller SKU, its
        product-id when an EAN/UPC, or its ASIN, against the configured product attribute).
    :param integration_id: only this integration's offers.
    :param offer_ids: only these offers.
    :param criteria: extra SQL conditions on the offer table.
    :param user: the operator's name recorded on the links.
    :param commit: commit the session; with False the caller owns the transaction.
    :returns: the :class:`AutoLinkResult` counts.
    :raises ValueError: ``by`` is not a key the plugin knows, or its product attribute is
        not configured.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
        ``criteria`` and ``commit``.
    """
    product_key = _product_key_column(by)
    scope = _AutoLinkScope.of(by, integration_id, offer_ids, criteria)
    matches = _key_matches(scope, product_key)
    session = current_amazon.db.session
    if commit:
        # On InnoDB's default REPEATABLE READ the INSERT ... SELECT below would lock every
        # offer and product it reads, blocking (and blocked by) a running import's apply.
        session_read_committed(session)
    conn = session.connection()

    # Counted before linking: the scope may say "unlinked", which linking changes.
    counts = _count_scope(conn, scope)
    ambiguous, examples = _ambiguous_offers(conn, matches)
    linked_ids = _insert_links(conn, scope.link, matches, by, user)
    _finish_autolink(session, commit, linked_ids, by)
    return counts.result(len(linked_ids), ambiguous, examples)


def _product_key_column(by: str) -> Any:
    """The host product's column (or SQL expression) holding the key named ``by``."""
    if by not in AUTOLINK_KEYS:
        raise ValueError(f"Auto-link key must be one of {', '.join(AUTOLINK_KEYS)}.")
    attr = current_amazon.product_attr(by)
    if attr is None:
        raise ValueError(
            f"The host product has no attribute for {by.upper()} "
            f"(configure XSALE_AMAZON_PRODUCT_{by.upper()}_ATTR)."
        )
    return attr.expression if hasattr(attr, "expression") else attr


@dataclass(frozen=True)
class _AutoLinkScope:
    """The offers one auto-link call covers and the conditions its statements share."""

    offer: sa.Table
    link: sa.Table
    #: The offer column compared with the product key.
    offer_key: sa.Column[Any]
    #: Not removed offers in scope, linked or not.
    conditions: list[Any]
    #: The offer has a key value to compare.
    has_key: Any
    has_link: Any

    @classmethod
    def of(cls, by: str, integration_id: int | None, offer_ids: Sequence[Any] | None,
           criteria: Sequence[Any]) -> _AutoLinkScope:
        m = current_amazon.models
        offer = m.AmazonOffer.__table__
        link = m.OfferProductLink.__table__
        conditions = [offer.c.removed_at.is_(None), *criteria]
        if integration_id is not None:
            conditions.append(offer.c.integration_id == integration_id)
        if offer_ids is not None:
            conditions.append(offer.c.id.in_(_ids(offer_ids)))
        return cls(
            offer=offer,
            link=link,
            offer_key={"sku": offer.c.seller_sku, "ean": offer.c.product_id,
                       "asin": offer.c.asin}[by],
            conditions=conditions,
            has_key=key_present(by),
            has_link=sa.exists().where(link.c.offer_id == offer.c.id),
        )


@dataclass(frozen=True)
class _ScopeCounts:
    total: int
    already_linked: int
    #: Unlinked offers without a key value to compare.
    no_key: int

    def result(self, linked: int, ambiguous: int, examples: list[str]) -> AutoLinkResult:
        """Every offer of the scope in one outcome: no match is what the others leave."""
        return AutoLinkResult(
            linked=linked,
            ambiguous=ambiguous,
            no_match=max(self.total - self.already_linked - self.no_key - ambiguous - linked, 0),
            already_linked=self.already_linked,
            ambiguous_examples=examples,
            no_key=self.no_key,
            total=self.total,
        )


def _key_matches(scope: _AutoLinkScope, product_key: Any) -> sa.Subquery:
    """Unlinked offers in scope x the products holding their key, with ``n`` and ``rn``.

    ``n`` is how many products an offer's key matches (1: link it, more: ambiguous); ``rn``
    numbers an offer's matches, so ``rn == 1`` is one row per offer.
    """
    offer = scope.offer
    pk = current_amazon.models.product_pk
    # Counting per offer with a window keeps this a single hash join: the former join with a
    # "GROUP BY key HAVING count(*) = 1" subquery got a row estimate of 0.5 % and a nested-loop
    # plan that ran for many minutes on 1M offers x 1M products.
    return (
        sa.select(
            offer.c.id.label("offer_id"),
            offer.c.seller_sku.label("seller_sku"),
            pk.label("product_id"),
            sa.func.count().over(partition_by=offer.c.id).label("n"),
            sa.func.row_number().over(partition_by=offer.c.id, order_by=pk).label("rn"),
        )
        .select_from(offer.join(pk.table, product_key == scope.offer_key))
        .where(*scope.conditions, scope.has_key, ~scope.has_link, product_key.is_not(None),
               product_key != "")
        .subquery()
    )


def _count_scope(conn: sa.Connection, scope: _AutoLinkScope) -> _ScopeCounts:
    in_scope = sa.select(sa.func.count()).select_from(scope.offer).where(*scope.conditions)
    return _ScopeCounts(
        total=conn.execute(in_scope).scalar_one(),
        already_linked=conn.execute(in_scope.where(scope.has_link)).scalar_one(),
        no_key=conn.execute(in_scope.where(~scope.has_link, ~scope.has_key)).scalar_one(),
    )


def _ambiguous_offers(conn: sa.Connection, matches: sa.Subquery) -> tuple[int, list[str]]:
    """How many offers match several products, and the first ten of their SKUs."""
    # One pass over the join (a window count over all of them, taken before the LIMIT): the
    # join is the costly part, ~5 s per pass for 500k offers x 1M products on MariaDB.
    found = conn.execute(
        sa.select(matches.c.seller_sku, sa.func.count().over().label("total"))
        .where(matches.c.n > 1, matches.c.rn == 1)
        .order_by(matches.c.seller_sku)
        .limit(10)
    ).all()
    return (int(found[0].total) if found else 0), [row.seller_sku for row in found]


def _insert_links(conn: sa.Connection, link: sa.Table, matches: sa.Subquery, by: str,
                  user: str | None) -> list[int]:
    """Link every offer whose key matches one product; the ids of the offers linked."""
    now = utcnow()
    candidates = sa.select(
        matches.c.offer_id,
        matches.c.product_id,
        sa.literal(by, sa.String(10)),
        sa.literal(user, sa.String(200)),
        sa.literal(now, link.c.created_at.type),
    ).where(matches.c.n == 1)
    stmt = (
        _insert(conn, link)
        .from_select(["offer_id", "product_id", "method", "created_by", "created_at"], candidates)
    )
    if is_mysql(conn):
        return _insert_without_returning(conn, stmt, link, by, now)
    if hasattr(stmt, "on_conflict_do_nothing"):
        stmt = stmt.on_conflict_do_nothing(index_elements=["offer_id"])
    return list(conn.execute(stmt.returning(link.c.offer_id)).scalars())


def _finish_autolink(session: Any, commit: bool, linked_ids: list[int], by: str) -> None:
    """Commit (or leave to the caller) and send ``offers_linked`` when anything was linked."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if linked_ids:
        _finish(session, commit, lambda: offers_linked.send(
            app, offer_ids=linked_ids, product_id=None, method=by))
    elif commit:
        session.commit()


def _insert_without_returning(conn: sa.Connection, stmt: Any, link: sa.Table, by: str,
                              now: Any) -> list[int]:
    """MySQL's INSERT has no RETURNING: insert, then read back the links stamped ``now``.

    An offer linked concurrently (after the candidates were read) keeps that link: the
    duplicate key becomes a no-op update, and that link does not carry this call's stamp.
    """
    conn.execute(stmt.on_duplicate_key_update(method=link.c.method))
    return list(conn.execute(
        sa.select(link.c.offer_id).where(link.c.created_at == now, link.c.method == by)
        .order_by(link.c.offer_id)
    ).scalars())
