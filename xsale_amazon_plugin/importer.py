"""Stage parsed report rows in the database and apply them to the offers in one transaction.

Staging is batched (PostgreSQL ``COPY``; ``executemany`` elsewhere) and committed per batch so
progress is visible. Nothing an operator sees changes until :meth:`OfferImporter.apply`, which
de-duplicates the staged rows, updates changed offers, inserts new ones and soft-removes the
offers missing from the report, all in one transaction: a run that dies before or during
``apply`` leaves offers and links exactly as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .models import Models, utcnow
from .report_parser import InvalidRow, OfferRow

STAGED_COLUMNS = (
    "run_id",
    "line",
    "seller_sku",
    "asin",
    "name",
    "listing_id",
    "price",
    "quantity",
    "fulfillment_channel",
    "status",
    "product_id",
    "product_id_type",
    "open_date",
    "open_date_raw",
)
#: Offer columns compared to decide whether a re-imported row changed.
COMPARED = STAGED_COLUMNS[3:]

_LIMITS = {"asin": 20, "listing_id": 40, "fulfillment_channel": 40, "status": 40,
           "product_id": 40, "product_id_type": 10}
_PRICE_LIMIT = 10**12


@dataclass
class StageCounts:
    read: int = 0
    staged: int = 0
    skipped_channel: int = 0
    invalid: int = 0
    without_asin: int = 0
    invalid_lines: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ApplyCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    restored: int = 0
    duplicate: int = 0
    duplicate_lines: list[dict[str, Any]] = field(default_factory=list)


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
    if row.quantity is not None and not -(2**31) < row.quantity < 2**31:
        return "quantity"
    return None


class OfferImporter:
    def __init__(self, models: Models, engine: sa.Engine, *, run_id: int, integration_id: int,
                 account_type: str, currency: str, invalid_lines_kept: int = 50) -> None:
        self.models = models
        self.engine = engine
        self.run_id = run_id
        self.integration_id = integration_id
        self.account_type = account_type
        self.currency = currency
        self.keep = invalid_lines_kept
        self.offer = models.AmazonOffer.__table__
        self.staging = models.import_row

    # -- staging ---------------------------------------------------------------------------
    def clear_staging(self, run_id: int | None = None) -> None:
        with self.engine.begin() as conn:
            table = self.staging
            cond = table.c.run_id == (run_id or self.run_id)
            conn.execute(table.delete().where(cond))

    def stage(
        self,
        rows: Iterable[OfferRow | InvalidRow],
        *,
        has_channel_column: bool,
        batch_size: int,
        on_batch: Callable[[StageCounts, int], None] | None = None,
    ) -> StageCounts:
        counts = StageCounts()
        batch: list[tuple] = []
        last_line = 0
        for row in rows:
            counts.read += 1
            last_line = row.line
            if isinstance(row, InvalidRow):
                self._invalid(counts, row.line, row.column, row.reason)
                continue
            if not channel_matches(row, self.account_type, has_channel_column):
                counts.skipped_channel += 1
                continue
            too_long = _too_long(row)
            if too_long:
                reason = f"{too_long} value is too long or too large"
                self._invalid(counts, row.line, too_long, reason)
                continue
            if not row.asin:
                counts.without_asin += 1
            batch.append((
                self.run_id, row.line, row.seller_sku, row.asin, row.name, row.listing_id,
                row.price, row.quantity, row.fulfillment_channel, row.status, row.product_id,
                row.product_id_type, row.open_date,
                row.open_date_raw[:64] if row.open_date_raw else None,
            ))
            if len(batch) >= batch_size:
                self._flush(batch)
                counts.staged += len(batch)
                batch = []
                if on_batch:
                    on_batch(counts, last_line)
        if batch:
            self._flush(batch)
            counts.staged += len(batch)
        if on_batch:
            on_batch(counts, last_line)
        return counts

    def _invalid(self, counts: StageCounts, line: int, column: str | None, reason: str) -> None:
        counts.invalid += 1
        if len(counts.invalid_lines) < self.keep:
            counts.invalid_lines.append({"line": line, "column": column, "reason": reason[:300]})

    def _flush(self, batch: list[tuple]) -> None:
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                self._copy(conn, batch)
            else:
                rows = [dict(zip(STAGED_COLUMNS, r, strict=True)) for r in batch]
                conn.execute(self.staging.insert(), rows)

    def _copy(self, conn: Connection, batch: list[tuple]) -> None:
        raw = conn.connection.driver_connection
        cols = ", ".join(STAGED_COLUMNS)
        with raw.cursor() as cur, cur.copy(f"COPY {self.staging.name} ({cols}) FROM STDIN") as cp:
            for r in batch:
                cp.write_row(r)

    # -- apply -----------------------------------------------------------------------------
    def apply(self, conn: Connection, now: datetime | None = None) -> ApplyCounts:
        """Apply the staged rows. Runs inside the caller's transaction ``conn``."""
        now = now or utcnow()
        counts = ApplyCounts()
        s, o = self.staging, self.offer
        run, iid = self.run_id, self.integration_id
        pg = conn.dialect.name == "postgresql"

        ranked = (
            sa.select(
                s.c.line,
                s.c.seller_sku,
                sa.func.min(s.c.line).over(partition_by=s.c.seller_sku).label("first_line"),
            )
            .where(s.c.run_id == run)
            .subquery()
        )
        dups = sa.select(ranked.c.line, ranked.c.seller_sku, ranked.c.first_line).where(
            ranked.c.line != ranked.c.first_line
        )
        dup_rows = conn.execute(dups.order_by(ranked.c.line)).all()
        if dup_rows:
            counts.duplicate = len(dup_rows)
            counts.duplicate_lines = [
                {"line": r.line, "column": "seller_sku",
                 "reason": f"duplicate seller-sku {r.seller_sku!r} (first at line {r.first_line})"}
                for r in dup_rows[: self.keep]
            ]
            lines = [r.line for r in dup_rows]
            for i in range(0, len(lines), 5000):
                conn.execute(
                    s.delete().where(s.c.run_id == run, s.c.line.in_(lines[i : i + 5000]))
                )

        match = sa.and_(
            s.c.run_id == run, o.c.integration_id == iid, o.c.seller_sku == s.c.seller_sku
        )
        if pg:
            differs = [o.c[c].is_distinct_from(s.c[c]) for c in COMPARED]
        else:
            differs = [o.c[c].op("IS NOT")(s.c[c]) for c in COMPARED]
        differs.append(o.c.removed_at.is_not(None))
        differs.append(o.c.currency.op("IS DISTINCT FROM" if pg else "IS NOT")(self.currency))

        counts.restored = conn.execute(
            sa.select(sa.func.count()).select_from(o.join(s, o.c.seller_sku == s.c.seller_sku))
            .where(match, o.c.removed_at.is_not(None))
        ).scalar_one()

        values = {c: s.c[c] for c in COMPARED}
        upd = (
            o.update()
            .where(match, sa.or_(*differs))
            .values(**values, currency=self.currency, last_seen_at=now, removed_at=None)
        )
        counts.updated = conn.execute(upd).rowcount

        exists = sa.exists().where(o.c.integration_id == iid, o.c.seller_sku == s.c.seller_sku)
        select_new = sa.select(
            sa.literal(iid), *[s.c[c] for c in ("seller_sku", *COMPARED)],
            sa.literal(self.currency), sa.literal(now, o.c.first_seen_at.type),
            sa.literal(now, o.c.last_seen_at.type),
        ).where(s.c.run_id == run, ~exists)
        target = ["integration_id", "seller_sku", *COMPARED, "currency", "first_seen_at",
                  "last_seen_at"]
        ins = o.insert().from_select(target, select_new)
        count_offers = (
            sa.select(sa.func.count()).select_from(o).where(o.c.integration_id == iid)
        )
        before = conn.execute(count_offers).scalar_one()
        conn.execute(ins)  # INSERT ... SELECT rowcount is not reliable on every driver
        counts.created = conn.execute(count_offers).scalar_one() - before

        staged_total = conn.execute(
            sa.select(sa.func.count()).select_from(s).where(s.c.run_id == run)
        ).scalar_one()
        counts.unchanged = staged_total - counts.created - counts.updated

        in_report = sa.exists().where(s.c.run_id == run, s.c.seller_sku == o.c.seller_sku)
        counts.removed = conn.execute(
            o.update()
            .where(o.c.integration_id == iid, o.c.removed_at.is_(None), ~in_report)
            .values(removed_at=now)
        ).rowcount
        conn.execute(s.delete().where(s.c.run_id == run))
        return counts
