"""Statements that differ between the two engines, written once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement


def insert_ignore(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    returning: Sequence[ColumnElement[Any]] = (),
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` into ``table``, skipping those whose primary key exists.

    ``INSERT … ON CONFLICT DO NOTHING`` on both engines: a concurrent writer inserting the same
    key makes this one wait and then skip, instead of failing with a unique violation. With
    ``returning``, answers those columns of the rows really inserted (the skipped ones are absent).
    """
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement = pg_insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).on_conflict_do_nothing()  # type: ignore[assignment]
    else:  # pragma: no cover - only the two engines are supported
        raise NotImplementedError(f"insert_ignore on {dialect}")
    if returning:
        return [tuple(row) for row in session.execute(statement.returning(*returning), list(rows))]
    session.execute(statement, list(rows))
    return []
