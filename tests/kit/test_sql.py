"""kit.sql.in_list: the same rows as an expanding IN on both engines (PostgreSQL: = ANY(array))."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, delete, insert, select

from siyu.db import Database
from siyu.kit.sql import in_list

ROWS = Table(
    "test_sql_in_list",
    MetaData(),
    Column("k", Integer, primary_key=True),
    Column("name", String(16)),
    Column("grp", String(4)),
)
NAMES = [f"n{i}" for i in range(12)] + ["", "o'q", "a,b", '"x"', "{}", "\\", "NULL"]
"""Values a text array literal would have to quote (PostgreSQL sends the list as an array)."""

BY_NAME = select(ROWS.c.k).where(ROWS.c.grp == bindparam("grp"), in_list(ROWS.c.name, "names"))
BY_KEY = select(ROWS.c.name).where(in_list(ROWS.c.k, "keys"))


@pytest.fixture
def rows_table(db: Database) -> Iterator[Table]:
    ROWS.create(db.engine, checkfirst=True)
    yield ROWS
    ROWS.drop(db.engine)


class TestInList:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        stored=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(["a", "b"])), max_size=20),
        wanted=st.lists(st.sampled_from(NAMES), max_size=10),
        keys=st.lists(st.integers(-2, 25) | st.just(70_000), max_size=10),  # int2 and int4 values mixed
    )
    def test_answers_the_rows_an_expanding_in_answers(
        self,
        db: Database,
        rows_table: Table,
        stored: list[tuple[str, str]],
        wanted: list[str],
        keys: list[int],
    ) -> None:
        # given
        with db.unit_of_work() as session:
            session.execute(delete(rows_table))
            if stored:
                session.execute(
                    insert(rows_table), [{"k": k, "name": n, "grp": g} for k, (n, g) in enumerate(stored)]
                )
        # when: two statements built once, run with lists (empty ones included)
        with db.reading() as session:
            by_name = sorted(session.execute(BY_NAME, {"grp": "a", "names": wanted}).scalars())
            by_key = sorted(session.execute(BY_KEY, {"keys": keys}).scalars())
            expanding = select(rows_table.c.k).where(
                rows_table.c.grp == "a", rows_table.c.name.in_(bindparam("n", expanding=True))
            )
            expected_by_name = sorted(session.execute(expanding, {"n": wanted}).scalars())
        # then
        assert by_name == expected_by_name
        assert by_name == sorted(k for k, (n, g) in enumerate(stored) if g == "a" and n in wanted)
        assert by_key == sorted(stored[k][0] for k in set(keys) if 0 <= k < len(stored))
