"""Engine, sessions and the unit of work; the column types every module shares.

One unit of work per request or command: :func:`unit_of_work` commits once at the end or rolls
back on any exception. Services never commit.

SQLite runs in WAL mode with a busy timeout and foreign keys on, and every transaction starts
with ``BEGIN IMMEDIATE`` so that two writers queue on the busy timeout instead of failing with
"database is locked" when a reader upgrades to a writer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import JSON, DateTime, Engine, MetaData, bindparam, create_engine, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

SQLITE_CACHE_KIB = 65_536
SQLITE_BUSY_TIMEOUT_MS = 15_000
READ_ONLY_OPTION = "siyu_read_only"
"""Execution option for sessions that only read: on SQLite they begin a deferred transaction,
so readers never queue for the write lock (WAL lets them read while one writer writes)."""

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


Reference = tuple[tuple[str, ...], str, tuple[str, ...]]
"""``(columns, parent table, parent columns)``: a reference the database does not enforce."""

OF_MEMBER: Reference = (("merchant_id", "member_id"), "members", ("merchant_id", "id"))
OF_MERCHANT: Reference = (("merchant_id",), "merchants", ("id",))


def unenforced(*references: Reference) -> dict[str, Any]:
    """The ``__table_args__`` entry of a table written on every ingested event whose references
    to members (or merchants) are declared here instead of as foreign keys.

    A foreign key costs each inserted row a look-up of its parent, and on PostgreSQL a
    ``FOR KEY SHARE`` lock on it as well: measured on the ingestion path (2026-11-29, 60,000
    events over 200,000 members), the twelve such tables' foreign keys were ~120 µs of server
    time per event, 22–25 % of PostgreSQL's throughput and 9 % of SQLite's. Members and
    merchants are never deleted (erasure and merges keep the row), and these rows are written
    only for members resolved in the same transaction; :func:`siyu.integrity.orphans` (``siyu db
    check``, and the ingestion tests) finds any row whose parent is missing.
    """
    return {"info": {"references": references}}


class Base(DeclarativeBase):
    """Declarative base of every table; constraint names are deterministic for migrations."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE`` that only accepts aware values and always returns UTC.

    SQLite has no time-zone type and hands back naive values; this restores UTC on the way out
    so that code never sees a naive datetime.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JSONDocument(TypeDecorator[Any]):
    """A JSON document: ``JSON`` on SQLite, ``JSONB`` on PostgreSQL."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


JSONType = JSONDocument


def _sqlite_local_date(value: str | None, zone: str) -> str | None:
    """``siyu_local_date(ts, zone)``: the local day of a stored UTC timestamp, for the zones whose
    offset changes (see :func:`siyu.analytics.relations.local_date`)."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value).replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(zone)).date().isoformat()


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.create_function("siyu_local_date", 2, _sqlite_local_date, deterministic=True)
    # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _sqlite_on_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # 64 MiB of page cache per connection (the default is 2 MiB): ingestion inserts into the
    # per-member event index at random places, and a page in cache is a page not read again.
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    if connection.get_execution_options().get(READ_ONLY_OPTION):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_db_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url`` with the settings each supported engine needs."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            from pathlib import Path

            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            poolclass=NullPool if database in ("", ":memory:") else None,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    engine = create_engine(
        url,
        echo=echo,
        # Pinged on checkout only after PING_AFTER_IDLE_SECONDS unused (see _pinger).
        pool_pre_ping=False,
        # Connections kept open per process: a busy worker runs up to ~40 requests at once, and a
        # connection opened beyond the pool is closed again when returned — measured under a hot
        # coupon drop, that churn (a new PostgreSQL backend per request) cost more than the claim.
        # 2 workers × 30 stays well inside PostgreSQL's default max_connections of 100.
        pool_size=20,
        max_overflow=10,
        # No server-side prepared statements: psycopg prepares a query after 5 runs, and
        # PostgreSQL may then keep a generic plan made while a table was nearly empty (measured:
        # the event-id lookup scanned the merchant's events instead of the primary key, 10×
        # slower). Batch statements are few and large; planning each is cheap. (The coupon
        # claim prepares its one statement explicitly: siyu.coupons.repository.claim_alone.)
        connect_args={"prepare_threshold": None},
    )
    event.listen(engine, "connect", _mark_returned)
    event.listen(engine, "checkin", _mark_returned)
    event.listen(engine, "checkout", _pinger(engine.dialect))
    return engine


PING_AFTER_IDLE_SECONDS = 2.0
"""A pooled PostgreSQL connection is pinged before use only if it sat unused this long.

``pool_pre_ping`` pings on every checkout: one more round trip per request, measured at 13 % of
a worker's wall time in a coupon drop (whose claim is otherwise one round trip). A connection
returned moments ago is alive unless the server went away in those moments; then the request
fails once, the engine sees the disconnect and replaces the pool's connections."""


def _mark_returned(_dbapi_connection: Any, record: Any, *_: Any) -> None:
    record.info["returned_at"] = time.monotonic()


def _pinger(dialect: Dialect) -> Any:
    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is not None and time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool discards this connection and checks out another
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc

    return ping_if_idle


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (handlers serialise them after)."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def make_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for read-only work (GET requests, reports): no write lock on SQLite."""
    return sessionmaker(bind=engine.execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False)


class Database:
    """The engine and the two session factories of one Siyu instance."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = create_db_engine(url, echo=echo)
        self.sessions = make_session_factory(self.engine)
        self.read_sessions = make_read_session_factory(self.engine)

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A write transaction (see :func:`unit_of_work`)."""
        with unit_of_work(self.sessions) as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session; closing it ends (rolls back) the transaction but keeps loaded objects."""
        session = self.read_sessions()
        try:
            yield session
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit when the block ends normally, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_postgres(engine: Engine) -> bool:
    """True when ``engine`` talks to PostgreSQL (some statements differ, e.g. SKIP LOCKED)."""
    return engine.dialect.name == "postgresql"


log = logging.getLogger("siyu.db")

ANALYZE_BASE_ROWS = 1_000
ANALYZE_SCALE = 0.1
"""A table is re-analyzed once ``1,000 + 10 %`` of its rows changed since its last statistics
(autovacuum's rule, with a larger base so small tables are left alone)."""

_STALE_TABLES = text(
    "SELECT s.relname, s.n_mod_since_analyze, c.reltuples"
    " FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid"
    " WHERE s.schemaname = current_schema() AND s.relname IN :names"
).bindparams(bindparam("names", expanding=True))


def refresh_statistics(engine: Engine) -> list[str]:
    """PostgreSQL: ``ANALYZE`` each Siyu table that changed enough since its statistics were
    taken; the tables analyzed. SQLite: nothing (``[]``).

    PostgreSQL's planner works from statistics that only ``ANALYZE`` (or autovacuum) refreshes.
    Where autovacuum is off — as on the development machine — or lags behind a bulk load, a table
    that grew from empty keeps being planned as empty: lookups by member or by event id turn into
    scans of the whole merchant (measured: ingestion fell from ~3,000 to ~1,100 events/s over
    600 k events, and recovered with fresh statistics). ``siyu serve`` calls this every
    :data:`siyu.housekeeping.STATISTICS_INTERVAL_SECONDS`, imports after every few chunks. With
    autovacuum on it usually finds nothing to do: autovacuum's own analyze resets the counters.
    """
    if not is_postgres(engine):
        return []
    names = sorted(Base.metadata.tables)
    with engine.connect() as connection:
        rows = connection.execute(_STALE_TABLES, {"names": names}).all()
    stale = sorted(
        name for name, changed, tuples in rows if changed > ANALYZE_BASE_ROWS + ANALYZE_SCALE * max(tuples, 0)
    )
    for name in stale:
        with engine.begin() as connection:
            connection.execute(text(f'ANALYZE "{name}"'))
    if stale:
        log.debug("analyzed %s", ", ".join(stale))
    return stale


class StatisticsKeeper:
    """:func:`refresh_statistics` at most every ``interval`` seconds, for long loops that run
    outside ``siyu serve`` (a CLI import of millions of rows in its own process)."""

    def __init__(self, engine: Engine, interval: float = 15.0) -> None:
        self.engine = engine
        self.interval = interval
        self._last = time.monotonic()

    def tick(self) -> list[str]:
        """Refresh if ``interval`` passed since the last refresh (or since start)."""
        if time.monotonic() - self._last < self.interval:
            return []
        self._last = time.monotonic()
        return refresh_statistics(self.engine)


def autovacuum_enabled(engine: Engine) -> bool | None:
    """PostgreSQL's ``autovacuum`` setting (``None`` on SQLite)."""
    if not is_postgres(engine):
        return None
    with engine.connect() as connection:
        return connection.execute(text("SHOW autovacuum")).scalar() == "on"


class AsyncStatements:
    """A few autocommit PostgreSQL connections used from the event loop itself (psycopg's async
    API), for a hot one-statement write that must not pay a worker-thread hand-off per request
    (the coupon claim). Opened on first use, at most ``size`` at once (callers beyond that wait
    their turn), closed by :meth:`close` — the application's lifespan owns one per event loop.

    Only for statements that need no transaction around them: each one commits on its own."""

    def __init__(self, engine: Engine, size: int) -> None:
        """Create it in the event loop that will use it (the lifespan's)."""
        _, params = engine.dialect.create_connect_args(engine.url)
        self._params: dict[str, Any] = {**params, "autocommit": True}
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(size)
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._closed = False

    def usable_here(self) -> bool:
        """Running in the loop that owns these connections (a test may serve the same app from
        several loops) and not closed."""
        try:
            return asyncio.get_running_loop() is self._loop and not self._closed
        except RuntimeError:
            return False

    async def fetchone(self, statement: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """Run ``statement`` (prepared on each connection) and answer its first row."""
        async with self._slots:
            connection = self._idle.pop() if self._idle else None
            if connection is None or connection.closed:
                connection = await psycopg.AsyncConnection.connect(**self._params)
            try:
                cursor = await connection.execute(statement, params, prepare=True)
                row = await cursor.fetchone()
            except BaseException:
                await connection.close()  # its state is unknown after an error: never reused
                raise
            if self._closed:
                await connection.close()
            else:
                self._idle.append(connection)
            return row

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()
