"""The mapping assistant's index of the host's products, in the plugin's own tables.

Products belong to the host, which loads and edits them with its own processes and plain SQL,
so ORM events cannot tell when the index is stale. Instead, before every use
:func:`ensure_fresh` looks at the change log that triggers on the product table write
(:mod:`.triggers`; one indexed lookup), or, without triggers, compares the index with a
*fingerprint* of the product table: one aggregate query (row count and the sum of a 32-bit
hash of every indexed attribute; ~0.1 s per million rows on PostgreSQL). When it differs,
:func:`refresh` walks the products by primary key, re-indexes only the rows whose hash
changed, removes deleted ones and adjusts the document frequencies, all in one transaction, so
readers never see a half-built index.

Tables (all ``xsale_amazon_suggest_*``):

- ``product``: one row per host product: SKU normalised for comparison, GTIN as 13 digits,
  ASIN, the title and the row hash.
- ``term``: the inverted index ``(term, product_key)``; terms are stemmed title words and
  model codes (see :mod:`.text`).
- ``term_df``: how many products contain each term (IDF weights and retrieval cut-offs).
- ``catalog``: the fingerprint, when it was last verified, and a version number that grows
  with every change.
- ``change``: the change log.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

# The tables are defined with the plugin's models; re-exported as the index's own.
from ..models import KEY_LENGTH as KEY_LENGTH
from ..models import TERM_LENGTH, SuggestTables
from ..models import make_suggest_tables as make_suggest_tables
from ..models import suggest_tables as suggest_tables
from ..timeutil import as_utc, utcnow
from .text import (
    FEATURES_VERSION,
    compile_affixes,
    normalise_gtin,
    normalise_sku,
    row_hash,
    title_features,
)
from .triggers import row_level, watch_product_table

#: Products read per query while refreshing.
REFRESH_CHUNK = 5000
#: Longest wait for another process's refresh of the same index, in seconds.
LOCK_WAIT = 900


@dataclass(frozen=True)
class ProductColumns:
    """The host product's primary key and the configured attributes (None when absent)."""

    pk: sa.ColumnElement[Any]
    sku: sa.ColumnElement[Any] | None
    ean: sa.ColumnElement[Any] | None
    name: sa.ColumnElement[Any] | None
    asin: sa.ColumnElement[Any] | None

    @property
    def values(self) -> list[sa.ColumnElement[Any]]:
        return [c for c in (self.pk, self.sku, self.ean, self.name, self.asin) if c is not None]

    def labelled(self) -> list[sa.ColumnElement[Any]]:
        null = sa.null()
        return [
            self.pk.label("pk"),
            (self.sku if self.sku is not None else null).label("sku"),
            (self.ean if self.ean is not None else null).label("ean"),
            (self.name if self.name is not None else null).label("name"),
            (self.asin if self.asin is not None else null).label("asin"),
        ]


def product_key(value: Any) -> str:
    return str(value)


# --- staleness -----------------------------------------------------------------------------

def _sqlite_crc32(*values: Any) -> int:
    joined = "\x1f".join("" if v is None else str(v) for v in values)
    return zlib.crc32(joined.encode("utf-8", "surrogatepass"))


def fingerprint(conn: sa.Connection, cols: ProductColumns) -> str:
    """Count and hash sum of the product table in one aggregate query."""
    dialect = conn.dialect.name
    text_cols = [sa.cast(c, sa.Text) for c in cols.values]
    agg: sa.ColumnElement[Any]
    if dialect == "postgresql":
        row_sum = sa.func.hashtext(sa.func.concat_ws(sa.literal("\x1f"), *text_cols))
        agg = sa.func.coalesce(sa.func.sum(sa.cast(row_sum, sa.BigInteger)), 0)
    elif dialect in ("mysql", "mariadb"):
        row_sum = sa.func.crc32(sa.func.concat_ws(sa.literal("\x1f"), *cols.values))
        agg = sa.func.coalesce(sa.func.sum(row_sum), 0)
    elif dialect == "sqlite":
        raw: Any = conn.connection.driver_connection
        raw.create_function("xa_crc32", -1, _sqlite_crc32, deterministic=True)
        agg = sa.func.coalesce(sa.func.sum(sa.func.xa_crc32(*cols.values)), 0)
    else:  # unknown backend: never "unchanged", so every use walks the products
        import time

        agg = sa.literal(time.time_ns())
    table = cols.pk.table
    count, total = conn.execute(sa.select(sa.func.count(), agg).select_from(table)).one()
    # The features version is part of it: a new version of the text features re-indexes.
    return f"v{FEATURES_VERSION}:{count}:{total}"


@dataclass(frozen=True)
class CatalogState:
    version: int
    product_count: int
    fingerprint: str
    #: When the index was last verified against the product table (built, refreshed, or its
    #: fingerprint found equal).
    verified_at: datetime


def catalog_state(conn: sa.Connection, tables: SuggestTables) -> CatalogState | None:
    row = conn.execute(sa.select(tables.catalog).where(tables.catalog.c.id == 1)).first()
    if row is None:
        return None
    return CatalogState(row.version, row.product_count, row.fingerprint, row.refreshed_at)


# --- refresh -------------------------------------------------------------------------------

@dataclass
class RefreshResult:
    version: int
    product_count: int
    indexed: int = 0
    removed: int = 0
    checked_only: bool = True


def _row_hash(row: Any) -> int:
    return row_hash(FEATURES_VERSION, product_key(row.pk), row.sku, row.ean, row.name, row.asin)


def _index_row(row: Any, affixes: Sequence[Any], hashed: int
               ) -> tuple[dict[str, Any], frozenset[str]]:
    features = title_features(row.name)
    return {
        "product_key": product_key(row.pk),
        "sku": (str(row.sku)[:255] if row.sku is not None else None),
        "sku_norm": normalise_sku(row.sku, affixes).value[:255] or None,
        "gtin": normalise_gtin(row.ean),
        "asin": (str(row.asin).strip().upper()[:20] or None) if row.asin else None,
        "title": row.name,
        "row_hash": hashed,
    }, frozenset(t[:TERM_LENGTH] for t in features.terms)


def _lock(conn: sa.Connection) -> None:
    """Serialise refreshes of this index (one per database schema), waiting boundedly."""
    if conn.dialect.name == "postgresql":
        # Advisory locks are per database: key on the schema, so apps in other schemas of
        # the same database do not wait for each other.
        before = conn.execute(sa.text("SELECT current_setting('lock_timeout')")).scalar_one()
        conn.execute(sa.text("SELECT set_config('lock_timeout', :v, true)"),
                     {"v": f"{LOCK_WAIT}s"})
        conn.execute(sa.text(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.xsale_amazon_suggest'))"))
        conn.execute(sa.text("SELECT set_config('lock_timeout', :v, true)"), {"v": before})
    elif conn.dialect.name in ("mysql", "mariadb"):
        conn.execute(sa.text(
            "SELECT GET_LOCK(CONCAT(DATABASE(), '.xsale_amazon_suggest'), :wait)"),
            {"wait": LOCK_WAIT})


def _unlock(conn: sa.Connection) -> None:
    if conn.dialect.name in ("mysql", "mariadb"):
        conn.execute(sa.text("SELECT RELEASE_LOCK(CONCAT(DATABASE(), '.xsale_amazon_suggest'))"))


def quick_check(conn: sa.Connection, tables: SuggestTables, cols: ProductColumns, *,
                triggers: bool = True,
                fingerprint_max_age: float | None = None) -> RefreshResult | None:
    """The cheap staleness check: the index's state when it is up to date, None when
    :func:`ensure_fresh` has work to do (re-index, or verify the fingerprint). Never writes to
    the index (it may create the change triggers: commit after it).

    With ``triggers`` the product table's changes are logged by triggers
    (:mod:`.triggers`, created on first use when the database user may), so "nothing
    changed" is one indexed lookup; otherwise, or without the right to add them, the
    fingerprint aggregate is compared. On SQLite and MySQL/MariaDB (row-level triggers, which
    MariaDB's ``TRUNCATE`` bypasses) the log is trusted only while the fingerprint was verified
    less than ``fingerprint_max_age`` seconds ago (None: always; PostgreSQL's trigger sees
    ``TRUNCATE``, so there it is trusted unless ``fingerprint_max_age`` is 0, which verifies
    the fingerprint now on every database)."""
    product = cols.pk.table
    assert isinstance(product, sa.Table)
    watch = (watch_product_table(conn, tables.change, product, cols.values) if triggers
             else "unwatched")
    state = catalog_state(conn, tables)
    if state is None or not state.fingerprint.startswith(f"v{FEATURES_VERSION}:"):
        return None
    if watch == "watched":
        if (_log_trusted(conn, state, fingerprint_max_age)
                and conn.execute(sa.select(tables.change.c.id).limit(1)).first() is None):
            return RefreshResult(state.version, state.product_count)
        return None
    if watch == "unwatched" and state.fingerprint == fingerprint(conn, cols):
        return RefreshResult(state.version, state.product_count)
    return None


def refresh_bound(conn: sa.Connection, tables: SuggestTables, cols: ProductColumns,
                  limit: int) -> int:
    """An upper bound of the products a refresh would go through, exact up to ``limit`` (a
    larger value only says "more than ``limit``"); costs at most ``limit`` rows read.

    Which products changed is unknown until the refresh compares every row's hash (the
    change log says *that* the table changed, not which rows; a new features version changes
    all), so the bound is what the refresh walks: every product in the table, and every
    product in the index when it holds more (deleted ones are looked up)."""
    product = cols.pk.table
    current = conn.execute(sa.select(sa.func.count()).select_from(
        sa.select(sa.literal(1)).select_from(product).limit(limit + 1).subquery())).scalar_one()
    state = catalog_state(conn, tables)
    return max(int(current), state.product_count if state else 0)


def product_count(conn: sa.Connection, cols: ProductColumns) -> int:
    """How many products the host's table holds (one ``count(*)``)."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(cols.pk.table)).scalar_one())


def ensure_fresh(conn: sa.Connection, tables: SuggestTables, cols: ProductColumns,
                 affix_patterns: Iterable[str], pk_from_key: Any, *, triggers: bool = True,
                 fingerprint_max_age: float | None = None,
                 progress: Callable[[int, int], None] | None = None) -> RefreshResult:
    """Bring the index up to date with the product table; cheap when nothing changed
    (:func:`quick_check`, which describes ``triggers`` and ``fingerprint_max_age``). Runs in
    the caller's transaction and leaves committing to it.

    ``progress(products checked, products in the table)`` is called after every chunk of a
    refresh.
    """
    fresh = quick_check(conn, tables, cols, triggers=triggers,
                        fingerprint_max_age=fingerprint_max_age)
    if fresh is not None:
        return fresh
    return refresh(conn, tables, cols, affix_patterns, pk_from_key, progress)


class RefreshTooLarge(Exception):
    """The refresh would go through more than ``max_products`` products (nothing was written;
    roll back or commit to release the refresh lock)."""

    def __init__(self, products: int) -> None:
        super().__init__(f"The refresh goes through more than {products - 1} products.")
        self.products = products


def refresh(conn: sa.Connection, tables: SuggestTables, cols: ProductColumns,
            affix_patterns: Iterable[str], pk_from_key: Any,
            progress: Callable[[int, int], None] | None = None, *,
            max_products: int | None = None) -> RefreshResult:
    """What :func:`ensure_fresh` does once :func:`quick_check` said "not known to be fresh":
    under the refresh lock, compare the fingerprint and re-index what changed. Call it right
    after that check: a second :func:`quick_check` would find the triggers the first one just
    created and an empty log, and miss the changes made before them.

    With ``max_products``, a fingerprint that differs and a refresh that would go through more
    products (:func:`refresh_bound`) raise :class:`RefreshTooLarge` before anything is
    written; an equal fingerprint is verified whatever the size."""
    change = tables.change
    _lock(conn)
    try:
        # The change rows seen now are the ones this refresh accounts for; rows committed
        # later stay and trigger the next refresh. Read also when unwatched: triggers the host
        # left in place after opting out must not grow the log without bound.
        seen = list(conn.execute(sa.select(change.c.id)).scalars())
        fp = fingerprint(conn, cols)
        state = catalog_state(conn, tables)
        if state is not None and state.fingerprint == fp:
            result = RefreshResult(state.version, state.product_count)
            conn.execute(tables.catalog.update().where(tables.catalog.c.id == 1)
                         .values(refreshed_at=utcnow()))
        else:
            if max_products is not None:
                bound = refresh_bound(conn, tables, cols, max_products)
                if bound > max_products:
                    raise RefreshTooLarge(bound)
            result = _refresh(conn, tables, cols, compile_affixes(affix_patterns),
                              pk_from_key, fp, state, progress)
        _delete_seen(conn, change, seen)
        return result
    finally:
        _unlock(conn)


def _delete_seen(conn: sa.Connection, change: sa.Table, seen: Sequence[int]) -> None:
    """Delete exactly the log rows ``seen``: a run of consecutive ids (a bulk load logs
    hundreds of thousands) by one range, the rest by id lists."""
    singles: list[int] = []
    for first, last in _runs(sorted(seen)):
        if last - first >= 100:
            conn.execute(change.delete().where(change.c.id.between(first, last)))
        else:
            singles.extend(range(first, last + 1))
    for part in _chunks(singles, 5000):
        conn.execute(change.delete().where(change.c.id.in_(list(part))))


def _runs(ids: Sequence[int]) -> Iterable[tuple[int, int]]:
    """``(first, last)`` of every run of consecutive integers in the sorted ``ids``."""
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[i - 1] + 1:
            yield ids[start], ids[i - 1]
            start = i


def _log_trusted(conn: sa.Connection, state: CatalogState, max_age: float | None) -> bool:
    """Whether an empty change log means "unchanged". ``max_age`` None: yes; 0: no, verify the
    fingerprint now (the periodic check, on every database: PostgreSQL's trigger does not fire
    either under ``session_replication_role = replica``, as pg_restore and logical replication
    run); else on PostgreSQL yes, elsewhere while the fingerprint was verified less than
    ``max_age`` seconds ago."""
    if max_age is None:
        return True
    if max_age <= 0:
        return False
    if not row_level(conn):
        return True
    age = (utcnow() - as_utc(state.verified_at)).total_seconds()
    return 0 <= age < max_age


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _bulk_insert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows: ``COPY`` on PostgreSQL (psycopg 3), batched INSERTs elsewhere."""
    if not rows:
        return
    raw: Any = conn.connection.driver_connection
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        columns = list(rows[0])
        names = ", ".join(conn.dialect.identifier_preparer.quote(c) for c in columns)
        name = conn.dialect.identifier_preparer.format_table(table)
        with raw.cursor() as cur, cur.copy(f"COPY {name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
        return
    for part in _chunks(rows, 20_000):
        conn.execute(table.insert(), list(part))


def _refresh(conn: sa.Connection, tables: SuggestTables, cols: ProductColumns,
             affixes: Sequence[Any], pk_from_key: Any, fp: str,
             state: CatalogState | None,
             progress: Callable[[int, int], None] | None = None) -> RefreshResult:
    t = tables
    total = int(fp.split(":")[1])
    df_delta: Counter[str] = Counter()
    indexed = 0
    seen = 0
    last: Any = None
    select = sa.select(*cols.labelled()).order_by(cols.pk).limit(REFRESH_CHUNK)
    max_chunks = 10_000_000 // REFRESH_CHUNK + 1000
    for _ in range(max_chunks):
        page = conn.execute(select if last is None else select.where(cols.pk > last)).all()
        if not page:
            break
        last = page[-1].pk
        seen += len(page)
        hashes = {product_key(row.pk): (row, _row_hash(row)) for row in page}
        stored = dict(conn.execute(
            sa.select(t.product.c.product_key, t.product.c.row_hash)
            .where(t.product.c.product_key.in_(list(hashes)))
        ).all())
        # Only changed rows pay for the text features (most of a row's indexing time).
        rows = {k: _index_row(row, affixes, hashed) for k, (row, hashed) in hashes.items()
                if stored.get(k) != hashed}
        changed = list(rows)
        if progress is not None:
            progress(seen, max(total, seen))
        if not changed:
            continue
        replaced = [k for k in changed if k in stored]
        if replaced:
            for term, in conn.execute(sa.select(t.term.c.term)
                                      .where(t.term.c.product_key.in_(replaced))):
                df_delta[term] -= 1
            conn.execute(t.term.delete().where(t.term.c.product_key.in_(replaced)))
            conn.execute(t.product.delete().where(t.product.c.product_key.in_(replaced)))
        _bulk_insert(conn, t.product, [rows[k][0] for k in changed])
        postings = [{"term": term, "product_key": k} for k in changed for term in rows[k][1]]
        for term in (p["term"] for p in postings):
            df_delta[term] += 1
        _bulk_insert(conn, t.term, postings)
        indexed += len(changed)

    removed = 0
    stored_count = conn.execute(sa.select(sa.func.count()).select_from(t.product)).scalar_one()
    if stored_count > seen:
        removed = _remove_deleted(conn, t, cols, pk_from_key, df_delta)

    _apply_df(conn, t, df_delta)
    version = (state.version if state else 0) + (1 if indexed or removed or state is None else 0)
    values = {"fingerprint": fp, "product_count": seen, "version": version,
              "refreshed_at": utcnow()}
    if state is None:
        conn.execute(t.catalog.insert().values(id=1, **values))
    else:
        conn.execute(t.catalog.update().where(t.catalog.c.id == 1).values(**values))
    return RefreshResult(version, seen, indexed, removed, checked_only=False)


def _remove_deleted(conn: sa.Connection, t: SuggestTables, cols: ProductColumns,
                    pk_from_key: Any, df_delta: Counter[str]) -> int:
    removed = 0
    last = None
    select = (sa.select(t.product.c.product_key).order_by(t.product.c.product_key)
              .limit(REFRESH_CHUNK))
    for _ in range(10_000_000 // REFRESH_CHUNK + 1000):
        keys = list(conn.execute(
            select if last is None else select.where(t.product.c.product_key > last)
        ).scalars())
        if not keys:
            break
        last = keys[-1]
        by_pk = {}
        for key in keys:
            try:
                by_pk[pk_from_key(key)] = key
            except LookupError:
                continue
        alive = {product_key(v) for v in conn.execute(
            sa.select(cols.pk).where(cols.pk.in_(list(by_pk)))).scalars()}
        gone = [k for k in keys if k not in alive]
        if not gone:
            continue
        for term, in conn.execute(sa.select(t.term.c.term).where(t.term.c.product_key.in_(gone))):
            df_delta[term] -= 1
        conn.execute(t.term.delete().where(t.term.c.product_key.in_(gone)))
        conn.execute(t.product.delete().where(t.product.c.product_key.in_(gone)))
        removed += len(gone)
    return removed


def _apply_df(conn: sa.Connection, t: SuggestTables, delta: Counter[str]) -> None:
    changes = [(term, n) for term, n in delta.items() if n]
    if not changes:
        return
    existing: dict[str, int] = {}
    terms = [term for term, _ in changes]
    for part in _chunks(terms, 5000):
        existing.update(conn.execute(
            sa.select(t.term_df.c.term, t.term_df.c.df).where(t.term_df.c.term.in_(list(part)))
        ).all())
    inserts = [{"term": term, "df": n} for term, n in changes if term not in existing and n > 0]
    updates = [{"t": term, "d": existing[term] + n} for term, n in changes
               if term in existing and existing[term] + n > 0]
    gone = [term for term, n in changes if term in existing and existing[term] + n <= 0]
    _bulk_insert(conn, t.term_df, inserts)
    if updates:
        conn.execute(t.term_df.update().where(t.term_df.c.term == sa.bindparam("t"))
                     .values(df=sa.bindparam("d")), updates)
    for part in _chunks(gone, 5000):
        conn.execute(t.term_df.delete().where(t.term_df.c.term.in_(list(part))))
