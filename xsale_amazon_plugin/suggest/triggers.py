"""Triggers that log changes of the host's product table in ``xsale_amazon_suggest_change``.

With the log, the index's staleness check is one indexed lookup ("is the log empty?") instead
of an aggregate over the whole product table. Created on first use when the database user may.

Only changes of the *indexed columns* are logged (the primary key and the columns behind the
configured SKU, EAN, name and ASIN attributes): host back offices update stock, prices and
timestamps all the time, and such an update must not make the next check pay for the
fingerprint. Every insert and delete is logged.

- PostgreSQL: one statement-level trigger (``AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF
  <indexed columns>``), created in a savepoint of the caller's transaction. ``UPDATE OF`` fires
  when a column is in the statement's SET list, whatever its value: ORMs set only the columns
  that changed, and a hand-written ``SET name = name`` costs one fingerprint, nothing more.
- SQLite and MySQL/MariaDB (no statement-level triggers): three row-level triggers (``AFTER
  INSERT``, ``UPDATE``, ``DELETE``), one log row per changed product row; the UPDATE trigger
  logs a row only when an indexed value really changed (compared byte for byte, so a change
  of case or accents counts whatever the column's collation). MariaDB's ``TRUNCATE TABLE``
  fires none of them; :func:`ensure_fresh <xsale_amazon_plugin.suggest.index.ensure_fresh>`
  therefore trusts the log on these databases only while the fingerprint was verified
  recently (``SUGGEST_FINGERPRINT_MAX_AGE``).
- When an indexed attribute is not a plain column of the product table (an SQL expression, a
  hybrid property), the triggers log every insert, update and delete.

The watched columns are part of the triggers' names (a short hash, :class:`WatchSpec`): a host
that configures another attribute, or an install with the triggers of an earlier version, gets
new triggers on first use, and the plugin's other watch triggers on the table are dropped
after the new ones exist (so no change goes unlogged in between). New triggers count as
"created": their log says nothing about earlier changes, so the next refresh compares the
fingerprint (which also re-indexes the products after a changed attribute).

``CREATE TRIGGER`` commits the current transaction on MySQL/MariaDB, so there the DDL runs on
a connection of its own, with a short wait for the product table's metadata lock: a caller
whose transaction already read the product table holds that lock, and a long wait would also
queue every host query on the table behind the pending DDL. On PostgreSQL the same short
``lock_timeout`` bounds the savepoint's DDL (``DROP TRIGGER`` takes an exclusive lock, held
until the caller commits). When it times out the check falls back to the fingerprint, and this
process tries again after ``RETRY_AFTER`` seconds. (A caller whose REPEATABLE READ snapshot is
older than the new triggers could miss a change committed in between; the fingerprint's maximum
age bounds that too.)

A trigger that cannot be created (no TRIGGER privilege; on MariaDB with binary logging also
SUPER or ``log_bin_trust_function_creators``; not the owner of the table on PostgreSQL) leaves
the table unwatched: every check then computes the fingerprint, as before (and this process
tries again after ``RETRY_AFTER``).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from ..dialects import is_mysql

log = logging.getLogger(__name__)

Watch = Literal["watched", "created", "unwatched"]

#: Every watch trigger's name starts with this. Versions before the column-aware triggers
#: used exactly this name (PostgreSQL) and this plus ``_ins`` / ``_upd`` / ``_del``.
TRIGGER_PREFIX = "xsale_amazon_suggest_watch"
#: PostgreSQL: the statement-level trigger's function (the same for every column set).
WATCH_FUNCTION = "xsale_amazon_suggest_product_changed"
#: SQLite, MySQL/MariaDB: the row-level triggers' name suffix per event.
ROW_EVENTS = {"INSERT": "ins", "UPDATE": "upd", "DELETE": "del"}
#: Part of every trigger's identity: raise it when the triggers' SQL changes, so existing
#: installs get the new ones.
TRIGGER_VERSION = 2
#: Longest wait of the trigger DDL for the product table's lock, s (MySQL/MariaDB: metadata
#: lock; PostgreSQL: ``lock_timeout``).
DDL_LOCK_WAIT = 2
#: After a failed creation this process checks with the fingerprint for this many seconds
#: before it tries again (a denied or timed-out DDL on every use would cost every request).
RETRY_AFTER = 600.0

_retry_at: dict[tuple[str, str, str], float] = {}


@dataclass(frozen=True)
class WatchSpec:
    """What the triggers on one product table watch, and their names."""

    #: The indexed columns' names in the product table; None: log every change (an indexed
    #: attribute is not a plain column).
    columns: tuple[str, ...] | None
    #: 8 hex digits identifying the watched set (and ``TRIGGER_VERSION``).
    identity: str

    @property
    def statement_trigger(self) -> str:
        return f"{TRIGGER_PREFIX}_{self.identity}"

    @property
    def row_triggers(self) -> dict[str, str]:
        return {event: f"{TRIGGER_PREFIX}_{self.identity}_{suffix}"
                for event, suffix in ROW_EVENTS.items()}

    def names(self, conn: sa.Connection) -> set[str]:
        """The triggers this spec needs on ``conn``'s database."""
        if row_level(conn):
            return set(self.row_triggers.values())
        return {self.statement_trigger}


def watch_spec(product: sa.Table, indexed: Sequence[sa.ColumnElement[Any]]) -> WatchSpec:
    """The triggers for the indexed expressions ``indexed`` (primary key and attributes)."""
    names: list[str] = []
    for expr in indexed:
        if not (isinstance(expr, sa.Column) and expr.table is product):
            # An expression: which columns it reads is not known. Its SQL text is part of the
            # identity, so configuring another one still gives the triggers a new name.
            shown = "\x1f".join(str(e) for e in indexed)
            return WatchSpec(None, _identity(f"all\x1e{shown}"))
        if expr.name not in names:
            names.append(expr.name)
    return WatchSpec(tuple(names), _identity("columns\x1e" + "\x1f".join(sorted(names))))


def _identity(text: str) -> str:
    return f"{zlib.crc32(f'v{TRIGGER_VERSION}:{text}'.encode()):08x}"


def is_watch_trigger(name: str) -> bool:
    """Whether a trigger of the product table is one of the plugin's (any version)."""
    return name == TRIGGER_PREFIX or name.startswith(TRIGGER_PREFIX + "_")


def row_level(conn: sa.Connection) -> bool:
    """Whether the database logs changes per row (so ``TRUNCATE`` may bypass the log)."""
    return conn.dialect.name == "sqlite" or is_mysql(conn)


def watch_product_table(conn: sa.Connection, change: sa.Table, product: sa.Table,
                        indexed: Sequence[sa.ColumnElement[Any]]) -> Watch:
    """Make sure the product table's changes of the ``indexed`` expressions (primary key and
    configured attributes) are logged in ``change``.

    Returns ``"watched"`` (the triggers existed), ``"created"`` (just created: changes before
    now are not in the log) or ``"unwatched"`` (unknown database, or no right to create them).
    Never commits the caller's transaction.
    """
    key = (conn.engine.url.render_as_string(), product.schema or "", product.name)
    create = _retry_at.get(key, 0.0) <= time.monotonic()
    spec = watch_spec(product, indexed)
    watch: Watch = "unwatched"
    failed = False
    if conn.dialect.name == "postgresql":
        # Not caught: a failed statement outside the savepoint aborts the caller's transaction.
        watch, failed = _postgresql(conn, change, product, spec, create)
    else:
        try:
            if conn.dialect.name == "sqlite":
                watch, failed = _sqlite(conn, change, product, spec, create)
            elif is_mysql(conn):
                watch, failed = _mysql(conn, change, product, spec, create)
        except sa.exc.DBAPIError:  # a failed statement leaves the transaction usable here
            log.warning("Could not check or create the triggers on %s; the mapping assistant "
                        "compares the fingerprint instead", product.name, exc_info=True)
            failed = True
    if create and (failed or watch == "unwatched"):
        _retry_at[key] = time.monotonic() + RETRY_AFTER
    return watch


def drop_watch_triggers(conn: sa.Connection, product: sa.Table) -> list[str]:
    """Drop the plugin's watch triggers (of any version) from the product table and, on
    PostgreSQL, their function when nothing else uses it; returns the dropped triggers' names.

    For an uninstall (the triggers write to the plugin's change log: once its table is gone,
    every write to the product table fails) or after ``SUGGEST_TRIGGERS`` was turned off. On
    MySQL/MariaDB the DDL runs on a connection of its own (it commits implicitly); elsewhere it
    is part of the caller's transaction."""
    preparer = conn.dialect.identifier_preparer
    if conn.dialect.name == "postgresql":
        qualified = preparer.format_table(product)
        names = sorted(_stale(_postgresql_existing(conn, qualified), set()))
        for name in names:
            conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {preparer.quote(name)} ON {qualified}"))
        try:
            with conn.begin_nested():  # another table's trigger may still use it: then kept
                conn.execute(sa.text(f"DROP FUNCTION IF EXISTS {WATCH_FUNCTION}()"))
        except sa.exc.DBAPIError:
            log.info("Kept %s(): another trigger uses it", WATCH_FUNCTION)
    elif conn.dialect.name == "sqlite":
        names = sorted(_stale(_sqlite_existing(conn, product), set()))
        for name in names:
            conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {preparer.quote(name)}"))
    elif is_mysql(conn):
        names = sorted(_stale(_mysql_existing(conn, product), set()))
        schema = preparer.quote_identifier(product.schema) + "." if product.schema else ""
        with conn.engine.connect() as ddl:
            for name in names:
                ddl.execute(sa.text(f"DROP TRIGGER IF EXISTS {schema}{preparer.quote(name)}"))
    else:
        names = []
    return names


def _stale(existing: set[str], wanted: set[str]) -> set[str]:
    """The plugin's watch triggers on the table that ``wanted`` replaces."""
    return {name for name in existing if is_watch_trigger(name)} - wanted


# --- PostgreSQL ----------------------------------------------------------------------------

def _postgresql_existing(conn: sa.Connection, qualified: str) -> set[str]:
    return set(conn.execute(sa.text(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(:t) AND NOT tgisinternal"),
        {"t": qualified}).scalars())


def _postgresql(conn: sa.Connection, change: sa.Table, product: sa.Table, spec: WatchSpec,
                create: bool) -> tuple[Watch, bool]:
    preparer = conn.dialect.identifier_preparer
    qualified = preparer.format_table(product)
    existing = _postgresql_existing(conn, qualified)
    wanted = spec.names(conn)
    stale = _stale(existing, wanted)
    if wanted <= existing:
        if stale and create:  # left over by a creation that could not drop them
            return "watched", not _postgresql_ddl(conn, [
                f"DROP TRIGGER IF EXISTS {preparer.quote(name)} ON {qualified}"
                for name in sorted(stale)])
        return "watched", False
    if not create:
        return "unwatched", False
    schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    log_table = f"{preparer.quote_identifier(schema)}.{change.name}"
    function = f"{preparer.quote_identifier(schema)}.{WATCH_FUNCTION}"
    update = "UPDATE"
    if spec.columns is not None:
        update = "UPDATE OF " + ", ".join(preparer.quote(c) for c in spec.columns)
    created = _postgresql_ddl(conn, [
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql "
        f"AS $$ BEGIN INSERT INTO {log_table} DEFAULT VALUES; RETURN NULL; END $$",
        f"CREATE TRIGGER {spec.statement_trigger} AFTER INSERT OR DELETE OR TRUNCATE OR "
        f"{update} ON {qualified} FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        *(f"DROP TRIGGER IF EXISTS {preparer.quote(name)} ON {qualified}"
          for name in sorted(stale)),
    ])
    if created:
        return "created", False
    # Also what a concurrent creation that won looks like (duplicate name, or its lock held
    # longer than the wait): the fingerprint for this one check, no waiting period after it.
    now = _postgresql_existing(conn, qualified)
    return "unwatched", not wanted <= now


def _postgresql_ddl(conn: sa.Connection, statements: Sequence[str]) -> bool:
    """Run ``statements`` in a savepoint with a short lock wait; whether they all succeeded."""
    before = conn.execute(sa.text("SELECT current_setting('lock_timeout')")).scalar_one()
    try:
        with conn.begin_nested():
            conn.execute(sa.text("SELECT set_config('lock_timeout', :v, true)"),
                         {"v": f"{DDL_LOCK_WAIT}s"})
            for statement in statements:
                conn.execute(sa.text(statement))
    except sa.exc.DBAPIError:  # not the owner of the host's table, or its lock is held
        log.warning("Could not change the triggers on the product table; the mapping "
                    "assistant compares the fingerprint instead", exc_info=True)
        return False
    finally:
        conn.execute(sa.text("SELECT set_config('lock_timeout', :v, true)"), {"v": before})
    return True


# --- SQLite --------------------------------------------------------------------------------

def _sqlite_existing(conn: sa.Connection, product: sa.Table) -> set[str]:
    return set(conn.execute(sa.text(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
        {"t": product.name}).scalars())


def _sqlite(conn: sa.Connection, change: sa.Table, product: sa.Table, spec: WatchSpec,
            create: bool) -> tuple[Watch, bool]:
    if product.schema:  # an attached database: its triggers cannot write to the main one
        return "unwatched", False
    existing = _sqlite_existing(conn, product)
    wanted = spec.names(conn)
    stale = _stale(existing, wanted)
    if wanted <= existing and not (stale and create):
        return "watched", False
    if not create:
        return "unwatched", False
    # SQLite's DDL is transactional and a failed statement leaves the transaction intact;
    # IF NOT EXISTS makes a concurrent creation harmless. (A trigger body takes no
    # DEFAULT VALUES; a NULL id is the next one.)
    preparer = conn.dialect.identifier_preparer
    table = preparer.quote_identifier(product.name)
    statements = []
    for event, name in spec.row_triggers.items():
        on = f"AFTER {event} ON {table}"
        if event == "UPDATE" and spec.columns is not None:
            columns = [preparer.quote(c) for c in spec.columns]
            # COLLATE BINARY: a NOCASE column's change of case is a change of the index.
            changed = " OR ".join(f"OLD.{c} COLLATE BINARY IS NOT NEW.{c}" for c in columns)
            on = f"AFTER UPDATE OF {', '.join(columns)} ON {table} FOR EACH ROW WHEN {changed}"
        statements.append(f"CREATE TRIGGER IF NOT EXISTS {name} {on} "
                          f"BEGIN INSERT INTO {change.name} (id) VALUES (NULL); END")
    statements += [f"DROP TRIGGER IF EXISTS {preparer.quote(name)}" for name in sorted(stale)]
    for statement in statements:
        try:
            conn.execute(sa.text(statement))
        except sa.exc.DBAPIError:
            log.warning("Could not change the triggers on %s; the mapping assistant compares "
                        "the fingerprint instead", product.name, exc_info=True)
            return "unwatched", True
    if wanted <= existing:
        return "watched", False
    return ("created", False) if wanted <= _sqlite_existing(conn, product) else ("unwatched", True)


# --- MySQL/MariaDB -------------------------------------------------------------------------

def _mysql_existing(conn: sa.Connection, product: sa.Table) -> set[str]:
    # information_schema lists only triggers the user may see (TRIGGER privilege).
    return set(conn.execute(sa.text(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = COALESCE(:s, DATABASE()) AND EVENT_OBJECT_TABLE = :t"),
        {"s": product.schema, "t": product.name}).scalars())


def _mysql(conn: sa.Connection, change: sa.Table, product: sa.Table, spec: WatchSpec,
           create: bool) -> tuple[Watch, bool]:
    existing = _mysql_existing(conn, product)
    wanted = spec.names(conn)
    stale = _stale(existing, wanted)
    if wanted <= existing and not (stale and create):
        return "watched", False
    if not create:
        return "unwatched", False
    preparer = conn.dialect.identifier_preparer
    database = conn.execute(sa.text("SELECT DATABASE()")).scalar_one()
    log_table = f"{preparer.quote_identifier(database)}.{preparer.quote_identifier(change.name)}"
    table = preparer.format_table(product)
    schema = preparer.quote_identifier(product.schema) + "." if product.schema else ""
    insert = f"INSERT INTO {log_table} () VALUES ()"
    creates = []
    if not wanted <= existing:
        for event, name in spec.row_triggers.items():
            body = insert
            if event == "UPDATE" and spec.columns is not None:
                # Compared as bytes: under a case- and accent-insensitive collation 'Cafe' and
                # 'café' are equal, for the index they are not.
                changed = " OR ".join(
                    f"NOT (CAST(OLD.{c} AS BINARY) <=> CAST(NEW.{c} AS BINARY))"
                    for c in (preparer.quote(c) for c in spec.columns))
                body = f"BEGIN IF {changed} THEN {insert}; END IF; END"
            creates.append((name, f"CREATE TRIGGER {schema}{name} AFTER {event} ON {table} "
                                  f"FOR EACH ROW {body}"))
    # Its own connection: CREATE TRIGGER commits implicitly, and must not commit the caller's
    # work. Error 1359 (the trigger exists) means another process was quicker. The new
    # triggers exist before the old ones go (both log meanwhile): no change goes unlogged.
    with conn.engine.connect() as ddl:
        ddl.execute(sa.text("SET SESSION lock_wait_timeout = :w"), {"w": DDL_LOCK_WAIT})
        try:
            for name, statement in creates:
                try:
                    ddl.execute(sa.text(statement))
                except sa.exc.DBAPIError as exc:
                    if _mysql_errno(exc) != 1359:
                        log.warning("Could not create trigger %s on %s; the mapping assistant "
                                    "compares the fingerprint instead", name, product.name,
                                    exc_info=True)
                        return "unwatched", True
            dropped = True
            for name in sorted(stale):
                try:
                    ddl.execute(sa.text(
                        f"DROP TRIGGER IF EXISTS {schema}{preparer.quote(name)}"))
                except sa.exc.DBAPIError:  # logs more than needed; dropped on a later try
                    log.warning("Could not drop the old trigger %s on %s", name, product.name,
                                exc_info=True)
                    dropped = False
        finally:
            ddl.execute(sa.text("SET SESSION lock_wait_timeout = DEFAULT"))
            ddl.rollback()
    if not creates:
        return "watched", not dropped
    if wanted <= _mysql_existing(conn, product):
        return "created", not dropped
    return "unwatched", True


def _mysql_errno(exc: sa.exc.DBAPIError) -> Any:
    args = getattr(exc.orig, "args", ())
    return args[0] if args else None
