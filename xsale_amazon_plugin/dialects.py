"""What differs between the databases the plugin runs on (PostgreSQL, SQLite, MySQL/MariaDB)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

#: SQLAlchemy dialect names of MySQL and MariaDB (a ``mysql://`` URL may point at MariaDB).
MYSQL_FAMILY = ("mysql", "mariadb")


def is_mysql(bind: sa.Engine | sa.Connection | sa.Dialect) -> bool:
    dialect = bind if isinstance(bind, sa.Dialect) else bind.dialect
    return dialect.name in MYSQL_FAMILY


def worker_engine(engine: sa.Engine) -> sa.Engine:
    """The engine the import's own transactions (staging, apply) use.

    InnoDB defaults to REPEATABLE READ, where ``INSERT ... SELECT`` and the apply's joined
    UPDATEs take shared next-key locks on every row they read - an apply would then block (and
    be blocked by) operators linking offers. READ COMMITTED reads without those locks and sees
    other transactions' commits, as PostgreSQL's default does. The host's own engine and
    sessions keep their isolation level.
    """
    if is_mysql(engine):
        return engine.execution_options(isolation_level="READ COMMITTED")
    return engine


def session_read_committed(session: Any) -> None:
    """Start ``session``'s next transaction at READ COMMITTED on MySQL/MariaDB.

    Ends the session's current transaction first (committing it): the level can only be set
    before a transaction's first statement.
    """
    bind = session.get_bind()
    if not is_mysql(bind):
        return
    session.commit()
    session.connection(execution_options={"isolation_level": "READ COMMITTED"})
