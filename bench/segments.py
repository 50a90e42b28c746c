"""Segment preview (count of a compiled rule) on a generated merchant, against hand-written SQL.

    python bench/segments.py --members 100000 --events 3000000 [--database-url postgresql+psycopg://…]

The merchant's members, rollups, tags, points accounts, locations and events are generated in
the database itself (``generate_series`` on PostgreSQL, a recursive CTE on SQLite), then
``ANALYZE``d. Each rule is previewed as the API does (``count(*)`` over
``siyu.segments.facade.member_ids``); the anchor is the same question written by hand as the
shortest SQL a person would write (``EXISTS``/``GROUP BY`` over the same tables). Figures: the
best of ``--repeat`` runs, seconds, and the ratio compiled/anchor; the two counts must agree.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select, text

from ingest import drop_schema, fresh_url
from siyu.db import Database
from siyu.migrate import upgrade
from siyu.segments import facade
from siyu.tenancy import facade as tenancy

console = Console()
NOW = datetime.now(UTC).replace(microsecond=0)
HALF_YEAR_S = 180 * 86_400
KY = 6371.0088 * math.pi / 180.0
KX = KY * math.cos(math.radians(31.1955))


def series(dialect: str, n: int) -> str:
    """A one-column ``i`` relation of 0…n−1."""
    if dialect == "postgresql":
        return f"(SELECT generate_series(0::bigint, {n - 1}) AS i) g"
    recursive = f"WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {n - 1})"
    return f"({recursive} SELECT i FROM s) g"


def ts(dialect: str, seconds_ago: str) -> str:
    """``NOW − seconds_ago`` as the engine stores a ``UTCDateTime``."""
    base = NOW.strftime("%Y-%m-%d %H:%M:%S")
    if dialect == "postgresql":
        return f"(TIMESTAMPTZ '{base}+00' - ({seconds_ago}) * INTERVAL '1 second')"
    return f"(strftime('%Y-%m-%d %H:%M:%S', '{base}', '-' || ({seconds_ago}) || ' seconds') || '.000000')"


def member(dialect: str, expr: str) -> str:
    if dialect == "postgresql":
        return f"('mbr_' || lpad(({expr})::text, 10, '0'))"
    return f"('mbr_' || printf('%010d', {expr}))"


def generate(db: Database, members: int, events: int) -> tuple[str, str]:
    with db.unit_of_work() as session:
        merchant_id = tenancy.create_merchant(session, name="bench").id
        store = tenancy.create_store(
            session, merchant_id, name="徐家汇", latitude=31.1955, longitude=121.4365
        ).id
    d = db.engine.dialect.name
    m = f"'{merchant_id}'"
    statements = [
        f"""INSERT INTO members (merchant_id, id, status, birthday, created_at, updated_at)
            SELECT {m}, {member(d, "i")}, CASE WHEN i % 50 = 0 THEN 'merged' ELSE 'active' END,
                   CASE WHEN i % 3 = 0 THEN '0' || (1 + i % 9) || '-15' END, {ts(d, f"i % {HALF_YEAR_S}")},
                   {ts(d, "0")}
            FROM {series(d, members)}""",
        f"""INSERT INTO member_rollups (merchant_id, member_id, first_seen_at, last_seen_at, first_order_at,
                last_order_at, order_count, total_spend_fen, refund_count, refund_fen, visit_count,
                last_channel)
            SELECT {m}, {member(d, "i")}, {ts(d, f"{HALF_YEAR_S}")}, {ts(d, f"(i * 7) % {HALF_YEAR_S}")},
                   CASE WHEN i % 4 > 0 THEN {ts(d, f"{HALF_YEAR_S}")} END,
                   CASE WHEN i % 4 > 0 THEN {ts(d, f"(i * 13) % {HALF_YEAR_S}")} END,
                   i % 4 * 2, (i % 4) * 2 * 3500, 0, 0, i % 9,
                   CASE WHEN i % 2 = 0 THEN 'alipay' ELSE 'wechat' END
            FROM {series(d, members)}""",
        f"""INSERT INTO member_tags (merchant_id, member_id, tag, created_at)
            SELECT {m}, {member(d, "i")}, CASE WHEN i % 10 = 0 THEN 'vip' ELSE 'coffee' END, {ts(d, "0")}
            FROM {series(d, members)} WHERE i % 5 = 0""",
        f"""INSERT INTO points_accounts (merchant_id, member_id, balance, updated_at)
            SELECT {m}, {member(d, "i")}, (i * 37) % 2000, {ts(d, "0")}
            FROM {series(d, members)} WHERE i % 2 = 0""",
        f"""INSERT INTO member_locations (merchant_id, member_id, latitude, longitude, at, source)
            SELECT {m}, {member(d, "i")}, 31.0 + (i % 1000) * 0.0005, 121.2 + ((i * 7) % 1000) * 0.0005,
                   {ts(d, "0")}, 'bench' FROM {series(d, members)} WHERE i % 3 = 0""",
        f"""INSERT INTO events (merchant_id, event_id, member_id, type, occurred_at, received_at, channel,
                store_id, amount_fen, properties)
            SELECT {m}, 'e' || i, {member(d, f"(i * 7919) % {members}")},
                   CASE WHEN i % 10 < 2 THEN 'order_paid' WHEN i % 10 < 8 THEN 'visit' ELSE 'custom.like' END,
                   {ts(d, f"(i * 104729) % {HALF_YEAR_S}")}, {ts(d, "0")},
                   CASE WHEN i % 2 = 0 THEN 'alipay' END, CASE WHEN i % 7 = 0 THEN '{store}' END,
                   CASE WHEN i % 10 < 2 THEN 2500 END, '{{}}'
            FROM {series(d, events)}""",
    ]
    for statement in statements:
        started = time.perf_counter()
        with db.engine.begin() as connection:
            connection.execute(text(statement))
        console.print(f"  {statement.split()[2]:<16} {time.perf_counter() - started:7.1f} s")
    with db.engine.connect() as connection:
        connection.execute(text("ANALYZE"))
        connection.commit()
    return merchant_id, store


def cases(merchant_id: str, store: str, dialect: str) -> list[tuple[str, dict[str, Any], str]]:
    m = f"'{merchant_id}'"
    since30 = ts(dialect, str(30 * 86_400))
    since90 = ts(dialect, str(90 * 86_400))
    now = ts(dialect, "0")
    active = f"FROM members x WHERE x.merchant_id = {m} AND x.status = 'active'"
    return [
        (
            "order_paid ≥ 2 in 30 days",
            {"behaviour": {"event": "order_paid", "op": "gte", "count": 2, "within_days": 30}},
            f"""SELECT count(*) {active} AND x.id IN (SELECT member_id FROM events WHERE merchant_id = {m}
                AND type = 'order_paid' AND occurred_at >= {since30} AND occurred_at <= {now}
                GROUP BY member_id HAVING count(*) >= 2)""",
        ),
        (
            "visited store S in 90 days",
            {"behaviour": {"event": "visit", "store_id": store, "within_days": 90}},
            f"""SELECT count(*) {active} AND EXISTS (SELECT 1 FROM events e WHERE e.merchant_id = {m}
                AND e.member_id = x.id AND e.type = 'visit' AND e.store_id = '{store}'
                AND e.occurred_at >= {since90} AND e.occurred_at <= {now})""",
        ),
        (
            "RFM + tag + points",
            {
                "and": [
                    {"rfm": {"measure": "frequency", "op": "gte", "value": 4}},
                    {"tags": {"any": ["vip"]}},
                    {"points": {"op": "gte", "value": 500}},
                ]
            },
            f"""SELECT count(*) {active} AND EXISTS (SELECT 1 FROM member_rollups r WHERE r.merchant_id = {m}
                AND r.member_id = x.id AND r.order_count >= 4) AND EXISTS (SELECT 1 FROM member_tags t
                WHERE t.merchant_id = {m} AND t.member_id = x.id AND t.tag = 'vip') AND EXISTS (SELECT 1
                FROM points_accounts p WHERE p.merchant_id = {m} AND p.member_id = x.id
                AND p.balance >= 500)""",
        ),
        (
            "within 3 km of store S, not ordered in 30 days",
            {
                "and": [
                    {"near": {"store_id": store, "km": 3}},
                    {"not": {"behaviour": {"event": "order_paid", "within_days": 30}}},
                ]
            },
            f"""SELECT count(*) {active} AND EXISTS (SELECT 1 FROM member_locations l
                WHERE l.merchant_id = {m} AND l.member_id = x.id
                AND ((l.latitude - 31.1955) * {KY!r}) * ((l.latitude - 31.1955) * {KY!r})
                + ((l.longitude - 121.4365) * {KX!r}) * ((l.longitude - 121.4365) * {KX!r}) <= 9)
                AND NOT EXISTS (SELECT 1 FROM events e WHERE e.merchant_id = {m} AND e.member_id = x.id
                AND e.type = 'order_paid' AND e.occurred_at >= {since30} AND e.occurred_at <= {now})""",
        ),
    ]


def best(repeat: int, run: Callable[[], int]) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("SIYU_BENCH_DATABASE_URL"))
    parser.add_argument(
        "--type-index",
        action="store_true",
        help="also index events (merchant_id, type, occurred_at) — an experiment: Siyu has no such index",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url, schema = fresh_url(args.database_url, Path(tmp))
        try:
            db = Database(url)
            upgrade(db.engine)
            console.print(
                f"generating {args.members:,} members and {args.events:,} events on {db.engine.dialect.name}"
            )
            merchant_id, store = generate(db, args.members, args.events)
            if args.type_index:
                with db.engine.begin() as connection:
                    connection.execute(
                        text("CREATE INDEX bench_events_type ON events (merchant_id, type, occurred_at)")
                    )
                    connection.execute(text("ANALYZE"))
            table = Table("rule", "compiled s", "anchor s", "ratio", "members")
            for label, rule, anchor in cases(merchant_id, store, db.engine.dialect.name):
                with db.reading() as session:
                    ids = facade.member_ids(session, merchant_id, rule, now=NOW)
                    counted = select(func.count()).select_from(ids.subquery())
                    compiled_s, compiled_n = best(
                        args.repeat, lambda q=counted: int(session.execute(q).scalar_one())
                    )
                    anchor_s, anchor_n = best(
                        args.repeat, lambda q=text(anchor): int(session.execute(q).scalar_one())
                    )
                if compiled_n != anchor_n:
                    console.print(f"[red]{label}: compiled {compiled_n} ≠ anchor {anchor_n}[/red]")
                    return 1
                table.add_row(
                    label,
                    f"{compiled_s:.3f}",
                    f"{anchor_s:.3f}",
                    f"{compiled_s / anchor_s:.2f}",
                    f"{compiled_n:,}",
                )
            console.print(table)
            db.engine.dispose()
        finally:
            drop_schema(args.database_url, schema)
    return 0


if __name__ == "__main__":
    sys.exit(main())
