"""A member created by an ingested batch is classified from the batch alone (nothing is read for
it); the outcome must be what reading its stage row, rollup and events gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from siyu.db import Database
from siyu.lifecycle import repository as repo
from siyu.lifecycle.models import MemberStage, StageTransition
from siyu.lifecycle.service import Cause, evaluate
from tests.lifecycle.helpers import event, make_merchant, send

NOW = datetime(2026, 6, 10, 6, 0, tzinfo=UTC)


def stage_row(db: Database, merchant_id: str, member_id: str) -> tuple[object, ...]:
    with db.reading() as session:
        row = session.get(MemberStage, (merchant_id, member_id))
        assert row is not None
        return (row.stage, row.since, row.due_on, row.seq)


class TestNewMembersFromTheirBatch:
    def test_a_new_members_stage_is_what_a_full_read_gives(self, db: Database, client: TestClient) -> None:
        # given: new members whose first batch holds old and new events of several kinds
        merchant_id = make_merchant(db)
        vault = client.app.state.vault  # type: ignore[attr-defined]
        batch = [
            event("a1", "orders", "order_paid", NOW - timedelta(days=40), 5000),
            event("a2", "orders", "visit", NOW - timedelta(hours=1)),
            event("b1", "engaged", "visit", NOW - timedelta(days=2)),
            event("b2", "engaged", "scan", NOW - timedelta(days=1)),
            event("b3", "engaged", "visit", NOW - timedelta(hours=2)),
            event("c1", "quiet", "visit", NOW - timedelta(days=70)),
            event("d1", "new", "visit", NOW),
        ]
        # when
        members = send(db, vault, merchant_id, batch, now=NOW)
        stages = {name: stage_row(db, merchant_id, m) for name, m in members.items()}
        with db.unit_of_work() as session:  # classify again, reading everything
            repo.forget_recent(session, merchant_id, list(members.values()))
            again = evaluate(session, merchant_id, list(members.values()), now=NOW, cause=Cause.REBUILD)
        # then
        assert {name: s[0] for name, s in stages.items()} == {
            "orders": "first_order",
            "engaged": "high_potential",
            "quiet": "dormant",
            "new": "stranger",
        }
        assert again.transitions == 0
        assert {name: stage_row(db, merchant_id, m) for name, m in members.items()} == stages
        with db.reading() as session:
            ledger = session.execute(
                select(StageTransition.member_id, StageTransition.to_stage).where(
                    StageTransition.merchant_id == merchant_id
                )
            ).all()
        assert sorted(ledger) == sorted((members[name], s[0]) for name, s in stages.items())
