"""Rolling DAU/WAU/MAU: DuckDB's active-day bitmask statement (``rolling_active_masks``) gives the
same figures as the portable ``LEAD`` statement (``rolling_active``, run on the state store's
engine and on DuckDB) and as a plain Python reading of the definition (docs/metrics.md), on random
events, with and without store and tier filters, for periods whose span needs a ``BIGINT`` mask,
a ``HUGEINT`` one, or is too long for a mask."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from siyu.analytics.metrics import active
from siyu.analytics.scope import Scope
from tests.analytics.conftest import Engines
from tests.analytics.test_cohorts_property import ENGINES_AGREE, _relations, event_rows, replace_rows

DAY0 = date(2025, 9, 1)
MEMBERS = [f"m{i}" for i in range(6)]
TIERS = ["gold", None]

event = st.tuples(
    st.sampled_from(MEMBERS),
    st.integers(min_value=0, max_value=200),  # day after DAY0
    st.sampled_from(["s1", "s2"]),
)


def _expected(
    events: list[tuple[str, int, str]], tier_of: dict[str, str | None], scope: Scope
) -> list[active.DayActive]:
    """Members with a counted event (scope's store and tier filters) in the 1, 7 and 30 days
    ending on each day of the period."""
    days: dict[str, set[date]] = {}
    for m, d, s in events:
        if (scope.store_id is None or s == scope.store_id) and (
            scope.tier is None or tier_of[m] == scope.tier
        ):
            days.setdefault(m, set()).add(DAY0 + timedelta(days=d))

    def members(on: date, window: int) -> int:
        first = on - timedelta(days=window - 1)
        return sum(1 for active_days in days.values() if any(first <= x <= on for x in active_days))

    answer = []
    for i in range(scope.days):
        on = scope.start + timedelta(days=i)
        answer.append(active.DayActive(on, members(on, 1), members(on, 7), members(on, 30)))
    return answer


class TestRollingActiveShapesAgree:
    @ENGINES_AGREE
    @given(
        events=st.lists(event, max_size=60),
        tiers=st.lists(st.sampled_from(TIERS), min_size=len(MEMBERS), max_size=len(MEMBERS)),
        first_day=st.integers(min_value=0, max_value=120),
        days=st.sampled_from([1, 2, 7, 30, 31, 34, 35, 60, 98, 99]),
        store=st.sampled_from([None, "s1"]),
        tier=st.sampled_from([None, "gold"]),
    )
    def test_masks_equal_lead_and_definition(
        self,
        state_and_duck_tables: Engines,
        events: list[tuple[str, int, str]],
        tiers: list[str | None],
        first_day: int,
        days: int,
        store: str | None,
        tier: str | None,
    ) -> None:
        # given
        (state, dialect), dc, tables = state_and_duck_tables
        start = DAY0 + timedelta(days=first_day)
        scope = Scope(start, start + timedelta(days=days - 1), store_id=store, tier=tier)
        tier_of = dict(zip(MEMBERS, tiers, strict=True))
        rows = event_rows([(m, "visit", d, s) for m, d, s in events], DAY0)
        member_rows = [{"member_id": m, "status": "active", "tier": t} for m, t in tier_of.items()]
        for connection in (state, dc):
            replace_rows(connection, tables, rows, member_rows)
        expected = _expected(events, tier_of, scope)
        # when
        lead = {
            engine: active.daily_active(
                scope, connection.execute(active.rolling_active(_relations(tables, engine), scope)).all()
            )
            for connection, engine in ((state, dialect), (dc, "duckdb"))
        }
        masks = active.rolling_active_masks(_relations(tables, "duckdb"), scope)
        # then
        assert lead[dialect] == expected
        assert lead["duckdb"] == expected
        if days + 29 > active.MASK_BITS:
            assert masks is None
        else:
            assert masks is not None
            assert active.daily_active_of_masks(scope, dc.execute(masks).one()) == expected
