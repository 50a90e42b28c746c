"""Statements that differ between the two engines, written once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Boolean, Table, any_, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from siyu.kit.bulk import UnsupportedColumn, execute_many, fetch_many


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


class InList(ColumnElement[bool]):
    """``column IN`` the list given as the parameter ``name`` at execution (see :func:`in_list`)."""

    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy reads it: the cache key)
        ("column", InternalTraversal.dp_clauseelement),
        ("name", InternalTraversal.dp_string),
    ]
    type = Boolean()
    _is_implicitly_boolean = True  # a comparison: no "= 1" appended in a WHERE on SQLite

    def __init__(self, column: Any, name: str) -> None:
        self.column = column.__clause_element__() if hasattr(column, "__clause_element__") else column
        self.name = name


def in_list(column: Any, name: str) -> ColumnElement[bool]:
    """``column IN (…)``, the values a list given as the parameter ``name`` when the statement
    runs (``session.execute(statement, {name: [...]})``), for statements built once.

    SQLite: an expanding ``IN (?, ?, …)``, as ``bindparam(name, expanding=True)``. PostgreSQL:
    ``column = ANY(%(name)s::type[])``, one array parameter. An expanding ``IN`` there made
    SQLAlchemy render one placeholder per value on every execution and psycopg parse the
    resulting long statement again (its statement cache skips long ones): for the ingestion
    path's member, event-id and identity look-ups (500 values per statement) that was ~3 s of a
    20 s profile of 50,000 events (2026-11-29). Same rows either way.
    """
    return InList(column, name)


@compiles(InList)
def _in_list_expanding(element: InList, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column.in_(bindparam(element.name, expanding=True)), **kw)


@compiles(InList, "postgresql")
def _in_list_any(element: InList, compiler: SQLCompiler, **kw: Any) -> str:
    array = bindparam(element.name, type_=postgresql.ARRAY(element.column.type))
    return compiler.process(element.column == any_(array), **kw)


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
    if returning:
        fetched = _fetched_at_driver_speed(session, table, rows, tuple(returning))
        if fetched is not None:
            return fetched
    elif _at_driver_speed(session, table, rows):
        return []
    statement = _ignoring(session.get_bind().dialect.name, table, tuple(returning))
    if returning:
        return [tuple(row) for row in session.execute(statement, list(rows))]
    session.execute(statement, list(rows))
    return []


_ignoring_built: dict[tuple[str, Table, tuple[str, ...]], Any] = {}


def _ignoring(dialect: str, table: Table, returning: tuple[ColumnElement[Any], ...]) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING [RETURNING …]``, built once per dialect, table and
    returned columns (of ``table``): building it per call cost more Python time than a one-row
    insert (the payment-success decision's own row)."""
    if not all(getattr(column, "table", None) is table for column in returning):
        statement = dialect_insert(dialect, table).on_conflict_do_nothing()
        return statement.returning(*returning) if returning else statement
    key = (dialect, table, tuple(str(getattr(column, "key", "")) for column in returning))
    statement = _ignoring_built.get(key)
    if statement is None:
        statement = dialect_insert(dialect, table).on_conflict_do_nothing()
        if returning:
            statement = statement.returning(*returning)
        _ignoring_built[key] = statement
    return statement


_unconvertible: set[tuple[str, tuple[str, ...]]] = set()
"""(table, columns) that :func:`siyu.kit.bulk.execute_many` cannot convert: SQLAlchemy's path."""


def _at_driver_speed(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> bool:
    """Run :func:`insert_ignore` through :func:`siyu.kit.bulk.execute_many` when every row has the
    same columns and their types are ones it converts; ``False`` when the caller must insert.

    SQLAlchemy's ``executemany`` builds every row's parameters in Python (~5 µs a row); for the
    thousands of rows a batch creates (tier rows, points accounts) that was most of the insert."""
    first = rows[0].keys()
    key = (table.name, tuple(first))
    if key in _unconvertible or any(row.keys() != first for row in rows):
        return False
    try:
        execute_many(
            session,
            table,
            f"insert_ignore:{table.name}",
            lambda dialect: dialect_insert(dialect, table).on_conflict_do_nothing(),
            rows,
        )
    except UnsupportedColumn:
        _unconvertible.add(key)
        return False
    return True


def _fetched_at_driver_speed(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    returning: tuple[ColumnElement[Any], ...],
) -> list[tuple[Any, ...]] | None:
    """:func:`insert_ignore` with ``returning`` through :func:`siyu.kit.bulk.fetch_many` (one
    ``unnest`` statement on PostgreSQL, multi-row ``VALUES`` on SQLite); ``None`` when the caller
    must insert through SQLAlchemy (rows of different columns, a column type it does not convert,
    a returned column not of ``table`` or not a string or integer).

    SQLAlchemy's ``executemany`` with ``RETURNING`` processed every bound value in Python: tier
    progress rows, one per paid order, cost ~39 µs per ingested event on PostgreSQL that way."""
    if not all(getattr(column, "table", None) is table for column in returning):
        return None
    names = tuple(str(getattr(column, "key", "")) for column in returning)
    first = rows[0].keys()
    key = (table.name, (*first, "->", *names))
    if key in _unconvertible or any(row.keys() != first for row in rows):
        return None
    try:
        return fetch_many(
            session,
            table,
            f"insert_ignore:{table.name}:returning:{','.join(names)}",
            lambda dialect: _ignoring(dialect, table, returning),
            rows,
        )
    except UnsupportedColumn:
        _unconvertible.add(key)
        return None
