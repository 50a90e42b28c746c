"""The stage rules (pure): each default rule at its boundary, and ``next_change`` against a scan."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from siyu.lifecycle.rules import Happening, History, Stage, StageRules
from tests.lifecycle.oracle import stage_from_scratch

D0 = date(2026, 1, 1)
RULES = StageRules()


def day(n: int) -> date:
    return D0 + timedelta(days=n)


def history(*events: tuple[int, str] | tuple[int, str, int], rules: StageRules = RULES) -> History:
    happenings = [Happening(day(e[0]), e[1], e[2] if len(e) > 2 else None) for e in events]  # type: ignore[misc]
    return History.build(
        rules,
        happenings,
        first_seen=min(h.day for h in happenings) if happenings else None,
        orders_total=sum(1 for h in happenings if h.type == "order_paid"),
    )


class TestDefaultRules:
    def test_a_member_seen_once_is_a_stranger(self) -> None:
        assert history((0, "visit")).stage_on(day(0)) is Stage.STRANGER

    def test_three_engagements_within_30_days_make_high_potential_until_the_first_ages_out(self) -> None:
        # given
        h = history((0, "visit"), (10, "scan"), (29, "favorite"))
        # then: day 29 holds days 0…29; on day 30 the first visit is 30 days old
        assert h.stage_on(day(28)) is Stage.STRANGER
        assert h.stage_on(day(29)) is Stage.HIGH_POTENTIAL
        assert h.stage_on(day(30)) is Stage.STRANGER
        assert h.next_change(day(29)) == day(30)

    def test_one_order_is_first_order_two_are_repeat(self) -> None:
        assert history((0, "order_paid", 100)).stage_on(day(0)) is Stage.FIRST_ORDER
        assert history((0, "order_paid", 100), (5, "order_paid", 100)).stage_on(day(5)) is Stage.REPEAT

    def test_super_needs_six_orders_and_600_yuan_net_within_180_days(self) -> None:
        orders = [(n * 10, "order_paid", 10_000) for n in range(6)]
        assert history(*orders).stage_on(day(50)) is Stage.SUPER
        # a refund brings the net spend under ¥600
        assert history(*orders, (51, "order_refunded", 1)).stage_on(day(51)) is Stage.REPEAT
        # the first order leaves the window on day 180: five remain (a visit keeps the member active)
        assert history(*orders, (170, "visit")).stage_on(day(179)) is Stage.SUPER
        assert history(*orders, (170, "visit")).stage_on(day(180)) is Stage.REPEAT
        assert history(*orders, (170, "visit")).next_change(day(179)) == day(180)

    def test_super_ends_the_day_an_order_leaves_the_window_before_any_dormancy(self) -> None:
        rules = StageRules(super_orders=2, super_net_spend_fen=0, super_window_days=5)
        h = history((0, "order_paid", 1), (1, "order_paid", 1), (3, "visit"), rules=rules)
        assert h.stage_on(day(4)) is Stage.SUPER
        assert h.stage_on(day(5)) is Stage.REPEAT
        assert h.next_change(day(1)) == day(5)

    def test_dormant_after_60_days_without_activity_and_lost_after_180(self) -> None:
        h = history((0, "order_paid", 100))
        assert h.stage_on(day(59)) is Stage.FIRST_ORDER
        assert h.stage_on(day(60)) is Stage.DORMANT
        assert h.stage_on(day(179)) is Stage.DORMANT
        assert h.stage_on(day(180)) is Stage.LOST
        assert h.next_change(day(0)) == day(60)
        assert h.next_change(day(60)) == day(180)
        assert h.next_change(day(180)) is None

    def test_a_refund_or_an_unsubscribe_is_not_activity(self) -> None:
        h = history((0, "order_paid", 100), (30, "order_refunded", 100), (40, "unsubscribe"))
        assert h.stage_on(day(60)) is Stage.DORMANT

    def test_a_message_click_is_activity(self) -> None:
        h = history((0, "order_paid", 100), (30, "message_clicked"))
        assert h.stage_on(day(60)) is Stage.FIRST_ORDER
        assert h.stage_on(day(90)) is Stage.DORMANT

    def test_inactivity_counts_from_the_first_event_whatever_its_type(self) -> None:
        assert history((0, "unsubscribe")).stage_on(day(59)) is Stage.STRANGER
        assert history((0, "unsubscribe")).stage_on(day(60)) is Stage.DORMANT

    def test_a_member_without_events_is_a_stranger_for_good(self) -> None:
        h = History.build(RULES, [], first_seen=None, orders_total=0)
        assert h.stage_on(day(0)) is Stage.STRANGER
        assert h.next_change(day(0)) is None

    def test_orders_before_the_window_count_through_the_total(self) -> None:
        # given: the history holds only the last order; the member has three
        h = History.build(RULES, [Happening(day(100), "order_paid", 100)], first_seen=day(0), orders_total=3)
        assert h.stage_on(day(100)) is Stage.REPEAT

    def test_an_order_dated_after_the_day_is_not_counted_yet(self) -> None:
        h = history((0, "order_paid", 100), (2, "order_paid", 100))
        assert h.stage_on(day(1)) is Stage.FIRST_ORDER
        assert h.next_change(day(1)) == day(2)


class TestRuleValidation:
    def test_lost_must_come_after_dormant(self) -> None:
        with pytest.raises(ValidationError, match="lost_after_days"):
            StageRules(dormant_after_days=90, lost_after_days=90)

    def test_super_needs_at_least_the_repeat_orders(self) -> None:
        with pytest.raises(ValidationError, match="super_orders"):
            StageRules(repeat_orders=5, super_orders=3)

    def test_unknown_fields_are_refused(self) -> None:
        with pytest.raises(ValidationError):
            StageRules.model_validate({"dormant_days": 30})


TYPES = ["visit", "scan", "order_paid", "order_refunded", "unsubscribe", "message_opened", "x_custom"]
happening = st.builds(
    Happening,
    st.integers(0, 60).map(day),
    st.sampled_from(TYPES),
    st.integers(0, 5_000),
)
small_rules = st.builds(
    lambda hp, hw, rep, so, spend, sw, dorm, extra: StageRules(
        high_potential_engagements=hp,
        high_potential_window_days=hw,
        repeat_orders=rep,
        super_orders=max(so, rep),
        super_net_spend_fen=spend,
        super_window_days=sw,
        dormant_after_days=dorm,
        lost_after_days=dorm + extra,
    ),
    st.integers(1, 4),
    st.integers(1, 15),
    st.integers(2, 3),
    st.integers(2, 5),
    st.integers(0, 8_000),
    st.integers(1, 20),
    st.integers(1, 15),
    st.integers(1, 20),
)


def _history_of(events: list[Happening], rules: StageRules) -> History:
    return History.build(
        rules,
        events,
        first_seen=min(e.day for e in events),
        orders_total=sum(e.type == "order_paid" for e in events),
    )


def _scanned_change(h: History, at: int, *, until: int) -> date | None:
    """The first day after ``at`` whose stage differs, found by trying each day."""
    current = h.stage_on(day(at))
    return next((day(d) for d in range(at + 1, until) if h.stage_on(day(d)) != current), None)


def _low_spend_bar(rules: StageRules) -> StageRules:
    return rules.model_copy(update={"super_net_spend_fen": rules.super_net_spend_fen // 10})


class TestAgainstScratch:
    @settings(max_examples=300, deadline=None)
    @given(events=st.lists(happening, min_size=1, max_size=25), rules=small_rules, at=st.integers(0, 90))
    def test_stage_on_equals_the_plain_definition(
        self, events: list[Happening], rules: StageRules, at: int
    ) -> None:
        h = _history_of(events, rules)
        assert h.stage_on(day(at)) == stage_from_scratch(events, day(at), rules)

    @settings(max_examples=300, deadline=None)
    @given(events=st.lists(happening, min_size=1, max_size=25), rules=small_rules, at=st.integers(0, 90))
    def test_next_change_is_the_first_later_day_with_another_stage(
        self, events: list[Happening], rules: StageRules, at: int
    ) -> None:
        h = _history_of(events, rules)
        assert h.next_change(day(at)) == _scanned_change(h, at, until=200)

    @settings(max_examples=300, deadline=None)
    @given(
        events=st.lists(
            st.builds(
                Happening,
                st.integers(0, 20).map(day),
                st.sampled_from(["order_paid", "order_paid", "order_refunded", "visit", "scan"]),
                st.integers(0, 400),
            ),
            min_size=1,
            max_size=12,
        ),
        rules=small_rules.map(_low_spend_bar),
        at=st.integers(0, 30),
    )
    def test_next_change_with_dense_orders(self, events: list[Happening], rules: StageRules, at: int) -> None:
        """Orders close together and a low spend bar: super starts and ends inside the
        windows, where the day it ends is only the window's (not a dormancy's)."""
        h = _history_of(events, rules)
        assert h.next_change(day(at)) == _scanned_change(h, at, until=120)
