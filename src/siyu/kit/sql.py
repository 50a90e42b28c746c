"""Statements that differ between the two engines, written once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement


def dialect_insert(dialect: str, table: Any) -> Any:
    """``INSERT`` with the engine's ``ON CONFLICT`` support (``on_conflict_do_nothing/update``)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no ON CONFLICT insert for {dialect}")  # pragma: no cover


def chunked(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``values`` in slices of at most ``size`` (bound-parameter limits of ``IN (…)`` lists)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


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
    statement = dialect_insert(session.get_bind().dialect.name, table).on_conflict_do_nothing()
    if returning:
        return [tuple(row) for row in session.execute(statement.returning(*returning), list(rows))]
    session.execute(statement, list(rows))
    return []
