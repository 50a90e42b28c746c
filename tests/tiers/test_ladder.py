"""The pure tier rules: periods in the merchant's time zone, qualification, refund growth."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu.tiers.ladder import Ladder, Rung, earned, growth_of, month_days_for, periods_at, refund_growth

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
LADDER = Ladder([Rung("g", "金卡", 2, 5_000), Rung("p", "普卡", 0, 0), Rung("s", "银卡", 1, 1_000)])


class TestPeriods:
    @pytest.mark.parametrize(
        ("now", "zone", "months", "current", "following", "label"),
        [
            # 2026-12-31 23:59 in Shanghai is still 2026; one minute later 2027 began
            (
                datetime(2026, 12, 31, 15, 59, tzinfo=UTC),
                SHANGHAI,
                12,
                datetime(2025, 12, 31, 16, tzinfo=UTC),
                datetime(2026, 12, 31, 16, tzinfo=UTC),
                "2026-01",
            ),
            (
                datetime(2026, 12, 31, 16, 0, tzinfo=UTC),
                SHANGHAI,
                12,
                datetime(2026, 12, 31, 16, tzinfo=UTC),
                datetime(2027, 12, 31, 16, tzinfo=UTC),
                "2027-01",
            ),
            # New York: local midnight of 1 January is 05:00 UTC (EST)
            (
                datetime(2027, 1, 1, 4, 59, tzinfo=UTC),
                NEW_YORK,
                12,
                datetime(2026, 1, 1, 5, tzinfo=UTC),
                datetime(2027, 1, 1, 5, tzinfo=UTC),
                "2026-01",
            ),
            # quarters; 1 April in New York is EDT (04:00 UTC)
            (
                datetime(2026, 4, 1, 3, 59, tzinfo=UTC),
                NEW_YORK,
                3,
                datetime(2026, 1, 1, 5, tzinfo=UTC),
                datetime(2026, 4, 1, 4, tzinfo=UTC),
                "2026-01",
            ),
            (
                datetime(2026, 4, 1, 4, 0, tzinfo=UTC),
                NEW_YORK,
                3,
                datetime(2026, 4, 1, 4, tzinfo=UTC),
                datetime(2026, 7, 1, 4, tzinfo=UTC),
                "2026-04",
            ),
        ],
    )
    def test_periods_start_at_local_midnight(
        self, now: datetime, zone: ZoneInfo, months: int, current: datetime, following: datetime, label: str
    ) -> None:
        periods = periods_at(now, zone, months)
        assert (periods.current, periods.next, periods.label) == (current, following, label)
        assert periods.previous < periods.current <= now < periods.next

    def test_a_period_length_that_does_not_tile_the_year_is_refused(self) -> None:
        with pytest.raises(ValueError, match="period_months"):
            periods_at(datetime(2026, 1, 1, tzinfo=UTC), SHANGHAI, 5)


class TestQualification:
    @pytest.mark.parametrize(
        ("previous", "current", "expected"),
        [
            (0, 0, "普卡"),
            (999, 0, "普卡"),
            (1_000, 0, "银卡"),
            (0, 1_000, "银卡"),
            (5_000, 999, "金卡"),
            (0, 5_000, "金卡"),
            (1_200, 4_999, "银卡"),
        ],
    )
    def test_the_best_of_the_previous_and_the_current_period(
        self, previous: int, current: int, expected: str
    ) -> None:
        rung = earned(LADDER, previous, current)
        assert rung is not None
        assert rung.name == expected

    def test_an_empty_ladder_has_no_tier(self) -> None:
        assert earned(Ladder([]), 10_000, 10_000) is None


class TestRefundGrowth:
    def test_growth_rounds_down_per_order(self) -> None:
        assert growth_of(199, 1) == 1
        assert growth_of(99, 1) == 0
        assert growth_of(1_050, 3) == 31

    @given(
        paid=st.integers(min_value=0, max_value=10_000_000),
        parts=st.lists(st.integers(min_value=0, max_value=5_000_000), max_size=6),
        per_yuan=st.integers(min_value=0, max_value=20),
    )
    def test_partial_refunds_take_back_exactly_what_one_refund_of_their_sum_would(
        self, paid: int, parts: list[int], per_yuan: int
    ) -> None:
        refunded = taken = 0
        for part in parts:
            growth, counted = refund_growth(paid, refunded, part, per_yuan)
            assert growth >= 0
            assert 0 <= counted <= part
            refunded += counted
            taken += growth
        assert refunded == min(sum(parts), paid)
        assert taken == growth_of(paid, per_yuan) - growth_of(paid - refunded, per_yuan)


class TestBirthdays:
    def test_29_february_is_celebrated_on_28_february_in_other_years(self) -> None:
        assert list(month_days_for(date(2027, 2, 28))) == ["02-28", "02-29"]
        assert list(month_days_for(date(2028, 2, 28))) == ["02-28"]
        assert list(month_days_for(date(2028, 2, 29))) == ["02-29"]
