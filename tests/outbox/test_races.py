"""Several workers at once on PostgreSQL: disjoint claims (``FOR UPDATE SKIP LOCKED``), each item
handled exactly once when nothing fails; and an SQLite round under concurrent workers too."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from siyu.db import Database
from siyu.outbox import facade as outbox
from siyu.outbox import repository
from siyu.outbox.facade import NewItem, RetryPolicy
from tests.conftest import Tenant
from tests.outbox import helpers
from tests.outbox.helpers import Recorder, item
from tests.threads import run_threads

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
POLICY = RetryPolicy(lease=timedelta(minutes=10))


@pytest.fixture
def rec() -> Iterator[Recorder]:
    yield from helpers.reset()


def fill(db: Database, merchant_id: str, count: int) -> list[str]:
    keys = [f"race-{n:04d}" for n in range(count)]
    with db.unit_of_work() as session:
        outbox.enqueue_many(session, merchant_id, [NewItem("test.record", k, {"k": k}) for k in keys], now=T0)
    return keys


def drain(db: Database, workers: int, batch: int) -> Counter[str]:
    processed: Counter[str] = Counter()
    lock = threading.Lock()

    def work(index: int) -> None:
        name = f"worker-{index}"
        while True:
            n = outbox.run_once(db, limit=batch, now=T0, policy=POLICY, worker=name)
            with lock:
                processed[name] += n
            if n == 0:
                return

    run_threads(workers, work)
    return processed


class TestSeveralWorkers:
    @pytest.mark.postgres_only
    def test_each_item_is_handled_exactly_once_by_racing_workers(
        self, db: Database, tenant: Tenant, rec: Recorder
    ) -> None:
        # given
        keys = fill(db, tenant.merchant_id, 400)
        # when: six workers drain the outbox at once, in small batches
        processed = drain(db, workers=6, batch=7)
        # then
        assert sum(processed.values()) == len(keys)
        assert sorted(rec.keys()) == keys, "every item once, none twice"
        for key in keys[::50]:
            row = item(db, tenant.merchant_id, key)
            assert (row.status, row.attempts) == ("done", 1)

    @pytest.mark.postgres_only
    def test_a_claim_skips_rows_another_worker_holds_instead_of_waiting(
        self, db: Database, tenant: Tenant
    ) -> None:
        # given: worker A has claimed 5 items and not committed yet (it holds their row locks)
        fill(db, tenant.merchant_id, 10)
        holder = db.sessions()
        try:
            first = repository.claim(holder, now=T0, limit=5, lease_until=T0 + POLICY.lease, worker="A")
            # when: worker B claims meanwhile (and would fail, not hang, if it had to wait)
            with db.unit_of_work() as session:
                session.execute(text("SET LOCAL lock_timeout = '3s'"))
                second = repository.claim(
                    session, now=T0, limit=10, lease_until=T0 + POLICY.lease, worker="B"
                )
            holder.commit()
        finally:
            holder.close()
        # then: B took the other five
        assert len(first) == 5
        assert len(second) == 5
        assert not {c.key for c in first} & {c.key for c in second}

    def test_concurrent_workers_on_this_engine_deliver_each_item_once(
        self, db: Database, tenant: Tenant, rec: Recorder
    ) -> None:
        # given (SQLite: claims serialise on the write lock; PostgreSQL: SKIP LOCKED)
        keys = fill(db, tenant.merchant_id, 60)
        # when
        drain(db, workers=3, batch=5)
        # then
        assert sorted(rec.keys()) == keys
