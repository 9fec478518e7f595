"""Writes parsed report rows into the offers: staging, then one-transaction apply.

Staging is batched (PostgreSQL ``COPY``; ``executemany`` elsewhere) and committed per batch so
progress is visible. Nothing an operator sees changes until :meth:`OfferWriter.apply`, which
de-duplicates the staged rows, updates changed offers, inserts new ones and soft-removes the
offers missing from the report, all in one transaction: a run that dies before or during
``apply`` leaves offers and links exactly as they were.

A line rejected as invalid whose SKU could still be read is staged as a *kept* row (only its
SKU, ``kept_invalid`` set): it is evidence that the offer exists, so the apply neither updates
nor removes that offer. :meth:`OfferWriter.apply` can refuse to soft-remove more than a share
of the integration's live offers (:class:`RemovalLimitExceeded`, raised before the caller's
transaction commits).

On PostgreSQL the staging table is UNLOGGED (see ``make_models``): a server crash empties it.
``apply`` therefore first checks that every row ``stage`` wrote is still there and raises
:class:`StagingLost` otherwise - applying an emptied staging table would soft-remove every offer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..amazon.report_parser import InvalidRow, OfferRow
from ..dialects import is_mysql, worker_engine
from ..models import (
    ASIN_LENGTH,
    CHANNEL_LENGTH,
    LISTING_ID_LENGTH,
    OFFER_STATUS_LENGTH,
    OPEN_DATE_RAW_LENGTH,
    PRICE_PRECISION,
    PRICE_SCALE,
    PRODUCT_ID_LENGTH,
    PRODUCT_ID_TYPE_LENGTH,
    REPORT_COLUMNS,
    Models,
)
from ..timeutil import utcnow
from .mysql_staging import MysqlInsertBatches, value_tuples

STAGED_COLUMNS = ("run_id", "line", "seller_sku", *REPORT_COLUMNS)
#: Offer columns compared to decide whether a re-imported row changed.
COMPARED = REPORT_COLUMNS
#: Columns written to the staging table (``kept_invalid`` marks the SKU of an invalid line).
COPY_COLUMNS = (*STAGED_COLUMNS, "kept_invalid")

_LIMITS = {"asin": ASIN_LENGTH, "listing_id": LISTING_ID_LENGTH,
           "fulfillment_channel": CHANNEL_LENGTH, "status": OFFER_STATUS_LENGTH,
           "product_id": PRODUCT_ID_LENGTH, "product_id_type": PRODUCT_ID_TYPE_LENGTH}
_PRICE_LIMIT = 10 ** (PRICE_PRECISION - PRICE_SCALE)
_INT_MIN, _INT_MAX = -(2**31), 2**31
_SMALL_CACHE = 256
_DATE_CACHE_SIZE = 20_000

# COPY text format: these four characters must be backslash-escaped inside a field.
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\\N"

_FILTER_BITS = 26
_FILTER_MASK = (1 << _FILTER_BITS) - 1
_MAX_CANDIDATES = 50_000
_CHUNK_ROWS = 1000


class StagingLost(RuntimeError):
    """The staging table no longer holds the rows :meth:`OfferWriter.stage` wrote.

    A PostgreSQL crash empties UNLOGGED tables; applying what is left would soft-remove the
    offers whose rows vanished. Raised before any offer is changed.
    """


@dataclass
class StageCounts:
    """What staging saw: rows read, staged, skipped (other channel), invalid, without ASIN."""

    read: int = 0
    #: Valid rows staged (kept rows of invalid lines not included).
    staged: int = 0
    skipped_channel: int = 0
    invalid: int = 0
    #: Invalid lines whose SKU could be read (staged as kept rows); part of ``invalid``.
    kept_invalid: int = 0
    without_asin: int = 0
    invalid_lines: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ApplyCounts:
    """What the apply did: offers created, updated, unchanged, removed, restored; duplicates."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    restored: int = 0
    duplicate: int = 0
    #: Live offers neither updated nor removed because only an invalid line named them.
    kept: int = 0
    #: Live offers of the integration before the apply.
    live_before: int = 0
    duplicate_lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def removed_share(self) -> float:
        return self.removed / self.live_before if self.live_before else 0.0


class RemovalLimitExceeded(Exception):
    """Applying the report would soft-remove more than the allowed share of the live offers.

    Raised by :meth:`OfferWriter.apply` after computing the counts and before the caller's
    transaction commits: leaving the transaction rolls every change back, and the staged rows
    stay for a later confirmation.
    """

    def __init__(self, counts: ApplyCounts, limit: float) -> None:
        self.counts = counts
        self.limit = limit
        super().__init__(
            f"Applying this report would remove {counts.removed} of {counts.live_before} live "
            f"offers (more than {limit:.0%})."
        )


def channel_matches(row: OfferRow, account_type: str, has_channel_column: bool) -> bool:
    channel = (row.fulfillment_channel or "").upper()
    if not channel:
        if has_channel_column and row.fulfillment_channel is not None:
            return False
        # No channel given: Amazon leaves quantity blank on FBA rows.
        is_fba = row.quantity is None
    elif channel.startswith(("AMAZON", "AFN")):
        is_fba = True
    elif channel in ("DEFAULT", "MFN", "MERCHANT"):
        is_fba = False
    else:
        return False
    return is_fba == (account_type == "FBA")


def _too_long(row: OfferRow) -> str | None:
    for name, limit in _LIMITS.items():
        value = getattr(row, name)
        if value is not None and len(value) > limit:
            return name
    if row.price is not None and abs(row.price) >= _PRICE_LIMIT:
        return "price"
    if row.quantity is not None and not _INT_MIN < row.quantity < _INT_MAX:
        return "quantity"
    return None


def copy_text(value: str | None) -> str:
    """``value`` as one field of PostgreSQL's COPY text format."""

    if value is None:
        return _NULL
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value


def _copy_number(value: Decimal | int | None) -> str:
    return _NULL if value is None else str(value)


class OfferWriter:
    """Stages one run's report rows and applies them to the integration's offers.

    ``stage`` may be called in several passes; ``apply`` runs inside the caller's transaction so
    the caller can end the run in the same transaction (applied <=> succeeded).
    """

    def __init__(self, models: Models, engine: sa.Engine, *, run_id: int, integration_id: int,
                 account_type: str, currency: str, invalid_lines_kept: int = 50) -> None:
        self.engine = worker_engine(engine)
        self.run_id = run_id
        self.integration_id = integration_id
        self.account_type = account_type
        self.currency = currency
        self.keep = invalid_lines_kept
        self.offer = models.AmazonOffer.__table__
        self.staging = models.import_row
        #: Rows this importer staged for its run since the last clear (checked by ``apply``).
        self.staged_rows = 0
        #: SKUs that may occur more than once among the staged rows; None = unknown (check all).
        self._dup_candidates: set[str] | None = None
        self._last_line = 0

    # -- staging ---------------------------------------------------------------------------
    def clear_staging(self, run_id: int | None = None) -> None:
        run_id = run_id or self.run_id
        with self.engine.begin() as conn:
            table = self.staging
            conn.execute(table.delete().where(table.c.run_id == run_id))
        if run_id == self.run_id:
            self.staged_rows = 0
            self._dup_candidates = None

    def stage(
        self,
        rows: Iterable[OfferRow | InvalidRow],
        *,
        has_channel_column: bool,
        batch_size: int,
        on_batch: Callable[[StageCounts, int], None] | None = None,
    ) -> StageCounts:
        counts = StageCounts()
        pg = self.engine.dialect.name == "postgresql"
        mysql = is_mysql(self.engine)
        # The SKU filter must see every staged row of the run: only a first stage() uses it.
        dups = _SkuFilter() if (pg or mysql) and self.staged_rows == 0 else None
        self._dup_candidates = None
        accepted = self._accepted(rows, counts, has_channel_column)
        if pg:
            sink: _Batches = _CopyBatches(self.engine, self.staging.name)
            items: Iterator[Any] = _copy_lines(accepted, self.run_id, dups)
        elif mysql:
            mysql_sink = MysqlInsertBatches(self.engine, self.staging, COPY_COLUMNS)
            sink = mysql_sink  # type: ignore[assignment]
            items = value_tuples(accepted, self.run_id, mysql_sink.quote, dups,
                                 len(STAGED_COLUMNS) - 3)
        else:
            sink = _InsertBatches(self.engine, self.staging)
            items = _insert_rows(accepted, self.run_id)
        # Rows go out in chunks while the report is still being parsed (PostgreSQL works on a
        # COPY as it streams in) and are committed every batch_size rows.
        chunk_size = min(_CHUNK_ROWS, batch_size)
        with sink:
            chunk: list[Any] = []
            in_batch = 0
            for item in items:
                chunk.append(item)
                if len(chunk) < chunk_size:
                    continue
                sink.write(chunk)
                in_batch += len(chunk)
                chunk = []
                if in_batch >= batch_size:
                    sink.commit()
                    self._batch_done(counts, in_batch)
                    in_batch = 0
                    if on_batch:
                        on_batch(counts, self._last_line)
            if chunk:
                sink.write(chunk)
                in_batch += len(chunk)
            sink.commit()
            self._batch_done(counts, in_batch)
        counts.staged -= counts.kept_invalid
        if dups is not None:
            self._dup_candidates = dups.candidates
        if pg and counts.staged:
            # Statistics of this run's rows for the apply's join plans (a small sample is
            # enough), in a transaction of its own so its lock is not held through the apply.
            with self.engine.begin() as conn:
                conn.execute(sa.text("SET LOCAL default_statistics_target = 10"))
                conn.execute(sa.text(f"ANALYZE {self.staging.name}"))
        if on_batch:
            on_batch(counts, self._last_line)
        return counts

    def _batch_done(self, counts: StageCounts, rows: int) -> None:
        counts.staged += rows
        self.staged_rows += rows

    def _accepted(self, rows: Iterable[OfferRow | InvalidRow], counts: StageCounts,
                  has_channel_column: bool) -> Iterator[OfferRow | InvalidRow]:
        """The rows to stage; counts the others (and the rows without ASIN) in ``counts``.

        Invalid lines whose SKU could be read are yielded too (as :class:`InvalidRow`): they are
        staged as kept rows.
        """
        account = self.account_type
        want_fba = account == "FBA"
        verdicts: dict[str, bool] = {}
        # Low-cardinality values known to fit their column.
        short: set[str | None] = {None}
        for row in rows:
            counts.read += 1
            self._last_line = row.line
            if isinstance(row, InvalidRow):
                self._invalid(counts, row.line, row.column, row.reason)
                if row.seller_sku is not None:
                    counts.kept_invalid += 1
                    yield row
                continue
            channel = row.fulfillment_channel
            if channel:
                verdict = verdicts.get(channel)
                if verdict is None:
                    verdict = channel_matches(row, account, has_channel_column)
                    if len(verdicts) < _SMALL_CACHE:
                        verdicts[channel] = verdict
            elif channel is None:
                verdict = (row.quantity is None) == want_fba
            else:
                verdict = channel_matches(row, account, has_channel_column)
            if not verdict:
                counts.skipped_channel += 1
                continue
            asin, listing_id, pid = row.asin, row.listing_id, row.product_id
            price, quantity = row.price, row.quantity
            status, pid_type = row.status, row.product_id_type
            if (
                (asin is not None and len(asin) > ASIN_LENGTH)
                or (listing_id is not None and len(listing_id) > LISTING_ID_LENGTH)
                or (pid is not None and len(pid) > PRODUCT_ID_LENGTH)
                or channel not in short or status not in short or pid_type not in short
                or (price is not None and abs(price) >= _PRICE_LIMIT)
                or (quantity is not None and not _INT_MIN < quantity < _INT_MAX)
            ):
                too_long = _too_long(row)
                if too_long:
                    reason = f"{too_long} value is too long or too large"
                    self._invalid(counts, row.line, too_long, reason)
                    counts.kept_invalid += 1
                    yield InvalidRow(row.line, too_long, reason, row.seller_sku)
                    continue
                if len(short) < _SMALL_CACHE:
                    short.update((channel, status, pid_type))
            if not asin:
                counts.without_asin += 1
            yield row

    def _invalid(self, counts: StageCounts, line: int, column: str | None, reason: str) -> None:
        counts.invalid += 1
        if len(counts.invalid_lines) < self.keep:
            counts.invalid_lines.append({"line": line, "column": column, "reason": reason[:300]})

    # -- apply -----------------------------------------------------------------------------
    def apply(self, conn: Connection, now: datetime | None = None, *,
              max_removed_share: float | None = None) -> ApplyCounts:
        """Apply the staged rows. Runs inside the caller's transaction ``conn``.

        With ``max_removed_share``, raises :class:`RemovalLimitExceeded` (the caller's
        transaction must then roll back) when more than that share of the live offers would be
        soft-removed; an integration without live offers (its first import) is never limited.
        """
        now = now or utcnow()
        counts = ApplyCounts()
        pg = conn.dialect.name == "postgresql"
        filters = _ApplyFilters.of(self)
        valid_total, kept_rows = self._check_staged_rows(conn, filters)
        valid_total -= self._drop_duplicates(conn, filters, counts, pg)
        counts.live_before = self._count_live_offers(conn, filters)
        if self._first_import(conn, filters, counts.live_before):
            # No offer to update, restore, keep or remove: a plain insert of every valid row.
            # The unique (integration, sku) constraint still guards against a concurrent writer.
            counts.created = self._insert_new_offers(conn, filters, now, pg, first_import=True)
        else:
            counts.restored = self._count_returning_offers(conn, filters)
            counts.updated = self._update_changed_offers(conn, filters, now)
            counts.created = self._insert_new_offers(conn, filters, now, pg, first_import=False)
            if kept_rows:
                counts.kept = self._count_kept_offers(conn, filters)
            counts.removed = self._mark_removed_offers(conn, filters, now, valid_total)
        counts.unchanged = valid_total - counts.created - counts.updated
        if (max_removed_share is not None and counts.live_before
                and counts.removed > max_removed_share * counts.live_before):
            raise RemovalLimitExceeded(counts, max_removed_share)
        conn.execute(self.staging.delete().where(filters.of_run))
        return counts

    def _check_staged_rows(self, conn: Connection, filters: _ApplyFilters) -> tuple[int, int]:
        """(valid rows, kept rows) staged for the run; :class:`StagingLost` if rows vanished."""
        s = self.staging
        staged_total, kept_rows = conn.execute(
            sa.select(sa.func.count(), sa.func.count(s.c.kept_invalid)).select_from(s)
            .where(filters.of_run)
        ).one()
        if staged_total != self.staged_rows:
            raise StagingLost(
                f"Import run {self.run_id}: {self.staged_rows} rows were staged but "
                f"{staged_total} are in the staging table (PostgreSQL restarted?); no offer was "
                "changed."
            )
        return staged_total - kept_rows, kept_rows

    def _drop_duplicates(self, conn: Connection, filters: _ApplyFilters, counts: ApplyCounts,
                         pg: bool) -> int:
        """Delete the staged rows repeating an earlier line's SKU; how many were deleted."""
        dup_rows = self._duplicates(conn, pg)
        if not dup_rows:
            return 0
        counts.duplicate = len(dup_rows)
        counts.duplicate_lines = [
            {"line": line, "column": "seller_sku",
             "reason": f"duplicate seller-sku {sku!r} (first at line {first})"}
            for line, sku, first in dup_rows[: self.keep]
        ]
        s = self.staging
        lines = [r[0] for r in dup_rows]
        for i in range(0, len(lines), 5000):
            conn.execute(s.delete().where(filters.of_run, s.c.line.in_(lines[i : i + 5000])))
        return len(lines)

    def _count_live_offers(self, conn: Connection, filters: _ApplyFilters) -> int:
        return conn.execute(
            filters.count_offers.where(self.offer.c.removed_at.is_(None))).scalar_one()

    def _first_import(self, conn: Connection, filters: _ApplyFilters, live_before: int) -> bool:
        """Whether the integration has no offer at all, live or removed."""
        return live_before == 0 and conn.execute(
            sa.select(sa.literal(1)).select_from(self.offer).where(filters.of_integration)
            .limit(1)
        ).first() is None

    def _count_returning_offers(self, conn: Connection, filters: _ApplyFilters) -> int:
        """Removed offers the report names again (the changed-offers update restores them)."""
        s, o = self.staging, self.offer
        return conn.execute(
            sa.select(sa.func.count())
            .select_from(o.join(s, o.c.seller_sku == s.c.seller_sku))
            .where(filters.same_offer, o.c.removed_at.is_not(None))
        ).scalar_one()

    def _update_changed_offers(self, conn: Connection, filters: _ApplyFilters,
                               now: datetime) -> int:
        """Copy the staged values into offers that differ or were removed (restoring them)."""
        s, o = self.staging, self.offer
        # Rendered per dialect: IS DISTINCT FROM, IS NOT (SQLite), NOT (a <=> b) (MySQL).
        differs = [o.c[c].is_distinct_from(s.c[c]) for c in COMPARED]
        differs.append(o.c.removed_at.is_not(None))
        differs.append(o.c.currency.is_distinct_from(self.currency))
        values = {c: s.c[c] for c in COMPARED}
        return conn.execute(
            o.update()
            .where(filters.same_offer, sa.or_(*differs))
            .values(**values, currency=self.currency, last_seen_at=now, removed_at=None)
        ).rowcount

    def _insert_new_offers(self, conn: Connection, filters: _ApplyFilters, now: datetime,
                           pg: bool, *, first_import: bool) -> int:
        """Insert the valid staged rows without an offer (all of them on a first import)."""
        s, o = self.staging, self.offer
        target = ["integration_id", "seller_sku", *COMPARED, "currency", "first_seen_at",
                  "last_seen_at"]
        new_rows = sa.select(
            sa.literal(self.integration_id), *[s.c[c] for c in ("seller_sku", *COMPARED)],
            sa.literal(self.currency), sa.literal(now, o.c.first_seen_at.type),
            sa.literal(now, o.c.last_seen_at.type),
        ).where(filters.valid)
        if not first_import:
            exists = sa.exists().where(filters.of_integration, o.c.seller_sku == s.c.seller_sku)
            new_rows = new_rows.where(~exists)
        return self._insert(conn, o.insert().from_select(target, new_rows), pg)

    def _count_kept_offers(self, conn: Connection, filters: _ApplyFilters) -> int:
        """Live offers only invalid lines of the report name (neither updated nor removed)."""
        s, o = self.staging, self.offer
        in_valid = sa.exists().where(filters.valid, s.c.seller_sku == o.c.seller_sku)
        only_kept = sa.exists().where(filters.of_run, s.c.kept_invalid.is_not(None),
                                      s.c.seller_sku == o.c.seller_sku)
        return conn.execute(
            filters.count_offers.where(o.c.removed_at.is_(None), only_kept, ~in_valid)
        ).scalar_one()

    def _mark_removed_offers(self, conn: Connection, filters: _ApplyFilters, now: datetime,
                             valid_total: int) -> int:
        """Soft-remove the live offers the report does not name; how many were removed."""
        s, o = self.staging, self.offer
        # Every valid staged SKU is a live offer now; when the live offers are exactly that
        # many, none is missing from the report and the anti-join can be skipped.
        if self._count_live_offers(conn, filters) == valid_total:
            return 0
        # Kept rows (invalid lines naming a SKU) count as present in the report.
        in_report = sa.exists().where(filters.of_run, s.c.seller_sku == o.c.seller_sku)
        return conn.execute(
            o.update()
            .where(filters.of_integration, o.c.removed_at.is_(None), ~in_report)
            .values(removed_at=now)
        ).rowcount

    def _insert(self, conn: Connection, ins: sa.Insert, pg: bool) -> int:
        """Run ``ins`` (INSERT ... SELECT into the offers); the number of rows it inserted."""
        if pg or is_mysql(conn):  # the driver reports it; SQLAlchemy passes it on when asked
            return conn.execute(ins.execution_options(preserve_rowcount=True)).rowcount
        # INSERT ... SELECT rowcount is not reliable on every driver
        count = sa.select(sa.func.count()).select_from(self.offer).where(
            self.offer.c.integration_id == self.integration_id)
        before = conn.execute(count).scalar_one()
        conn.execute(ins)
        return conn.execute(count).scalar_one() - before

    def _rows_with_skus(self, conn: Connection, skus: list[str],
                        pg: bool) -> Iterator[tuple[int, str]]:
        s = self.staging
        of_run = s.c.run_id == self.run_id
        if pg:
            matches = s.c.seller_sku == sa.any_(sa.literal(skus, sa.ARRAY(sa.Text)))
            for line, sku in conn.execute(sa.select(s.c.line, s.c.seller_sku)
                                          .where(of_run, matches)):
                yield line, sku
            return
        for i in range(0, len(skus), 5000):
            query = sa.select(s.c.line, s.c.seller_sku).where(
                of_run, s.c.seller_sku.in_(skus[i : i + 5000]))
            for line, sku in conn.execute(query):
                yield line, sku

    def _duplicates(self, conn: Connection, pg: bool) -> list[tuple[int, str, int]]:
        """(line, seller_sku, first line of that SKU) of every staged row to drop, by line."""
        s = self.staging
        of_run = sa.and_(s.c.run_id == self.run_id, s.c.kept_invalid.is_(None))
        candidates = self._dup_candidates
        if candidates is not None:
            if not candidates:
                return []
            rows = sorted(self._rows_with_skus(conn, sorted(candidates), pg))
            first: dict[str, int] = {}
            dups = []
            for line, sku in rows:
                seen = first.setdefault(sku, line)
                if seen != line:
                    dups.append((line, sku, seen))
            return dups
        ranked = (
            sa.select(
                s.c.line,
                s.c.seller_sku,
                sa.func.min(s.c.line).over(partition_by=s.c.seller_sku).label("first_line"),
            )
            .where(of_run)
            .subquery()
        )
        dups_q = sa.select(ranked.c.line, ranked.c.seller_sku, ranked.c.first_line).where(
            ranked.c.line != ranked.c.first_line
        )
        return [tuple(r) for r in conn.execute(dups_q.order_by(ranked.c.line))]


@dataclass(frozen=True)
class _ApplyFilters:
    """The conditions the apply's statements share, built once per apply.

    A statement that uses one twice (the kept-offers count) then binds its value once.
    """

    #: Staged rows of the run, kept rows of invalid lines included.
    of_run: sa.ColumnElement[bool]
    #: Staged rows of the run from valid lines.
    valid: sa.ColumnElement[bool]
    of_integration: sa.ColumnElement[bool]
    #: A valid staged row and the integration's offer with its SKU.
    same_offer: sa.ColumnElement[bool]
    #: ``count(*)`` of the integration's offers.
    count_offers: sa.Select[int]

    @classmethod
    def of(cls, writer: OfferWriter) -> _ApplyFilters:
        s, o = writer.staging, writer.offer
        of_run = s.c.run_id == writer.run_id
        valid = sa.and_(of_run, s.c.kept_invalid.is_(None))
        of_integration = o.c.integration_id == writer.integration_id
        return cls(
            of_run=of_run,
            valid=valid,
            of_integration=of_integration,
            same_offer=sa.and_(valid, of_integration, o.c.seller_sku == s.c.seller_sku),
            count_offers=sa.select(sa.func.count()).select_from(o).where(of_integration),
        )


class _SkuFilter:
    """Duplicate-SKU candidates from a fixed-size bit filter over the SKUs' hashes.

    Flat memory and no sort of the whole run in SQL: a SKU whose bit was already set is a
    *candidate* (every repeated SKU is one), and only candidates are looked up in the staging
    table. 2**26 bits (8 MiB) give ~7,500 false candidates per million rows; past
    _MAX_CANDIDATES ``candidates`` becomes None and the apply checks the whole run in SQL.
    """

    def __init__(self) -> None:
        self.bits = bytearray(1 << (_FILTER_BITS - 3))
        self.candidates: set[str] | None = set()

    def add(self, sku: str) -> None:
        """Record ``sku`` (the COPY path inlines the same steps for speed)."""
        if self.candidates is None:
            return
        h = hash(sku) & _FILTER_MASK
        bit = 1 << (h & 7)
        h >>= 3
        byte = self.bits[h]
        if not byte & bit:
            self.bits[h] = byte | bit
        elif len(self.candidates) < _MAX_CANDIDATES:
            self.candidates.add(sku)
        else:
            self.candidates = None


def _copy_lines(rows: Iterable[OfferRow | InvalidRow], run_id: int,
                dups: _SkuFilter | None) -> Iterator[str]:
    """The staged rows as lines of COPY text format (columns in COPY_COLUMNS order)."""
    prefix = f"{run_id}\t"
    null = _NULL
    kept_tail = "\t".join([null] * (len(STAGED_COLUMNS) - 3) + ["t"]) + "\n"
    texts: dict[str | None, str] = {None: null}  # channel, status, product-id type
    dates: dict[datetime | None, str] = {}
    bits = dups.bits if dups else None
    candidates = dups.candidates if dups else None
    mask = _FILTER_MASK
    for row in rows:
        if isinstance(row, InvalidRow):
            yield f"{prefix}{row.line}\t{copy_text(row.seller_sku)}\t{kept_tail}"
            continue
        sku, asin, name, listing_id = row.seller_sku, row.asin, row.name, row.listing_id
        pid, price, quantity = row.product_id, row.price, row.quantity
        channel, status, pid_type = row.fulfillment_channel, row.status, row.product_id_type
        if candidates is not None:
            h = hash(sku) & mask
            bit = 1 << (h & 7)
            h >>= 3
            byte = bits[h]  # type: ignore[index]
            if not byte & bit:
                bits[h] = byte | bit  # type: ignore[index]
            elif len(candidates) < _MAX_CANDIDATES:
                candidates.add(sku)
            else:
                candidates = dups.candidates = None  # type: ignore[union-attr]
        date_raw = row.open_date_raw
        if date_raw is not None:
            date_raw = date_raw[:OPEN_DATE_RAW_LENGTH] or None
        channel_text = texts.get(channel)
        if channel_text is None:
            channel_text = _cached_text(texts, channel)  # type: ignore[arg-type]
        status_text = texts.get(status)
        if status_text is None:
            status_text = _cached_text(texts, status)  # type: ignore[arg-type]
        pid_type_text = texts.get(pid_type)
        if pid_type_text is None:
            pid_type_text = _cached_text(texts, pid_type)  # type: ignore[arg-type]
        open_date = row.open_date
        date_text = dates.get(open_date)
        if date_text is None:
            date_text = null if open_date is None else open_date.isoformat()
            if len(dates) >= _DATE_CACHE_SIZE:
                dates.clear()
            dates[open_date] = date_text
        probe = f"{sku}{asin}{name}{listing_id}{pid}{date_raw}"
        if "\\" in probe or "\t" in probe or "\n" in probe or "\r" in probe:
            sku, asin, name, listing_id, pid, date_raw = (
                copy_text(v) for v in (sku, asin, name, listing_id, pid, date_raw))
        yield (
            f"{prefix}{row.line}\t{sku}\t{null if asin is None else asin}\t"
            f"{null if name is None else name}\t{null if listing_id is None else listing_id}\t"
            f"{null if price is None else price!s}\t{null if quantity is None else quantity}\t"
            f"{channel_text}\t{status_text}\t{null if pid is None else pid}\t{pid_type_text}\t"
            f"{date_text}\t{null if date_raw is None else date_raw}\t{null}\n"
        )


def _insert_rows(rows: Iterable[OfferRow | InvalidRow],
                 run_id: int) -> Iterator[dict[str, Any]]:
    for row in rows:
        if isinstance(row, InvalidRow):
            kept = dict.fromkeys(COPY_COLUMNS)
            kept.update(run_id=run_id, line=row.line, seller_sku=row.seller_sku,
                        kept_invalid=True)
            yield kept
            continue
        date_raw = row.open_date_raw[:OPEN_DATE_RAW_LENGTH] if row.open_date_raw else None
        yield dict(zip(COPY_COLUMNS, (
            run_id, row.line, row.seller_sku, row.asin, row.name, row.listing_id, row.price,
            row.quantity, row.fulfillment_channel, row.status, row.product_id,
            row.product_id_type, row.open_date, date_raw, None,
        ), strict=True))


class _Batches:
    """Staging batches: ``write`` chunks of rows, ``commit`` ends the batch's transaction."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._open: ExitStack | None = None

    def _begin(self, stack: ExitStack, conn: Connection) -> None:
        raise NotImplementedError

    def write(self, chunk: list[Any]) -> None:
        if self._open is None:
            with ExitStack() as stack:
                self._begin(stack, stack.enter_context(self.engine.begin()))
                self._open = stack.pop_all()
        self._send(chunk)

    def _send(self, chunk: list[Any]) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        if self._open is not None:
            stack, self._open = self._open, None
            stack.close()

    def __enter__(self) -> _Batches:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._open is not None:  # an error mid-batch: abort the COPY, roll back
            stack, self._open = self._open, None
            stack.__exit__(*exc)


class _CopyBatches(_Batches):
    """PostgreSQL: rows streamed through ``COPY ... FROM STDIN``."""

    def __init__(self, engine: sa.Engine, table: str) -> None:
        super().__init__(engine)
        self.sql = f"COPY {table} ({', '.join(COPY_COLUMNS)}) FROM STDIN"

    def _begin(self, stack: ExitStack, conn: Connection) -> None:
        driver_connection: Any = conn.connection.driver_connection
        cursor = stack.enter_context(driver_connection.cursor())
        self.copy = stack.enter_context(cursor.copy(self.sql))

    def _send(self, chunk: list[Any]) -> None:
        self.copy.write("".join(chunk))


class _InsertBatches(_Batches):
    """Other databases: ``executemany`` INSERTs."""

    def __init__(self, engine: sa.Engine, table: sa.Table) -> None:
        super().__init__(engine)
        self.table = table

    def _begin(self, stack: ExitStack, conn: Connection) -> None:
        self.conn = conn

    def _send(self, chunk: list[Any]) -> None:
        self.conn.execute(self.table.insert(), chunk)


def _cached_text(cache: dict[str | None, str], value: str) -> str:
    """COPY text of a low-cardinality value, cached while the cache is small."""

    text = copy_text(value)
    if len(cache) < _SMALL_CACHE:
        cache[value] = text
    return text
