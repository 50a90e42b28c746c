"""Concurrent batches and sweeps on the same members (real threads, each its own transaction;
on PostgreSQL they really overlap, on SQLite the writers queue): the ledger stays a chain —
entries numbered 1…n, each starting where the previous one ended — the stage row is its last
word, and the final stage is the one the rules give over all the events."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import select

from siyu.db import Database
from siyu.events.service import ingest
from siyu.kit.clock import utcnow
from siyu.lifecycle import service
from siyu.lifecycle.models import MemberStage
from siyu.lifecycle.rules import Happening, StageRules
from tests.lifecycle.helpers import event, ledger, make_merchant, send
from tests.lifecycle.oracle import stage_from_scratch
from tests.threads import run_threads

SHANGHAI = ZoneInfo("Asia/Shanghai")
MEMBERS = ["m0", "m1", "m2", "m3"]


def happening(e: dict[str, Any]) -> Happening:
    day = datetime.fromisoformat(e["occurred_at"]).astimezone(SHANGHAI).date()
    return Happening(day, e["type"], e["properties"].get("amount_fen"))


class TestConcurrentWriters:
    def test_batches_and_sweeps_at_once_keep_every_ledger_a_chain(
        self, db: Database, client: TestClient
    ) -> None:
        # given: members whose last activity was 70 days ago (due to turn dormant today)
        vault = client.app.state.vault  # type: ignore[attr-defined]
        merchant_id = make_merchant(db, "Asia/Shanghai")
        now = utcnow()
        old = now - timedelta(days=70)
        first = [event(f"old-{m}", m, "order_paid", old, 100) for m in MEMBERS]
        ids = send(db, vault, merchant_id, first, now=old)
        rng = random.Random(7)
        batches = [
            [
                event(f"t{n}-{m}", m, rng.choice(["visit", "order_paid"]), now - timedelta(minutes=n), 20_000)
                for m in rng.sample(MEMBERS, k=3)
            ]
            for n in range(8)
        ]

        def work(index: int) -> None:
            with db.unit_of_work() as session:
                if index < len(batches):
                    verdicts = ingest(session, vault, merchant_id, batches[index], now=now)
                    assert all(v.status == "accepted" for v in verdicts)
                else:
                    service.sweep(session, merchant_id, now=now)

        # when: 8 batches and 4 sweeps at once
        run_threads(len(batches) + 4, work)
        # then: every ledger is a chain ending in the stage row…
        entries = ledger(db, merchant_id)
        with db.reading() as session:
            rows = dict(
                session.execute(
                    select(MemberStage.member_id, MemberStage.stage).where(
                        MemberStage.merchant_id == merchant_id
                    )
                ).all()
            )
        assert set(entries) == set(ids.values())
        for chain in entries.values():
            assert [e.seq for e in chain] == list(range(1, len(chain) + 1))
            assert [e.from_stage for e in chain] == [None] + [e.to_stage for e in chain[:-1]]
            assert rows[chain[0].member_id] == chain[-1].to_stage
        # …and its last word is the stage the rules give over all the member's events
        today = now.astimezone(SHANGHAI).date()
        for member in MEMBERS:
            sent = [
                e for e in first + [e for b in batches for e in b] if e["identities"]["member_no"] == member
            ]
            want = stage_from_scratch([happening(e) for e in sent], today, StageRules())
            assert want is not None
            assert entries[ids[member]][-1].to_stage == want.value, member
