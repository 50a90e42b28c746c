"""Copy one merchant's state-store relations into in-memory DuckDB tables with the same columns.

Lets a metric test run the same Core query on DuckDB without the mirror, proving it compiles
and answers alike there (the mirror's own tests prove the Parquet side equals these relations).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from siyu.analytics.relations import Relations

_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "occurred_at": sa.DateTime(timezone=True),
    "created_at": sa.DateTime(timezone=True),
    "first_order_at": sa.DateTime(timezone=True),
    "local_date": sa.Date(),
    "created_on": sa.Date(),
    "first_order_on": sa.Date(),
    "effective_on": sa.Date(),
    "amount_fen": sa.BigInteger(),
    "order_count": sa.BigInteger(),
    "total_spend_fen": sa.BigInteger(),
    "refund_fen": sa.BigInteger(),
    "points_balance": sa.BigInteger(),
    "seq": sa.Integer(),
    "operable": sa.Boolean(),
}


def duck_engine() -> sa.Engine:
    return sa.create_engine("duckdb:///:memory:", poolclass=sa.pool.StaticPool)


def copy_to_duck(state: Connection, rel: Relations, duck: Connection) -> Relations:
    """Materialise ``rel`` (state store) as DuckDB tables and answer DuckDB relations over them."""
    metadata = sa.MetaData()
    tables: dict[str, sa.Table] = {}
    for name in ("events", "members", "stage_transitions"):
        source = getattr(rel, name)
        table = sa.Table(
            f"t_{name}",
            metadata,
            *(sa.Column(c.name, _TYPES.get(c.name, sa.String())) for c in source.c),
        )
        table.create(duck)
        rows = [dict(r._mapping) for r in state.execute(sa.select(source))]
        if rows:
            duck.execute(table.insert(), rows)
        tables[name] = table
    return Relations(
        merchant_id=rel.merchant_id,
        timezone=rel.timezone,
        engine="duckdb",
        events=sa.select(tables["events"]).subquery("events"),
        members=sa.select(tables["members"]).subquery("members"),
        stage_transitions=sa.select(tables["stage_transitions"]).subquery("stage_transitions"),
    )
