"""Background upkeep: expired idempotency records go, recent ones stay."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from siyu.db import Database
from siyu.housekeeping import background_upkeep, run_once
from siyu.kit import idempotency
from siyu.kit.clock import utcnow
from tests.pgstats import grow_merchants, last_analysis


class TestHousekeeping:
    def test_purges_only_expired_idempotency_records(self, db: Database) -> None:
        # given
        now = utcnow()
        with db.unit_of_work() as session:
            idempotency.reserve(session, "p", "old", "h", now - idempotency.RETENTION - timedelta(minutes=1))
            idempotency.reserve(session, "p", "new", "h", now - timedelta(days=1))
        # when
        result = run_once(db)
        # then
        assert result["idempotency_records_purged"] == 1
        with db.reading() as session:
            keys = session.execute(select(idempotency.IdempotencyRecord.key)).scalars().all()
        assert keys == ["new"]


@pytest.mark.postgres_only
class TestStatisticsLoop:
    def test_the_server_loop_analyzes_a_grown_table(self, db: Database) -> None:
        # given: 2,000 merchants added since the table's statistics were taken
        grow_merchants(db, "mch_loop_")

        def changed_since_analyze() -> int:
            return last_analysis(db, "merchants")[1]

        assert changed_since_analyze() >= 2000

        # when: the app's background upkeep runs with a short statistics interval
        async def serve_briefly() -> None:
            async with background_upkeep(db, interval=3600, statistics_interval=0.05):
                for _ in range(100):
                    await asyncio.sleep(0.05)
                    if changed_since_analyze() == 0:
                        return

        asyncio.run(serve_briefly())
        # then
        assert changed_since_analyze() == 0
