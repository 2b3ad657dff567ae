"""Open the review store's database: a SQLite file path or any SQLAlchemy URL, safe for many threads.

SQLite: WAL journal, a 60 s busy timeout, foreign keys on, and write transactions that start with
`BEGIN IMMEDIATE` (the write lock is taken up front, so two writers never deadlock upgrading a read
lock). PostgreSQL (`postgresql+psycopg://user@host/db`): READ COMMITTED; optimistic locking relies on
conditional UPDATEs, which are safe there. The append-only tables (`reviews`, `audit_log`) get
triggers that refuse UPDATE and DELETE on both. Transient lock/deadlock errors are retried.

    db = Database.open("curation.sqlite")           # or "postgresql+psycopg://..."
    value = db.write(lambda session: ...)          # one transaction, retried on transient errors
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Callable, TypeVar

from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.orm import Session

from curation.errors import CurationError
from curation.store.schema import APPEND_ONLY_TABLES, SCHEMA_VERSION, Base, Meta

log = logging.getLogger(__name__)
R = TypeVar("R")


class StoreError(CurationError):
    """The review store cannot be opened or used; the message names the store and the fix."""


def store_url(target: str) -> str:
    """A file path -> `sqlite:///<absolute path>`; an SQLAlchemy URL is returned unchanged."""
    if "://" in target:
        return target
    path = Path(target).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                           pool_size=32, max_overflow=32, pool_timeout=120)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None          # transactions are begun explicitly below
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=60000"):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        immediate = connection.get_execution_options().get("store_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_SQLITE_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS {t}_no_update BEFORE UPDATE ON {t}
BEGIN SELECT RAISE(ABORT, '{t} is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {t}_no_delete BEFORE DELETE ON {t}
BEGIN SELECT RAISE(ABORT, '{t} is append-only'); END;
"""
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION curation_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only'; END $$ LANGUAGE plpgsql;
"""
_PG_TRIGGER = """
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{t}_append_only') THEN
    CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t}
    FOR EACH ROW EXECUTE FUNCTION curation_append_only();
  END IF;
END $$;
"""


class Database:
    def __init__(self, engine: Engine, label: str) -> None:
        self.engine = engine
        self.label = label                                  # the URL without password, for messages
        self._write_engine = engine.execution_options(store_write=True)

    @classmethod
    def open(cls, target: str) -> "Database":
        try:
            url = make_url(store_url(str(target)))
        except ArgumentError as exc:
            raise StoreError(f"--store {target!r} is neither a file path nor an SQLAlchemy URL "
                             "(e.g. postgresql+psycopg://user@host/dbname).") from exc
        try:
            engine = _sqlite_engine(str(url)) if url.get_backend_name() == "sqlite" else create_engine(
                url, pool_size=32, max_overflow=32, pool_pre_ping=True)
        except (ImportError, NoSuchModuleError) as exc:
            raise StoreError(f"No SQLAlchemy driver for {url.drivername!r} is installed ({exc}). For PostgreSQL "
                             "install psycopg[binary] and use postgresql+psycopg://user@host/dbname.") from exc
        db = cls(engine, url.render_as_string(hide_password=True))
        db._create_schema()
        return db

    def _create_schema(self) -> None:
        try:
            with self._write_engine.begin() as conn:
                Base.metadata.create_all(conn)
                if self.engine.dialect.name == "sqlite":
                    for table in APPEND_ONLY_TABLES:
                        for statement in _SQLITE_TRIGGERS.format(t=table).split(";\n"):
                            if statement.strip():
                                conn.exec_driver_sql(statement.strip().rstrip(";") + ";")
                elif self.engine.dialect.name == "postgresql":
                    conn.exec_driver_sql(_PG_FUNCTION)
                    for table in APPEND_ONLY_TABLES:
                        conn.exec_driver_sql(_PG_TRIGGER.format(t=table))
                stored = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar()
                if stored is None:
                    conn.execute(Meta.__table__.insert().values(key="schema_version", value=SCHEMA_VERSION))
                elif stored != SCHEMA_VERSION:
                    raise StoreError(f"{self.label}: store schema version {stored}, this code needs "
                                     f"{SCHEMA_VERSION}. Export it with the matching version first.")
        except (OperationalError, DBAPIError) as exc:
            raise StoreError(f"Cannot open the review store {self.label}: {exc.orig}. Check the path/URL, "
                             "that the server runs and that you may create tables there.") from exc

    # -- sessions --------------------------------------------------------------------------------
    def read(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def write(self, work: Callable[[Session], R], attempts: int = 8) -> R:
        """Run `work(session)` in one write transaction; retried on lock/deadlock/serialisation errors."""
        for attempt in range(1, attempts + 1):
            try:
                with Session(self._write_engine, expire_on_commit=False) as session:
                    with session.begin():
                        return work(session)
            except OperationalError as exc:
                if attempt == attempts or not _transient(exc):
                    raise StoreError(f"{self.label}: database error: {exc.orig}") from exc
            except DBAPIError as exc:
                if attempt == attempts or not _transient(exc):
                    raise
            time.sleep(min(2.0, 0.01 * 2 ** attempt) * (0.5 + random.random()))
            log.info("review store busy; retrying the transaction (attempt %d)", attempt + 1)
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


def _transient(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower()
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return "locked" in message or "busy" in message or code in {"40001", "40P01"}
