"""The case database: one engine per URL, sessions that commit or roll back as a whole."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from infra.settings import get_settings


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and use psycopg 3, which the project installs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@lru_cache
def engine_for(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        # hide_parameters: a failed statement's error never carries what it was writing (an
        # account, a name) into a log or a Prefect state message.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            dbapi_connection.isolation_level = None  # let SQLAlchemy's begin event decide

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection) -> None:  # type: ignore[no-untyped-def]
            # Take the write lock up front: a read-then-write transaction can never hit a stale
            # snapshot, so compare-and-set on the case state is safe on SQLite too.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         hide_parameters=True)


def get_engine() -> Engine:
    return engine_for(get_settings().case_database_url)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work: everything inside commits together, or nothing does."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def create_schema() -> None:
    """Bring the schema up to date through the migrations, so upgrades never lose cases."""
    from infra.migrations import upgrade_to_head

    url = get_settings().case_database_url
    upgrade_to_head(url)
    if url.startswith("sqlite:///"):
        make_private(Path(url.removeprefix("sqlite:///")))


def make_private(database: Path) -> None:
    """A SQLite file (and its WAL and shared-memory files) readable by this user only, even if
    an older version or another umask created it."""
    for path in (database, database.with_name(database.name + "-wal"),
                 database.with_name(database.name + "-shm")):
        if path.exists():
            path.chmod(0o600)
