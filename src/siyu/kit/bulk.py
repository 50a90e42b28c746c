"""Many-row writes at driver speed, for the hot paths of ingestion.

SQLAlchemy processes every bound value of every row in Python (type decorators, then the
dialect's own processors); at thousands of rows per batch that costs more than the database
does. :func:`execute_many` compiles a Core statement once per dialect and column set, converts
each row with one small function per column, and hands the rows to the driver — the same SQL,
none of the per-value machinery. On SQLite that is ``executemany`` of one prepared statement; on
PostgreSQL, where every statement is a round trip and a plan, the ``VALUES (…)`` row becomes
``SELECT * FROM unnest(%s::type[], …)``: the whole batch as one array per column, one small
statement whatever the batch size (1.3–1.7× the rows/s of 1,000-row ``VALUES`` lists in a
measurement on this machine, and no parameter limit). The arrays are sent in psycopg's **binary**
format (``%b``): its text format escapes every element in Python, which made dumping a 5,000-row
column cost 6 ms (strings) to 16 ms (``timestamptz``) against 0.9 ms in binary, more than the
statement itself (measured 2026-11-29; a campaign fan-out on PostgreSQL spent a quarter of its
time there). Both formats give the same values; ``tests/kit/test_bulk.py`` runs on both engines.
A single row goes as the plain ``VALUES`` statement: building one one-element array per column
cost more Python than the row (the payment-success decision on PostgreSQL made 28–38 % fewer
Python calls without it, measured 2026-11-29).

Only the column types the hot tables use are converted here (strings, integers, booleans, dates,
:class:`siyu.db.UTCDateTime`, :class:`siyu.db.JSONDocument`); anything else raises, so a new
column type cannot slip through unconverted. On SQLite a time is stored as SQLAlchemy stores it
(``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), so rows written here and through the ORM compare and read
back the same; the tests check it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, Integer, String, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

from siyu.db import JSONDocument, UTCDateTime

Converter = Callable[[Any], Any]


class UnsupportedColumn(TypeError):
    """A column whose type :func:`execute_many` does not convert (callers may fall back)."""


def _same(value: Any) -> Any:
    return value


_last_time: tuple[datetime | None, str | None] = (None, None)
"""The last time :func:`_sqlite_time` converted, and its text: a batch's rows mostly carry the
same ``now`` (``received_at``, ``recorded_at``, ``updated_at`` …), converted once rather than once
per row. One tuple, replaced whole, so threads never see a time paired with another's text; it
holds a reference to the time, so the identity test cannot match a recycled object."""


def _sqlite_time(value: datetime | None) -> str | None:
    global _last_time
    last = _last_time
    if value is last[0]:
        return last[1]
    if value is None:
        return None
    if value.tzinfo is UTC:  # the usual case: "YYYY-MM-DD HH:MM:SS.ffffff+00:00" minus the offset
        text = value.isoformat(" ", "microseconds")[:26]
    elif value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    else:
        text = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    _last_time = (value, text)
    return text


def _pg_time(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value


COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""Compact JSON text (no spaces, UTF-8 as is), the encoder made once: ``json.dumps`` with options
builds one per call (a row's JSON column, every event of a batch; the lifecycle brief)."""


def _json(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is dict and not value:  # most events carry no properties
        return "{}"
    return COMPACT_JSON.encode(value)


def _iso_date(value: date | None) -> str | None:
    """SQLite stores a ``Date`` as SQLAlchemy does: ``YYYY-MM-DD``."""
    return None if value is None else value.isoformat()


def _converter(column_type: Any, dialect: Dialect) -> Converter:
    if isinstance(column_type, UTCDateTime):
        return _sqlite_time if dialect.name == "sqlite" else _pg_time
    if isinstance(column_type, JSONDocument):
        return _json
    if isinstance(column_type, Date):
        return _iso_date if dialect.name == "sqlite" else _same
    if isinstance(column_type, String | Integer | BigInteger | Boolean):
        return _same
    raise UnsupportedColumn(f"execute_many cannot convert {column_type!r}; add it to siyu.kit.bulk")


_compiled: dict[tuple[str, str, tuple[str, ...]], tuple[str, tuple[str, ...], list[Converter]]] = {}
_NAMED = re.compile(r"%\(([^)]+)\)s")


def execute_many(
    session: Session,
    table: Table,
    name: str,
    build: Callable[[str], ClauseElement],
    rows: Sequence[Mapping[str, Any]],
) -> int:
    """Run the statement ``build(dialect_name)`` (an ``INSERT``/upsert on ``table``) once per
    row; the number of rows affected. ``name`` identifies the statement in the compile cache.

    Every row must have the same keys: the columns of ``table`` the statement inserts.
    """
    if not rows:
        return 0
    connection = session.connection()
    dialect = connection.dialect
    keys = tuple(rows[0])
    cache_key = (name, dialect.name, keys)
    entry = _compiled.get(cache_key)
    if entry is None:
        entry = _compiled[cache_key] = _compile(build(dialect.name), table, dialect, keys)
    sql, order, converters = entry
    columns = [
        [row[key] for row in rows] if convert is _same else [convert(row[key]) for row in rows]
        for key, convert in zip(order, converters, strict=True)
    ]
    if dialect.name != "postgresql":  # SQLite re-runs one prepared statement: already fast
        params = list(zip(*columns, strict=True))
        return int(connection.exec_driver_sql(sql, params).rowcount)
    if len(rows) == 1:  # one row: plain VALUES, no one-element array to build per column
        return int(connection.exec_driver_sql(sql, tuple(column[0] for column in columns)).rowcount)
    return int(connection.exec_driver_sql(_unnest(sql, order, table), tuple(columns)).rowcount)


_PG_ARRAY_TYPES: tuple[tuple[type[Any], str], ...] = (
    (UTCDateTime, "timestamptz"),
    (JSONDocument, "jsonb"),
    (Date, "date"),
    (BigInteger, "int8"),
    (Integer, "int4"),
    (Boolean, "bool"),
    (String, "text"),
)


@functools.lru_cache(maxsize=256)
def _unnest_sql(sql: str, types: tuple[str, ...]) -> str:
    """``INSERT … VALUES (%s, …) …`` → ``INSERT … SELECT * FROM unnest(%s::t[], …) …``."""
    start = sql.index("VALUES (")
    depth, end = 0, start + len("VALUES ")
    for end in range(start + len("VALUES "), len(sql)):  # the VALUES group's closing parenthesis
        depth += {"(": 1, ")": -1}.get(sql[end], 0)
        if depth == 0:
            break
    arrays = ", ".join(f"%b::{t}[]" for t in types)  # %b: binary arrays (see the module doc)
    return f"{sql[:start]}SELECT * FROM unnest({arrays}){sql[end + 1 :]}"


@functools.lru_cache(maxsize=256)
def _unnest(sql: str, order: tuple[str, ...], table: Table) -> str:
    types = []
    for key in order:
        column_type = table.c[key].type
        types.append(next(name for kind, name in _PG_ARRAY_TYPES if isinstance(column_type, kind)))
    return _unnest_sql(sql, tuple(types))


def _compile(
    statement: ClauseElement, table: Table, dialect: Dialect, keys: tuple[str, ...]
) -> tuple[str, tuple[str, ...], list[Converter]]:
    """SQL with positional parameters, their column order, and a converter per column."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    sql = compiled.string
    positions = getattr(compiled, "positiontup", None)  # positional paramstyles (SQLite's ?)
    if positions is not None:
        order = tuple(positions)
    else:  # psycopg's %(name)s: the same parameters by position, so rows can be tuples
        order = tuple(_NAMED.findall(sql))
        sql = _NAMED.sub("%s", sql)
    return sql, order, [_converter(table.c[key].type, dialect) for key in order]
