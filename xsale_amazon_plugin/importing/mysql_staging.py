"""Staging report rows on MySQL/MariaDB: multi-row ``INSERT`` statements built as text.

Why not ``LOAD DATA LOCAL INFILE``: MySQL 8 servers ship with ``local_infile`` off and the
client must opt in with a connection flag the host's engine usually does not set; multi-row
INSERTs work on every server and host configuration. Why not ``executemany``: PyMySQL then
escapes every value through its generic converters, which costs more than the rest of the
import's Python work together. Here each row becomes one ``(...)`` tuple of literals, with the
few values that need escaping escaped the way the session's ``sql_mode`` reads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..amazon.report_parser import InvalidRow
from ..models import OPEN_DATE_RAW_LENGTH

#: Characters of a string literal that need escaping (with backslash escapes enabled).
_SPECIAL = frozenset("\\'\"\x00\n\r\x1a")
_BACKSLASH_ESCAPES = str.maketrans({
    "\\": "\\\\", "'": "\\'", '"': '\\"', "\x00": "\\0", "\n": "\\n", "\r": "\\r",
    "\x1a": "\\Z",
})
_QUOTE_ONLY = str.maketrans({"'": "''"})
#: Characters per INSERT statement; far below max_allowed_packet (16 MiB on MariaDB, 64 MiB
#: on MySQL 8, 4 MiB on old servers) even when every character is 4 bytes of UTF-8.
_STATEMENT_CHARS = 512 * 1024
_CACHE_SIZE = 20_000


def _escaper(conn: Connection) -> Any:
    mode = conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar() or ""
    table = _QUOTE_ONLY if "NO_BACKSLASH_ESCAPES" in mode.upper() else _BACKSLASH_ESCAPES

    def quote(value: str) -> str:
        if _SPECIAL.isdisjoint(value):
            return f"'{value}'"
        return f"'{value.translate(table)}'"

    return quote


def value_tuples(rows: Iterable[Any], run_id: int, quote: Any, dups: Any,
                 report_columns: int) -> Iterator[str]:
    """Each staged row as one ``(...)`` tuple of SQL literals, in the writer's COPY_COLUMNS
    order: run_id, line, seller_sku, the ``report_columns`` report columns, kept_invalid.

    An :class:`InvalidRow` becomes a kept row (its SKU only). ``dups`` (the writer's
    ``_SkuFilter`` or None) sees the SKU of every valid row.
    """
    texts: dict[str | None, str] = {None: "NULL"}  # channel, status, product-id type
    dates: dict[datetime | None, str] = {None: "NULL"}
    prefix = f"({run_id},"
    kept_tail = ",NULL" * report_columns + ",1)"
    for row in rows:
        if isinstance(row, InvalidRow):
            yield f"{prefix}{row.line},{quote(row.seller_sku)}{kept_tail}"
            continue
        sku, asin, name, listing_id = row.seller_sku, row.asin, row.name, row.listing_id
        pid, price, quantity = row.product_id, row.price, row.quantity
        if dups is not None:
            dups.add(sku)
        small = []
        for value in (row.fulfillment_channel, row.status, row.product_id_type):
            text = texts.get(value)
            if text is None:
                text = quote(value)
                if len(texts) < 256:
                    texts[value] = text
            small.append(text)
        open_date = row.open_date
        date_text = dates.get(open_date)
        if date_text is None:
            # DATETIME has no time zone: the plugin stores UTC.
            date_text = open_date.astimezone(timezone.utc).strftime("'%Y-%m-%d %H:%M:%S.%f'")
            if len(dates) >= _CACHE_SIZE:
                dates.clear()
                dates[None] = "NULL"
            dates[open_date] = date_text
        date_raw = row.open_date_raw
        yield (
            f"{prefix}{row.line},{quote(sku)},"
            f"{'NULL' if asin is None else quote(asin)},"
            f"{'NULL' if name is None else quote(name)},"
            f"{'NULL' if listing_id is None else quote(listing_id)},"
            f"{'NULL' if price is None else price},"
            f"{'NULL' if quantity is None else quantity},"
            f"{small[0]},{small[1]},{'NULL' if pid is None else quote(pid)},{small[2]},"
            f"{date_text},{quote(date_raw[:OPEN_DATE_RAW_LENGTH]) if date_raw else 'NULL'},NULL)"
        )


class MysqlInsertBatches:
    """The importer's staging sink for MySQL/MariaDB (same protocol as its COPY sink)."""

    def __init__(self, engine: sa.Engine, table: sa.Table, columns: Iterable[str]) -> None:
        self.engine = engine
        self.head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
        self._open: ExitStack | None = None
        with engine.connect() as conn:
            self.quote = _escaper(conn)

    def write(self, chunk: list[str]) -> None:
        if self._open is None:
            with ExitStack() as stack:
                conn = stack.enter_context(self.engine.begin())
                driver = conn.connection.driver_connection
                assert driver is not None  # a live pooled connection
                self.cursor = stack.enter_context(driver.cursor())
                self._open = stack.pop_all()
        statement: list[str] = []
        size = 0
        for values in chunk:
            statement.append(values)
            size += len(values)
            if size >= _STATEMENT_CHARS:
                self._send(statement)
                statement, size = [], 0
        if statement:
            self._send(statement)

    def _send(self, tuples: list[str]) -> None:
        # No parameters: the driver sends the text as is (no %-formatting). Its errors (e.g.
        # a dropped connection) become SQLAlchemy's, like those of every other statement.
        with self._database_errors():
            self.cursor.execute(self.head + ",".join(tuples))

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        """The driver's errors (e.g. a dropped connection, also when the raw cursor closes)
        as SQLAlchemy's, like those of every other statement of the import."""
        dbapi = self.engine.dialect.loaded_dbapi
        try:
            yield
        except dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(
                self.head + "...", None, exc, dbapi.Error,
                dialect=self.engine.dialect) from exc

    def commit(self) -> None:
        if self._open is not None:
            stack, self._open = self._open, None
            with self._database_errors():
                stack.close()

    def __enter__(self) -> MysqlInsertBatches:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._open is not None:  # an error mid-batch: roll back
            stack, self._open = self._open, None
            with self._database_errors():
                stack.__exit__(*exc)
