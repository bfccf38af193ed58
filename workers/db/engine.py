"""One SQLAlchemy engine per database URL, one transaction per ``session_scope()``, and the
migration step every process runs at start.

SQLite gets WAL, foreign keys and a busy timeout, so an API process and a worker can write
the same file; PostgreSQL needs nothing special. ``migrate()`` serialises concurrent starts
(a file lock beside a SQLite database, an advisory lock on PostgreSQL), so two processes that
start together never both create the tables.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from workers.settings import load_settings

_MIGRATIONS = Path(__file__).with_name("migrations")
_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
_lock = threading.Lock()
_ADVISORY_LOCK_ID = 0x51647_1173  # any constant: the lock only needs to be ours


def database_url(url: str | None = None) -> str:
    return url or load_settings().database_url


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def get_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: the settings' database), made once per process."""
    url = database_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite":
                if parsed.database and parsed.database != ":memory:":
                    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
            _engines[url] = engine
        return engine


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    factory = sessionmaker(bind=get_engine(url), expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str | None = None) -> None:
    """Bring the database to the newest revision (idempotent; once per process and URL)."""
    from alembic import command

    url = database_url(url)
    if url in _migrated:
        return
    engine = get_engine(url)
    if engine.dialect.name == "sqlite":
        database = make_url(url).database
        lock_path = Path(f"{database}.migrate.lock") if database and database != ":memory:" else None
        if lock_path is None:
            command.upgrade(_alembic_config(url), "head")
        else:
            with open(lock_path, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    command.upgrade(_alembic_config(url), "head")
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
            try:
                command.upgrade(_alembic_config(url), "head")
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _ADVISORY_LOCK_ID})
                connection.commit()
    _migrated.add(url)
