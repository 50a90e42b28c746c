"""The state store: engine settings, and concurrent writers that queue instead of failing."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import StatementError

from siyu.db import Base, Database, refresh_statistics
from siyu.tenancy import facade
from siyu.tenancy.models import Merchant
from tests.conftest import Tenant
from tests.pgstats import flush_counters, grow_merchants, last_analysis


class TestEngine:
    def test_engine_settings_the_locking_relies_on(self, db: Database) -> None:
        """SQLite: WAL, busy timeout, foreign keys. PostgreSQL: READ COMMITTED (waits on unique keys)."""
        with db.engine.connect() as connection:
            if db.engine.dialect.name == "sqlite":
                assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 15_000
                assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            else:
                isolation = connection.execute(text("SHOW transaction_isolation")).scalar()
                assert isolation == "read committed"

    def test_times_come_back_aware_utc_on_every_engine(self, db: Database) -> None:
        # given: a merchant created at 08:00 in Shanghai
        shanghai = timezone(timedelta(hours=8))
        with db.unit_of_work() as session:
            merchant = facade.create_merchant(session, name="时区")
            row = session.get(Merchant, merchant.id)
            assert row is not None
            row.created_at = datetime(2026, 1, 1, 8, 0, tzinfo=shanghai)
        # when
        with db.reading() as session:
            loaded = session.get(Merchant, merchant.id)
        # then
        assert loaded is not None
        assert loaded.created_at == datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc)  # noqa: UP017
        assert loaded.created_at.utcoffset() == timedelta(0)

    def test_naive_datetimes_are_refused(self, db: Database) -> None:
        with db.unit_of_work() as session:
            merchant = facade.create_merchant(session, name="naive")
            row = session.get(Merchant, merchant.id)
            assert row is not None
            row.created_at = datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
            with pytest.raises(StatementError, match="naive"):
                session.flush()
            session.rollback()


class TestConcurrentWriters:
    def test_parallel_writes_all_succeed(self, live_server: str, tenant: Tenant, db: Database) -> None:
        """Eight clients writing at once: every write lands, none fails with a lock error."""
        # given
        barrier = threading.Barrier(8)
        statuses: list[int] = []
        lock = threading.Lock()

        def writer(index: int) -> None:
            with httpx.Client(base_url=live_server, timeout=30) as http:
                barrier.wait()
                for n in range(5):
                    response = http.post(
                        "/api/v1/stores", json={"name": f"店{index}-{n}"}, headers=tenant.headers
                    )
                    with lock:
                        statuses.append(response.status_code)

        # when
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # then
        assert statuses.count(201) == 40, statuses
        with db.reading() as session:
            stores = facade.list_stores(session, tenant.merchant_id)
        assert len({s.code for s in stores}) == 40


@pytest.mark.postgres_only
class TestPlannerStatistics:
    """PostgreSQL plans from statistics; with autovacuum off or behind, a table that grew from
    empty is planned as if it were still empty (measured: ingestion fell from ~3,000 to ~1,100
    events/s over 600 k events). :func:`refresh_statistics` analyzes what changed enough."""

    def test_a_table_that_grew_is_analyzed_once(self, db: Database) -> None:
        # given: a merchant table grown by 2,000 rows since its statistics
        grow_merchants(db, "mch_stat_")
        # when
        first = refresh_statistics(db.engine)
        second = refresh_statistics(db.engine)
        # then
        assert "merchants" in first
        assert "merchants" not in second
        analyzed, changed = last_analysis(db, "merchants")
        # earlier tests' backends flush their counters up to 10 s late: a few rows, never 2,000
        assert analyzed
        assert changed < 1000

    def test_small_changes_are_left_alone(self, db: Database) -> None:
        with db.engine.begin() as connection:
            connection.execute(text("ANALYZE merchants"))
        with db.unit_of_work() as session:
            facade.create_merchant(session, name="one more")
            flush_counters(session.connection())
        assert "merchants" not in refresh_statistics(db.engine)


class TestPlannerStatisticsEveryEngine:
    def test_only_siyu_tables_and_nothing_on_sqlite(self, db: Database) -> None:
        analyzed = refresh_statistics(db.engine)
        if db.engine.dialect.name == "sqlite":
            assert analyzed == []  # SQLite's planner does not depend on statistics for these queries
        else:
            assert set(analyzed) <= set(Base.metadata.tables)
