"""The product table's change log (triggers) behind the mapping assistant's staleness check:
changes by plain SQL on other connections are noticed through the log on every database,
"nothing changed" never runs the fingerprint aggregate, what the log cannot see (MariaDB's
TRUNCATE) is caught by the fingerprint's maximum age, and without the right to create the
triggers (or with them turned off) the fingerprint is compared as before."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from xsale_amazon_plugin.suggest.triggers import is_watch_trigger, watch_spec

from .conftest import MYSQL_BASE, mysql_database
from .hostapp import make_host
from .test_suggest import PRODUCTS


def _tables(host):
    from xsale_amazon_plugin.suggest.index import suggest_tables

    return suggest_tables(host.models)


def _indexed_keys(host) -> set[str]:
    with host.app.app_context():
        t = _tables(host)
        return set(host.db.session.execute(sa.select(t.product.c.product_key)).scalars())


def _log_rows(host) -> int:
    with host.app.app_context():
        return host.db.session.execute(
            sa.select(sa.func.count()).select_from(_tables(host).change)).scalar_one()


def _refresh(host, **kwargs):
    from xsale_amazon_plugin.suggest.service import refresh_index

    with host.app.app_context():
        return refresh_index(**kwargs)


@contextmanager
def recorded(host) -> Iterator[list[str]]:
    """Every SQL statement the app's engine sends meanwhile."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with host.app.app_context():
        engine = host.db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def _fingerprinted(statements: list[str]) -> bool:
    # The aggregate hashes every row with crc32 (MariaDB), xa_crc32 (SQLite) or hashtext.
    return any("crc32(" in s.lower() or "hashtext(" in s.lower() for s in statements)


def _triggers(host) -> set[str]:
    """The plugin's triggers on the product table, as the database lists them."""
    with host.app.app_context():
        conn = host.db.session.connection()
        dialect = conn.dialect.name
        if dialect == "sqlite":
            names = conn.execute(sa.text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name = 'product'")).scalars()
        elif dialect == "postgresql":
            names = conn.execute(sa.text(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass('product') "
                "AND NOT tgisinternal")).scalars()
        else:
            names = conn.execute(sa.text(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = 'product'")).scalars()
        found = set(names)
        host.db.session.rollback()
        return {name for name in found if is_watch_trigger(name)}


def _wanted(host) -> set[str]:
    """The triggers the host's current configuration needs (names per watched column set)."""
    from xsale_amazon_plugin.suggest.service import _context

    with host.app.app_context():
        conn = host.db.session.connection()
        names = watch_spec(host.Product.__table__, _context().cols.values).names(conn)
        host.db.session.rollback()
        return names


@pytest.fixture
def other(db_url) -> Iterator[sa.Engine]:
    """Another engine on the host's database: the host's own processes writing plain SQL."""
    engine = sa.create_engine(db_url)
    yield engine
    engine.dispose()


def _run(engine: sa.Engine, sql: str, **params) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def _truncate(engine: sa.Engine) -> None:
    """TRUNCATE the way hosts reload a table that others reference."""
    with engine.begin() as conn:
        conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 0"))
        conn.execute(sa.text("TRUNCATE TABLE product"))
        conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 1"))


def test_plain_sql_on_another_connection_is_noticed_through_the_log(host, other):
    ids = host.add_products(PRODUCTS)
    built = _refresh(host)
    assert not built.checked_only and built.indexed == len(PRODUCTS)
    assert _triggers(host) == _wanted(host)
    assert len(_wanted(host)) == (1 if other.dialect.name == "postgresql" else 3)

    # nothing changed: the log is empty, no aggregate over the products
    with recorded(host) as statements:
        assert _refresh(host).checked_only
    assert statements and not _fingerprinted(statements), statements

    _run(other, "INSERT INTO product (sku, ean, name) VALUES ('NEW-1', NULL, 'Garden hose 30 m')")
    assert _log_rows(host) == 1
    with recorded(host) as statements:
        added = _refresh(host)
    assert (added.indexed, added.removed, added.version) == (1, 0, built.version + 1)
    assert len(_indexed_keys(host)) == len(PRODUCTS) + 1
    assert _log_rows(host) == 0  # the refresh consumed what it saw

    _run(other, "UPDATE product SET name = 'HDMI cable 5 m' WHERE id = :id", id=ids[6])
    updated = _refresh(host)
    assert (updated.indexed, updated.removed) == (1, 0)
    with host.app.app_context():
        t = _tables(host)
        title = host.db.session.execute(sa.select(t.product.c.title).where(
            t.product.c.product_key == str(ids[6]))).scalar_one()
    assert title == "HDMI cable 5 m"

    _run(other, "DELETE FROM product WHERE id = :id", id=ids[0])
    deleted = _refresh(host)
    assert (deleted.indexed, deleted.removed) == (0, 1)
    assert str(ids[0]) not in _indexed_keys(host)

    with recorded(host) as statements:
        assert _refresh(host).checked_only
    assert not _fingerprinted(statements)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_delete_without_where_is_logged_per_row_on_sqlite(host, other):
    """SQLite's truncate optimisation of ``DELETE FROM t`` is off while the table has
    triggers: every row is logged, and the index empties without a fingerprint."""
    host.add_products(PRODUCTS)
    _refresh(host)
    _run(other, "DELETE FROM product")
    assert _log_rows(host) == len(PRODUCTS)
    result = _refresh(host)
    assert result.removed == len(PRODUCTS) and _indexed_keys(host) == set()
    assert _log_rows(host) == 0
    # the log's ids are never reused (a refresh deletes by the ids it saw)
    with other.connect() as conn:
        ddl = conn.execute(sa.text("SELECT sql FROM sqlite_master "
                                   "WHERE name = 'xsale_amazon_suggest_change'")).scalar_one()
    assert "AUTOINCREMENT" in ddl


@pytest.mark.parametrize("db_url", ["mariadb"], indirect=True)
def test_mariadb_truncate_is_noticed_by_the_fingerprints_age(host, other):
    """TRUNCATE TABLE fires no trigger on MariaDB: the log stays empty, so the index trusts it
    until the fingerprint's verification is older than SUGGEST_FINGERPRINT_MAX_AGE, or the
    workers' periodic check verifies it (``refresh_index(verify=True)``)."""
    from xsale_amazon_plugin.suggest.auto_refresh import check_catalog

    host.add_products(PRODUCTS)
    built = _refresh(host)
    _truncate(other)
    assert _log_rows(host) == 0
    assert _refresh(host).checked_only  # verified moments ago: the log is trusted
    assert len(_indexed_keys(host)) == len(PRODUCTS)
    with host.app.app_context():
        checked = check_catalog()  # the workers' periodic check verifies the fingerprint
    assert checked["version"] == built.version + 1 and _indexed_keys(host) == set()

    host.add_products(PRODUCTS)  # logged by the triggers
    assert _refresh(host).indexed == len(PRODUCTS)
    _truncate(other)
    max_age = host.state.settings.suggest_fingerprint_max_age
    with host.app.app_context():
        catalog = _tables(host).catalog
        verified = host.db.session.execute(sa.select(catalog.c.refreshed_at)).scalar_one()
        host.db.session.execute(catalog.update().values(
            refreshed_at=verified - timedelta(seconds=max_age + 1)))
        host.db.session.commit()
    with recorded(host) as statements:
        expired = _refresh(host)
    assert _fingerprinted(statements)
    assert expired.removed == len(PRODUCTS) and _indexed_keys(host) == set()
    # verified again just now: back to the one-lookup check
    with recorded(host) as statements:
        assert _refresh(host).checked_only
    assert not _fingerprinted(statements)


def test_triggers_turned_off_compare_the_fingerprint(db_url, redis_conn, other):
    host = make_host(db_url, config={"XSALE_AMAZON_SUGGEST_TRIGGERS": False})
    try:
        host.add_products(PRODUCTS)
        _refresh(host)
        assert _triggers(host) == set()
        with recorded(host) as statements:
            assert _refresh(host).checked_only
        assert _fingerprinted(statements)
        _run(other, "UPDATE product SET name = 'Mug' WHERE sku = 'MUG-WHT-300'")
        assert _refresh(host).indexed == 1
    finally:
        host.close()


@pytest.mark.parametrize("db_url", ["mariadb"], indirect=True)
def test_mariadb_trigger_creation_commits_nothing_of_the_caller(host, other, monkeypatch):
    """CREATE TRIGGER commits implicitly on MariaDB: it runs on a connection of its own, so
    the caller's uncommitted work stays uncommitted; a caller whose transaction read the
    product table (metadata lock) gets the fingerprint after a short wait, the process does not
    try again for RETRY_AFTER seconds, and the next check after that creates the triggers."""
    from xsale_amazon_plugin.suggest import triggers as suggest_watch
    from xsale_amazon_plugin.suggest.index import ensure_fresh
    from xsale_amazon_plugin.suggest.service import _context, _pk_from_key

    host.add_products(PRODUCTS)
    with host.app.app_context():
        ctx = _context()
        session = host.db.session
        session.execute(sa.text("INSERT INTO product (sku, name) VALUES ('TMP', 'uncommitted')"))
        # the caller's INSERT holds the product table's metadata lock: creation waits 2 s
        first = ensure_fresh(session.connection(), ctx.tables, ctx.cols, ctx.affix_patterns,
                             _pk_from_key)
        assert not first.checked_only and first.product_count == len(PRODUCTS) + 1
        session.rollback()
    assert _triggers(host) == set()
    with other.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM product WHERE sku = 'TMP'")
                            ).scalar_one() == 0
    # within RETRY_AFTER the same caller pays no second wait: the fingerprint straight away
    with host.app.app_context():
        session = host.db.session
        session.execute(sa.text("INSERT INTO product (sku, name) VALUES ('TMP', 'uncommitted')"))
        with recorded(host) as statements:
            ensure_fresh(session.connection(), ctx.tables, ctx.cols, ctx.affix_patterns,
                         _pk_from_key)
        assert _fingerprinted(statements)
        assert not any("lock_wait_timeout" in q or "CREATE TRIGGER" in q for q in statements)
        session.rollback()
    assert _triggers(host) == set()
    monkeypatch.setattr(suggest_watch, "_retry_at", {})  # RETRY_AFTER has passed

    with host.app.app_context():
        session = host.db.session
        session.execute(sa.text(
            "INSERT INTO xsale_amazon_suggest_term_df (term, df) VALUES ('uncommitted', 1)"))
        result = ensure_fresh(session.connection(), ctx.tables, ctx.cols, ctx.affix_patterns,
                              _pk_from_key)
        assert result.product_count == len(PRODUCTS)
        assert _triggers(host) == _wanted(host)  # created, in the meantime
        session.rollback()
    with other.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT count(*) FROM xsale_amazon_suggest_term_df WHERE term = 'uncommitted'")
        ).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM xsale_amazon_suggest_catalog")
                            ).scalar_one() == 0  # the refresh itself was rolled back too


@contextmanager
def _mariadb_user_without_trigger_privilege(url: str) -> Iterator[str]:
    admin = sa.create_engine(MYSQL_BASE)
    name = f"xa_nt_{uuid.uuid4().hex[:8]}"
    database = sa.make_url(url).database
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{name}'"))
        conn.execute(sa.text(
            "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, "
            f"CREATE TEMPORARY TABLES, LOCK TABLES ON `{database}`.* TO '{name}'@'%'"))
    try:
        yield sa.make_url(url).set(username=name, password=name).render_as_string(
            hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP USER IF EXISTS '{name}'@'%'"))
        admin.dispose()


def test_mariadb_without_trigger_privilege_falls_back_to_the_fingerprint(redis_conn):
    with mysql_database() as url, _mariadb_user_without_trigger_privilege(url) as limited:
        owner = make_host(url)  # creates the tables: the limited user only uses them
        owner.add_products(PRODUCTS)
        owner.close()
        host = make_host(limited)
        admin = sa.create_engine(url)
        try:
            built = _refresh(host)
            assert built.indexed == len(PRODUCTS)
            with admin.connect() as conn:
                assert conn.execute(sa.text(
                    "SELECT count(*) FROM information_schema.TRIGGERS "
                    "WHERE TRIGGER_SCHEMA = DATABASE()")).scalar_one() == 0
            with recorded(host) as statements:
                assert _refresh(host).checked_only
            assert _fingerprinted(statements)
            _run(admin, "INSERT INTO product (sku, name) VALUES ('NEW-1', 'Garden hose 30 m')")
            assert _refresh(host).indexed == 1
        finally:
            admin.dispose()
            host.close()


def test_consuming_the_log_deletes_exactly_the_ids_seen(host):
    """Runs of consecutive ids (a bulk load) go by range, the rest by id; a row the refresh
    did not see (committed later, with a lower id) stays."""
    from xsale_amazon_plugin.suggest.index import _delete_seen

    ids = [*range(1, 301), 305, 307, *range(400, 450)]
    with host.app.app_context():
        change = _tables(host).change
        session = host.db.session
        session.execute(change.insert(), [{"id": i} for i in [*ids, 301, 306, 500]])
        _delete_seen(session.connection(), change, ids)
        session.commit()
        left = sorted(session.execute(sa.select(change.c.id)).scalars())
    assert left == [301, 306, 500]


def test_concurrent_first_uses_create_the_triggers_once(host):
    """Two processes' first checks at the same moment: both end with the triggers in place
    (one of each), neither fails; on PostgreSQL the loser's savepoint rolls back ("unwatched"
    for that one check), elsewhere "already exists" counts as created."""
    import threading

    from xsale_amazon_plugin.suggest.service import _context
    from xsale_amazon_plugin.suggest.triggers import watch_product_table

    with host.app.app_context():
        engine = host.db.engine
        change = _tables(host).change
        indexed = _context().cols.values
    product = host.Product.__table__
    barrier = threading.Barrier(2, timeout=30)
    results: list[str] = []
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            with engine.connect() as conn:
                barrier.wait()
                results.append(watch_product_table(conn, change, product, indexed))
                conn.commit()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(results) == 2
    allowed = {"created", "watched"}
    if engine.dialect.name == "postgresql":
        allowed.add("unwatched")
    assert set(results) <= allowed and "created" in results
    assert _triggers(host) == _wanted(host)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_periodic_check_notices_postgresql_writes_the_trigger_missed(host, other):
    """pg_restore and logical replication write with ``session_replication_role = replica``,
    under which PostgreSQL's trigger does not fire: the log stays empty, and the workers'
    periodic check, which verifies the fingerprint, still notices."""
    from xsale_amazon_plugin.suggest.auto_refresh import check_catalog

    ids = host.add_products(PRODUCTS)
    built = _refresh(host)
    with other.begin() as conn:
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        conn.execute(sa.text("UPDATE product SET name = 'HDMI cable 5 m' WHERE id = :id"),
                     {"id": ids[6]})
    assert _log_rows(host) == 0
    assert _refresh(host).checked_only  # a request trusts the log
    with host.app.app_context():
        checked = check_catalog()
    assert checked["version"] == built.version + 1
    with host.app.app_context():
        t = _tables(host)
        assert host.db.session.execute(sa.select(t.product.c.title).where(
            t.product.c.product_key == str(ids[6]))).scalar_one() == "HDMI cable 5 m"


# --- only the indexed columns ------------------------------------------------------------

def _indexed_row(host, key) -> tuple:
    with host.app.app_context():
        t = _tables(host)
        return tuple(host.db.session.execute(
            sa.select(t.product.c.sku, t.product.c.gtin, t.product.c.title)
            .where(t.product.c.product_key == str(key))).one())


def test_an_update_of_a_column_the_index_does_not_use_logs_nothing(host, other):
    """The back office's stock updates (plain SQL, another connection) write no log row and
    the next check runs no fingerprint; updates of the name, SKU or EAN are logged and
    indexed, a change of case too (MariaDB's default collation ignores case)."""
    ids = host.add_products(PRODUCTS)
    built = _refresh(host)
    _run(other, "UPDATE product SET stock = 5 WHERE id = :id", id=ids[2])
    _run(other, "UPDATE product SET stock = COALESCE(stock, 0) + 1")  # every row
    assert _log_rows(host) == 0
    with recorded(host) as statements:
        assert _refresh(host).checked_only
    assert statements and not _fingerprinted(statements), statements

    _run(other, "UPDATE product SET name = 'HDMI cable 5 m', stock = 3 WHERE id = :id",
         id=ids[6])
    _run(other, "UPDATE product SET sku = 'KB-7731-DE' WHERE id = :id", id=ids[5])
    _run(other, "UPDATE product SET ean = '4977766600018' WHERE id = :id", id=ids[1])
    assert _log_rows(host) == 3
    changed = _refresh(host)
    assert (changed.indexed, changed.version) == (3, built.version + 1)
    assert _indexed_row(host, ids[6])[2] == "HDMI cable 5 m"
    assert _indexed_row(host, ids[5])[0] == "KB-7731-DE"
    assert _indexed_row(host, ids[1])[1] == "4977766600018"

    _run(other, "UPDATE product SET name = 'HDMI CABLE 5 M' WHERE id = :id", id=ids[6])
    assert _log_rows(host) == 1
    assert _refresh(host).indexed == 1
    assert _indexed_row(host, ids[6])[2] == "HDMI CABLE 5 M"

    # the same value written again: the row triggers compare values, PostgreSQL's statement
    # trigger fires for a column in the SET list (one fingerprint, nothing re-indexed)
    _run(other, "UPDATE product SET name = name, stock = 9 WHERE id = :id", id=ids[6])
    assert _log_rows(host) == (1 if other.dialect.name == "postgresql" else 0)
    with recorded(host) as statements:
        again = _refresh(host)
    assert again.checked_only and again.version == changed.version + 1
    assert _fingerprinted(statements) == (other.dialect.name == "postgresql")
    assert _log_rows(host) == 0


def _install_old_triggers(engine: sa.Engine) -> None:
    """The triggers of the versions before the column-aware ones: every change logged."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(
                "CREATE OR REPLACE FUNCTION xsale_amazon_suggest_product_changed() RETURNS "
                "trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO xsale_amazon_suggest_change "
                "DEFAULT VALUES; RETURN NULL; END $$"))
            conn.execute(sa.text(
                "CREATE TRIGGER xsale_amazon_suggest_watch AFTER INSERT OR UPDATE OR DELETE "
                "OR TRUNCATE ON product FOR EACH STATEMENT "
                "EXECUTE FUNCTION xsale_amazon_suggest_product_changed()"))
            return
        values = "(id) VALUES (NULL)" if conn.dialect.name == "sqlite" else "() VALUES ()"
        for event, suffix in (("INSERT", "ins"), ("UPDATE", "upd"), ("DELETE", "del")):
            insert = f"INSERT INTO xsale_amazon_suggest_change {values}"
            body = (f"BEGIN {insert}; END" if conn.dialect.name == "sqlite"
                    else f"FOR EACH ROW {insert}")
            conn.execute(sa.text(f"CREATE TRIGGER xsale_amazon_suggest_watch_{suffix} "
                                 f"AFTER {event} ON product {body}"))


OLD_TRIGGERS = {"postgresql": {"xsale_amazon_suggest_watch"},
                "sqlite": {f"xsale_amazon_suggest_watch_{s}" for s in ("ins", "upd", "del")}}
OLD_TRIGGERS["mysql"] = OLD_TRIGGERS["sqlite"]


def test_an_install_with_the_old_triggers_is_upgraded_on_first_use(db_url, redis_conn, other):
    """An index built by an earlier version, whose triggers log every change: the first check
    replaces them by the column-aware ones, compares the fingerprint once (a change logged by
    the old triggers is indexed), and from then on a stock update costs nothing."""
    host = make_host(db_url, config={"XSALE_AMAZON_SUGGEST_TRIGGERS": False})
    try:
        ids = host.add_products(PRODUCTS)
        built = _refresh(host)
        _install_old_triggers(other)
        assert _triggers(host) == OLD_TRIGGERS[other.dialect.name]
        _run(other, "UPDATE product SET stock = 1")
        _run(other, "UPDATE product SET name = 'Kubek 300 ml' WHERE id = :id", id=ids[2])
        assert _log_rows(host) > 0

        host.configure(suggest_triggers=True)  # the new version starts
        with recorded(host) as statements:
            upgraded = _refresh(host)
        assert _fingerprinted(statements)  # the new triggers' log says nothing of before
        assert (upgraded.indexed, upgraded.version) == (1, built.version + 1)
        assert _indexed_row(host, ids[2])[2] == "Kubek 300 ml"
        assert _triggers(host) == _wanted(host)
        assert not _wanted(host) & OLD_TRIGGERS[other.dialect.name]
        assert _log_rows(host) == 0

        _run(other, "UPDATE product SET stock = 2")
        assert _log_rows(host) == 0
        with recorded(host) as statements:
            assert _refresh(host).checked_only
        assert not _fingerprinted(statements)
        _run(other, "UPDATE product SET name = 'Kubek 330 ml' WHERE id = :id", id=ids[2])
        assert _refresh(host).indexed == 1
    finally:
        host.close()


def test_configuring_another_name_column_recreates_the_triggers_for_it(db_url, redis_conn,
                                                                       other):
    """``XSALE_AMAZON_PRODUCT_NAME_ATTR`` pointed at another column: new triggers watch it
    (the old ones go), and the index is rebuilt from it on the first check."""
    host = make_host(db_url, extra_columns={"title": sa.Column(sa.String(255))})
    try:
        ids = host.add_products([{**p, "title": f"Shop title {i}"}
                                 for i, p in enumerate(PRODUCTS)])
        _refresh(host)
        by_name = _triggers(host)
        assert by_name == _wanted(host)

        host.configure(product_name_attr="title")
        by_title = _wanted(host)
        assert by_title.isdisjoint(by_name)
        rebuilt = _refresh(host)
        assert rebuilt.indexed == len(PRODUCTS)
        assert _indexed_row(host, ids[0])[2] == "Shop title 0"
        assert _triggers(host) == by_title

        _run(other, "UPDATE product SET name = 'Not indexed any more', stock = 4")
        assert _log_rows(host) == 0
        with recorded(host) as statements:
            assert _refresh(host).checked_only
        assert not _fingerprinted(statements)
        _run(other, "UPDATE product SET title = 'HDMI cable 5 m' WHERE id = :id", id=ids[6])
        assert _log_rows(host) == 1
        assert _refresh(host).indexed == 1
        assert _indexed_row(host, ids[6])[2] == "HDMI cable 5 m"
    finally:
        host.close()


def test_an_expression_attribute_keeps_the_triggers_that_log_every_change(host, other):
    """An indexed attribute that is an SQL expression (which columns it reads is unknown):
    every update is logged, as before."""
    from xsale_amazon_plugin.suggest.service import _context
    from xsale_amazon_plugin.suggest.triggers import watch_product_table

    ids = host.add_products(PRODUCTS)
    _refresh(host)
    with host.app.app_context():
        ctx = _context()
        product = host.Product.__table__
        upper = sa.func.upper(product.c.name)
        indexed = [ctx.cols.pk, ctx.cols.sku, ctx.cols.ean, upper]
        spec = watch_spec(product, indexed)
        assert spec.columns is None
        assert spec.identity != watch_spec(product, ctx.cols.values).identity
        assert spec != watch_spec(product, [*indexed[:3], sa.func.lower(product.c.name)])
        conn = host.db.session.connection()
        assert watch_product_table(conn, ctx.tables.change, product, indexed) == "created"
        host.db.session.commit()
        assert watch_product_table(host.db.session.connection(), ctx.tables.change, product,
                                   indexed) == "watched"
        host.db.session.commit()
        wanted = spec.names(conn)
    assert _triggers(host) == wanted
    _run(other, "DELETE FROM xsale_amazon_suggest_change")
    _run(other, "UPDATE product SET stock = 1 WHERE id = :id", id=ids[0])
    assert _log_rows(host) == 1


def test_drop_triggers_command_leaves_the_product_table_writable_without_the_plugin(
        host, other):
    """An uninstall: ``flask xsale-amazon drop-triggers``, then the plugin's tables go; the
    host's writes to its product table keep working (with the triggers left behind, they
    would fail on the missing change log)."""
    host.add_products(PRODUCTS)
    _refresh(host)
    assert _triggers(host) == _wanted(host)
    before = _log_rows(host)
    _run(other, "INSERT INTO product (sku, name) VALUES ('LOGGED-1', 'Logged')")
    assert _log_rows(host) > before  # the triggers write to the plugin's change log

    result = host.app.test_cli_runner().invoke(args=["xsale-amazon", "drop-triggers"])
    assert result.exit_code == 0, result.output
    assert all(name in result.output for name in _wanted(host))
    assert "creates them again on its next use" in result.output  # SUGGEST_TRIGGERS is on
    assert _triggers(host) == set()
    if other.dialect.name == "postgresql":
        with other.connect() as conn:
            assert conn.execute(sa.text(
                "SELECT count(*) FROM pg_proc WHERE proname = 'xsale_amazon_suggest_product_"
                "changed' AND pronamespace = current_schema()::regnamespace")).scalar_one() == 0
    again = host.app.test_cli_runner().invoke(args=["xsale-amazon", "drop-triggers"])
    assert "No trigger of the plugin on product." in again.output

    with host.app.app_context():
        host.db.session.remove()
    _run(other, "DROP TABLE xsale_amazon_suggest_change")
    _run(other, "INSERT INTO product (sku, name) VALUES ('AFTER-1', 'After the plugin')")
    _run(other, "UPDATE product SET name = 'Renamed' WHERE sku = 'AFTER-1'")
    _run(other, "DELETE FROM product WHERE sku = 'AFTER-1'")
