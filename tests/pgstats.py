"""PostgreSQL planner-statistics helpers shared by the tests of ``siyu.db.refresh_statistics``
and of the server loop that runs it."""

from __future__ import annotations

from sqlalchemy import Connection, text

from siyu.db import Database


def flush_counters(connection: Connection) -> None:
    """PostgreSQL 15+ holds a backend's counters for up to 10 s: flush them at this commit."""
    connection.execute(text("SELECT pg_stat_force_next_flush()"))


def grow_merchants(db: Database, prefix: str, count: int = 2_000) -> None:
    """Analyze ``merchants``, then add ``count`` rows: the table changed since its statistics."""
    with db.engine.begin() as connection:
        connection.execute(text("ANALYZE merchants"))
        connection.execute(
            text(
                "INSERT INTO merchants"
                " (id, name, timezone, currency, store_number_seq, created_at, updated_at)"
                " SELECT :prefix || n, 'm' || n, 'Asia/Shanghai', 'CNY', 0, now(), now()"
                " FROM generate_series(1, :count) AS n"
            ),
            {"prefix": prefix, "count": count},
        )
        flush_counters(connection)


def last_analysis(db: Database, table: str) -> tuple[bool, int]:
    """Whether ``table`` was ever analyzed, and the rows changed since."""
    with db.engine.connect() as connection:
        analyzed, changed = connection.execute(
            text(
                "SELECT coalesce(last_analyze, last_autoanalyze) IS NOT NULL, n_mod_since_analyze"
                " FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = :table"
            ),
            {"table": table},
        ).one()
    return bool(analyzed), int(changed)
