"""Upgrade at once, downgrade only at a period end — in the merchant's own time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from siyu.db import Database
from tests.tiers.helpers import (
    history,
    make_ladder,
    make_member,
    make_merchant,
    name_at,
    paid,
    record,
    refunded,
    run_jobs,
)

# local midnight of 1 January 2028: 16:00 UTC the day before in Shanghai, 05:00 UTC in New York
NEW_YEAR_2028 = {
    "Asia/Shanghai": datetime(2027, 12, 31, 16, 0, tzinfo=UTC),
    "America/New_York": datetime(2028, 1, 1, 5, 0, tzinfo=UTC),
}
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize("zone", sorted(NEW_YEAR_2028))
class TestGrowthValueByCalendarYear:
    def test_a_tier_reached_holds_to_the_end_of_the_next_period_and_drops_at_local_midnight(
        self, db: Database, zone: str
    ) -> None:
        # given: yearly periods in the merchant's zone; 金卡 needs 5 000 growth (¥1 = 1)
        merchant = make_merchant(db, zone, basis="growth", period_months=12, growth_per_yuan=1)
        tiers = make_ladder(db, merchant)
        member = make_member(db, merchant)
        # when: the member pays ¥5 000 in June 2026
        june = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
        changes = record(db, merchant, paid(member, "o-1", 500_000, june))
        # then: 金卡 at once
        assert changes == 1
        assert name_at(db, merchant, member, june) == "金卡"
        # and held through all of 2027 (nothing bought that year), to the last local second
        boundary = NEW_YEAR_2028[zone]
        assert run_jobs(db, merchant, boundary - SECOND).changed == 0
        assert name_at(db, merchant, member, boundary - SECOND) == "金卡"
        # when: local midnight of 1 January 2028 passes
        report = run_jobs(db, merchant, boundary)
        # then: down to what 2027 earned (nothing): 普卡, recorded as a period end
        assert report.changed == 1
        assert name_at(db, merchant, member, boundary) == "普卡"
        assert history(db, merchant, member) == [("upgrade", tiers["金卡"]), ("period_end", tiers["普卡"])]

    def test_what_the_ended_period_earned_is_kept_for_the_next(self, db: Database, zone: str) -> None:
        # given: 金卡 from 2026, and ¥1 500 spent in 2027 (enough for 银卡)
        merchant = make_merchant(db, zone)
        make_ladder(db, merchant)
        member = make_member(db, merchant)
        record(db, merchant, paid(member, "o-1", 500_000, datetime(2026, 3, 1, tzinfo=UTC)))
        record(db, merchant, paid(member, "o-2", 150_000, datetime(2027, 7, 1, tzinfo=UTC)))
        # when: 2028 begins (the job has not run yet: a read re-assesses on its own)
        boundary = NEW_YEAR_2028[zone]
        # then: 银卡 from local midnight, not a second before
        assert name_at(db, merchant, member, boundary - SECOND) == "金卡"
        assert name_at(db, merchant, member, boundary) == "银卡"


class TestDowngradesWaitForThePeriodEnd:
    def test_a_refund_does_not_downgrade_mid_period_but_counts_at_its_end(self, db: Database) -> None:
        # given: quarterly periods in Shanghai; ¥5 000 paid in February → 金卡
        merchant = make_merchant(db, "Asia/Shanghai", period_months=3)
        make_ladder(db, merchant)
        member = make_member(db, merchant)
        feb = datetime(2026, 2, 10, tzinfo=UTC)
        record(db, merchant, paid(member, "o-1", 500_000, feb))
        # when: most of it is refunded in March
        record(db, merchant, refunded(member, "o-1", "r-1", 450_000, feb + timedelta(days=20)))
        # then: still 金卡 for the rest of Q1 and all of Q2 (Q1 earned it before the refund? no:
        # Q1's value is now 500 — so at the end of Q1 the member falls to what Q1 earned)
        assert name_at(db, merchant, member, datetime(2026, 3, 31, 15, 59, tzinfo=UTC)) == "金卡"
        assert name_at(db, merchant, member, datetime(2026, 3, 31, 16, 0, tzinfo=UTC)) == "普卡"

    def test_a_late_order_of_the_previous_period_still_counts_for_it(self, db: Database) -> None:
        # given: monthly periods; it is 2 February (Shanghai) and the member holds 普卡
        merchant = make_merchant(db, "Asia/Shanghai", period_months=1)
        make_ladder(db, merchant)
        member = make_member(db, merchant)
        now = datetime(2026, 2, 2, 2, 0, tzinfo=UTC)
        assert name_at(db, merchant, member, now) == "普卡"
        # when: a ¥1 200 order paid on 31 January arrives late
        record(db, merchant, paid(member, "o-1", 120_000, datetime(2026, 1, 31, 3, 0, tzinfo=UTC)), now=now)
        # then: January earned 银卡, which holds through February
        assert name_at(db, merchant, member, now) == "银卡"
        assert name_at(db, merchant, member, datetime(2026, 2, 28, 15, 59, tzinfo=UTC)) == "银卡"
        assert name_at(db, merchant, member, datetime(2026, 2, 28, 16, 0, tzinfo=UTC)) == "普卡"

    def test_replayed_orders_count_once(self, db: Database) -> None:
        merchant = make_merchant(db)
        make_ladder(db, merchant)
        member = make_member(db, merchant)
        at = datetime(2026, 5, 1, tzinfo=UTC)
        for _ in range(3):
            record(
                db, merchant, paid(member, "o-1", 300_000, at), refunded(member, "o-1", "r-1", 100_000, at)
            )
        assert name_at(db, merchant, member, at) == "银卡"  # 3 000 − 1 000 = 2 000, not 9 000 − 3 000


class TestRollingSpend:
    def test_rolling_365_day_spend_is_judged_now_and_at_the_period_start(self, db: Database) -> None:
        # given: spend basis (thresholds in fen), yearly periods, Shanghai
        merchant = make_merchant(db, "Asia/Shanghai", basis="spend_365", period_months=12)
        make_ladder(
            db,
            merchant,
            {"name": "普卡", "rank": 0, "threshold": 0},
            {"name": "金卡", "rank": 1, "threshold": 300_000},
        )
        member = make_member(db, merchant)
        # when: ¥3 000 paid on 10 December 2026
        record(db, merchant, paid(member, "o-1", 300_000, datetime(2026, 12, 10, tzinfo=UTC)))
        # then: 金卡 at once; on 1 January 2027 the 365 days before still hold it, so it is kept
        # all of 2027 even after the order has left the rolling window (December 2027)
        assert name_at(db, merchant, member, datetime(2026, 12, 10, 1, tzinfo=UTC)) == "金卡"
        assert name_at(db, merchant, member, datetime(2027, 12, 20, tzinfo=UTC)) == "金卡"
        # and on 1 January 2028 the window before it is empty: down
        assert name_at(db, merchant, member, datetime(2027, 12, 31, 16, 0, tzinfo=UTC)) == "普卡"


class TestNoTiers:
    def test_a_merchant_without_a_ladder_records_progress_and_has_no_tier(self, db: Database) -> None:
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        at = datetime(2026, 5, 1, tzinfo=UTC)
        assert record(db, merchant, paid(member, "o-1", 900_000, at)) == 0
        assert name_at(db, merchant, member, at) is None
        # a ladder added later counts what was already paid (the next assessment)
        make_ladder(db, merchant)
        assert name_at(db, merchant, member, at) == "金卡"
