"""Background upkeep: expired idempotency records go, recent ones stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from siyu.db import Database
from siyu.housekeeping import run_once
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
