"""Which offers the operator is looking at: the offers workspace's view, filters and search as data.

The offers list applies an :class:`OfferScope` through Flask-Admin filters, and auto-link runs
over the same scope (inline or in a background job that gets the scope from its database
record), so "auto-link everything the filter shows" links exactly the offers the list showed.
Every criterion is a condition on the offer table itself (sub-selects instead of joins), so
it combines with Flask-Admin's own joins without naming a table twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..amazon.report_parser import GTIN_TYPES
from ..dialects import is_mysql
from ..models import int_in_range
from ..proxies import current_amazon

MAPPING_VIEWS = ("unlinked", "linked", "all")
#: Filter fields of the offers workspace, in the order the list shows them.
FIELDS = ("integration", "marketplace", "account_type", "status", "removed", "ambiguous")
AUTOLINK_KEYS = ("sku", "ean", "asin")
#: Search limits (the offers list applies the same): every term adds a level to the SQL
#: expression tree (SQLite refuses trees deeper than 1000); PostgreSQL text cannot hold NUL.
MAX_SEARCH_LENGTH = 500
MAX_SEARCH_TERMS = 20
#: Filters of one scope and the length of one filter value.
MAX_FILTERS = 20
MAX_FILTER_VALUE = 200


@dataclass(frozen=True)
class OfferScope:
    """A mapping view (unlinked / linked / all), filters ANDed together and a search.

    :param view: ``"unlinked"``, ``"linked"`` or ``"all"``.
    :param filters: ``(filter name, value)`` pairs of the offers list's filters.
    :param search: the offers list's search text.

    .. versionadded:: 0.2.0
    """

    view: str = "all"
    filters: tuple[tuple[str, str], ...] = ()
    search: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"view": self.view, "filters": [list(f) for f in self.filters],
                "search": self.search}

    @classmethod
    def from_json(cls, data: Any) -> OfferScope:
        """The scope of a JSON document (from a form or a run record), whatever it holds:
        unknown fields and malformed entries are dropped, the search is cut like the list's."""
        data = data if isinstance(data, dict) else {}
        view = str(data.get("view")) if data.get("view") in MAPPING_VIEWS else "all"
        raw = data.get("filters")
        filters = tuple(
            (str(f[0]), _clean(f[1])[:MAX_FILTER_VALUE])
            for f in (raw if isinstance(raw, list) else [])[:MAX_FILTERS]
            if isinstance(f, (list, tuple)) and len(f) == 2 and f[0] in FIELDS
        )
        return cls(view=view, filters=filters, search=clean_search(data.get("search")))

    def criteria(self) -> list[Any]:
        """SQL conditions on the offer table selecting the offers of this scope."""
        out = [view_criterion(self.view)]
        out += [filter_criterion(name, value) for name, value in self.filters]
        out += search_criteria(self.search)
        return [c for c in out if c is not None]


def _clean(value: Any) -> str:
    return str(value if value is not None else "").replace("\x00", "")


def clean_search(search: Any) -> str:
    """A search cut to the first :data:`MAX_SEARCH_TERMS` terms of its first characters."""
    terms = _clean(search)[:MAX_SEARCH_LENGTH].split()
    return " ".join(terms[:MAX_SEARCH_TERMS])


def _int(value: Any) -> int | None:
    return int_in_range(value, current_amazon.models.AmazonOffer.__table__.c.integration_id)


def has_link() -> Any:
    m = current_amazon.models
    link = m.OfferProductLink
    return sa.exists().where(link.offer_id == m.AmazonOffer.id)


def view_criterion(view: str) -> Any:
    if view == "unlinked":
        if is_mysql(current_amazon.db.engine):
            # MariaDB turns NOT EXISTS into an anti-join against the whole link table,
            # materialized for every page (2.3 s per query at 700k links); a correlated count
            # stays an index lookup per offer read in id order (0.1 s).
            m = current_amazon.models
            link = m.OfferProductLink
            linked = (sa.select(sa.func.count()).where(link.offer_id == m.AmazonOffer.id)
                      .scalar_subquery())
            return linked == 0
        return ~has_link()
    if view == "linked":
        return has_link()
    return None


def _product_key_column(by: str) -> Any:
    """The host product's column compared when auto-linking by ``by``, or None."""
    column = current_amazon.product_attr(by)
    return column.expression if hasattr(column, "expression") else column


def _offer_key_column(by: str) -> Any:
    offer = current_amazon.models.AmazonOffer
    return {"sku": offer.seller_sku, "ean": offer.product_id, "asin": offer.asin}[by]


def key_present(by: str) -> Any:
    """The offer has a value auto-link by ``by`` can compare (an EAN must be a GTIN)."""
    offer = current_amazon.models.AmazonOffer
    key = _offer_key_column(by)
    present = sa.and_(key.is_not(None), key != "")
    if by == "ean":
        present = sa.and_(present, offer.product_id_type.in_(GTIN_TYPES))
    return present


def _ambiguous_keys(by: str) -> Any:
    """Product key values held by more than one product (auto-link cannot choose).

    Selected from a grouped derived table rather than grouped in the ``IN`` sub-select itself:
    MariaDB and MySQL cannot turn an ``IN`` over a grouped sub-select into a semi-join and ran
    it as a dependent subquery, a range scan over half the product key index for every offer
    (minutes at 1M offers x 1M products). Over a derived table they compute the keys once and
    look the offers up by key; PostgreSQL and SQLite plan both forms alike.
    """
    product_key = _product_key_column(by)
    keys = (
        sa.select(product_key.label("key"))
        .where(product_key.is_not(None), product_key != "")
        .group_by(product_key)
        .having(sa.func.count() > 1)
        .subquery("ambiguous_keys")
    )
    return sa.select(keys.c.key)


def filter_criterion(name: str, value: str) -> Any:
    """The condition of one workspace filter; a value that cannot match selects nothing."""
    m = current_amazon.models
    offer, integ = m.AmazonOffer, m.AmazonIntegration
    if name == "integration":
        number = _int(value)
        return offer.integration_id == number if number is not None else sa.false()
    if name in ("marketplace", "account_type"):
        column = integ.marketplace if name == "marketplace" else integ.account_type
        # The few integration ids as literals: given a subquery, MariaDB drives the join from
        # the integration table and sorts every matching offer for the page (8.6 s at 1M).
        ids = current_amazon.db.session.execute(
            sa.select(integ.id).where(column == value)).scalars().all()
        return offer.integration_id.in_(ids)
    if name == "status":
        return offer.status == value
    if name == "removed":
        return offer.removed_at.is_not(None) if value == "yes" else offer.removed_at.is_(None)
    if name == "ambiguous":
        if value not in AUTOLINK_KEYS or _product_key_column(value) is None:
            return sa.false()
        offer_key = _offer_key_column(value)
        criterion = sa.and_(key_present(value), offer_key.in_(_ambiguous_keys(value)))
        if is_mysql(current_amazon.db.engine):
            # The host's column usually compares case-insensitively: "K-1" and "k-1" are one
            # key to the grouping above, while auto-link compares them exactly (the offer's
            # column is utf8mb4_bin, which wins the comparison). So each offer the grouping
            # selected counts its exact matches too, by the product key index. (Grouping by
            # the bytes instead lost the index: seconds at 1M products.)
            product_key = _product_key_column(value)
            exact = (sa.select(sa.func.count()).select_from(m.product_pk.table)
                     .where(product_key == offer_key).scalar_subquery())
            criterion = sa.and_(criterion, exact > 1)
        return criterion
    return sa.false()


def search_criteria(search: str) -> list[Any]:
    """Criteria of a search (terms are ANDed, like Flask-Admin's own search).

    SKU, ASIN and product ID match by prefix (``=term``: exactly), served by btree
    ``text_pattern_ops`` indexes on PostgreSQL; SKU and product ID are case-sensitive, the
    ASIN is compared upper-cased. The name matches as a case-insensitive substring - a
    sequential scan on PostgreSQL, so only for terms of 3+ characters that do not look like
    an identifier (no digit); ``"name:term"`` forces a name search.
    """
    return [_search_term_criterion(term) for term in search.split()]


def _search_term_criterion(term: str) -> Any:
    m = current_amazon.models.AmazonOffer
    if term.startswith("name:"):
        return m.name.icontains(term[5:], autoescape=True)
    exact = term.startswith("=")
    if exact or term.startswith("^"):
        term = term[1:]
    if not term:
        return sa.true()
    if exact:
        clauses = [m.seller_sku == term, m.asin == term.upper(), m.product_id == term]
    else:
        clauses = [
            m.seller_sku.startswith(term, autoescape=True),
            m.asin.startswith(term.upper(), autoescape=True),
            m.product_id.startswith(term, autoescape=True),
        ]
        if len(term) >= 3 and not any(ch.isdigit() for ch in term):
            clauses.append(m.name.icontains(term, autoescape=True))
    return sa.or_(*clauses)


def count_offers(criteria: list[Any], *, cap: int | None = None) -> int:
    """How many offers match ``criteria`` (at most ``cap + 1`` are counted when given)."""
    m = current_amazon.models
    session = current_amazon.db.session
    query = sa.select(sa.literal(1)).select_from(m.AmazonOffer.__table__).where(*criteria)
    if cap is not None:
        query = query.limit(cap + 1)
    return session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
