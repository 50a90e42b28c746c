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
Python calls without it, measured 2026-11-29). :func:`fetch_many` is the same for a statement
with ``RETURNING`` (``kit.sql.insert_ignore(…, returning=…)``): a driver ``executemany`` discards
what each row returns, so the rows go as one ``unnest`` statement on PostgreSQL and as multi-row
``VALUES`` chunks on SQLite.

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


_SQLITE_TIMES: dict[datetime, str] = {}
"""Times already converted by :func:`_sqlite_time`, and their text (at most
:data:`SQLITE_TIMES_KEPT`, then emptied): a batch carries the same instants into several tables
(an event's ``occurred_at`` into ``events``, then into its member's rollup, its points entry and
lot, its tier progress; the batch's ``now`` into every ``received_at``/``recorded_at``), and
``datetime.isoformat`` of an aware time costs ~0.9 µs where a look-up costs ~0.03 µs. Keys are
compared as instants, so two equal times in different zones share the (UTC) text. Reads and
writes of a dict are atomic under the GIL; a race only converts a time twice."""

SQLITE_TIMES_KEPT = 65_536


def _sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = _SQLITE_TIMES.get(value)
    if text is not None:
        return text
    if value.tzinfo is UTC:  # the usual case: "YYYY-MM-DD HH:MM:SS.ffffff+00:00" minus the offset
        text = value.isoformat(" ", "microseconds")[:26]
    elif value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    else:
        text = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if len(_SQLITE_TIMES) >= SQLITE_TIMES_KEPT:
        _SQLITE_TIMES.clear()
    _SQLITE_TIMES[value] = text
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
    sql, order, columns = _prepared(connection, table, name, build, rows)
    if connection.dialect.name != "postgresql":  # SQLite re-runs one prepared statement: already fast
        params = list(zip(*columns, strict=True))
        return int(connection.exec_driver_sql(sql, params).rowcount)
    if len(rows) == 1:  # one row: plain VALUES, no one-element array to build per column
        return int(connection.exec_driver_sql(sql, tuple(column[0] for column in columns)).rowcount)
    return int(connection.exec_driver_sql(_unnest(sql, order, table), tuple(columns)).rowcount)


SQLITE_PARAMETERS = 32_766
"""SQLite's default limit of bound parameters per statement (3.32 and later)."""

SQLITE_ROWS = 500
"""At most this many rows in one SQLite multi-row ``VALUES`` (the SQL text grows with them)."""


def fetch_many(
    session: Session,
    table: Table,
    name: str,
    build: Callable[[str], ClauseElement],
    rows: Sequence[Mapping[str, Any]],
) -> list[tuple[Any, ...]]:
    """Like :func:`execute_many` for a statement with ``RETURNING``: the rows it returned.

    A driver's ``executemany`` discards what each row returns, so the rows go in one statement
    per chunk instead: on PostgreSQL ``INSERT … SELECT * FROM unnest(…) … RETURNING …`` (all the
    rows at once), on SQLite (3.35 or later) a multi-row ``VALUES`` list of at most
    :data:`SQLITE_ROWS` rows and :data:`SQLITE_PARAMETERS` parameters. The returned columns come
    back as the driver gives them, so they must be strings or integers (the same values
    SQLAlchemy would give); any other type raises :class:`UnsupportedColumn`. The order of the
    returned rows is the database's.
    """
    if not rows:
        return []
    connection = session.connection()
    sql, order, columns = _prepared(connection, table, name, build, rows, returning=True)
    if connection.dialect.name == "postgresql":
        if len(rows) == 1:
            params: tuple[Any, ...] = tuple(column[0] for column in columns)
            return [tuple(r) for r in connection.exec_driver_sql(sql, params)]
        return [tuple(r) for r in connection.exec_driver_sql(_unnest(sql, order, table), tuple(columns))]
    per_statement = max(1, min(SQLITE_ROWS, SQLITE_PARAMETERS // max(len(order), 1)))
    flat = [value for row in zip(*columns, strict=True) for value in row]
    width = len(order)
    returned: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), per_statement):
        count = min(per_statement, len(rows) - start)
        params = tuple(flat[start * width : (start + count) * width])
        returned.extend(tuple(r) for r in connection.exec_driver_sql(_values_rows(sql, count), params))
    return returned


def _prepared(
    connection: Any,
    table: Table,
    name: str,
    build: Callable[[str], ClauseElement],
    rows: Sequence[Mapping[str, Any]],
    *,
    returning: bool = False,
) -> tuple[str, tuple[str, ...], list[list[Any]]]:
    """The statement's positional SQL (compiled once per dialect and column set), its parameter
    order, and the rows' values converted, one list per parameter."""
    dialect = connection.dialect
    keys = tuple(rows[0])
    cache_key = (name, dialect.name, keys)
    entry = _compiled.get(cache_key)
    if entry is None:
        entry = _compiled[cache_key] = _compile(build(dialect.name), table, dialect, keys, returning)
    sql, order, converters = entry
    columns = [
        [row[key] for row in rows] if convert is _same else [convert(row[key]) for row in rows]
        for key, convert in zip(order, converters, strict=True)
    ]
    return sql, order, columns


def _values_group(sql: str) -> tuple[int, int]:
    """Where ``VALUES (…)`` starts, and its closing parenthesis."""
    start = sql.index("VALUES (")
    depth, end = 0, start + len("VALUES ")
    for end in range(start + len("VALUES "), len(sql)):
        depth += {"(": 1, ")": -1}.get(sql[end], 0)
        if depth == 0:
            break
    return start, end


@functools.lru_cache(maxsize=256)
def _values_rows(sql: str, count: int) -> str:
    """``INSERT … VALUES (?, …) …`` → ``INSERT … VALUES (?, …), (?, …), … …`` (``count`` rows)."""
    start, end = _values_group(sql)
    group = sql[start + len("VALUES ") : end + 1]
    return f"{sql[:start]}VALUES {', '.join([group] * count)}{sql[end + 1 :]}"


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
    start, end = _values_group(sql)
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
    statement: ClauseElement, table: Table, dialect: Dialect, keys: tuple[str, ...], returning: bool
) -> tuple[str, tuple[str, ...], list[Converter]]:
    """SQL with positional parameters, their column order, and a converter per column."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    returned = list(getattr(compiled, "effective_returning", None) or ())
    if returning and not returned:
        raise ValueError("fetch_many takes a statement with RETURNING")
    for column in returned:  # the driver's values are answered as they are: no result processing
        if not isinstance(column.type, String | Integer | BigInteger):
            raise UnsupportedColumn(f"fetch_many cannot return {column.type!r} as SQLAlchemy would")
    sql = compiled.string
    positions = getattr(compiled, "positiontup", None)  # positional paramstyles (SQLite's ?)
    if positions is not None:
        order = tuple(positions)
    else:  # psycopg's %(name)s: the same parameters by position, so rows can be tuples
        order = tuple(_NAMED.findall(sql))
        sql = _NAMED.sub("%s", sql)
    missing = [key for key in order if key not in keys]
    if missing:  # a column the rows leave to its Python-side default: SQLAlchemy's path fills it
        raise UnsupportedColumn(f"rows of {table.name} leave {missing} to their defaults")
    return sql, order, [_converter(table.c[key].type, dialect) for key in order]
