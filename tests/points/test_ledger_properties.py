"""The ledger under any sequence of commands (hypothesis state machine, real database).

Over earn, spend, expiry (the clock moves on), refund and adjust, in any order, for two members:
the balance equals the sum of the entries, no lot goes below zero, the lots hold exactly the
positive part of the balance, and replaying any command with its idempotency key changes nothing
(a refused command wrote nothing, so its key is unused and a retry runs as new — like
``Idempotency-Key``).
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from siyu.db import Database
from siyu.kit.orders import OrderFact
from siyu.kit.problems import Conflict
from siyu.points import facade, service
from siyu.points.models import ExpiryPolicy
from tests.points.helpers import T0, days, entries, ledger_totals, make_member, make_merchant, paid, refunded
from tests.points.helpers import settings as save_settings

Command = tuple[str, ...]


def machine_for(db: Database, allow_negative: bool) -> type[RuleBasedStateMachine]:
    class Ledger(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.merchant = make_merchant(db)
            self.members = [make_member(db, self.merchant), make_member(db, self.merchant)]
            save_settings(
                db,
                self.merchant,
                expiry_policy=ExpiryPolicy.DAYS,
                expiry_days=30,
                allow_negative=allow_negative,
            )
            self.now: datetime = T0
            self.orders: list[OrderFact] = []
            self.done: list[tuple[str, object]] = []
            self.n = 0

        def _next(self, prefix: str) -> str:
            self.n += 1
            return f"{prefix}{self.n}"

        # ------------------------------------------------------------ commands

        def _earn(self, fact: OrderFact) -> None:
            with db.unit_of_work() as session:
                facade.earn_for_orders(session, self.merchant, [fact], multipliers_bp={}, now=self.now)

        def _refund(self, fact: OrderFact) -> None:
            with db.unit_of_work() as session:
                facade.reverse_for_refunds(session, self.merchant, [fact], now=self.now)

        def _post(self, kind: str, member: str, points: int, key: str) -> bool:
            call = service.spend if kind == "spend" else service.adjust
            try:
                with db.unit_of_work() as session:
                    call(
                        session,
                        self.merchant,
                        member,
                        points=points,
                        reason="r",
                        key=key,
                        source="t",
                        now=self.now,
                    )
            except Conflict:
                return False  # too few points: refused, the transaction rolled back, the key unused
            return True

        @rule(who=st.integers(0, 1), amount=st.integers(1, 50_000))
        def earn(self, who: int, amount: int) -> None:
            fact = paid(self.members[who], self._next("o"), amount, self.now)
            self.orders.append(fact)
            self._earn(fact)
            self.done.append(("earn", fact))

        @rule(who=st.integers(0, 1), points=st.integers(1, 300))
        def spend(self, who: int, points: int) -> None:
            key = self._next("k")
            if self._post("spend", self.members[who], points, key):
                self.done.append(("spend", (self.members[who], points, key)))

        @rule(who=st.integers(0, 1), points=st.integers(-400, 400).filter(bool))
        def adjust(self, who: int, points: int) -> None:
            key = self._next("k")
            if self._post("adjust", self.members[who], points, key):
                self.done.append(("adjust", (self.members[who], points, key)))

        @rule(data=st.data(), share=st.integers(1, 10_000))
        def refund(self, data: st.DataObject, share: int) -> None:
            if not self.orders:
                return
            order = data.draw(st.sampled_from(self.orders))
            fact = refunded(
                order.member_id,
                order.order_id,
                self._next("r"),
                max(1, order.amount_fen * share // 10_000),
                self.now,
            )
            self._refund(fact)
            self.done.append(("refund", fact))

        @rule(step=st.integers(1, 40))
        def advance_and_expire(self, step: int) -> None:
            self.now = self.now + days(step)
            with db.unit_of_work() as session:
                service.expire_due(session, now=self.now, merchant_id=self.merchant)

        @rule(data=st.data())
        def replay(self, data: st.DataObject) -> None:
            if not self.done:
                return
            kind, args = data.draw(st.sampled_from(self.done))
            before = [(e.id, e.points) for e in entries(db, self.merchant)]
            totals = [ledger_totals(db, self.merchant, m) for m in self.members]
            if kind == "earn":
                assert isinstance(args, OrderFact)
                self._earn(args)
            elif kind == "refund":
                assert isinstance(args, OrderFact)
                self._refund(args)
            else:
                member, points, key = args  # type: ignore[misc]
                self._post(kind, member, points, key)
            assert [(e.id, e.points) for e in entries(db, self.merchant)] == before
            assert [ledger_totals(db, self.merchant, m) for m in self.members] == totals

        # ------------------------------------------------------------ invariants

        @invariant()
        def balance_is_the_sum_of_entries_and_lots_hold_its_positive_part(self) -> None:
            for member in self.members:
                account, total, lots, lowest = ledger_totals(db, self.merchant, member)
                assert account == total
                assert lowest >= 0
                assert lots == max(account, 0)
                if not allow_negative:
                    assert account >= 0
                    assert lots == account

    return Ledger


@pytest.mark.parametrize("allow_negative", [False, True])
def test_the_ledger_holds_under_any_sequence_of_commands(db: Database, allow_negative: bool) -> None:
    run_state_machine_as_test(
        machine_for(db, allow_negative),
        settings=settings(
            max_examples=50,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
