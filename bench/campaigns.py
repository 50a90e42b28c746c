"""Segments, campaign fan-out and the payment-success decision, each against an anchor.

    python bench/campaigns.py preview  [--database-url postgresql+psycopg://…] [--schema bench_segments]
    python bench/campaigns.py fanout   [--database-url …] [--members 100000]
    python bench/campaigns.py decision [--rate 200] [--seconds 30]

**preview** — segment preview (count + a sample of 20) on the dataset of bench/segment_data.py
(1 M members, 30 M events: generate it first, once per engine). Each rule is timed through
:func:`siyu.segments.facade.preview` (the compiled SQL) and against the anchor: the same count
written by hand in SQL, run on the same connection. Counts must agree (else exit 1); the ratio is
anchor time ÷ compiled time (1.0 = as fast as hand-written SQL). Every query runs 3 times; the
best is reported (the first run warms the cache).

**fanout** and **decision** are described at their functions.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.table import Table
from sqlalchemy import TextClause, bindparam, select, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).parent))
from segment_data import MERCHANT_NAME, NOW
from siyu.db import Database, UTCDateTime
from siyu.migrate import upgrade
from siyu.segments import facade as segments
from siyu.tenancy.models import Merchant

console = Console()
REPEATS = 3

PREVIEW_RULES: list[tuple[str, dict[str, Any], str]] = [
    (
        "order_paid ≥ 2 in 30 days",
        {"behaviour": {"event": "order_paid", "op": "gte", "count": 2, "within_days": 30}},
        "SELECT count(*) FROM members m WHERE m.merchant_id = :m AND m.status = 'active' AND m.id IN ("
        " SELECT member_id FROM events WHERE merchant_id = :m AND type = 'order_paid'"
        " AND occurred_at >= :since30 GROUP BY member_id HAVING count(*) >= 2)",
    ),
    (
        "RFM: recent ≤ 30 d, ≥ 5 orders, ≥ 300 yuan",
        {
            "and": [
                {"rfm": {"measure": "recency_days", "op": "lte", "value": 30}},
                {"rfm": {"measure": "frequency", "op": "gte", "value": 5}},
                {"rfm": {"measure": "monetary_fen", "op": "gte", "value": 30_000}},
            ]
        },
        "SELECT count(*) FROM members m JOIN member_rollups r ON r.merchant_id = m.merchant_id"
        " AND r.member_id = m.id WHERE m.merchant_id = :m AND m.status = 'active'"
        " AND r.last_order_at > :since31 AND r.order_count >= 5 AND r.total_spend_fen >= 30000",
    ),
    (
        "repeat/super, tagged vip, no visit in 14 days",
        {
            "and": [
                {"stage": {"in": ["repeat", "super"]}},
                {"tags": {"any": ["vip"]}},
                {"not": {"behaviour": {"event": "visit", "within_days": 14}}},
            ]
        },
        "SELECT count(*) FROM members m JOIN member_stages s ON s.merchant_id = m.merchant_id"
        " AND s.member_id = m.id WHERE m.merchant_id = :m AND m.status = 'active'"
        " AND s.stage IN ('repeat', 'super')"
        " AND EXISTS (SELECT 1 FROM member_tags t WHERE t.merchant_id = m.merchant_id"
        "  AND t.member_id = m.id AND t.tag = 'vip')"
        " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.merchant_id = m.merchant_id"
        "  AND e.member_id = m.id AND e.type = 'visit' AND e.occurred_at >= :since14)",
    ),
]


def best_of(run: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def count_of(session: Session, table: str, merchant_id: str) -> int:
    query = text(f"SELECT count(*) FROM {table} WHERE merchant_id = :m")
    return int(session.execute(query, {"m": merchant_id}).scalar_one())


def measure(
    session: Session, merchant_id: str, rule: dict[str, Any], anchor: TextClause
) -> tuple[float, int, float, int]:
    """(preview seconds, its count, hand-SQL seconds, its count) — best of :data:`REPEATS`."""
    ours, result = best_of(lambda: segments.preview(session, merchant_id, rule, now=NOW, sample=20))
    mine, count = best_of(lambda: int(session.execute(anchor.bindparams(m=merchant_id)).scalar_one()))
    return ours, result.count, mine, count


def engine_url(args: argparse.Namespace) -> str:
    if not args.database_url:
        return f"sqlite:///{args.sqlite}"
    separator = "&" if "?" in args.database_url else "?"
    return f"{args.database_url}{separator}options={quote(f'-csearch_path={args.schema}')}"


def preview(args: argparse.Namespace) -> int:
    url = engine_url(args)
    db = Database(url)
    upgrade(db.engine)  # the dataset may predate the segments tables
    engine_name = db.engine.dialect.name
    # recency_days = ⌊(now − last order) / 24 h⌋ (docs/segments.md), so "≤ 30" is "after now − 31 d"
    params = {f"since{d}": NOW - timedelta(days=d) for d in (14, 30, 31)}
    with db.unit_of_work() as session:
        merchant_id = session.scalars(select(Merchant.id).where(Merchant.name == MERCHANT_NAME)).one()
        member_count, event_count = (count_of(session, t, merchant_id) for t in ("members", "events"))
    table = Table(title=f"segment preview on {engine_name}: {member_count:,} members, {event_count:,} events")
    for column in ("rule", "members", "preview (s)", "hand SQL (s)", "ratio"):
        table.add_column(column, justify="right" if column != "rule" else "left")
    failed = False
    for name, rule, anchor_sql in PREVIEW_RULES:
        anchor_query = text(anchor_sql).bindparams(
            *(bindparam(k, v, type_=UTCDateTime()) for k, v in params.items() if f":{k}" in anchor_sql)
        )
        with db.unit_of_work() as session:
            ours, found, anchor, count = measure(session, merchant_id, rule, anchor_query)
        if found != count:
            failed = True
            console.print(f"[red]count mismatch for {name}: preview {found}, hand SQL {count}")
        table.add_row(name, f"{found:,}", f"{ours:.2f}", f"{anchor:.2f}", f"{anchor / ours:.2f}")
    console.print(table)
    db.dispose()
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("preview")
    p.add_argument("--sqlite", default="/tmp/siyu-bench-segments.db")
    p.add_argument("--database-url")
    p.add_argument("--schema", default="bench_segments")
    args = parser.parse_args()
    if args.command == "preview":
        return preview(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
