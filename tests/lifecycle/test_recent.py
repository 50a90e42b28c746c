"""The recent-events brief classifies exactly as the events it summarises (pure, no database)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.lifecycle.recent import Recent
from siyu.lifecycle.rules import Happening, History, StageRules

RULES = StageRules(
    high_potential_engagements=2,
    high_potential_window_days=5,
    super_orders=3,
    super_net_spend_fen=500,
    super_window_days=10,
    dormant_after_days=7,
    lost_after_days=15,
)
ZONES = ["Asia/Shanghai", "America/Los_Angeles", "Asia/Kolkata", "Asia/Kathmandu", "UTC"]
events_strategy = st.lists(
    st.tuples(
        st.sampled_from(["visit", "scan", "order_paid", "order_refunded", "unsubscribe"]),
        st.integers(0, 29),  # local day
        st.one_of(st.integers(0, 1439), st.integers(0, 59), st.integers(1380, 1439)),  # minute, often
        st.integers(0, 400),  # near midnight, where a coarser slot would land on the wrong day
    ),
    max_size=40,
)


def _events(spec: list[tuple[str, int, int, int]], zone: ZoneInfo) -> list[tuple[str, datetime, int | None]]:
    return [
        (
            t,
            (
                datetime.combine(date(2026, 3, 1) + timedelta(days=d), time(), tzinfo=zone)
                + timedelta(minutes=m)
            ),
            a if t.startswith("order") else None,
        )
        for t, d, m, a in spec
    ]


class TestRecent:
    @settings(max_examples=150, deadline=None)
    @given(spec=events_strategy, zone_name=st.sampled_from(ZONES))
    def test_same_days_stages_and_changes_as_the_events_themselves(
        self, spec: list[tuple[str, int, int, int]], zone_name: str
    ) -> None:
        zone = ZoneInfo(zone_name)
        events = _events(spec, zone)
        per_day: Counter[tuple[date, str]] = Counter()
        for h in Recent.of(events).happenings(zone):
            per_day[(h.day, h.type)] += h.count
        assert per_day == Counter((at.astimezone(zone).date(), t) for t, at, _ in events)
        first_seen = min((at for _, at, _ in events), default=None)
        orders = sum(1 for t, _, _ in events if t == "order_paid")
        seen = first_seen.astimezone(zone).date() if first_seen else None
        exact = History.build(
            RULES,
            [Happening(at.astimezone(zone).date(), t, a) for t, at, a in events],
            first_seen=seen,
            orders_total=orders,
        )
        stored = Recent.of(events).dumps()
        briefed = History.build(
            RULES, Recent.load(stored).happenings(zone), first_seen=seen, orders_total=orders
        )
        for n in range(-1, 50):
            day = date(2026, 3, 1) + timedelta(days=n)
            assert briefed.stage_on(day) == exact.stage_on(day), day
            assert briefed.next_change(day) == exact.next_change(day), day

    @given(spec=events_strategy, zone_name=st.sampled_from(ZONES), cut=st.integers(0, 30))
    def test_pruning_at_a_local_midnight_keeps_exactly_the_later_events(
        self, spec: list[tuple[str, int, int, int]], zone_name: str, cut: int
    ) -> None:
        zone = ZoneInfo(zone_name)
        events = _events(spec, zone)
        midnight = datetime.combine(date(2026, 3, 1) + timedelta(days=cut), datetime.min.time(), tzinfo=zone)
        recent = Recent.of(events)
        recent.prune(midnight)
        kept = Recent.of(e for e in events if e[1] >= midnight)
        assert recent.dump() == kept.dump()

    def test_many_events_in_one_quarter_hour_are_one_entry(self) -> None:
        at = datetime(2026, 3, 1, 4, 1, tzinfo=UTC)
        recent = Recent.of([("order_paid", at + timedelta(minutes=m), 100) for m in range(10)])
        assert recent.dump() == [["order_paid", int(at.timestamp()) // 900, 10, 1000]]
