"""Cohort retention equals its definition (docs/metrics.md) on random events, on the state store's
engine (SQLite or PostgreSQL) and on DuckDB: the one-pass statement is checked against a plain
Python reading of the definition, for both grains, both activities, split by channel or not, with
and without store and tier filters."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.analytics.metrics import cohorts
from siyu.analytics.metrics.cohorts import Activity
from siyu.analytics.relations import EVENT_COLUMNS, MEMBER_COLUMNS, TRANSITION_COLUMNS, Relations
from siyu.analytics.scope import Grain, Scope, bucket_of
from siyu.db import Database
from tests.analytics.duckcopy import _TYPES, duck_engine

DAY0 = date(2025, 9, 1)
MEMBERS = [f"m{i}" for i in range(5)]
CHANNELS = ["alipay", "wechat", None]
TIERS = ["gold", None]

event = st.tuples(
    st.sampled_from(MEMBERS),
    st.sampled_from(["order_paid", "order_paid", "visit", "order_refunded"]),
    st.integers(min_value=0, max_value=120),  # day after DAY0
    st.sampled_from(["s1", "s2"]),
)
member = st.tuples(st.sampled_from(CHANNELS), st.sampled_from(TIERS))


ENGINES_AGREE = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
"""Hypothesis settings of the tests that run one statement on the state store and on DuckDB."""


def _tables(prefix: str) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    metadata = sa.MetaData()
    tables = {
        name: sa.Table(
            f"{prefix}_{name}", metadata, *(sa.Column(c, _TYPES.get(c, sa.String())) for c in columns)
        )
        for name, columns in (
            ("events", EVENT_COLUMNS),
            ("members", MEMBER_COLUMNS),
            ("stage_transitions", TRANSITION_COLUMNS),
        )
    }
    return metadata, tables


def _relations(tables: dict[str, sa.Table], engine: str) -> Relations:
    return Relations(
        merchant_id="mch",
        timezone=ZoneInfo("Asia/Shanghai"),
        engine=engine,
        events=sa.select(tables["events"]).subquery("events"),
        members=sa.select(tables["members"]).subquery("members"),
        stage_transitions=sa.select(tables["stage_transitions"]).subquery("stage_transitions"),
    )


@pytest.fixture
def connections(db: Database) -> Iterator[list[tuple[sa.Connection, dict[str, sa.Table], str]]]:
    with state_and_duck(db, "cohort_prop") as (state, dc, tables):
        yield [(state, tables, db.engine.dialect.name), (dc, tables, "duckdb")]


@contextmanager
def state_and_duck(
    db: Database, prefix: str
) -> Iterator[tuple[sa.Connection, sa.Connection, dict[str, sa.Table]]]:
    """The raw tables of :func:`_tables` created on the engine under test and on an in-memory
    DuckDB, with a connection to each; the state store's tables are dropped afterwards."""
    metadata, tables = _tables(prefix)
    duck = duck_engine()
    with db.engine.connect() as state, duck.connect() as dc:
        metadata.create_all(state)
        metadata.create_all(dc)
        state.commit()
        try:
            yield state, dc, tables
        finally:
            state.rollback()
            metadata.drop_all(state)
            state.commit()
    duck.dispose()


def event_rows(events: Iterable[tuple[str, str, int, str]], day0: date) -> list[dict[str, Any]]:
    """``(member, type, days after day0, store)`` as rows of the events table (amount 100 + i)."""
    return [
        {
            "event_id": f"e{i}",
            "member_id": m,
            "type": t,
            "occurred_at": None,
            "local_date": day0 + timedelta(days=d),
            "channel": None,
            "store_id": s,
            "amount_fen": 100 + i,
        }
        for i, (m, t, d, s) in enumerate(events)
    ]


def replace_rows(
    connection: sa.Connection,
    tables: dict[str, sa.Table],
    events: list[dict[str, Any]],
    members: list[dict[str, Any]],
) -> None:
    """The events and members tables hold exactly these rows."""
    connection.execute(tables["events"].delete())
    connection.execute(tables["members"].delete())
    if events:
        connection.execute(tables["events"].insert(), events)
    connection.execute(tables["members"].insert(), members)


def _expected(
    events: list[tuple[str, str, int, str]],
    members: list[tuple[str | None, str | None]],
    scope: Scope,
    grain: Grain,
    activity: Activity,
    by_channel: bool,
) -> list[tuple[Any, str | None, int, tuple[int, ...]]]:
    """The definition, read plainly: a member's first ``order_paid`` ever (scope's store and tier
    filters apply) falls in the period → it belongs to that bucket's cohort; it is retained in a
    bucket when it has a counted event (paid order / any) on a day of the period in that bucket."""
    channel_of = {m: members[i][0] for i, m in enumerate(MEMBERS)}
    tier_of = {m: members[i][1] for i, m in enumerate(MEMBERS)}
    kept = [
        (m, t, DAY0 + timedelta(days=d))
        for m, t, d, s in events
        if (scope.store_id is None or s == scope.store_id)
        and (scope.tier is None or tier_of[m] == scope.tier)
    ]
    starts: list[date] = []
    day = scope.start
    while day <= scope.end:
        if bucket_of(day, grain) not in starts:
            starts.append(bucket_of(day, grain))
        day += timedelta(days=1)
    first: dict[str, date] = {}
    for m, t, day in kept:
        if t == "order_paid" and (m not in first or day < first[m]):
            first[m] = day
    channels = sorted(
        {channel_of[m] for m in first if scope.start <= first[m] <= scope.end},
        key=lambda c: (c is None, c or ""),
    )
    table = []
    for channel in channels if by_channel else [None]:
        for i, start in enumerate(starts):
            cohort = {
                m
                for m, day in first.items()
                if scope.start <= day <= scope.end
                and bucket_of(day, grain) == start
                and (not by_channel or channel_of[m] == channel)
            }
            retained = []
            for later in starts[i:]:
                active = {
                    m
                    for m, t, day in kept
                    if m in cohort
                    and scope.start <= day <= scope.end
                    and bucket_of(day, grain) == later
                    and (activity is Activity.ANY or t == "order_paid")
                }
                retained.append(len(active))
            table.append((start, channel, len(cohort), tuple(retained)))
    return table


class TestRetentionIsItsDefinition:
    @ENGINES_AGREE
    @given(
        events=st.lists(event, max_size=40),
        members=st.lists(member, min_size=len(MEMBERS), max_size=len(MEMBERS)),
        first_day=st.integers(min_value=0, max_value=100),
        days=st.integers(min_value=1, max_value=70),
        grain=st.sampled_from([Grain.WEEK, Grain.MONTH]),
        activity=st.sampled_from(list(Activity)),
        by_channel=st.booleans(),
        store=st.sampled_from([None, "s1"]),
        tier=st.sampled_from([None, "gold"]),
    )
    def test_on_every_engine(
        self,
        connections: list[tuple[sa.Connection, dict[str, sa.Table], str]],
        events: list[tuple[str, str, int, str]],
        members: list[tuple[str | None, str | None]],
        first_day: int,
        days: int,
        grain: Grain,
        activity: Activity,
        by_channel: bool,
        store: str | None,
        tier: str | None,
    ) -> None:
        # given
        start = DAY0 + timedelta(days=first_day)
        scope = Scope(start, start + timedelta(days=days - 1), store_id=store, tier=tier)
        events_in = event_rows(events, DAY0)
        member_rows = [
            {"member_id": m, "status": "active", "acquisition_channel": c, "tier": t}
            for m, (c, t) in zip(MEMBERS, members, strict=True)
        ]
        expected = _expected(events, members, scope, grain, activity, by_channel)
        for connection, tables, engine in connections:
            replace_rows(connection, tables, events_in, member_rows)
            # when
            rows = [
                tuple(r)
                for r in connection.execute(
                    cohorts.retention(
                        _relations(tables, engine), scope, grain, activity, by_channel=by_channel
                    )
                )
            ]
            view = cohorts.triangle(scope, grain, activity, rows, by_channel=by_channel)
            # then
            assert [(c.start, c.channel, c.size, c.retained) for c in view.cohorts] == expected, engine
