"""Fixtures shared by the analytics tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from siyu.db import Database
from tests.analytics.test_cohorts_property import state_and_duck

Engines = tuple[tuple[sa.Connection, str], sa.Connection, dict[str, sa.Table]]
"""``((state store connection, its dialect), DuckDB connection, the raw tables)``."""


@pytest.fixture
def state_and_duck_tables(db: Database, request: pytest.FixtureRequest) -> Iterator[Engines]:
    """The raw relation tables on the engine under test and on an in-memory DuckDB (named after
    the test module, so modules never share tables)."""
    prefix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with state_and_duck(db, prefix) as (state, dc, tables):
        yield (state, db.engine.dialect.name), dc, tables
