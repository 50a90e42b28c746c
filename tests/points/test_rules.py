"""Earn rules, refund reversal, expiry and the liability report, through the facade."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from siyu.db import Database
from siyu.points import facade, rules, service
from siyu.points.models import ExpiryPolicy, PointsRule
from tests.points.helpers import (
    T0,
    action,
    adjust,
    balance,
    days,
    earn,
    entries,
    ledger_totals,
    make_member,
    make_merchant,
    paid,
    refund,
    refunded,
    settings,
)


class TestOrderPoints:
    @pytest.mark.parametrize(
        ("amount_fen", "per_yuan", "bp", "points"),
        [
            (12_345, 1, 10_000, 123),  # 123.45 yuan → 123, rounded down
            (12_389, 1, 10_000, 123),  # 123.89 → 123, not 124
            (99, 1, 10_000, 0),  # under one yuan earns nothing
            (10_000, 1, 12_355, 123),  # 100 yuan × 1.2355 = 123.55 → 123
            (12_345, 2, 15_000, 370),  # 123.45 × 2 × 1.5 = 370.35 → 370
            (10_000, 1, 12_345, 123),  # 100 yuan × 1.2345 = 123.45 → 123
            (0, 1, 10_000, 0),
            (10_000, 0, 10_000, 0),
        ],
    )
    def test_points_are_rounded_down_in_integers(
        self, amount_fen: int, per_yuan: int, bp: int, points: int
    ) -> None:
        assert rules.order_points(amount_fen, per_yuan, bp) == points

    def test_an_order_earns_once_by_its_order_id_with_the_tier_multiplier(self, db: Database) -> None:
        # given
        merchant = make_merchant(db)
        member, other = make_member(db, merchant), make_member(db, merchant)
        # when: the same order twice, and another member without a tier
        earn(db, merchant, paid(member, "o1", 12_345), paid(other, "o2", 12_345), bp={member: 15_000})
        earn(db, merchant, paid(member, "o1", 12_345), bp={member: 15_000})
        # then
        assert balance(db, merchant, member) == 185  # 123.45 × 1.5 = 185.175 → 185
        assert balance(db, merchant, other) == 123
        assert [e.kind for e in entries(db, merchant, member)] == ["earn"]

    def test_the_lot_expires_by_the_merchants_policy(self, db: Database) -> None:
        # given: end of next year in Shanghai; an order at 23:30 on 31 Dec 2026 local
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        at = datetime(2026, 12, 31, 15, 30, tzinfo=UTC)
        # when
        earn(db, merchant, paid(member, "o1", 10_000, at))
        # then: local year 2026 → expires at the start of 2028-01-01 Shanghai
        with db.reading() as session:
            (lot,) = facade.lots_of(session, merchant, member)
        assert lot.expires_at == datetime(2027, 12, 31, 16, 0, tzinfo=UTC)

    def test_the_days_policy(self, db: Database) -> None:
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        settings(db, merchant, expiry_policy=ExpiryPolicy.DAYS, expiry_days=30)
        earn(db, merchant, paid(member, "o1", 10_000))
        with db.reading() as session:
            (lot,) = facade.lots_of(session, merchant, member)
        assert lot.expires_at == T0 + days(30)


class TestActionPoints:
    def _rule(self, db: Database, merchant: str, type_: str, points: int, cap: int | None) -> None:
        with db.unit_of_work() as session:
            service.create_rule(
                session, merchant, event_type=type_, points=points, daily_cap=cap, active=True, now=T0
            )

    def test_the_daily_cap_counts_per_local_day(self, db: Database) -> None:
        # given: a check-in rule capped at once a day, Shanghai (UTC+8)
        merchant = make_merchant(db, "Asia/Shanghai")
        member = make_member(db, merchant)
        self._rule(db, merchant, "checkin", 5, 1)
        late = datetime(2026, 3, 10, 15, 59, tzinfo=UTC)  # 23:59 local on 10 March
        early = datetime(2026, 3, 10, 16, 1, tzinfo=UTC)  # 00:01 local on 11 March
        later = datetime(2026, 3, 10, 23, 0, tzinfo=UTC)  # 07:00 local on 11 March
        # when: three check-ins, the last two on the same local day (in two batches)
        with db.unit_of_work() as session:
            facade.earn_for_actions(
                session,
                merchant,
                [action(member, "c1", "checkin", late), action(member, "c2", "checkin", early)],
                multipliers_bp={},
                now=later,
            )
        with db.unit_of_work() as session:
            facade.earn_for_actions(
                session, merchant, [action(member, "c3", "checkin", later)], multipliers_bp={}, now=later
            )
        # then: 23:59 and 00:01 are two days; 07:00 is over the cap of the second
        assert balance(db, merchant, member) == 10
        assert {e.key for e in entries(db, merchant, member)} == {"action:c1", "action:c2"}

    def test_multiplier_unknown_types_and_replays(self, db: Database) -> None:
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        self._rule(db, merchant, "custom.review", 20, None)
        facts = [action(member, "r1", "custom.review", T0), action(member, "v1", "visit", T0)]
        for _ in range(2):
            with db.unit_of_work() as session:
                facade.earn_for_actions(session, merchant, facts, multipliers_bp={member: 12_500}, now=T0)
        assert balance(db, merchant, member) == 25  # 20 × 1.25, once; "visit" has no rule

    def test_an_inactive_rule_earns_nothing(self, db: Database) -> None:
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        self._rule(db, merchant, "checkin", 5, None)
        with db.unit_of_work() as session:
            rule = session.query(PointsRule).filter_by(merchant_id=merchant).one()
            service.update_rule(session, merchant, rule.id, {"active": False}, now=T0)
            facade.earn_for_actions(
                session, merchant, [action(member, "c", "checkin", T0)], multipliers_bp={}, now=T0
            )
        assert balance(db, merchant, member) == 0


class TestRefundReversal:
    def test_partial_refunds_reverse_proportionally_and_cumulatively(self, db: Database) -> None:
        # given: 100.00 yuan earned 100 points
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        earn(db, merchant, paid(member, "o1", 10_000))
        # when: 33.33 refunded, the same refund again, then 33.34, then 50.00 (more than is left)
        refund(db, merchant, refunded(member, "o1", "r1", 3_333))
        refund(db, merchant, refunded(member, "o1", "r1", 3_333))
        after_first = balance(db, merchant, member)
        refund(db, merchant, refunded(member, "o1", "r2", 3_334))
        after_second = balance(db, merchant, member)
        refund(db, merchant, refunded(member, "o1", "r3", 5_000))
        # then: round_half_up(100 × 33.33 %) = 33, then 67 in total, then all 100, never more
        assert (after_first, after_second, balance(db, merchant, member)) == (67, 33, 0)
        assert [e.points for e in entries(db, merchant, member)] == [100, -33, -34, -33]

    def test_without_negatives_the_reversal_takes_what_is_left_and_records_the_shortfall(
        self, db: Database
    ) -> None:
        # given: 100 earned, 80 spent
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        earn(db, merchant, paid(member, "o1", 10_000))
        adjust(db, merchant, member, -80)
        # when: the whole order is refunded
        refund(db, merchant, refunded(member, "o1", "r1", 10_000))
        # then
        assert balance(db, merchant, member) == 0
        last = entries(db, merchant, member)[-1]
        assert (last.kind, last.points, last.shortfall) == ("reverse", -20, 80)
        with db.reading() as session:
            assert facade.liability(session, merchant, now=T0).shortfall == 80
        assert ledger_totals(db, merchant, member) == (0, 0, 0, 0)

    def test_with_negatives_allowed_the_balance_goes_below_zero_and_later_points_pay_it(
        self, db: Database
    ) -> None:
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        settings(db, merchant, allow_negative=True)
        earn(db, merchant, paid(member, "o1", 10_000))
        adjust(db, merchant, member, -80)
        refund(db, merchant, refunded(member, "o1", "r1", 10_000))
        assert balance(db, merchant, member) == -80
        # when: 50 points earned while 80 are owed
        earn(db, merchant, paid(member, "o2", 5_000))
        # then: the debt is paid first, no lot is left
        assert ledger_totals(db, merchant, member)[:3] == (-30, -30, 0)
        earn(db, merchant, paid(member, "o3", 5_000))
        assert ledger_totals(db, merchant, member)[:3] == (20, 20, 20)

    def test_a_refund_of_an_order_that_earned_nothing_is_ignored(self, db: Database) -> None:
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        refund(db, merchant, refunded(member, "unknown", "r1", 10_000))
        assert entries(db, merchant, member) == []


class TestExpiry:
    def test_due_lots_expire_first_expiring_first_with_one_entry_per_member(self, db: Database) -> None:
        # given: lots of 30 days and 60 days; 10 spent (from the 30-day lot)
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        settings(db, merchant, expiry_policy=ExpiryPolicy.DAYS, expiry_days=30)
        earn(db, merchant, paid(member, "o1", 5_000, T0), paid(member, "o2", 2_000, T0 + days(1)))
        settings(db, merchant, expiry_policy=ExpiryPolicy.DAYS, expiry_days=60)
        earn(db, merchant, paid(member, "o3", 7_000, T0))
        adjust(db, merchant, member, -10)
        # when: the job runs after 31 days, twice
        with db.unit_of_work() as session:
            first = facade.expire_due(session, now=T0 + days(31) + days(1))
        with db.unit_of_work() as session:
            second = facade.expire_due(session, now=T0 + days(31) + days(1))
        # then: 40 + 20 left of the 30-day lots expire in one entry; the 60-day lot stays
        assert (first, second) == (2, 0)
        last = entries(db, merchant, member)[-1]
        assert (last.kind, last.points) == ("expire", -60)
        assert ledger_totals(db, merchant, member)[:3] == (70, 70, 70)

    def test_points_past_their_expiry_cannot_be_spent_before_the_job_runs(self, db: Database) -> None:
        # given: 50 points that expired a day ago, 70 that have not; the expiry job has not run
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        settings(db, merchant, expiry_policy=ExpiryPolicy.DAYS, expiry_days=30)
        earn(db, merchant, paid(member, "o1", 5_000, T0))
        settings(db, merchant, expiry_policy=ExpiryPolicy.DAYS, expiry_days=60)
        earn(db, merchant, paid(member, "o2", 7_000, T0))
        later = T0 + days(31)
        # when: the member tries to spend 100, then 70
        with db.unit_of_work() as session, pytest.raises(service.InsufficientPoints):
            service.spend(session, merchant, member, points=100, reason="t", key="k1", source="t", now=later)
        with db.unit_of_work() as session:
            service.spend(session, merchant, member, points=70, reason="t", key="k2", source="t", now=later)
        # then: the expired 50 left through an expire entry, never through the spend
        last_two = [(e.kind, e.points) for e in entries(db, merchant, member)][-2:]
        assert last_two == [("expire", -50), ("spend", -70)]
        assert ledger_totals(db, merchant, member)[:3] == (0, 0, 0)


class TestLiability:
    def test_outstanding_points_by_local_expiry_month(self, db: Database) -> None:
        # given: lots expiring at 31 Mar 17:00 UTC (= 1 Apr 01:00 Shanghai) and one in 2028
        merchant = make_merchant(db, "Asia/Shanghai")
        member, other = make_member(db, merchant), make_member(db, merchant)
        settings(db, merchant, expiry_policy=ExpiryPolicy.DAYS, expiry_days=21)
        earn(db, merchant, paid(member, "o1", 1_000, datetime(2026, 3, 10, 17, 0, tzinfo=UTC)))
        settings(db, merchant, expiry_policy=ExpiryPolicy.END_OF_NEXT_YEAR)
        earn(db, merchant, paid(other, "o2", 2_000, T0))
        settings(db, merchant, expiry_policy=ExpiryPolicy.NEVER)
        earn(db, merchant, paid(other, "o3", 3_000, T0))
        # when
        with db.reading() as session:
            view = facade.liability(session, merchant, now=T0)
        # then
        assert [(m.month, m.points) for m in view.by_expiry_month] == [
            ("2026-04", 10),
            ("2028-01", 20),
            (None, 30),
        ]
        assert (view.total, view.members, view.shortfall) == (60, 2, 0)


class TestViews:
    def test_balance_by_expiry_and_history_newest_first(self, db: Database) -> None:
        # given: two lots with different expiries, one spend
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        settings(db, merchant, expiry_policy=ExpiryPolicy.DAYS, expiry_days=10)
        earn(db, merchant, paid(member, "o1", 3_000))
        settings(db, merchant, expiry_policy=ExpiryPolicy.NEVER)
        earn(db, merchant, paid(member, "o2", 5_000))
        adjust(db, merchant, member, -10)
        # when
        with db.reading() as session:
            view = facade.balance_of(session, merchant, member, now=T0)
            history = facade.history_of(session, merchant, member, limit=2)
        # then
        assert view.balance == 70
        assert [(e.expires_at, e.points) for e in view.expiring] == [(T0 + days(10), 20), (None, 50)]
        assert view.next_expiry == view.expiring[0]
        assert [(h.kind, h.points, h.balance_after) for h in history] == [
            ("adjust", -10, 70),
            ("earn", 50, 80),
        ]
