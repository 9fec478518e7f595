"""Triggers that log every change of the host's product table in ``xsale_amazon_suggest_change``.

With the log, the index's staleness check is one indexed lookup ("is the log empty?") instead
of an aggregate over the whole product table. Created on first use when the database user may:

- PostgreSQL: one statement-level trigger (``AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE``),
  created in a savepoint of the caller's transaction.
- SQLite and MySQL/MariaDB (no statement-level triggers): three row-level triggers (``AFTER
  INSERT``, ``UPDATE``, ``DELETE``), one log row per changed product row. MariaDB's
  ``TRUNCATE TABLE`` fires none of them; :func:`ensure_fresh
  <xsale_amazon_plugin.suggest_index.ensure_fresh>` therefore trusts the log on these databases
  only while the fingerprint was verified recently (``SUGGEST_FINGERPRINT_MAX_AGE``).

``CREATE TRIGGER`` commits the current transaction on MySQL/MariaDB, so there it runs on a
connection of its own, with a short wait for the product table's metadata lock: a caller whose
transaction already read the product table holds that lock, and a long wait would also queue
every host query on the table behind the pending DDL. When it times out the check falls back
to the fingerprint, and this process tries again after ``RETRY_AFTER`` seconds. (A caller
whose REPEATABLE READ snapshot is older than the new triggers could miss a change committed in
between; the fingerprint's maximum age bounds that too.)

A trigger that cannot be created (no TRIGGER privilege; on MariaDB with binary logging also
SUPER or ``log_bin_trust_function_creators``; not the owner of the table on PostgreSQL) leaves
the table unwatched: every check then computes the fingerprint, as before (and this process
tries again after ``RETRY_AFTER``).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import sqlalchemy as sa

from .dialects import is_mysql

log = logging.getLogger(__name__)

Watch = Literal["watched", "created", "unwatched"]

#: PostgreSQL: the statement-level trigger and its function.
WATCH_TRIGGER = "xsale_amazon_suggest_watch"
WATCH_FUNCTION = "xsale_amazon_suggest_product_changed"
#: SQLite, MySQL/MariaDB: one row-level trigger per event (names are per schema / file).
ROW_TRIGGERS = {
    "INSERT": "xsale_amazon_suggest_watch_ins",
    "UPDATE": "xsale_amazon_suggest_watch_upd",
    "DELETE": "xsale_amazon_suggest_watch_del",
}
#: MySQL/MariaDB: longest wait of ``CREATE TRIGGER`` for the product table's metadata lock, s.
DDL_LOCK_WAIT = 2
#: After a failed creation this process checks with the fingerprint for this many seconds
#: before it tries again (a denied or timed-out DDL on every use would cost every request).
RETRY_AFTER = 600.0

_retry_at: dict[tuple[str, str, str], float] = {}


def row_level(conn: sa.Connection) -> bool:
    """Whether the database logs changes per row (so ``TRUNCATE`` may bypass the log)."""
    return conn.dialect.name == "sqlite" or is_mysql(conn)


def watch_product_table(conn: sa.Connection, change: sa.Table, product: sa.Table) -> Watch:
    """Make sure the product table's changes are logged in ``change``.

    Returns ``"watched"`` (the triggers existed), ``"created"`` (just created: changes before
    now are not in the log) or ``"unwatched"`` (unknown database, or no right to create them).
    Never commits the caller's transaction.
    """
    key = (conn.engine.url.render_as_string(), product.schema or "", product.name)
    create = _retry_at.get(key, 0.0) <= time.monotonic()
    watch: Watch = "unwatched"
    if conn.dialect.name == "postgresql":
        # Not caught: a failed statement outside the savepoint aborts the caller's transaction.
        watch = _postgresql(conn, change, product, create)
    else:
        try:
            if conn.dialect.name == "sqlite":
                watch = _sqlite(conn, change, product, create)
            elif is_mysql(conn):
                watch = _mysql(conn, change, product, create)
        except sa.exc.DBAPIError:  # a failed statement leaves the transaction usable here
            log.warning("Could not check or create the triggers on %s; the mapping assistant "
                        "compares the fingerprint instead", product.name, exc_info=True)
    if watch == "unwatched" and create:
        _retry_at[key] = time.monotonic() + RETRY_AFTER
    return watch


def _postgresql(conn: sa.Connection, change: sa.Table, product: sa.Table,
                create: bool) -> Watch:
    preparer = conn.dialect.identifier_preparer
    qualified = preparer.format_table(product)
    exists = conn.execute(sa.text(
        "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(:t) AND tgname = :n"),
        {"t": qualified, "n": WATCH_TRIGGER}).first()
    if exists:
        return "watched"
    if not create:
        return "unwatched"
    schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    log_table = f"{preparer.quote_identifier(schema)}.{change.name}"
    function = f"{preparer.quote_identifier(schema)}.{WATCH_FUNCTION}"
    try:
        with conn.begin_nested():
            conn.execute(sa.text(
                f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql "
                f"AS $$ BEGIN INSERT INTO {log_table} DEFAULT VALUES; RETURN NULL; END $$"))
            conn.execute(sa.text(
                f"CREATE TRIGGER {WATCH_TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {qualified} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"))
    except sa.exc.DBAPIError:  # e.g. not the owner of the host's table: fingerprint only
        return "unwatched"
    return "created"


def _sqlite_existing(conn: sa.Connection, product: sa.Table) -> set[str]:
    return set(conn.execute(sa.text(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
        {"t": product.name}).scalars()) & set(ROW_TRIGGERS.values())


def _sqlite(conn: sa.Connection, change: sa.Table, product: sa.Table, create: bool) -> Watch:
    if product.schema:  # an attached database: its triggers cannot write to the main one
        return "unwatched"
    if len(_sqlite_existing(conn, product)) == len(ROW_TRIGGERS):
        return "watched"
    if not create:
        return "unwatched"
    # SQLite's DDL is transactional and a failed statement leaves the transaction intact;
    # IF NOT EXISTS makes a concurrent creation harmless. (A trigger body takes no
    # DEFAULT VALUES; a NULL id is the next one.)
    preparer = conn.dialect.identifier_preparer
    table = preparer.quote_identifier(product.name)
    for event, name in ROW_TRIGGERS.items():
        try:
            conn.execute(sa.text(
                f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON {table} "
                f"BEGIN INSERT INTO {change.name} (id) VALUES (NULL); END"))
        except sa.exc.DBAPIError:
            log.warning("Could not create trigger %s on %s; the mapping assistant compares "
                        "the fingerprint instead", name, product.name, exc_info=True)
            return "unwatched"
    return "created" if len(_sqlite_existing(conn, product)) == len(ROW_TRIGGERS) else "unwatched"


def _mysql_existing(conn: sa.Connection, product: sa.Table) -> set[str]:
    # information_schema lists only triggers the user may see (TRIGGER privilege).
    return set(conn.execute(sa.text(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = COALESCE(:s, DATABASE()) AND EVENT_OBJECT_TABLE = :t"),
        {"s": product.schema, "t": product.name}).scalars()) & set(ROW_TRIGGERS.values())


def _mysql(conn: sa.Connection, change: sa.Table, product: sa.Table, create: bool) -> Watch:
    if len(_mysql_existing(conn, product)) == len(ROW_TRIGGERS):
        return "watched"
    if not create:
        return "unwatched"
    preparer = conn.dialect.identifier_preparer
    database = conn.execute(sa.text("SELECT DATABASE()")).scalar_one()
    log_table = f"{preparer.quote_identifier(database)}.{preparer.quote_identifier(change.name)}"
    table = preparer.format_table(product)
    schema = preparer.quote_identifier(product.schema) + "." if product.schema else ""
    # Its own connection: CREATE TRIGGER commits implicitly, and must not commit the caller's
    # work. Error 1359 (the trigger exists) means another process was quicker.
    with conn.engine.connect() as ddl:
        ddl.execute(sa.text("SET SESSION lock_wait_timeout = :w"), {"w": DDL_LOCK_WAIT})
        try:
            for event, name in ROW_TRIGGERS.items():
                try:
                    ddl.execute(sa.text(
                        f"CREATE TRIGGER {schema}{name} AFTER {event} ON {table} "
                        f"FOR EACH ROW INSERT INTO {log_table} () VALUES ()"))
                except sa.exc.DBAPIError as exc:
                    if _mysql_errno(exc) != 1359:
                        log.warning("Could not create trigger %s on %s; the mapping assistant "
                                    "compares the fingerprint instead", name, product.name,
                                    exc_info=True)
                        return "unwatched"
        finally:
            ddl.execute(sa.text("SET SESSION lock_wait_timeout = DEFAULT"))
            ddl.rollback()
    return "created" if len(_mysql_existing(conn, product)) == len(ROW_TRIGGERS) else "unwatched"


def _mysql_errno(exc: sa.exc.DBAPIError) -> Any:
    args = getattr(exc.orig, "args", ())
    return args[0] if args else None

