"""Concurrent spends and exchanges (real threads, each its own transaction, on PostgreSQL):
never an overdraft, never more exchanges than stock or the per-member limit."""

from __future__ import annotations

import threading

import pytest

from siyu.db import Database
from siyu.kit.problems import Problem
from siyu.points import mall, service
from siyu.points.models import MallItem
from tests.points.helpers import T0, adjust, balance, ledger_totals, make_member, make_merchant
from tests.threads import run_threads

pytestmark = pytest.mark.postgres_only


def _item(db: Database, merchant: str, *, stock: int, limit: int | None = None) -> str:
    with db.unit_of_work() as session:
        values = {
            "name": "杯子",
            "kind": "goods",
            "cost_points": 10,
            "stock": stock,
            "per_member_limit": limit,
        }
        return mall.create_item(session, merchant, values, now=T0).id


class Outcomes:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok = 0
        self.refused: list[str] = []

    def run(self, work: object) -> None:
        try:
            work()  # type: ignore[operator]
        except Problem as problem:
            with self.lock:
                self.refused.append(str(problem.extra.get("reason") or problem.slug))
            return
        with self.lock:
            self.ok += 1


class TestConcurrentSpends:
    def test_twenty_spends_of_ten_from_a_hundred_exactly_ten_succeed(self, db: Database) -> None:
        # given
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        adjust(db, merchant, member, 100)
        outcomes = Outcomes()

        def work(index: int) -> None:
            def spend() -> None:
                with db.unit_of_work() as session:
                    service.spend(
                        session,
                        merchant,
                        member,
                        points=10,
                        reason="race",
                        key=f"s{index}",
                        source="t",
                        now=T0,
                    )

            outcomes.run(spend)

        # when
        run_threads(20, work)
        # then
        assert (outcomes.ok, sorted(set(outcomes.refused)), len(outcomes.refused)) == (
            10,
            ["insufficient-points"],
            10,
        )
        assert ledger_totals(db, merchant, member) == (0, 0, 0, 0)


class TestConcurrentExchanges:
    def test_exchanges_against_a_stock_of_five_exactly_five_succeed(self, db: Database) -> None:
        # given: 12 members with points for one exchange each, 5 in stock
        merchant = make_merchant(db)
        members = [make_member(db, merchant) for _ in range(12)]
        for member in members:
            adjust(db, merchant, member, 10)
        item_id = _item(db, merchant, stock=5)
        outcomes = Outcomes()

        def work(index: int) -> None:
            def exchange() -> None:
                with db.unit_of_work() as session:
                    mall.exchange(
                        session, merchant, item_id, members[index], key=f"x{index}", source="t", now=T0
                    )

            outcomes.run(exchange)

        # when
        run_threads(len(members), work)
        # then
        assert (outcomes.ok, outcomes.refused) == (5, ["out_of_stock"] * 7)
        with db.reading() as session:
            assert session.get(MallItem, (merchant, item_id)).stock == 0  # type: ignore[union-attr]
        assert sorted(balance(db, merchant, m) for m in members) == [0] * 5 + [10] * 7

    def test_one_member_racing_against_the_limit_gets_exactly_the_limit(self, db: Database) -> None:
        # given: a member with points for 10 exchanges; the item allows 2 per member
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        adjust(db, merchant, member, 100)
        item_id = _item(db, merchant, stock=50, limit=2)
        outcomes = Outcomes()

        def work(index: int) -> None:
            def exchange() -> None:
                with db.unit_of_work() as session:
                    mall.exchange(session, merchant, item_id, member, key=f"x{index}", source="t", now=T0)

            outcomes.run(exchange)

        # when
        run_threads(10, work)
        # then
        assert (outcomes.ok, outcomes.refused) == (2, ["member_limit"] * 8)
        assert ledger_totals(db, merchant, member)[:3] == (80, 80, 80)
        with db.reading() as session:
            assert session.get(MallItem, (merchant, item_id)).stock == 48  # type: ignore[union-attr]
