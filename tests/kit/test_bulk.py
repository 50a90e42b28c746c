"""Driver-level many-row writes store exactly what the ORM would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import cast
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
)

from siyu.db import Database, JSONDocument, UTCDateTime
from siyu.events.models import Event
from siyu.kit import bulk
from siyu.kit import sql as kit_sql
from siyu.kit.bulk import _json, _sqlite_time, execute_many
from siyu.kit.sql import insert_ignore
from siyu.members.models import Member
from siyu.tenancy import facade
from tests.threads import run_threads

EVENTS = cast(Table, Event.__table__)
T0 = datetime(2026, 11, 1, 2, 0, 0, 123456, tzinfo=UTC)


def row(merchant_id: str, event_id: str, at: datetime, properties: dict[str, object]) -> dict[str, object]:
    return {
        "merchant_id": merchant_id,
        "event_id": event_id,
        "member_id": "mbr_1",
        "type": "visit",
        "occurred_at": at,
        "received_at": at,
        "channel": None,
        "store_id": None,
        "amount_fen": None,
        "properties": properties,
    }


class TestExecuteMany:
    def test_rows_read_back_and_compare_like_orm_rows(self, db: Database) -> None:
        # given: a member, one event written by the ORM and two by execute_many (one in +08:00)
        with db.unit_of_work() as session:
            merchant_id = facade.create_merchant(session, name="批量").id
            session.add(
                Member(merchant_id=merchant_id, id="mbr_1", status="active", created_at=T0, updated_at=T0)
            )
            session.flush()
            session.add(Event(**row(merchant_id, "orm", T0 + timedelta(seconds=1), {"a": 1})))
        shanghai = timezone(timedelta(hours=8))
        # when
        with db.unit_of_work() as session:
            affected = execute_many(
                session,
                EVENTS,
                "test.events",
                lambda _: insert(EVENTS),
                [
                    row(merchant_id, "bulk-early", T0, {"城市": "上海", "n": [1, 2]}),
                    row(merchant_id, "bulk-late", (T0 + timedelta(seconds=2)).astimezone(shanghai), {}),
                ],
            )
        # then: same values back, aware UTC, and SQL orders them with the ORM's row by time
        assert affected == 2
        with db.reading() as session:
            ordered = session.execute(
                select(Event.event_id, Event.occurred_at, Event.properties)
                .where(Event.merchant_id == merchant_id)
                .order_by(Event.occurred_at)
            ).all()
            later = (
                session.execute(
                    select(Event.event_id).where(
                        Event.merchant_id == merchant_id, Event.occurred_at > T0 + timedelta(seconds=1)
                    )
                )
                .scalars()
                .all()
            )
        assert [r.event_id for r in ordered] == ["bulk-early", "orm", "bulk-late"]
        assert ordered[0].occurred_at == T0
        assert ordered[0].occurred_at.tzinfo is not None
        assert ordered[2].occurred_at == T0 + timedelta(seconds=2)
        assert ordered[0].properties == {"城市": "上海", "n": [1, 2]}
        assert later == ["bulk-late"]

    def test_naive_times_are_refused(self, db: Database) -> None:
        with db.unit_of_work() as session:
            merchant_id = facade.create_merchant(session, name="批量").id
        with pytest.raises(ValueError, match="naive"), db.unit_of_work() as session:
            execute_many(
                session,
                EVENTS,
                "test.events",
                lambda _: insert(EVENTS),
                [row(merchant_id, "x", datetime(2026, 1, 1), {})],  # noqa: DTZ001
            )


ALL_TYPES = Table(
    "test_bulk_all_types",
    MetaData(),
    Column("k", Integer, primary_key=True),
    Column("s", String(64)),
    Column("i", Integer),
    Column("big", BigInteger),
    Column("b", Boolean),
    Column("d", Date),
    Column("t", UTCDateTime()),
    Column("j", JSONDocument()),
)
_FIRST = datetime(1970, 1, 2)  # noqa: DTZ001 (hypothesis takes naive bounds, then applies the zone)
_LAST = datetime(2200, 1, 1)  # noqa: DTZ001
_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_row = st.fixed_dictionaries(
    {
        "s": st.none() | _text,
        "i": st.none() | st.integers(-(2**31), 2**31 - 1),
        "big": st.none() | st.integers(-(2**63), 2**63 - 1),
        "b": st.none() | st.booleans(),
        "d": st.none() | st.dates(),
        "t": st.none() | st.datetimes(min_value=_FIRST, max_value=_LAST, timezones=st.just(UTC)),
        "j": st.none() | _json_values,
    }
)


@pytest.fixture
def all_types_table(db: Database) -> Iterator[Table]:
    ALL_TYPES.create(db.engine, checkfirst=True)
    yield ALL_TYPES
    ALL_TYPES.drop(db.engine)


class TestEveryColumnType:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(rows=st.lists(_row, min_size=1, max_size=20))
    def test_execute_many_stores_what_sqlalchemy_stores(
        self, db: Database, all_types_table: Table, rows: list[dict[str, object]]
    ) -> None:
        """Rows written at driver speed (PostgreSQL: binary arrays) read back equal to the same
        rows written through SQLAlchemy's own parameter processing, None in any column included."""
        # given: the same rows under keys 0..n-1 (SQLAlchemy) and 1000..1000+n-1 (execute_many)
        with db.unit_of_work() as session:
            session.execute(delete(all_types_table))
            session.execute(insert(all_types_table), [{"k": n, **r} for n, r in enumerate(rows)])
            # when
            affected = execute_many(
                session,
                all_types_table,
                "test.all_types",
                lambda _: insert(all_types_table),
                [{"k": 1000 + n, **r} for n, r in enumerate(rows)],
            )
        # then
        assert affected == len(rows)
        with db.reading() as session:
            back = {r.k: r._asdict() for r in session.execute(select(all_types_table))}
        for n in range(len(rows)):
            expected, got = back[n], back[1000 + n]
            assert {**got, "k": n} == expected


class TestInsertIgnoreReturning:
    """``insert_ignore(…, returning=…)`` at driver speed (``kit.bulk.fetch_many``): one ``unnest``
    statement on PostgreSQL, multi-row ``VALUES`` chunks on SQLite."""

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        existing=st.sets(st.integers(0, 15), max_size=8),
        keyed=st.lists(st.tuples(st.integers(0, 15), _row), min_size=1, max_size=25),
        per_statement=st.integers(1, 7),
    )
    def test_answers_exactly_the_rows_inserted_and_stores_what_sqlalchemy_stores(
        self,
        db: Database,
        all_types_table: Table,
        existing: set[int],
        keyed: list[tuple[int, dict[str, object]]],
        per_statement: int,
    ) -> None:
        """Keys already there and keys repeated within the rows are skipped; each new key is
        answered once, with the values of its first row, stored as SQLAlchemy stores them."""
        # given: some keys present, and the rows also written through SQLAlchemy under 1000 + n
        with db.unit_of_work() as session:
            session.execute(delete(all_types_table))
            for k in existing:
                session.execute(insert(all_types_table), [{"k": k, "s": "before"}])
            session.execute(insert(all_types_table), [{"k": 1000 + n, **r} for n, (_, r) in enumerate(keyed)])
        rows = [{"k": k, **r} for k, r in keyed]
        # when: SQLite statements of at most per_statement rows, so chunk edges are crossed
        with db.unit_of_work() as session, mock.patch.object(bulk, "SQLITE_ROWS", per_statement):
            answered = insert_ignore(
                session, all_types_table, rows, returning=(all_types_table.c.k, all_types_table.c.s)
            )
        # then: through fetch_many, not SQLAlchemy's fallback
        assert (all_types_table.name, (*rows[0], "->", "k", "s")) not in kit_sql._unconvertible
        first: dict[int, int] = {}
        for n, (k, _) in enumerate(keyed):
            if k not in existing:
                first.setdefault(k, n)
        assert sorted(answered, key=lambda r: r[0]) == [
            (k, keyed[n][1]["s"]) for k, n in sorted(first.items())
        ]
        with db.reading() as session:
            back = {r.k: r._asdict() for r in session.execute(select(all_types_table))}
        for k in existing:
            assert back[k]["s"] == "before"
        for k, n in first.items():
            assert {**back[1000 + n], "k": k} == back[k]

    def test_more_rows_than_one_sqlite_statement_takes(self, db: Database, all_types_table: Table) -> None:
        # given: more rows than SQLITE_ROWS, a few of them present already
        count = bulk.SQLITE_ROWS * 2 + 7
        with db.unit_of_work() as session:
            session.execute(insert(all_types_table), [{"k": k, "s": "before"} for k in (0, 600, count - 1)])
        rows = [{"k": k, "s": f"s{k}", "t": T0 + timedelta(seconds=k), "j": {"k": k}} for k in range(count)]
        # when
        with db.unit_of_work() as session:
            answered = insert_ignore(session, all_types_table, rows, returning=(all_types_table.c.k,))
        # then
        assert sorted(k for (k,) in answered) == [k for k in range(count) if k not in (0, 600, count - 1)]
        with db.reading() as session:
            assert session.execute(
                select(all_types_table.c.t).where(all_types_table.c.k == 601)
            ).scalar() == (T0 + timedelta(seconds=601))

    def test_returned_columns_the_driver_would_give_raw_go_through_sqlalchemy(
        self, db: Database, all_types_table: Table
    ) -> None:
        # given: a time and a flag returned (SQLite gives text and 0/1 raw)
        rows = [{"k": 1, "t": T0, "b": True}, {"k": 2, "t": T0 + timedelta(seconds=1), "b": False}]
        # when
        with db.unit_of_work() as session:
            answered = insert_ignore(
                session, all_types_table, rows, returning=(all_types_table.c.t, all_types_table.c.b)
            )
        # then: the values SQLAlchemy gives
        assert sorted(answered) == [(T0, True), (T0 + timedelta(seconds=1), False)]

    def test_a_row_leaving_a_column_to_its_default_gets_the_default(self, db: Database) -> None:
        # given: the tier-less table with a Python-side default: reach_states.active, remaining
        from siyu.reachability.models import ReachState

        states = cast(Table, ReachState.__table__)
        with db.unit_of_work() as session:
            merchant_id = facade.create_merchant(session, name="批量").id
            session.add(
                Member(merchant_id=merchant_id, id="mbr_1", status="active", created_at=T0, updated_at=T0)
            )
        row = {
            "merchant_id": merchant_id,
            "member_id": "mbr_1",
            "channel": "sms",
            "target": "",
            "updated_at": T0,
        }
        # when: inserted twice
        with db.unit_of_work() as session:
            first = insert_ignore(session, states, [row], returning=(states.c.member_id, states.c.channel))
            again = insert_ignore(session, states, [row], returning=(states.c.member_id, states.c.channel))
        # then
        assert first == [("mbr_1", "sms")]
        assert again == []
        with db.reading() as session:
            assert session.execute(select(states.c.active, states.c.remaining)).one() == (False, 0)

    @pytest.mark.postgres_only
    def test_concurrent_writers_of_the_same_keys_skip_rather_than_fail(
        self, db: Database, all_types_table: Table
    ) -> None:
        # given: four writers of overlapping key ranges, started together
        answered: dict[int, list[int]] = {}

        def write(index: int) -> None:
            rows = [{"k": k, "s": f"w{index}"} for k in range(index * 50, index * 50 + 200)]
            with db.unit_of_work() as session:
                answered[index] = [
                    k
                    for (k,) in insert_ignore(
                        session, all_types_table, rows, returning=(all_types_table.c.k,)
                    )
                ]

        # when
        run_threads(4, write)
        # then: no unique violation; every key was answered to exactly one writer, its writer's row
        everything = sorted(k for keys in answered.values() for k in keys)
        assert everything == list(range(350))
        with db.reading() as session:
            stored = {r.k: r.s for r in session.execute(select(all_types_table.c.k, all_types_table.c.s))}
        assert {k: f"w{i}" for i, keys in answered.items() for k in keys} == stored


class TestConverters:
    @settings(max_examples=200, deadline=None)
    @given(
        picks=st.lists(
            st.tuples(
                st.integers(0, 3),  # which of a few time objects: repeats are the same object
                st.sampled_from([0, 8 * 60, -5 * 60 - 30]),  # its offset in minutes
            ),
            max_size=20,
        )
    )
    def test_time_text_does_not_depend_on_the_previous_conversion(self, picks: list[tuple[int, int]]) -> None:
        # given: times as a batch carries them, the same object often several times in a row
        made: dict[tuple[int, int], datetime] = {}
        values = []
        for n, offset in picks:
            zone = UTC if offset == 0 else timezone(timedelta(minutes=offset))
            values.append(made.setdefault((n, offset), (T0 + timedelta(seconds=n)).astimezone(zone)))
        # when: converted one after another (the converter remembers what it converted)
        texts = [_sqlite_time(v) for v in values]
        # then: each is the UTC text of its own time
        expected = [v.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds") for v in values]
        assert texts == expected
        assert _sqlite_time(None) is None

    def test_remembered_times_stay_bounded_and_a_naive_time_is_still_refused(self) -> None:
        # given: more distinct times than the converter keeps
        for n in range(bulk.SQLITE_TIMES_KEPT + 10):
            _sqlite_time(T0 + timedelta(microseconds=n))
        # then: it kept no more than its bound, and still converts correctly
        assert len(bulk._SQLITE_TIMES) <= bulk.SQLITE_TIMES_KEPT
        assert _sqlite_time(T0) == T0.replace(tzinfo=None).isoformat(" ", "microseconds")
        # and: a naive time equal to a remembered one's wall clock is refused, not matched
        with pytest.raises(ValueError, match="naive"):
            _sqlite_time(T0.replace(tzinfo=None))

    def test_json_text_as_json_dumps_writes_it(self) -> None:
        for value in ({}, {"城市": "上海", "n": [1, 2.5, None]}, [], {"a": {}}, "x", 0):
            assert _json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        assert _json(None) is None
