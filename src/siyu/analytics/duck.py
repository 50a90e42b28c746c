"""DuckDB over the Parquet mirror: the engine, and the same :class:`Relations` as the state store.

Each relation is a ``read_parquet([...])`` of the files the mirror's state file names at the
moment :func:`mirror_relations` is called (never a directory glob: a file being replaced or
retired is not in that list, and a retired file stays on disk long enough for queries planned
before; see :mod:`siyu.analytics.mirror_store`). Events resolve their member through the merge
map; members are the latest snapshot.

``member_id`` in these relations is the mirror's integer member key
(:mod:`siyu.analytics.mirror_keys`), not the id string: every statement only groups, counts and
joins members within the mirror, and integers hash several times faster. A statement that
must answer member ids would map keys back through ``member_keys`` (none does today).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import sqlalchemy as sa
from duckdb_engine import ConnectionWrapper
from sqlalchemy import event, text
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import FromClause

from siyu.analytics import mirror_facts as facts_store
from siyu.analytics import mirror_store as store
from siyu.analytics.relations import EVENT_COLUMNS, MEMBER_COLUMNS, TRANSITION_COLUMNS, Relations

_TS = sa.DateTime(timezone=True)
_TYPES: dict[str, tuple[sa.types.TypeEngine[Any], str]] = {
    # column: (SQLAlchemy type, DuckDB type of an empty relation's column)
    "occurred_at": (_TS, "TIMESTAMPTZ"),
    "created_at": (_TS, "TIMESTAMPTZ"),
    "first_order_at": (_TS, "TIMESTAMPTZ"),
    "local_date": (sa.Date(), "DATE"),
    "created_on": (sa.Date(), "DATE"),
    "first_order_on": (sa.Date(), "DATE"),
    "effective_on": (sa.Date(), "DATE"),
    "snapshot_date": (sa.Date(), "DATE"),
    "amount_fen": (sa.BigInteger(), "BIGINT"),
    "order_count": (sa.BigInteger(), "BIGINT"),
    "total_spend_fen": (sa.BigInteger(), "BIGINT"),
    "refund_fen": (sa.BigInteger(), "BIGINT"),
    "points_balance": (sa.BigInteger(), "BIGINT"),
    "seq": (sa.Integer(), "INTEGER"),
    # the mirror's integer member key (siyu.analytics.mirror_keys), under the relations' name
    "member_id": (sa.Integer(), "INTEGER"),
    "operable": (sa.Boolean(), "BOOLEAN"),
    # member_months (siyu.analytics.mirror_facts): a month and its day masks
    "month": (sa.Date(), "DATE"),
    **{mask: (sa.Integer(), "INTEGER") for mask in facts_store.MASKS},
}
_STRING: tuple[sa.types.TypeEngine[Any], str] = (sa.String(), "VARCHAR")


def mirror_engine(root: Path) -> sa.Engine:
    """A DuckDB engine for queries over the mirror under ``root``: one in-memory DuckDB database,
    and each checkout a new connection to it (``NullPool``; DuckDB's ``cursor()``), so each
    request thread has its own connection.

    One database, not one per connection: its connections share DuckDB's cache of the Parquet
    files read (``enable_external_file_cache``) and of their footers (``parquet_metadata_cache``:
    a mirror file never changes once written), its buffer pool and one thread pool sized to the
    machine. Measured at 1 M members / 30 M events, a request (context opened, whole dashboard)
    took 0.94–1.0 s on a database of its own and 0.78–0.84 s on the shared one once it had read
    the files (bench/RESULTS.md). Sessions run in UTC, so ``TIMESTAMPTZ`` values come back as
    aware UTC datetimes. The database lives as long as the engine and the connections taken from it.
    """
    database = duckdb.connect(":memory:")
    # mirror files never change once written (a change is a new file): their footers can be kept
    database.execute("SET GLOBAL parquet_metadata_cache = true")
    lock = threading.Lock()

    def connect() -> Any:
        with lock:  # one cursor() at a time on the shared connection
            return ConnectionWrapper(database.cursor())

    engine = sa.create_engine("duckdb:///:memory:", poolclass=NullPool, creator=connect)
    search_path = str(Path(root).resolve()).replace("'", "''")

    @event.listens_for(engine, "connect")
    def _setup(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("SET TimeZone = 'UTC'")
        dbapi_connection.execute(f"SET file_search_path = '{search_path}'")

    return engine


def parquet_source(root: Path, paths: list[str]) -> str:
    """``read_parquet([...])`` of ``paths`` (relative to ``root``), in a stable order."""
    files = ", ".join("'" + str((root / p).resolve()).replace("'", "''") + "'" for p in sorted(paths))
    return f"read_parquet([{files}])"


def _columns(names: tuple[str, ...]) -> list[sa.ColumnClause[Any]]:
    return [sa.column(n, _TYPES.get(n, _STRING)[0]) for n in names]


def _empty(names: tuple[str, ...]) -> str:
    picks = ", ".join(f"CAST(NULL AS {_TYPES.get(n, _STRING)[1]}) AS {n}" for n in names)
    return f"SELECT {picks} WHERE false"


def _picks(names: tuple[str, ...], prefix: str = "") -> str:
    """The relation's columns from a mirror file: ``member_id`` is the file's ``member_key``."""
    return ", ".join(f"{prefix}member_key AS member_id" if n == "member_id" else prefix + n for n in names)


def _relation(sql: str, names: tuple[str, ...], alias: str) -> FromClause:
    return text(sql).columns(*_columns(names)).subquery(alias)


def _resolved_sql(
    root: Path, ms: store.MerchantState, paths: list[str], names: tuple[str, ...], where: str = ""
) -> str:
    """``names`` from the files ``paths``, ``member_id`` being the file's member key resolved
    through the merge map (``coalesce(survivor_key, member_key)``); ``where`` on the file's
    columns (alias ``e``)."""
    if not paths:
        return _empty(names)
    where = f" WHERE {where}" if where else ""
    merges = ms.files["merge_map"]
    if not merges:
        return f"SELECT {_picks(names, 'e.')} FROM {parquet_source(root, paths)} AS e{where}"
    picks = ", ".join(
        "coalesce(m.survivor_key, e.member_key) AS member_id" if n == "member_id" else f"e.{n}" for n in names
    )
    return (
        f"SELECT {picks} FROM {parquet_source(root, paths)} AS e"
        f" LEFT JOIN {parquet_source(root, list(merges))} AS m ON m.merged_key = e.member_key{where}"
    )


def _events_sql(root: Path, ms: store.MerchantState | None) -> str:
    if ms is None:
        return _empty(EVENT_COLUMNS)
    return _resolved_sql(root, ms, list(ms.files["events"]), EVENT_COLUMNS)


def _members_sql(root: Path, ms: store.MerchantState | None, names: tuple[str, ...], *, latest: bool) -> str:
    paths = sorted(ms.files["members"], key=_snapshot_day) if ms else []
    if latest:
        paths = paths[-1:]
    if not paths:
        return _empty(names)
    return f"SELECT {_picks(names)} FROM {parquet_source(root, paths)}"


def _snapshot_day(path: str) -> tuple[str, str]:
    return path.split("snapshot_date=")[1].split("/")[0], path


def _transitions_sql(root: Path, ms: store.MerchantState | None) -> str:
    if ms is None or not ms.files["stage_transitions"]:
        return _empty(TRANSITION_COLUMNS)
    source = parquet_source(root, list(ms.files["stage_transitions"]))
    return f"SELECT {_picks(TRANSITION_COLUMNS)} FROM {source}"


def mirror_relations(
    root: Path, merchant_id: str, zone: ZoneInfo, *, ms: store.MerchantState | None = None
) -> Relations:
    """The merchant's relations over the mirror, as of now (engine ``duckdb``).

    Same columns and compatible types as :func:`siyu.analytics.relations.state_relations`,
    except that ``member_id`` is the integer member key; ``events.member_id`` is resolved
    through the merge map; ``members`` is the latest daily snapshot. A root or merchant not
    mirrored yet gives empty relations.
    """
    root = Path(root)
    ms = ms or store.load_state(root).merchants.get(merchant_id)
    return Relations(
        merchant_id=merchant_id,
        timezone=zone,
        engine="duckdb",
        events=_relation(_events_sql(root, ms), EVENT_COLUMNS, "events"),
        members=_relation(_members_sql(root, ms, MEMBER_COLUMNS, latest=True), MEMBER_COLUMNS, "members"),
        stage_transitions=_relation(_transitions_sql(root, ms), TRANSITION_COLUMNS, "stage_transitions"),
    )


MEMBER_DAY_COLUMNS = (*MEMBER_COLUMNS, "snapshot_date")


def mirror_member_days(root: Path, merchant_id: str, *, ms: store.MerchantState | None = None) -> FromClause:
    """Every daily member snapshot of the merchant (``MEMBER_COLUMNS`` + ``snapshot_date``): the
    members as they were at the end of each mirrored day ("operable assets over time")."""
    root = Path(root)
    ms = ms or store.load_state(root).merchants.get(merchant_id)
    sql = _members_sql(root, ms, MEMBER_DAY_COLUMNS, latest=False)
    return _relation(sql, MEMBER_DAY_COLUMNS, "member_days")


FACT_COLUMNS = ("member_id", "month", *facts_store.MASKS)


@dataclass(frozen=True)
class Facts:
    """The merchant's ``member_months`` (:mod:`siyu.analytics.mirror_facts`) and the events they
    do not cover yet, as of one state of the mirror."""

    months: FromClause
    """``FACT_COLUMNS``; ``member_id`` is the member key resolved through the merge map."""
    delta: FromClause
    """The events (``EVENT_COLUMNS``, resolved like :func:`mirror_relations`' events) received
    after :attr:`through`."""
    through: datetime


def mirror_facts(root: Path, merchant_id: str, *, ms: store.MerchantState | None = None) -> Facts | None:
    """The merchant's facts, or ``None`` when the mirror has none for it."""
    root = Path(root)
    ms = ms or store.load_state(root).merchants.get(merchant_id)
    if ms is None or ms.facts_through is None:
        return None
    mark = datetime.fromisoformat(ms.facts_through)
    months_sql = _resolved_sql(root, ms, list(ms.files[facts_store.TABLE]), FACT_COLUMNS)
    received = f"e.received_at > TIMESTAMPTZ '{mark.isoformat()}'"
    delta_sql = _resolved_sql(root, ms, facts_store.delta_files(ms), EVENT_COLUMNS, received)
    return Facts(
        months=_relation(months_sql, FACT_COLUMNS, "member_months"),
        delta=_relation(delta_sql, EVENT_COLUMNS, "events"),
        through=mark,
    )
