"""The period's figures from one grouped pass (``metrics.period``, DuckDB) equal what each
figure's own portable statement answers on the state store's engine — DAU/WAU/MAU, active
members per bucket and over the period, visit frequency, buyers and repeat buyers, message
opens/openers/clicks/clickers, and GMV per bucket and over the period — on random events of
every counted type, with store and tier filters, every grain, and period lengths either side of
the mask's size limits (63 bits with the three flag bits; 127)."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from siyu.analytics.metrics import active, period, worth
from siyu.analytics.scope import Grain, Scope, as_date, buckets
from tests.analytics.conftest import Engines
from tests.analytics.test_cohorts_property import ENGINES_AGREE, _relations, event_rows, replace_rows

DAY0 = date(2025, 9, 1)
MEMBERS = [f"m{i}" for i in range(6)]

event = st.tuples(
    st.sampled_from(MEMBERS),
    st.integers(min_value=0, max_value=200),  # day after DAY0
    st.sampled_from(
        [
            "visit",
            "visit",
            "order_paid",
            "order_paid",
            "order_refunded",
            "scan",
            "message_opened",
            "message_clicked",
        ]
    ),
    st.sampled_from(["s1", "s2"]),
)


class TestPeriodFiguresEqualTheirOwnStatements:
    @ENGINES_AGREE
    @given(
        events=st.lists(event, max_size=60),
        tiers=st.lists(st.sampled_from(["gold", None]), min_size=len(MEMBERS), max_size=len(MEMBERS)),
        first_day=st.integers(min_value=0, max_value=120),
        days=st.sampled_from([1, 2, 7, 30, 31, 32, 60, 95, 96]),
        grain=st.sampled_from(list(Grain)),
        store=st.sampled_from([None, "s1"]),
        tier=st.sampled_from([None, "gold"]),
    )
    def test_one_pass_equals_the_portable_statements(
        self,
        state_and_duck_tables: Engines,
        events: list[tuple[str, int, str, str]],
        tiers: list[str | None],
        first_day: int,
        days: int,
        grain: Grain,
        store: str | None,
        tier: str | None,
    ) -> None:
        # given the same events and members on the state store's engine and on DuckDB
        (state, dialect), dc, tables = state_and_duck_tables
        start = DAY0 + timedelta(days=first_day)
        scope = Scope(start, start + timedelta(days=days - 1), store_id=store, tier=tier)
        rows = event_rows([(m, t, d, s) for m, d, t, s in events], DAY0)
        tier_of = zip(MEMBERS, tiers, strict=True)
        member_rows = [{"member_id": m, "status": "active", "tier": t} for m, t in tier_of]
        for connection in (state, dc):
            replace_rows(connection, tables, rows, member_rows)
        rel = _relations(tables, dialect)
        # when
        figures = period.compute(dc, _relations(tables, "duckdb"), scope, grain)
        # then
        if days + 29 + len(period.FLAGS) > active.MASK_BITS:
            assert figures is None
            return
        assert figures is not None
        daily = active.daily_active(scope, state.execute(active.rolling_active(rel, scope)).all())
        by_bucket = {first: 0 for first, _ in buckets(scope, grain)}
        for b, n in state.execute(active.active_by_bucket(rel, scope, grain)).all():
            by_bucket[as_date(b)] = int(n)
        visits = active.visit_frequency_result(state.execute(active.visit_frequency(rel, scope)).one())
        buyers, repeat = state.execute(worth.repurchase(rel, scope)).one()
        assert figures.daily == daily
        assert figures.active_by_bucket == by_bucket
        assert figures.visits == visits
        assert (figures.buyers, figures.repeat_buyers) == (int(buyers or 0), int(repeat or 0))
        responses = state.execute(active.message_responses(rel, scope)).one()
        assert figures.responses() == tuple(int(x or 0) for x in responses)
        # and woRth's GMV per bucket and over the period, and its active members, are the same figures
        sums = figures.bucket_sums(grain)
        for row in state.execute(worth.gmv_by_bucket(rel, scope, grain)).all():
            start = as_date(row[0])
            assert sums.get(start, (0, 0, 0)) == tuple(int(x or 0) for x in row[1:4])
            assert by_bucket[start] == int(row[-1])
        total = state.execute(worth.gmv_total(rel, scope)).one()
        assert tuple(sum(s[i] for s in sums.values()) for i in range(3)) == tuple(
            int(x or 0) for x in total[:3]
        )
        assert int(total[-1] or 0) == visits.active_members
