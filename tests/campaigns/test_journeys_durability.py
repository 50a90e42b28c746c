"""A restart loses nobody and sends nothing twice; concurrent advancers take each step once.

The killed advancer is a real ``siyu campaigns journeys advance`` process, killed with SIGKILL. On
PostgreSQL the test makes sure the kill lands inside an open transaction that has already taken
steps: once some batches are committed, it locks the campaign row, which the advancer's next step
needs (an assignment's foreign key check, or the budget reserved by one conditional ``UPDATE`` of
that row), waits until the advancer is blocked by that lock, and only then kills it. On SQLite
(one writer at a time, no row locks) it kills the process once some steps are committed: almost
all of an advancer's time is spent inside a transaction.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from siyu.campaigns import journeys
from siyu.campaigns.journey_models import JourneyStep
from siyu.config import Settings
from siyu.db import Database, is_postgres
from siyu.outbox.models import OutboxItem
from tests.campaigns.helpers import add_members
from tests.campaigns.journey_helpers import (
    T0,
    add_journey,
    key_counts,
    make_merchant,
    paths,
    points_journey,
    states,
)
from tests.conftest import DatabaseUnderTest

EXPECTED = [("start", "entered"), ("gift", "treated"), ("again", "treated"), ("end", "exit")]


def enrolled(db: Database, count: int, **values: object) -> tuple[str, str, list[str]]:
    merchant = make_merchant(db)
    campaign = add_journey(db, merchant, points_journey(), **values)
    with db.unit_of_work() as session:
        member_ids = add_members(session, merchant, count)
        journeys.enrol(session, merchant, campaign, member_ids, now=T0)
    return merchant, campaign.id, member_ids


def step_count(db: Database, merchant_id: str) -> int:
    with db.reading() as session:
        return int(
            session.execute(select(func.count()).where(JourneyStep.merchant_id == merchant_id)).scalar_one()
        )


def assert_walked_once(db: Database, merchant_id: str, campaign_id: str, member_ids: list[str]) -> None:
    """Every member at the exit, one log entry per step, one treatment and one outbox item per key."""
    found = states(db, merchant_id, campaign_id)
    assert {found[m].status for m in member_ids} == {"done"}
    assert paths(db, merchant_id, campaign_id) == dict.fromkeys(member_ids, EXPECTED)
    keys = key_counts(db, merchant_id, campaign_id)
    assert set(keys) == {f"{campaign_id}:{m}:{node}:0" for m in member_ids for node in ("gift", "again")}
    assert set(keys.values()) == {1}
    with db.reading() as session:
        items = Counter(
            session.execute(select(OutboxItem.key).where(OutboxItem.merchant_id == merchant_id)).scalars()
        )
    assert len(items) == 2 * len(member_ids)
    assert set(items.values()) == {1}


class TestKilledAdvancer:
    def test_a_restart_after_kill_minus_nine_loses_nobody_and_sends_nothing_twice(
        self, db: Database, test_database: DatabaseUnderTest, settings: Settings, tmp_path: Path
    ) -> None:
        # given: 600 members due at the entry of entry → points → points → exit
        members = 600
        merchant, campaign_id, member_ids = enrolled(db, members)
        env = {
            **os.environ,
            "SIYU_DATABASE_URL": test_database.url,
            "SIYU_DATA_DIR": str(tmp_path / "data"),
            "SIYU_SECRET_KEY": settings.resolved_secret_key(),
        }
        command = [sys.executable, "-m", "siyu.cli", "campaigns", "journeys", "advance", "-m", merchant]
        command += ["--batch", "20", "--now", T0.isoformat(), "--json"]
        # when: the advancer is killed part-way
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while step_count(db, merchant) < 100:
                assert process.poll() is None, process.communicate()[0].decode(errors="replace")
                assert time.monotonic() < deadline, "the advancer took no steps"
                time.sleep(0.05)
            with holding_campaign_row(db, merchant, campaign_id) if is_postgres(db.engine) else nullcontext():
                process.send_signal(signal.SIGKILL)
                output = process.communicate(timeout=60)[0].decode(errors="replace")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(60)
        assert process.returncode == -signal.SIGKILL, output
        # then: the kill left members part-way, and only whole steps behind
        taken = step_count(db, merchant)
        assert 100 <= taken < 4 * members
        unfinished = [m for m, s in states(db, merchant, campaign_id).items() if s.status != "done"]
        assert unfinished
        # when: it runs again
        report = journeys.advance_due(db, now=T0, merchant_id=merchant)
        # then
        assert report.postponed == 0
        assert_walked_once(db, merchant, campaign_id, member_ids)


@contextmanager
def holding_campaign_row(db: Database, merchant_id: str, campaign_id: str) -> Iterator[None]:
    """Lock the campaign row and wait until another backend is blocked by this lock: the
    advancer, inside a batch (its next assignment or budget reservation needs the row)."""
    with db.engine.connect() as connection, connection.begin():
        connection.execute(
            text("SELECT 1 FROM campaigns WHERE merchant_id = :m AND id = :c FOR UPDATE"),
            {"m": merchant_id, "c": campaign_id},
        )
        me = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        deadline = time.monotonic() + 60
        while True:
            with db.engine.connect() as probe:
                blocked = probe.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE :me = ANY(pg_blocking_pids(pid))"),
                    {"me": me},
                ).scalar_one()
            if blocked:
                break
            assert time.monotonic() < deadline, "the advancer never reached the campaign row"
            time.sleep(0.02)
        yield  # leaving the block ends the transaction (it wrote nothing): the lock goes


@pytest.mark.postgres_only
class TestConcurrentAdvancers:
    def test_two_advancers_at_once_take_each_step_exactly_once(self, db: Database) -> None:
        # given
        members = 300
        merchant, campaign_id, member_ids = enrolled(db, members)
        start = threading.Barrier(2)
        reports: list[journeys.AdvanceReport] = []
        errors: list[BaseException] = []

        def advancer() -> None:
            try:
                start.wait()
                reports.append(journeys.advance_due(db, now=T0, batch=10, merchant_id=merchant))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=advancer) for _ in range(2)]
        # when
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        # then: the steps add up exactly — none taken twice, none lost — and both did work
        assert errors == []
        assert sum(r.steps for r in reports) == 3 * members
        assert all(r.steps > 0 for r in reports)
        assert_walked_once(db, merchant, campaign_id, member_ids)
