"""Background upkeep: expired idempotency records go, recent ones stay."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from siyu.db import Database
from siyu.housekeeping import background_upkeep, run_once
from siyu.kit import idempotency
from siyu.kit.clock import utcnow


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
        with db.engine.begin() as connection:
            connection.execute(text("ANALYZE merchants"))
            connection.execute(
                text(
                    "INSERT INTO merchants"
                    " (id, name, timezone, currency, store_number_seq, created_at, updated_at)"
                    " SELECT 'mch_loop_' || n, 'm' || n, 'Asia/Shanghai', 'CNY', 0, now(), now()"
                    " FROM generate_series(1, 2000) AS n"
                )
            )
            connection.execute(text("SELECT pg_stat_force_next_flush()"))

        def changed_since_analyze() -> int:
            with db.engine.connect() as connection:
                return int(
                    connection.execute(
                        text(
                            "SELECT n_mod_since_analyze FROM pg_stat_user_tables"
                            " WHERE schemaname = current_schema() AND relname = 'merchants'"
                        )
                    ).scalar_one()
                )

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
